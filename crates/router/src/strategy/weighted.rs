//! Weighted: interleaved weighted round-robin. A shared counter walks positions
//! `0..Σweights`; an agent of weight `w` owns `w` consecutive positions, so over any
//! `Σweights` decisions each agent gets exactly its share. The prefix sums of a candidate
//! list are computed once and cached (weights are fixed per registration), so a decision
//! is a binary search; an ineligible owner passes its turn to the next eligible candidate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_registry::Candidates;
use parking_lot::Mutex;
use rand::rngs::SmallRng;

use super::{Selection, Strategy};

/// Prefix-sum tables kept in the cache.
const CACHED: usize = 16;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Weighted {
    counter: AtomicU64,
    /// `(candidates, prefix)`: `prefix[i]` is the sum of weights before candidate `i`.
    cache: Mutex<Vec<(Candidates, Arc<[u64]>)>>,
}

impl Weighted {
    fn prefix(&self, candidates: &Candidates) -> Arc<[u64]> {
        let mut cache = self.cache.lock();
        if let Some((_, p)) = cache.iter().find(|(c, _)| Arc::ptr_eq(c, candidates)) {
            return p.clone();
        }
        let mut prefix = Vec::with_capacity(candidates.len() + 1);
        let mut acc = 0u64;
        for e in candidates.iter() {
            prefix.push(acc);
            acc += u64::from(e.weight);
        }
        prefix.push(acc);
        let prefix: Arc<[u64]> = prefix.into();
        if cache.len() == CACHED {
            cache.remove(0);
        }
        cache.push((candidates.clone(), prefix.clone()));
        prefix
    }
}

impl Strategy for Weighted {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Weighted
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, _rng: &mut SmallRng) -> Option<usize> {
        let n = candidates.len();
        if n == 0 {
            return None;
        }
        let prefix = self.prefix(candidates);
        let total = prefix[n];
        let pos = self.counter.fetch_add(1, Ordering::Relaxed) % total.max(1);
        // The owner of `pos`: the last candidate whose start is ≤ pos.
        let owner = prefix[..n].partition_point(|&start| start <= pos) - 1;
        (0..n).map(|k| (owner + k) % n).find(|&i| (sel.eligible)(&candidates[i]))
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
