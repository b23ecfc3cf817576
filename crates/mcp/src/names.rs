//! How MCP things are named in erlmcp-flow's vocabulary: capabilities and agent ids.
//!
//! Every upstream replica runs one agent per concurrent call slot (a *lane*). A lane has:
//!
//! * `tool:<tool>` for each tool it serves (a call of an unambiguous tool needs only
//!   this one);
//! * `mcp:<server>`, its server (a namespaced call `server.tool` needs this one as well);
//! * `mcp-catalog:<server>:<digest>`, the content address of its replica's tool list:
//!   a front door that has not seen this digest yet routes a `describe` task here to
//!   fetch the descriptors (schemas travel once per digest, never in the gossip rounds).
//!
//! The `tool:`, `mcp:` and `mcp-catalog:` prefixes are reserved for MCP lanes.

use erlmcp_flow::core::id::MAX_NAME_BYTES;
use erlmcp_flow::registry::stable_hash;
use erlmcp_flow::{AgentId, Capability, CapabilitySet};

/// Prefix of tool capabilities.
pub const TOOL_PREFIX: &str = "tool:";
/// Prefix of server capabilities.
pub const SERVER_PREFIX: &str = "mcp:";
/// Prefix of catalog capabilities.
pub const CATALOG_PREFIX: &str = "mcp-catalog:";

/// The capability of tool `tool`: `tool:<tool>`, or `tool#<hash>` when that would be
/// longer than a capability may be (tool names may be 128 bytes).
pub fn tool_capability(tool: &str) -> Capability {
    let plain = format!("{TOOL_PREFIX}{tool}");
    if plain.len() <= MAX_NAME_BYTES
        && let Ok(c) = Capability::new(&plain)
    {
        return c;
    }
    Capability::new(format!("tool#{:016x}", stable_hash(tool.as_bytes()))).expect("hex is a valid name")
}

/// The capability of server `server` (a validated upstream name).
pub fn server_capability(server: &str) -> Capability {
    Capability::new(format!("{SERVER_PREFIX}{server}")).expect("upstream names are validated")
}

/// The capability of a replica whose tool list has `digest`.
pub fn catalog_capability(server: &str, digest: u64) -> Capability {
    Capability::new(format!("{CATALOG_PREFIX}{server}:{digest:016x}")).expect("upstream names are validated")
}

/// Parses a catalog capability back into `(server, digest)`.
pub fn parse_catalog_capability(cap: &Capability) -> Option<(String, u64)> {
    let rest = cap.as_str().strip_prefix(CATALOG_PREFIX)?;
    let (server, digest) = rest.rsplit_once(':')?;
    Some((server.to_owned(), u64::from_str_radix(digest, 16).ok()?))
}

/// What a call of a tool needs: the tool, and the server when the name is namespaced.
pub fn call_capabilities(tool: &str, server: Option<&str>) -> CapabilitySet {
    let mut caps = vec![tool_capability(tool)];
    if let Some(s) = server {
        caps.push(server_capability(s));
    }
    CapabilitySet::from(caps)
}

/// The agent id of lane `lane` of replica `replica` of `server`: `mcp.<server>.<replica>.<lane>`.
pub fn lane_id(server: &str, replica: u32, lane: u32) -> AgentId {
    AgentId::new(format!("mcp.{server}.{replica}.{lane}")).expect("upstream names are validated")
}

/// Gives a lane's registry entry a bulkhead of one slot.
///
/// A lane executes one call at a time; with the node-wide bulkhead
/// (`router.bulkhead_max_concurrent`, 8 by default) the router would queue up to seven
/// more calls in its mailbox, where they would wait behind a long call while other lanes
/// sit idle. With one slot a call goes to a free lane, or waits (up to
/// `timeouts.routing_ms`) for the first lane to free up. Applied to this node's lanes when
/// they are spawned and to every lane entry (other nodes' included) at each catalog
/// refresh: slots held while it runs come back later and are trimmed at the next call.
pub fn limit_to_one_call(entry: &erlmcp_flow::registry::AgentEntry) {
    let available = entry.bulkhead.available_permits();
    if available > 1 {
        entry.bulkhead.forget_permits(available - 1);
    }
}

/// Whether `tool` is a valid MCP tool name we can serve: 1 to 128 printable ASCII
/// characters without spaces (the MCP specification recommends `[A-Za-z0-9_.-]`).
pub fn is_servable_tool_name(tool: &str) -> bool {
    (1..=128).contains(&tool.len()) && tool.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long tool names get a hashed capability; catalog capabilities round-trip.
    #[test]
    fn capabilities_are_valid_names_and_round_trip() {
        assert_eq!(tool_capability("echo").as_str(), "tool:echo");
        let long = "x".repeat(128);
        let c = tool_capability(&long);
        assert!(c.as_str().starts_with("tool#"), "{c}");
        assert_eq!(c, tool_capability(&long));
        assert_ne!(c, tool_capability(&"y".repeat(128)));
        let cat = catalog_capability("files", 0xabc);
        assert_eq!(parse_catalog_capability(&cat), Some(("files".into(), 0xabc)));
        assert_eq!(parse_catalog_capability(&tool_capability("a")), None);
        assert_eq!(call_capabilities("t", Some("s")).len(), 2);
        assert_eq!(lane_id("files", 0, 3).as_str(), "mcp.files.0.3");
        assert!(!is_servable_tool_name("has space"));
        assert!(is_servable_tool_name("a.b-c_d"));
    }
}
