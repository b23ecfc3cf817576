//! [`QSnapshot`]: the immutable view of the Q-table that routing decisions read.
//!
//! The QLearning actor owns the writes; it republishes a snapshot (through an
//! `arc_swap::ArcSwap`, one atomic pointer load to read) at a bounded rate. A snapshot
//! holds, for every agent in the table, its value in each of the 99 states with the
//! priors already resolved (see [`super::table`]), as `f32`; agents the table has never
//! seen use the pool row. So a lookup is one hash of the agent id and one array read.

use std::collections::HashMap;

use erlmcp_flow_core::AgentId;
use erlmcp_flow_core::hash::FoldBuildHasher;

use super::state::{AgentState, STATES};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct QSnapshot {
    slots: HashMap<AgentId, u32, FoldBuildHasher>,
    /// `slot * STATES + state`.
    values: Box<[f32]>,
    fallback: [f32; STATES],
    epsilon: f64,
    latency_ref_ns: f64,
    updates: u64,
}

impl QSnapshot {
    pub(crate) fn new(
        slots: HashMap<AgentId, u32, FoldBuildHasher>,
        values: Box<[f32]>,
        fallback: [f32; STATES],
        epsilon: f64,
        latency_ref_ns: f64,
        updates: u64,
    ) -> Self {
        debug_assert_eq!(values.len(), slots.len() * STATES);
        Self { slots, values, fallback, epsilon, latency_ref_ns, updates }
    }

    /// The value of sending to `agent` while it is in `state`.
    #[inline]
    pub fn value(&self, agent: &str, state: AgentState) -> f64 {
        let s = state.index();
        match self.slots.get(agent) {
            Some(&slot) => f64::from(self.values[slot as usize * STATES + s]),
            None => f64::from(self.fallback[s]),
        }
    }

    /// Exploration rate when published.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Latency reference (ns) when published.
    pub fn latency_ref_ns(&self) -> f64 {
        self.latency_ref_ns
    }

    /// Updates the table had applied when published.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Agents with values of their own.
    pub fn agents(&self) -> usize {
        self.slots.len()
    }
}
