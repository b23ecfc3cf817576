//! Status reports (`flow status`): membership, reachability, phi per peer, counters.

use serde::{Deserialize, Serialize};

/// One peer as seen from the reporting node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// Peer name.
    pub node: String,
    /// Reachable from here.
    pub reachable: bool,
    /// Failure-detector suspicion.
    pub phi: f64,
    /// Cut off by the partition fault-injection layer.
    pub blocked: bool,
    /// Where it listens.
    pub listen: String,
    /// Milliseconds since its last heartbeat.
    pub silent_ms: Option<u64>,
    /// Its agents in this node's registry (live ones).
    pub agents: usize,
}

/// A node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The reporting node.
    pub node: String,
    /// Its incarnation.
    pub incarnation: u64,
    /// Where it listens.
    pub listen: String,
    /// Peers.
    pub peers: Vec<PeerReport>,
    /// Local agents (live).
    pub local_agents: usize,
    /// Remote agents (live) in the registry.
    pub remote_agents: usize,
    /// Named counters (refused sessions, bad frames, …).
    pub counters: Vec<(String, u64)>,
    /// Task ledger: accepted, completed, failed, dead-lettered.
    pub ledger: [u64; 4],
}
