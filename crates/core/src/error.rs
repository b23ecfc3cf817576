//! Errors a node answers to a submission it refuses. A refused task was never accepted:
//! it does not enter the ledger and does not count in the no-loss invariant.
//!
//! A task *discarded* while it waited for admission ([`SubmitError::Discarded`]) was never
//! accepted either; it is counted apart, per [`DiscardReason`].

use serde::{Deserialize, Serialize};

use crate::id::TaskId;

/// Why a task waiting for admission (or arriving at a full queue or an empty rate-limit
/// bucket) was discarded. Never accepted: it is not in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardReason {
    /// The wait queue was full (`router.queue.capacity`) and the task was the one turned
    /// away: the newcomer under `discard = "reject"` or `"newest"`, or a newcomer of lower
    /// priority than every waiter.
    QueueFull,
    /// A waiter pushed out of a full queue by a newcomer: the oldest waiter of the lowest
    /// priority present (`discard = "oldest"`).
    EvictedOldest,
    /// A waiter pushed out of a full queue by a newcomer: the newest waiter of the lowest
    /// priority present (`discard = "newest"`).
    EvictedNewest,
    /// It waited longer than its queue TTL (`Task::with_queue_ttl`, or
    /// `router.queue.ttl_ms`).
    Ttl,
    /// The admission rate limit (`router.rate_limit`) had no token when it arrived.
    RateLimited,
    /// The node started draining or shutting down while it waited.
    Draining,
}

impl DiscardReason {
    /// Every reason, in the order of [`DiscardReason::index`].
    pub const ALL: [DiscardReason; 6] = [
        DiscardReason::QueueFull,
        DiscardReason::EvictedOldest,
        DiscardReason::EvictedNewest,
        DiscardReason::Ttl,
        DiscardReason::RateLimited,
        DiscardReason::Draining,
    ];

    /// Index 0..6, for per-reason counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiscardReason::QueueFull => "the admission queue is full",
            DiscardReason::EvictedOldest => "evicted from the full admission queue (oldest waiter)",
            DiscardReason::EvictedNewest => "evicted from the full admission queue (newest waiter)",
            DiscardReason::Ttl => "waited longer than its queue TTL",
            DiscardReason::RateLimited => "over the admission rate limit",
            DiscardReason::Draining => "the node is draining",
        })
    }
}

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
    /// The node is draining (`FlowNode::drain`): it finishes what it accepted and takes
    /// nothing new.
    #[error("node is draining; it accepts no new task")]
    Draining,
    /// The task waited for admission (or arrived at a full queue or an empty rate-limit
    /// bucket) and was discarded; it was never accepted.
    #[error("task discarded before admission: {reason}")]
    Discarded {
        /// Why.
        reason: DiscardReason,
    },
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
