//! The agent directory and load figures as gossip keys: a typed layer over the opaque
//! byte values of [`GossipState`].
//!
//! Each node publishes two keys, written only by itself:
//!
//! * `agents/<node>`: the node's agents ([`AgentRecord`]: id, node, capabilities), as one
//!   value, so a node's whole agent list changes atomically and a digest holds one row
//!   per node rather than one per agent;
//! * `load/<node>`: the node's load figures ([`NodeLoad`]), a separate key because it
//!   changes far more often than the agent list.
//!
//! Values are encoded with the workspace [`Codec`]. [`Directory::read`] decodes what a
//! replica holds; a value that does not decode, or agent records that claim another node
//! than their key, are skipped and counted rather than trusted.

use std::collections::BTreeMap;

use bytes::Bytes;
use erlmcp_flow_core::{AgentId, CapabilitySet, Codec, CodecError, NodeName, SwarmName};
use serde::{Deserialize, Serialize};

use crate::state::GossipState;

/// Key prefix of agent lists.
pub const AGENTS_PREFIX: &str = "agents/";
/// Key prefix of load figures.
pub const LOAD_PREFIX: &str = "load/";

/// One agent as the rest of the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's id (unique within its node).
    pub id: AgentId,
    /// The node it runs on.
    pub node: NodeName,
    /// What it can do.
    pub capabilities: CapabilitySet,
    /// Swarms it belongs to.
    pub swarms: Vec<SwarmName>,
    /// Weight for weighted routing (≥ 1).
    pub weight: u32,
    /// False while it is down (crashed, restarting).
    pub alive: bool,
}

/// A node's load figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Tasks accepted and not yet terminal.
    pub in_flight: u64,
    /// Agents alive on the node.
    pub agents_alive: u32,
}

/// The key of `node`'s agent list.
pub fn agents_key(node: &NodeName) -> String {
    format!("{AGENTS_PREFIX}{node}")
}

/// Key prefix of node listen addresses.
pub const ADDR_PREFIX: &str = "addr/";

/// The key of `node`'s listen address (how nodes find the whole mesh).
pub fn addr_key(node: &NodeName) -> String {
    format!("{ADDR_PREFIX}{node}")
}

/// The key of `node`'s load figures.
pub fn load_key(node: &NodeName) -> String {
    format!("{LOAD_PREFIX}{node}")
}

/// `(key, value)` publishing `node`'s agents.
pub fn encode_agents(codec: &Codec, node: &NodeName, agents: &[AgentRecord]) -> Result<(String, Bytes), CodecError> {
    Ok((agents_key(node), Bytes::from(codec.encode(agents)?)))
}

/// `(key, value)` publishing `node`'s load.
pub fn encode_load(codec: &Codec, node: &NodeName, load: &NodeLoad) -> Result<(String, Bytes), CodecError> {
    Ok((load_key(node), Bytes::from(codec.encode(load)?)))
}

/// The agent directory and load figures decoded from one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// Agents per node.
    pub agents: BTreeMap<NodeName, Vec<AgentRecord>>,
    /// Load per node.
    pub load: BTreeMap<NodeName, NodeLoad>,
    /// Values skipped: undecodable, a bad node name in the key, or records naming
    /// another node than their key.
    pub skipped: usize,
}

impl Directory {
    /// Decodes the directory from a replica's live values.
    pub fn read(state: &GossipState, codec: &Codec) -> Self {
        Self::from_entries(state.iter(), codec)
    }

    /// Decodes the directory from live `(key, value)` pairs (for instance a
    /// [`GossipHandle::snapshot`](crate::GossipHandle::snapshot)); other keys are ignored.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Bytes)>, codec: &Codec) -> Self {
        let mut dir = Directory::default();
        for (key, value) in entries {
            if let Some(node) = key.strip_prefix(AGENTS_PREFIX) {
                match (NodeName::new(node), codec.decode::<Vec<AgentRecord>>(value)) {
                    (Ok(node), Ok(records)) => {
                        let total = records.len();
                        let own: Vec<AgentRecord> = records.into_iter().filter(|r| r.node == node).collect();
                        dir.skipped += total - own.len();
                        dir.agents.insert(node, own);
                    }
                    _ => dir.skipped += 1,
                }
            } else if let Some(node) = key.strip_prefix(LOAD_PREFIX) {
                match (NodeName::new(node), codec.decode::<NodeLoad>(value)) {
                    (Ok(node), Ok(load)) => {
                        dir.load.insert(node, load);
                    }
                    _ => dir.skipped += 1,
                }
            }
        }
        dir
    }

    /// Agents (on any node) having every capability in `required`, by node then id.
    pub fn find(&self, required: &CapabilitySet) -> Vec<&AgentRecord> {
        self.agents.values().flatten().filter(|a| required.is_subset_of(&a.capabilities)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateLimits;
    use std::time::Instant;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn agent(id: &str, node: &str, caps: &[&str]) -> AgentRecord {
        AgentRecord {
            id: AgentId::new(id).unwrap(),
            node: n(node),
            capabilities: CapabilitySet::parse(caps.iter().copied()).unwrap(),
            swarms: Vec::new(),
            weight: 1,
            alive: true,
        }
    }

    /// Published agent lists and load figures read back as a directory; capability
    /// queries span nodes; bad values and forged records are skipped and counted.
    #[test]
    fn directory_round_trips_and_skips_bad_values() {
        let now = Instant::now();
        let codec = Codec::default();
        let mut s = GossipState::new(n("a"), StateLimits::default());
        let (k, v) = encode_agents(&codec, &n("a"), &[agent("x", "a", &["erlang", "testing"])]).unwrap();
        s.put(k, v, now).unwrap();
        let (k, v) =
            encode_agents(&codec, &n("b"), &[agent("y", "b", &["erlang"]), agent("forged", "c", &["erlang"])]).unwrap();
        s.put(k, v, now).unwrap();
        let (k, v) = encode_load(&codec, &n("b"), &NodeLoad { in_flight: 7, agents_alive: 1 }).unwrap();
        s.put(k, v, now).unwrap();
        s.put("agents/c", &b"garbage"[..], now).unwrap();
        s.put("load/bad name", &b"x"[..], now).unwrap();
        s.put("other/key", &b"ignored"[..], now).unwrap();

        let dir = Directory::read(&s, &codec);
        assert_eq!(dir.skipped, 3);
        assert_eq!(dir.load[&n("b")].in_flight, 7);
        let erlang = CapabilitySet::parse(["erlang"]).unwrap();
        let ids: Vec<&str> = dir.find(&erlang).iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, vec!["x", "y"]);
        let both = CapabilitySet::parse(["erlang", "testing"]).unwrap();
        assert_eq!(dir.find(&both).len(), 1);
    }
}
