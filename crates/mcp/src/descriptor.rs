//! Tool descriptors as a replica serves them, and the content digest of a replica's list.

use std::sync::Arc;

use erlmcp_flow::registry::stable_hash;
use rmcp::model::Tool;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One tool of an upstream server, as its replica lists it, plus what the node decided
/// about retrying it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDescriptor {
    /// The tool exactly as the upstream listed it (`name` is the upstream's name).
    pub tool: Tool,
    /// Safe to call more than once: the tool declares `readOnlyHint` or `idempotentHint`,
    /// or the upstream's config lists it in `idempotent_tools`.
    pub idempotent: bool,
    /// The upstream's per-call timeout, ms (`call_timeout_ms`).
    pub timeout_ms: u64,
}

impl ToolDescriptor {
    /// A descriptor; `idempotent_in_config` is the node's `idempotent_tools` verdict and
    /// `timeout_ms` the upstream's `call_timeout_ms`.
    pub fn new(tool: Tool, idempotent_in_config: bool, timeout_ms: u64) -> Self {
        let declared = tool
            .annotations
            .as_ref()
            .is_some_and(|a| a.read_only_hint == Some(true) || a.idempotent_hint == Some(true));
        Self { idempotent: declared || idempotent_in_config, timeout_ms, tool }
    }

    /// The upstream's tool name.
    pub fn name(&self) -> &str {
        &self.tool.name
    }

    /// The input schema in canonical JSON (sorted keys): equal text, equal schema.
    pub fn canonical_schema(&self) -> String {
        canonical_json(&Value::Object((*self.tool.input_schema).clone()))
    }
}

/// The tools one replica of `server` serves; identified by its [`digest`](Self::digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaCatalog {
    /// The upstream server's name.
    pub server: String,
    /// Its tools, sorted by name.
    pub tools: Vec<ToolDescriptor>,
}

impl ReplicaCatalog {
    /// A catalog with the tools sorted by name.
    pub fn new(server: impl Into<String>, mut tools: Vec<ToolDescriptor>) -> Self {
        tools.sort_by(|a, b| a.name().cmp(b.name()));
        tools.dedup_by(|a, b| a.name() == b.name());
        Self { server: server.into(), tools }
    }

    /// Content digest: equal for equal server, tools, schemas, annotations and verdicts,
    /// on every node and every run.
    pub fn digest(&self) -> u64 {
        let v = serde_json::to_value(self).expect("a catalog serialises");
        stable_hash(canonical_json(&v).as_bytes())
    }

    /// The catalog shared.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

/// JSON text with every object's keys sorted, recursively: a canonical form for hashing
/// and comparing (serde_json may keep insertion order).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, schema: Value, annotations: Option<Value>) -> Tool {
        let mut t = json!({"name": name, "inputSchema": schema});
        if let Some(a) = annotations {
            t["annotations"] = a;
        }
        serde_json::from_value(t).unwrap()
    }

    /// The digest ignores key order and tool order, and changes with any schema change.
    #[test]
    fn digest_is_canonical() {
        let a = tool("a", json!({"type": "object", "properties": {"x": {"type": "integer"}}}), None);
        let a_reordered = tool("a", json!({"properties": {"x": {"type": "integer"}}, "type": "object"}), None);
        let b = tool("b", json!({"type": "object"}), None);
        let one = ReplicaCatalog::new(
            "s",
            vec![ToolDescriptor::new(a.clone(), false, 1000), ToolDescriptor::new(b.clone(), false, 1000)],
        );
        let two = ReplicaCatalog::new(
            "s",
            vec![ToolDescriptor::new(b.clone(), false, 1000), ToolDescriptor::new(a_reordered, false, 1000)],
        );
        assert_eq!(one.digest(), two.digest());
        let changed = tool("a", json!({"type": "object", "properties": {"x": {"type": "string"}}}), None);
        let three = ReplicaCatalog::new(
            "s",
            vec![ToolDescriptor::new(changed, false, 1000), ToolDescriptor::new(b, false, 1000)],
        );
        assert_ne!(one.digest(), three.digest());
        assert_ne!(one.digest(), ReplicaCatalog::new("t", one.tools.clone()).digest());
    }

    /// `readOnlyHint` or `idempotentHint` (or config) makes a tool idempotent; nothing else.
    #[test]
    fn idempotence_comes_from_hints_or_config() {
        let s = json!({"type": "object"});
        assert!(ToolDescriptor::new(tool("r", s.clone(), Some(json!({"readOnlyHint": true}))), false, 1000).idempotent);
        assert!(
            ToolDescriptor::new(tool("i", s.clone(), Some(json!({"idempotentHint": true}))), false, 1000).idempotent
        );
        assert!(
            !ToolDescriptor::new(tool("d", s.clone(), Some(json!({"destructiveHint": false}))), false, 1000).idempotent
        );
        assert!(!ToolDescriptor::new(tool("n", s.clone(), None), false, 1000).idempotent);
        assert!(ToolDescriptor::new(tool("c", s, None), true, 1000).idempotent);
    }
}
