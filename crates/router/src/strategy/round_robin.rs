//! Round-robin: a shared cursor advances once per decision; the first eligible candidate
//! at or after it wins. O(1) when everything is eligible.

use std::sync::atomic::{AtomicUsize, Ordering};

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_registry::Candidates;
use rand::rngs::SmallRng;

use super::{Selection, Strategy};

/// See the module docs.
#[derive(Debug, Default)]
pub struct RoundRobin {
    cursor: AtomicUsize,
}

impl Strategy for RoundRobin {
    fn kind(&self) -> StrategyKind {
        StrategyKind::RoundRobin
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, _rng: &mut SmallRng) -> Option<usize> {
        let n = candidates.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(|k| (start + k) % n).find(|&i| (sel.eligible)(&candidates[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, task};
    use rand::SeedableRng;

    /// Every candidate is picked equally often, and ineligible ones are skipped.
    #[tokio::test]
    async fn rotates_and_skips_ineligible() {
        let c = candidates(4).await;
        let rr = RoundRobin::default();
        let t = task();
        let mut rng = SmallRng::seed_from_u64(1);
        let all = |_: &erlmcp_flow_registry::AgentEntry| true;
        let sel = Selection { task: &t, now_ns: 1, eligible: &all };
        let picks: Vec<_> = (0..8).map(|_| rr.select(&c, &sel, &mut rng).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1, 2, 3]);
        let not_two = |e: &erlmcp_flow_registry::AgentEntry| e.id.as_str() != "agent-0002";
        let sel = Selection { task: &t, now_ns: 1, eligible: &not_two };
        let picks: Vec<_> = (0..4).map(|_| rr.select(&c, &sel, &mut rng).unwrap()).collect();
        assert_eq!(picks, [0, 1, 3, 3]);
        let none = |_: &erlmcp_flow_registry::AgentEntry| false;
        let sel = Selection { task: &t, now_ns: 1, eligible: &none };
        assert_eq!(rr.select(&c, &sel, &mut rng), None);
    }
}
