//! Discretisation: one candidate agent's load figures → one of 99 states.
//!
//! The seeds' state space is *11 load levels × 3 success buckets × 3 latency buckets*.
//! A state here describes **one candidate** at one instant (not the whole node): the Q-table
//! then answers "what is it worth to send a task to agent *a* while *a* is in state *s*",
//! which is what a routing decision compares across candidates.
//!
//! * **load level** 0..=10: tasks in flight on the agent. When the bulkhead capacity `c`
//!   (`router.bulkhead_max_concurrent`) is at most 10 the level is the in-flight count
//!   itself (clamped to 10): with the default `c = 8` every queue length has its own
//!   level. For larger bulkheads the level is `⌈10 · in_flight / c⌉`, so level 10 still
//!   means "full".
//! * **success bucket**: the agent's success EWMA: `≥ 0.9` healthy (0), `≥ 0.5`
//!   degraded (1), below failing (2).
//! * **latency bucket**: the agent's decayed peak-EWMA latency relative to a reference,
//!   the Q-table's running mean of attempt latencies over all agents: below
//!   [`FAST_RATIO`] × reference fast (0), up to [`SLOW_RATIO`] × typical (1), above slow
//!   (2). An agent without samples, or a model without a reference yet, is typical.
//!
//! The function is pure: the same figures and reference give the same state, whether it
//! runs on the routing hot path (selection) or in the QLearning actor (TD updates).

use crate::strategy::LoadFigures;

/// Load levels (0..=10).
pub const LOAD_LEVELS: usize = 11;
/// Success buckets.
pub const SUCCESS_BUCKETS: usize = 3;
/// Latency buckets.
pub const LATENCY_BUCKETS: usize = 3;
/// Number of states: 11 × 3 × 3.
pub const STATES: usize = LOAD_LEVELS * SUCCESS_BUCKETS * LATENCY_BUCKETS;

/// Success EWMA at or above which an agent is healthy.
pub const HEALTHY_SUCCESS: f64 = 0.9;
/// Success EWMA at or above which an agent is degraded (below: failing).
pub const DEGRADED_SUCCESS: f64 = 0.5;
/// Latency / reference below which an agent is fast.
pub const FAST_RATIO: f64 = 0.75;
/// Latency / reference above which an agent is slow.
pub const SLOW_RATIO: f64 = 2.0;

/// One candidate's discretised state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentState {
    /// Load level, 0..=10.
    pub load: u8,
    /// Success bucket: 0 healthy, 1 degraded, 2 failing.
    pub success: u8,
    /// Latency bucket: 0 fast, 1 typical, 2 slow.
    pub latency: u8,
}

impl AgentState {
    /// The state's index in `0..STATES`.
    pub fn index(self) -> usize {
        debug_assert!((self.load as usize) < LOAD_LEVELS);
        debug_assert!((self.success as usize) < SUCCESS_BUCKETS && (self.latency as usize) < LATENCY_BUCKETS);
        (self.load as usize * SUCCESS_BUCKETS + self.success as usize) * LATENCY_BUCKETS + self.latency as usize
    }

    /// The state with index `i`, or `None` when `i ≥ STATES`.
    pub fn from_index(i: usize) -> Option<Self> {
        if i >= STATES {
            return None;
        }
        Some(Self {
            load: (i / (SUCCESS_BUCKETS * LATENCY_BUCKETS)) as u8,
            success: ((i / LATENCY_BUCKETS) % SUCCESS_BUCKETS) as u8,
            latency: (i % LATENCY_BUCKETS) as u8,
        })
    }
}

/// The load level of `in_flight` tasks on an agent whose bulkhead holds `capacity`.
pub fn load_level(in_flight: u32, capacity: u32) -> u8 {
    let max = (LOAD_LEVELS - 1) as u32;
    if capacity <= max {
        return in_flight.min(max) as u8;
    }
    (u64::from(in_flight) * u64::from(max)).div_ceil(u64::from(capacity)).min(u64::from(max)) as u8
}

/// The state of an agent with figures `f`, bulkhead `capacity`, against the latency
/// reference `latency_ref_ns` (0: none yet).
pub fn discretise(f: &LoadFigures, capacity: u32, latency_ref_ns: f64) -> AgentState {
    let success = if f.success_rate >= HEALTHY_SUCCESS {
        0
    } else if f.success_rate >= DEGRADED_SUCCESS {
        1
    } else {
        2
    };
    let latency = match f.latency_ewma_ns {
        Some(l) if latency_ref_ns > 0.0 => {
            let ratio = l / latency_ref_ns;
            if ratio < FAST_RATIO {
                0
            } else if ratio <= SLOW_RATIO {
                1
            } else {
                2
            }
        }
        _ => 1,
    };
    AgentState { load: load_level(f.in_flight, capacity), success, latency }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(in_flight: u32, success_rate: f64, latency_ewma_ns: Option<f64>) -> LoadFigures {
        LoadFigures { in_flight, success_rate, latency_ewma_ns }
    }

    /// Indexes cover 0..99 exactly once and round-trip.
    #[test]
    fn index_is_a_bijection() {
        let mut seen = [false; STATES];
        for load in 0..LOAD_LEVELS as u8 {
            for success in 0..3 {
                for latency in 0..3 {
                    let s = AgentState { load, success, latency };
                    assert!(!seen[s.index()]);
                    seen[s.index()] = true;
                    assert_eq!(AgentState::from_index(s.index()), Some(s));
                }
            }
        }
        assert!(seen.iter().all(|&b| b));
        assert_eq!(STATES, 99);
        assert_eq!(AgentState::from_index(STATES), None);
    }

    /// Small bulkheads map in-flight counts to levels one to one; large ones scale so
    /// that a full bulkhead is level 10; nothing exceeds 10.
    #[test]
    fn load_levels_scale_with_capacity() {
        assert_eq!((0..=12).map(|n| load_level(n, 8)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10]);
        assert_eq!(load_level(0, 100), 0);
        assert_eq!(load_level(1, 100), 1);
        assert_eq!(load_level(50, 100), 5);
        assert_eq!(load_level(100, 100), 10);
        assert_eq!(load_level(u32::MAX, 100), 10);
    }

    /// Success and latency thresholds land in the documented buckets; no reference or no
    /// sample means typical latency.
    #[test]
    fn buckets_follow_thresholds() {
        let r = 1_000_000.0;
        assert_eq!(discretise(&figures(0, 1.0, Some(0.5e6)), 8, r), AgentState { load: 0, success: 0, latency: 0 });
        assert_eq!(discretise(&figures(3, 0.9, Some(1.0e6)), 8, r), AgentState { load: 3, success: 0, latency: 1 });
        assert_eq!(discretise(&figures(3, 0.7, Some(2.0e6)), 8, r), AgentState { load: 3, success: 1, latency: 1 });
        assert_eq!(discretise(&figures(9, 0.2, Some(2.1e6)), 8, r), AgentState { load: 9, success: 2, latency: 2 });
        assert_eq!(discretise(&figures(0, 1.0, None), 8, r).latency, 1);
        assert_eq!(discretise(&figures(0, 1.0, Some(9e9)), 8, 0.0).latency, 1);
    }
}
