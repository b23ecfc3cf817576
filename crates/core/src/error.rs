//! Errors a node answers to a submission it refuses. A refused task was never accepted:
//! it does not enter the ledger and does not count in the no-loss invariant.

use crate::id::TaskId;

/// Why a task was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The task requires no capability at all; say what it needs.
    #[error("the task requires no capability; at least one is needed")]
    EmptyCapabilities,
    /// The payload is over `codec.max_payload_bytes`.
    #[error("payload is {size} bytes, the limit is {limit}")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A task with this id is open or finished recently.
    #[error("task {0} was already submitted")]
    DuplicateTask(TaskId),
    /// `try_submit` found the node at `router.max_in_flight`.
    #[error("node is at its in-flight limit ({limit} tasks)")]
    Overloaded {
        /// The limit.
        limit: u32,
    },
    /// The node is stopping or stopped.
    #[error("node is not running")]
    NodeStopped,
    /// Cluster mode with the replicated ledger: the submission was not committed because
    /// this node is cut off from the Raft leader (minority side of a partition) or the
    /// leader refused it. The task was not accepted; retry it (same id) later or elsewhere.
    #[error("not committed: no Raft leader accepted the task (leader known: {leader:?})")]
    NotLeader {
        /// The leader this node last knew of, if any.
        leader: Option<String>,
    },
    /// Cluster mode with the replicated ledger: no leader could be reached within
    /// `raft.client_timeout_ms` (election in progress, quorum lost). Not accepted; retry.
    #[error("replicated ledger unavailable: {0}")]
    Unavailable(String),
    /// Cluster mode with the replicated ledger: the task **may have been accepted**. Its
    /// `Submit` entry reached a Raft leader's log but its commit was not confirmed before
    /// `raft.client_timeout_ms` (quorum lost, leader changed mid-write). It may still
    /// commit later, and then it runs and ends in exactly one terminal state like any
    /// accepted task. Never a refusal: look the task up by id (`FlowNode::task_entry`), or
    /// resubmit it with the same id (the ledger takes a task id once).
    #[error("task {task} may have been accepted (commit not confirmed): {reason}")]
    Indeterminate {
        /// The task.
        task: TaskId,
        /// Why the commit was not confirmed.
        reason: String,
    },
}

impl SubmitError {
    /// Whether the task may have been accepted despite the error
    /// ([`SubmitError::Indeterminate`]); every other error means it was not.
    pub fn may_have_been_accepted(&self) -> bool {
        matches!(self, SubmitError::Indeterminate { .. })
    }
}
