//! Checking tool arguments against a tool's `inputSchema`: a documented subset of JSON
//! Schema (2020-12), enough for the schemas MCP servers publish.
//!
//! Checked keywords: `type` (one name or a list), `enum`, `const`, `properties`,
//! `required`, `additionalProperties` (a boolean or a schema), `items` (one schema),
//! `prefixItems`, `minItems`, `maxItems`, `uniqueItems`, `minLength`, `maxLength`,
//! `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//! `minProperties`, `maxProperties`, `allOf`, `anyOf`, `oneOf`, `not`, and local
//! `$ref`s into `#/$defs/...` or `#/definitions/...`.
//!
//! Not checked (accepted as if absent): `pattern`, `patternProperties`, `format`,
//! `if`/`then`/`else`, `dependentSchemas`, remote `$ref`s, and any unknown keyword. The
//! upstream server still validates its own arguments; this check exists so that obviously
//! wrong calls are refused at the front door with a precise message, without a round trip
//! through the router, and without costing an upstream an execution.
//!
//! Nesting deeper than [`MAX_DEPTH`] is refused rather than recursed into (a schema or an
//! argument document can be adversarial).

use serde_json::{Map, Value};

/// Deepest schema/document nesting the checker follows.
pub const MAX_DEPTH: usize = 64;

/// Why arguments do not satisfy a schema: the first violation found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if pointer.is_empty() { String::new() } else { format!("{pointer}: ") })]
pub struct SchemaViolation {
    /// JSON pointer into the arguments (`""` for the whole object).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// Checks `value` against `schema` (a tool's `inputSchema`).
pub fn check(schema: &Map<String, Value>, value: &Value) -> Result<(), SchemaViolation> {
    let root = Value::Object(schema.clone());
    Checker { root: &root }.check(&root, value, &mut String::new(), 0)
}

struct Checker<'a> {
    root: &'a Value,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    let actual = type_name(v);
    actual == t || (t == "number" && actual == "integer")
}

fn violation(pointer: &str, message: impl Into<String>) -> SchemaViolation {
    SchemaViolation { pointer: pointer.to_owned(), message: message.into() }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

impl Checker<'_> {
    fn resolve<'s>(&'s self, reference: &str) -> Option<&'s Value> {
        let path = reference.strip_prefix("#")?;
        if path.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(path)
    }

    fn check(&self, schema: &Value, v: &Value, at: &mut String, depth: usize) -> Result<(), SchemaViolation> {
        if depth > MAX_DEPTH {
            return Err(violation(at, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let s = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(violation(at, "no value is allowed here")),
            Value::Object(s) => s,
            // Not a schema: nothing to check against.
            _ => return Ok(()),
        };
        if let Some(Value::String(r)) = s.get("$ref")
            && let Some(target) = self.resolve(r)
        {
            self.check(target, v, at, depth + 1)?;
        }
        if let Some(t) = s.get("type") {
            let ok = match t {
                Value::String(t) => has_type(v, t),
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| has_type(v, t)),
                _ => true,
            };
            if !ok {
                return Err(violation(at, format!("expected {}, got {}", short(t), type_name(v))));
            }
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.contains(v)
        {
            return Err(violation(
                at,
                format!("must be one of {}, got {}", short(&Value::Array(options.clone())), short(v)),
            ));
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            return Err(violation(at, format!("must be {}, got {}", short(c), short(v))));
        }
        match v {
            Value::Object(obj) => self.check_object(s, obj, at, depth)?,
            Value::Array(items) => self.check_array(s, items, at, depth)?,
            Value::String(text) => {
                let chars = text.chars().count() as u64;
                if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                    && chars < min
                {
                    return Err(violation(at, format!("must be at least {min} characters, got {chars}")));
                }
                if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                    && chars > max
                {
                    return Err(violation(at, format!("must be at most {max} characters, got {chars}")));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                let bound = |k: &str| s.get(k).and_then(Value::as_f64);
                if let Some(m) = bound("minimum")
                    && x < m
                {
                    return Err(violation(at, format!("must be ≥ {m}, got {n}")));
                }
                if let Some(m) = bound("maximum")
                    && x > m
                {
                    return Err(violation(at, format!("must be ≤ {m}, got {n}")));
                }
                if let Some(m) = bound("exclusiveMinimum")
                    && x <= m
                {
                    return Err(violation(at, format!("must be > {m}, got {n}")));
                }
                if let Some(m) = bound("exclusiveMaximum")
                    && x >= m
                {
                    return Err(violation(at, format!("must be < {m}, got {n}")));
                }
                if let Some(m) = bound("multipleOf")
                    && m > 0.0
                    && ((x / m) - (x / m).round()).abs() > 1e-9
                {
                    return Err(violation(at, format!("must be a multiple of {m}, got {n}")));
                }
            }
            _ => {}
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for sub in all {
                self.check(sub, v, at, depth + 1)?;
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf")
            && !any.iter().any(|sub| self.check(sub, v, &mut at.clone(), depth + 1).is_ok())
        {
            return Err(violation(at, "matches none of the anyOf alternatives"));
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let n = one.iter().filter(|sub| self.check(sub, v, &mut at.clone(), depth + 1).is_ok()).count();
            if n != 1 {
                return Err(violation(at, format!("must match exactly one oneOf alternative, matches {n}")));
            }
        }
        if let Some(not) = s.get("not")
            && self.check(not, v, &mut at.clone(), depth + 1).is_ok()
        {
            return Err(violation(at, "matches a schema it must not match (not)"));
        }
        Ok(())
    }

    fn check_object(
        &self,
        s: &Map<String, Value>,
        obj: &Map<String, Value>,
        at: &mut String,
        depth: usize,
    ) -> Result<(), SchemaViolation> {
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(name) {
                    return Err(violation(at, format!("missing required property {name:?}")));
                }
            }
        }
        let count = obj.len() as u64;
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            return Err(violation(at, format!("must have at least {min} properties, has {count}")));
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            return Err(violation(at, format!("must have at most {max} properties, has {count}")));
        }
        let properties = s.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            let len = at.len();
            at.push('/');
            at.push_str(&escape_pointer(key));
            let result = match properties.and_then(|p| p.get(key)) {
                Some(sub) => self.check(sub, value, at, depth + 1),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known: Vec<&String> = properties.map(|p| p.keys().collect()).unwrap_or_default();
                        Err(violation(at, format!("unknown property (allowed: {})", short(&serde_json::json!(known)))))
                    }
                    Some(sub @ Value::Object(_)) => self.check(sub, value, at, depth + 1),
                    _ => Ok(()),
                },
            };
            result?;
            at.truncate(len);
        }
        Ok(())
    }

    fn check_array(
        &self,
        s: &Map<String, Value>,
        items: &[Value],
        at: &mut String,
        depth: usize,
    ) -> Result<(), SchemaViolation> {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            return Err(violation(at, format!("must have at least {min} items, has {n}")));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            return Err(violation(at, format!("must have at most {max} items, has {n}")));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].contains(a) {
                    return Err(violation(at, format!("item {i} repeats an earlier item")));
                }
            }
        }
        let prefix = s.get("prefixItems").and_then(Value::as_array);
        for (i, item) in items.iter().enumerate() {
            let sub = prefix.and_then(|p| p.get(i)).or_else(|| s.get("items"));
            if let Some(sub) = sub {
                let len = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                self.check(sub, item, at, depth + 1)?;
                at.truncate(len);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Valid arguments pass; each kind of violation names where and what.
    #[test]
    fn violations_name_the_place_and_the_rule() {
        let s = schema(json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": 0, "maximum": 10},
                "b": {"type": "string", "maxLength": 3, "enum": ["x", "yy"]},
                "list": {"type": "array", "items": {"type": "number"}, "maxItems": 2},
                "nested": {"$ref": "#/$defs/point"}
            },
            "required": ["a"],
            "additionalProperties": false,
            "$defs": {"point": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}}
        }));
        assert_eq!(check(&s, &json!({"a": 3, "b": "yy", "list": [1, 2.5], "nested": {"x": 1}})), Ok(()));
        let cases = [
            (json!({}), "", "missing required property \"a\""),
            (json!({"a": "3"}), "/a", "expected \"integer\", got string"),
            (json!({"a": 11}), "/a", "must be ≤ 10"),
            (json!({"a": 1.5}), "/a", "expected \"integer\", got number"),
            (json!({"a": 1, "b": "zz"}), "/b", "must be one of"),
            (json!({"a": 1, "list": [1, "x"]}), "/list/1", "expected \"number\", got string"),
            (json!({"a": 1, "list": [1, 2, 3]}), "/list", "at most 2 items"),
            (json!({"a": 1, "c": 1}), "/c", "unknown property"),
            (json!({"a": 1, "nested": {}}), "/nested", "missing required property \"x\""),
            (json!([1]), "", "expected \"object\", got array"),
        ];
        for (args, pointer, message) in cases {
            let err = check(&s, &args).unwrap_err();
            assert_eq!(err.pointer, pointer, "{args}: {err}");
            assert!(err.message.contains(message), "{args}: {err}");
        }
    }

    /// anyOf / oneOf / not, and type lists.
    #[test]
    fn combinators() {
        let s = schema(json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}));
        assert!(check(&s, &json!("x")).is_ok());
        assert!(check(&s, &json!(null)).is_err());
        let s = schema(json!({"oneOf": [{"type": "number"}, {"type": "integer"}]}));
        assert!(check(&s, &json!(1.5)).is_ok());
        assert!(check(&s, &json!(1)).unwrap_err().message.contains("matches 2"));
        let s = schema(json!({"type": ["string", "null"], "not": {"const": "no"}}));
        assert!(check(&s, &json!(null)).is_ok());
        assert!(check(&s, &json!("no")).is_err());
    }

    /// A self-referencing schema and a deep document stop at the depth bound, no overflow.
    #[test]
    fn recursion_is_bounded() {
        let s = schema(json!({"$ref": "#"}));
        assert!(check(&s, &json!({})).unwrap_err().message.contains("deeper"));
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let s = schema(json!({"$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}));
        assert!(check(&s, &deep).is_err());
        // Unsupported keywords are accepted as if absent.
        assert!(check(&schema(json!({"type": "string", "pattern": "^a$"})), &json!("b")).is_ok());
    }
}
