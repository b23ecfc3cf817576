//! Errors of the consensus API.

use serde::{Deserialize, Serialize};

/// Why a transport call failed. The transport never interprets the bytes it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TransportError {
    /// The peer is not reachable now (not connected, partitioned, shut down).
    #[error("node {0} is unreachable")]
    Unreachable(String),
    /// No answer within the deadline; the peer may have acted on the request.
    #[error("call to node {0} timed out")]
    Timeout(String),
    /// The request was sent, then the peer went down before answering; it may have acted
    /// on it.
    #[error("node {0} went down before answering")]
    Lost(String),
    /// The peer answered with an error instead of a reply.
    #[error("node {node} refused the request: {reason}")]
    Remote {
        /// The peer.
        node: String,
        /// What it said.
        reason: String,
    },
}

/// Errors of [`ConsensusNode`](crate::ConsensusNode). `NotLeader`, `Unavailable`,
/// `Indeterminate` and `Transport` are retryable; `Decode`, `Encode`, `Config` are the caller's input;
/// `Storage` and `Fatal` mean the node has stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConsensusError {
    /// This node is not the leader; `leader` names the one it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader's name, if known.
        leader: Option<String>,
    },
    /// No leader could commit the request in time (election, partition, quorum lost).
    /// For a write: it was not handed to any leader's log, so it did not and will not
    /// commit.
    #[error("consensus unavailable: {0}")]
    Unavailable(String),
    /// A write reached a leader's log (or may have: its answer was lost) but its commit
    /// was not confirmed in time. It may still commit later; retrying the same command is
    /// safe for idempotent commands (the ledger's `Submit` and `Finish` are, by task id).
    #[error("write may have committed (not confirmed): {0}")]
    Indeterminate(String),
    /// Bytes that are not a valid message (counted in `RaftStatus::decode_errors`).
    #[error("cannot decode: {0}")]
    Decode(String),
    /// A value could not be encoded, or is over the size limit.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The log store or state machine failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Bad configuration or arguments.
    #[error("config: {0}")]
    Config(String),
    /// The Raft node stopped (shut down, or a fatal storage error).
    #[error("fatal: {0}")]
    Fatal(String),
}

impl ConsensusError {
    /// Whether the same request may succeed later (elsewhere or after an election).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConsensusError::NotLeader { .. }
                | ConsensusError::Unavailable(_)
                | ConsensusError::Indeterminate(_)
                | ConsensusError::Transport(_)
        )
    }
}
