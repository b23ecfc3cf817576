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
    /// The node's Raft view, when `raft.enabled`.
    pub raft: Option<RaftReport>,
}

/// A node's Raft state, as shown by `flow status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RaftReport {
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub state: String,
    /// Current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<String>,
    /// Highest log index known committed. openraft 0.9's metrics do not publish the
    /// commit index, so this is the applied index: everything applied is committed, and
    /// the leader applies as soon as it commits (a follower may lag by one heartbeat).
    pub commit_index: u64,
    /// Highest log index applied to the state machine.
    pub last_applied: u64,
    /// Highest log index in the local log.
    pub last_log_index: u64,
    /// Voting members.
    pub voters: Vec<String>,
    /// Non-voting members.
    pub learners: Vec<String>,
    /// Replicated ledger counts: accepted, completed, failed, dead-lettered, open.
    pub ledger: [u64; 5],
    /// Digest of the applied state machine (equal on replicas that applied the same log).
    pub digest: u64,
    /// Undecodable Raft RPCs received.
    pub decode_errors: u64,
    /// Whether the node's openraft core runs (false while it is restarted after a fatal
    /// error: the node cannot serve the ledger meanwhile).
    pub core_up: bool,
    /// Restarts of the openraft core after fatal errors.
    pub core_restarts: u64,
}
