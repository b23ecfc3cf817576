//! The tools a front door lists: every live replica's tools, merged by name.
//!
//! Pure: [`Catalog::build`] takes the replica catalogs live in the cluster right now
//! and returns what to list and how to route each name. The rule:
//!
//! * a tool name served by servers that all agree on its input schema is listed once,
//!   under its own name, and a call of it may go to any replica of any of those servers;
//! * a tool name whose servers disagree on the schema is listed once per server as
//!   `server.tool`, and a call of `server.tool` goes to that server's replicas only;
//! * a tool is idempotent (retried after a failure that may have run it) only if every
//!   server listing it says so;
//! * replicas of one server whose lists differ (a rolling upgrade) contribute the
//!   descriptor of the greatest digest, deterministically on every node;
//! * names that would collide (a server's own tool literally named `a.b` next to a
//!   namespaced `a.b`) keep the first one by (name, server) order and log the other.
//!
//! The listing is a pure function of the set of live catalogs, so every node that sees
//! the same directory lists the same tools.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use erlmcp_flow::CapabilitySet;
use rmcp::model::Tool;

use crate::descriptor::{ReplicaCatalog, ToolDescriptor};
use crate::names::call_capabilities;

/// One tool as a front door lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposedTool {
    /// The listed name (`tool` or `server.tool`).
    pub name: String,
    /// The upstream's name of the tool.
    pub upstream_name: String,
    /// Servers that serve it.
    pub servers: Vec<String>,
    /// The descriptor listed (with `name` replaced by the listed name).
    pub tool: Tool,
    /// Retried after a failure that may have run it.
    pub idempotent: bool,
    /// Per-call timeout, ms: the longest of its servers' `call_timeout_ms`.
    pub timeout_ms: u64,
    /// What a call needs.
    pub capabilities: CapabilitySet,
}

/// The merged tool list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    tools: BTreeMap<String, Arc<ExposedTool>>,
}

impl Catalog {
    /// Merges `replicas` (each live catalog once).
    pub fn build<'a>(replicas: impl IntoIterator<Item = &'a ReplicaCatalog>) -> Catalog {
        // server -> the catalog with the greatest digest.
        let mut per_server: BTreeMap<&str, (u64, &ReplicaCatalog)> = BTreeMap::new();
        for c in replicas {
            let d = c.digest();
            let slot = per_server.entry(c.server.as_str()).or_insert((d, c));
            if d > slot.0 {
                *slot = (d, c);
            }
        }
        // tool name -> (server, descriptor)
        let mut by_name: BTreeMap<&str, Vec<(&str, &ToolDescriptor)>> = BTreeMap::new();
        for (server, (_, c)) in &per_server {
            for t in &c.tools {
                by_name.entry(t.name()).or_default().push((server, t));
            }
        }
        let mut tools: BTreeMap<String, Arc<ExposedTool>> = BTreeMap::new();
        let mut insert = |e: ExposedTool| {
            if let Some(existing) = tools.get(&e.name) {
                tracing::warn!(name = %e.name, kept = ?existing.servers, dropped = ?e.servers, "two tools list under one name");
                return;
            }
            tools.insert(e.name.clone(), Arc::new(e));
        };
        for (name, servers) in by_name {
            let schemas: BTreeSet<String> = servers.iter().map(|(_, t)| t.canonical_schema()).collect();
            if schemas.len() == 1 {
                let (_, first) = servers[0];
                insert(ExposedTool {
                    name: name.to_owned(),
                    upstream_name: name.to_owned(),
                    servers: servers.iter().map(|(s, _)| (*s).to_owned()).collect(),
                    tool: first.tool.clone(),
                    idempotent: servers.iter().all(|(_, t)| t.idempotent),
                    timeout_ms: servers.iter().map(|(_, t)| t.timeout_ms).max().unwrap_or(1),
                    capabilities: call_capabilities(name, None),
                });
            } else {
                for (server, t) in servers {
                    let listed = format!("{server}.{name}");
                    let mut tool = t.tool.clone();
                    tool.name = listed.clone().into();
                    insert(ExposedTool {
                        name: listed,
                        upstream_name: name.to_owned(),
                        servers: vec![server.to_owned()],
                        tool,
                        idempotent: t.idempotent,
                        timeout_ms: t.timeout_ms,
                        capabilities: call_capabilities(name, Some(server)),
                    });
                }
            }
        }
        Catalog { tools }
    }

    /// The tool listed as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ExposedTool>> {
        self.tools.get(name)
    }

    /// Every listed tool, by name.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<ExposedTool>> {
        self.tools.values()
    }

    /// Number of listed tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desc(name: &str, ty: &str, idempotent: bool) -> ToolDescriptor {
        let t: Tool = serde_json::from_value(json!({
            "name": name,
            "inputSchema": {"type": "object", "properties": {"x": {"type": ty}}}
        }))
        .unwrap();
        ToolDescriptor::new(t, idempotent, 1000)
    }

    /// Agreeing servers share one name; disagreeing ones are namespaced per server.
    #[test]
    fn namespaces_only_on_disagreement() {
        let a = ReplicaCatalog::new("a", vec![desc("echo", "string", true), desc("add", "integer", true)]);
        let b = ReplicaCatalog::new("b", vec![desc("echo", "string", false), desc("add", "number", true)]);
        let c = Catalog::build([&a, &b]);
        let names: Vec<&str> = c.tools().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.add", "b.add", "echo"]);
        let echo = c.get("echo").unwrap();
        assert_eq!(echo.servers, ["a", "b"]);
        assert!(!echo.idempotent, "idempotent only if every server says so");
        assert_eq!(echo.capabilities, call_capabilities("echo", None));
        let a_add = c.get("a.add").unwrap();
        assert_eq!(a_add.upstream_name, "add");
        assert_eq!(a_add.tool.name, "a.add");
        assert_eq!(a_add.capabilities, call_capabilities("add", Some("a")));
    }

    /// The same set of catalogs in any order, with duplicates, gives the same listing;
    /// two versions of one server contribute only the greatest digest.
    #[test]
    fn deterministic_and_one_version_per_server() {
        let v1 = ReplicaCatalog::new("s", vec![desc("t", "string", false)]);
        let v2 = ReplicaCatalog::new("s", vec![desc("t", "integer", false), desc("u", "string", false)]);
        let one = Catalog::build([&v1, &v2, &v1]);
        let two = Catalog::build([&v2, &v1]);
        assert_eq!(one, two);
        let winner = if v1.digest() > v2.digest() { &v1 } else { &v2 };
        assert_eq!(one.len(), winner.tools.len());
        assert!(Catalog::build([]).is_empty());
    }
}
