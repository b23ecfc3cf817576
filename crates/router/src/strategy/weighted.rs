//! Weighted: interleaved weighted round-robin. A shared counter walks positions
//! `0..Σweights` of the eligible candidates; an agent of weight `w` owns `w` consecutive
//! positions, so over any `Σweights` decisions each agent gets exactly its share.

use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_registry::Candidates;
use rand::rngs::SmallRng;

use super::{Selection, Strategy};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Weighted {
    counter: AtomicU64,
}

impl Strategy for Weighted {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Weighted
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, _rng: &mut SmallRng) -> Option<usize> {
        let total: u64 = candidates.iter().filter(|e| (sel.eligible)(e)).map(|e| u64::from(e.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut pos = self.counter.fetch_add(1, Ordering::Relaxed) % total;
        for (i, e) in candidates.iter().enumerate() {
            if !(sel.eligible)(e) {
                continue;
            }
            let w = u64::from(e.weight);
            if pos < w {
                return Some(i);
            }
            pos -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, task};
    use rand::SeedableRng;

    /// Over one full cycle each agent is picked exactly weight times.
    #[tokio::test]
    async fn shares_follow_weights() {
        let c = candidates(3).await; // weights 1, 2, 3
        let w = Weighted::default();
        let t = task();
        let all = |_: &erlmcp_flow_registry::AgentEntry| true;
        let sel = Selection { task: &t, now_ns: 1, eligible: &all };
        let mut counts = [0; 3];
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..60 {
            counts[w.select(&c, &sel, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts, [10, 20, 30]);
    }
}
