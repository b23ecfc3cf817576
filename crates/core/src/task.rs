//! Tasks: what a service submits and an agent executes.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::capability::CapabilitySet;
use crate::id::{SwarmName, TaskId};
use crate::trace_context::{TraceContext, TraceContextError};

/// Scheduling priority. Higher priorities are admitted first when the node is at its
/// in-flight limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Background work.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal work.
    High,
    /// Ahead of everything else.
    Critical,
}

impl Priority {
    /// All priorities, lowest first.
    pub const ALL: [Priority; 4] = [Priority::Low, Priority::Normal, Priority::High, Priority::Critical];

    /// Index 0..4, lowest first.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A unit of work routed to one capable agent.
///
/// Build one with [`Task::new`] and the `with_*` methods; the router fills in
/// `attempt` on each delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique id (UUID v4); also the de-duplication key.
    pub id: TaskId,
    /// The agent must have all of these.
    pub capabilities: CapabilitySet,
    /// When set, only members of this swarm are candidates.
    pub swarm: Option<SwarmName>,
    /// Swarm tried after the primary candidates have failed (overrides the router's
    /// configured `fallback_swarm`).
    pub fallback_swarm: Option<SwarmName>,
    /// Key for consistent-hash routing (session affinity); the task id when absent.
    pub affinity_key: Option<String>,
    /// Opaque input for the agent.
    pub payload: Bytes,
    /// Scheduling priority.
    pub priority: Priority,
    /// Per-attempt execution timeout; the node's `timeouts.execution_ms` when absent.
    pub timeout: Option<Duration>,
    /// 1-based number of the current delivery attempt (0 before the first). A submitted
    /// task with `attempt > 0` was delivered before (a task adopted from a node that died).
    pub attempt: u32,
    /// W3C trace context of this task.
    pub trace: TraceContext,
    /// At-most-once execution. Once an attempt *may have run* the task (the agent timed
    /// out, panicked, or was lost with the task delivered), the router does not deliver it
    /// again: the task fails with [`FailureReason::MayHaveRun`](crate::FailureReason::MayHaveRun).
    /// A retryable error from the agent (its word that the task did not run) and a remote
    /// node refusing the delivery are retried as usual. Default false: at-least-once.
    #[serde(default)]
    pub at_most_once: bool,
    /// Longest wait for admission while the node is at `router.max_in_flight`; a task
    /// still waiting after it is discarded ([`DiscardReason::Ttl`](crate::DiscardReason)).
    /// `router.queue.ttl_ms` when absent. Local to the submitting node: not sent on the wire.
    #[serde(skip)]
    pub queue_ttl: Option<Duration>,
}

impl Task {
    /// A task needing `capabilities`, with a fresh id and root trace context.
    pub fn new(capabilities: CapabilitySet) -> Self {
        Self::new_with_rng(capabilities, &mut rand::rng())
    }

    /// Like [`Task::new`] but drawing the id and trace ids from `rng`, for replayable runs.
    pub fn new_with_rng<R: Rng + ?Sized>(capabilities: CapabilitySet, rng: &mut R) -> Self {
        let mut id = [0u8; 16];
        rng.fill(&mut id);
        Self {
            id: TaskId::from_uuid(uuid::Builder::from_random_bytes(id).into_uuid()),
            capabilities,
            swarm: None,
            fallback_swarm: None,
            affinity_key: None,
            payload: Bytes::new(),
            priority: Priority::Normal,
            timeout: None,
            attempt: 0,
            trace: TraceContext::new_root(rng),
            at_most_once: false,
            queue_ttl: None,
        }
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = payload.into();
        self
    }

    /// Restricts candidates to members of `swarm`.
    pub fn in_swarm(mut self, swarm: SwarmName) -> Self {
        self.swarm = Some(swarm);
        self
    }

    /// Sets the fallback swarm.
    pub fn with_fallback_swarm(mut self, swarm: SwarmName) -> Self {
        self.fallback_swarm = Some(swarm);
        self
    }

    /// Sets the consistent-hash key.
    pub fn with_affinity_key(mut self, key: impl Into<String>) -> Self {
        self.affinity_key = Some(key.into());
        self
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Asks for at-most-once execution (see [`Task::at_most_once`]).
    pub fn with_at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self
    }

    /// Sets the longest wait for admission (see [`Task::queue_ttl`]).
    pub fn with_queue_ttl(mut self, ttl: Duration) -> Self {
        self.queue_ttl = Some(ttl);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Continues an incoming trace: the task becomes a child span of `parent`.
    pub fn with_trace_parent(mut self, parent: TraceContext) -> Self {
        self.trace = parent.child(&mut rand::rng());
        self
    }

    /// Continues the trace given as a W3C `traceparent` header value.
    pub fn with_traceparent(self, header: &str) -> Result<Self, TraceContextError> {
        let parent = TraceContext::parse_traceparent(header)?;
        Ok(self.with_trace_parent(parent))
    }

    /// The key consistent hashing uses: the affinity key, else the task id.
    pub fn routing_key(&self) -> RoutingKey<'_> {
        match &self.affinity_key {
            Some(k) => RoutingKey::Affinity(k),
            None => RoutingKey::Task(self.id),
        }
    }
}

/// What consistent hashing hashes for a task.
#[derive(Debug, Clone, Copy)]
pub enum RoutingKey<'a> {
    /// An explicit affinity key.
    Affinity(&'a str),
    /// The task id.
    Task(TaskId),
}
