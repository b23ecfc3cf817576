//! Least connections: the eligible candidate with the fewest tasks in flight (the
//! registry's load counter). Ties are broken by a rotating start so equal agents share
//! work instead of the first one taking everything.

use std::sync::atomic::{AtomicUsize, Ordering};

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_registry::Candidates;
use rand::rngs::SmallRng;

use super::{Selection, Strategy, min_by_key_from};

/// See the module docs.
#[derive(Debug, Default)]
pub struct LeastConnections {
    cursor: AtomicUsize,
}

impl Strategy for LeastConnections {
    fn kind(&self) -> StrategyKind {
        StrategyKind::LeastConnections
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, _rng: &mut SmallRng) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % candidates.len();
        min_by_key_from(candidates, start, sel.eligible, |e| e.load.in_flight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, task};
    use rand::SeedableRng;

    /// The least-loaded eligible candidate wins; equal loads rotate.
    #[tokio::test]
    async fn picks_least_loaded() {
        let c = candidates(3).await;
        c[0].load.begin();
        c[0].load.begin();
        c[1].load.begin();
        let lc = LeastConnections::default();
        let t = task();
        let mut rng = SmallRng::seed_from_u64(1);
        let all = |_: &erlmcp_flow_registry::AgentEntry| true;
        let sel = Selection { task: &t, now_ns: 1, eligible: &all };
        assert_eq!(lc.select(&c, &sel, &mut rng), Some(2));
        c[2].load.begin();
        c[2].load.begin();
        assert_eq!(lc.select(&c, &sel, &mut rng), Some(1));
        c[1].load.begin();
        // All at 2: ties rotate.
        let picks: std::collections::HashSet<_> = (0..3).map(|_| lc.select(&c, &sel, &mut rng).unwrap()).collect();
        assert_eq!(picks.len(), 3);
    }
}
