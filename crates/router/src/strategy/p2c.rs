//! Power of two choices on peak-EWMA latency.
//!
//! Pick two distinct eligible candidates at random and send to the one with the lower
//! cost `peak_ewma_latency × (in_flight + 1)`. Mitzenmacher's *The Power of Two Choices in
//! Randomized Load Balancing* (2001) shows the maximum load drops from
//! Θ(log n / log log n) to Θ(log log n) with just two samples; the peak-EWMA cost is
//! Finagle's, as in tower's `balance::p2c` + `load::PeakEwma`. O(1) per decision.
//!
//! tower's `Balance<PeakEwmaDiscover>` is not used directly: it balances one fixed set of
//! services, while each task here has its own candidate set (capabilities, swarm) and
//! exclusions (agents already tried), so the sampling runs over the registry's candidate
//! slice with the same cost function.

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_registry::{AgentEntry, Candidates};
use rand::Rng;
use rand::rngs::SmallRng;

use super::{Selection, Strategy, min_by_key_from};

/// Random probes before falling back to a scan (when most candidates are ineligible).
const PROBES: usize = 8;

/// See the module docs.
#[derive(Debug)]
pub struct P2cEwma {
    decay_ns: f64,
    default_rtt_ns: f64,
}

impl P2cEwma {
    /// With peak-EWMA decay `decay_ns` and `default_rtt_ns` for unsampled agents.
    pub fn new(decay_ns: f64, default_rtt_ns: f64) -> Self {
        Self { decay_ns, default_rtt_ns }
    }

    /// The cost of sending one more task to `e`.
    pub fn cost(&self, e: &AgentEntry, now_ns: u64) -> f64 {
        let rtt = e.load.latency_ewma_ns(now_ns, self.decay_ns).unwrap_or(self.default_rtt_ns);
        rtt * f64::from(e.load.in_flight() + 1)
    }
}

impl Strategy for P2cEwma {
    fn kind(&self) -> StrategyKind {
        StrategyKind::P2cEwma
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, rng: &mut SmallRng) -> Option<usize> {
        let n = candidates.len();
        match n {
            0 => return None,
            1 => return (sel.eligible)(&candidates[0]).then_some(0),
            _ => {}
        }
        let mut picks = [usize::MAX; 2];
        let mut found = 0;
        for _ in 0..PROBES {
            let i = rng.random_range(0..n);
            if i != picks[0] && (sel.eligible)(&candidates[i]) {
                picks[found] = i;
                found += 1;
                if found == 2 {
                    break;
                }
            }
        }
        match found {
            2 => {
                let (a, b) = (picks[0], picks[1]);
                let (ca, cb) = (self.cost(&candidates[a], sel.now_ns), self.cost(&candidates[b], sel.now_ns));
                Some(if cb < ca { b } else { a })
            }
            // Few eligible candidates: choose the cheapest of them directly (from a random
            // start, so a bounded scan of a large list does not favour its head).
            _ => min_by_key_from(candidates, rng.random_range(0..n), sel.eligible, |e| self.cost(e, sel.now_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, task};
    use rand::SeedableRng;

    /// A slow agent is chosen far less often than fast ones, and never the worst of the
    /// two samples.
    #[tokio::test]
    async fn avoids_slow_agents() {
        let c = candidates(4).await;
        for (i, e) in c.iter().enumerate() {
            let rtt = if i == 0 { 50_000_000 } else { 1_000_000 };
            e.load.observe(1, rtt, true, 1e12);
        }
        let p = P2cEwma::new(1e12, 1e6);
        let t = task();
        let all = |_: &AgentEntry| true;
        let sel = Selection { task: &t, now_ns: 1, eligible: &all };
        let mut rng = SmallRng::seed_from_u64(3);
        let slow = (0..1000).filter(|_| p.select(&c, &sel, &mut rng) == Some(0)).count();
        assert_eq!(slow, 0, "the slow agent loses every comparison");
        let only_slow = |e: &AgentEntry| e.id.as_str() == "agent-0000";
        let sel = Selection { task: &t, now_ns: 1, eligible: &only_slow };
        assert_eq!(p.select(&c, &sel, &mut rng), Some(0), "falls back to the only eligible one");
    }
}
