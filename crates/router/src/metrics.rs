//! Router counters and the [`FlowStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters updated on the hot path (relaxed atomics).
#[derive(Debug, Default)]
pub struct RouterMetrics {
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) redeliveries: AtomicU64,
    pub(crate) orphan_recoveries: AtomicU64,
    pub(crate) late_finishes: AtomicU64,
    pub(crate) agent_panics: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) hung_agents_killed: AtomicU64,
}

impl RouterMetrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A point-in-time view of a node's routing figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowStats {
    /// Tasks accepted.
    pub accepted: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed.
    pub failed: u64,
    /// Tasks dead-lettered.
    pub dead_lettered: u64,
    /// Accepted tasks not yet terminal.
    pub in_flight: u64,
    /// Deliveries to agents (first tries, retries and redeliveries).
    pub attempts: u64,
    /// Re-deliveries after a failed attempt.
    pub retries: u64,
    /// Re-deliveries of tasks whose agent died before running them (no attempt spent).
    pub redeliveries: u64,
    /// Times any circuit breaker opened.
    pub breaker_opens: u64,
    /// Agent panics seen by the router.
    pub agent_panics: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Tasks whose routing driver was lost and restarted.
    pub orphan_recoveries: u64,
    /// Agents killed by the failure detector as hung.
    pub hung_agents_killed: u64,
    /// Terminal transitions refused because the task was already terminal (shutdown races).
    pub late_finishes: u64,
    /// Dead letters currently queued for inspection.
    pub dead_letters_queued: u64,
}

impl RouterMetrics {
    pub(crate) fn fill(&self, s: &mut FlowStats) {
        s.attempts = get(&self.attempts);
        s.retries = get(&self.retries);
        s.redeliveries = get(&self.redeliveries);
        s.orphan_recoveries = get(&self.orphan_recoveries);
        s.late_finishes = get(&self.late_finishes);
        s.agent_panics = get(&self.agent_panics);
        s.timeouts = get(&self.timeouts);
        s.hung_agents_killed = get(&self.hung_agents_killed);
    }
}
