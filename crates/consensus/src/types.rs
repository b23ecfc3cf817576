//! openraft type configuration and node identity.
//!
//! Node *names* are the cluster-wide identities (the same names the cluster layer and
//! gossip use); Raft needs integer ids, so each name maps to [`node_id_for`]`(name)`, a
//! 64-bit FNV-1a hash that every process computes the same way (unlike `DefaultHasher`,
//! whose seed and algorithm may change). Membership entries carry the name in
//! [`NamedNode`], so any replica can turn an id back into a name.

use std::fmt;
use std::io::Cursor;

pub use erlmcp_flow_core::hash::fnv1a64;
use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerCommand, LedgerResponse};

/// A Raft node id: `node_id_for(name)`.
pub type RaftNodeId = u64;

/// The openraft `Node` type: what membership records about a node (its name).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NamedNode {
    /// The node's cluster-wide name.
    pub name: String,
}

impl NamedNode {
    /// A node called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl fmt::Display for NamedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the ledger cluster.
    pub TypeConfig:
        D = LedgerCommand,
        R = LedgerResponse,
        NodeId = RaftNodeId,
        Node = NamedNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry of this cluster.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<RaftNodeId>;
/// A vote.
pub type Vote = openraft::Vote<RaftNodeId>;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::StoredMembership<RaftNodeId, NamedNode>;
/// A storage error.
pub type StorageError = openraft::StorageError<RaftNodeId>;
/// The openraft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// The Raft id of the node called `name`: FNV-1a 64 of its UTF-8 bytes, stable across
/// processes and versions; never 0 (a hash of 0 maps to 1).
pub fn node_id_for(name: &str) -> RaftNodeId {
    match fnv1a64(name.as_bytes()) {
        0 => 1,
        h => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are the published FNV-1a 64 values (so other processes and languages agree),
    /// distinct for distinct names, and never 0.
    #[test]
    fn node_ids_are_stable_fnv1a() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(node_id_for("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(node_id_for("node-1"), node_id_for("node-2"));
        assert_ne!(node_id_for(""), 0);
    }
}
