//! Agent selection strategies: given the capable candidates, pick one.
//!
//! Every strategy sees the candidate list (sorted by agent id, shared from the registry's
//! query cache) and a predicate saying which candidates are eligible right now (alive, not
//! tried yet for this task, not refused by a breaker or a full bulkhead). Strategies
//! read the live load figures of each [`AgentEntry`]; none waits on a mailbox. The
//! scanning strategies score at most [`SCAN_WINDOW`] candidates per decision.
//!
//! | strategy | picks | state |
//! |---|---|---|
//! | [`RoundRobin`] | next eligible after a rotating cursor | one atomic |
//! | [`LeastConnections`] | fewest in flight (ties rotate) | one atomic |
//! | [`LoadAware`] | lowest `0.5·load/10 + 0.3·latency_ms/1000 + 0.2·(1-success)·10` | one atomic |
//! | [`Weighted`] | interleaved, proportional to weight | one atomic |
//! | [`ConsistentHash`] | first eligible clockwise from the key's ring position | cached rings |
//! | [`P2cEwma`] | better of two random picks by peak-EWMA × (in flight + 1) | none (rng) |
//! | [`QLearningStrategy`](crate::q_learning::QLearningStrategy) | highest Q-value action | Q-table |

use std::fmt;
use std::sync::Arc;

use erlmcp_flow_core::{StrategyKind, Task};
use erlmcp_flow_registry::{AgentEntry, AgentLoad, Candidates};
use rand::rngs::SmallRng;

mod consistent_hash;
mod least_connections;
mod load_aware;
mod p2c;
mod round_robin;
mod weighted;

pub use consistent_hash::{ConsistentHash, HashRing, key_hash};
pub use least_connections::LeastConnections;
pub use load_aware::{LoadAware, load_aware_score};
pub use p2c::P2cEwma;
pub use round_robin::RoundRobin;
pub use weighted::Weighted;

/// What a strategy knows about one decision.
pub struct Selection<'a> {
    /// The task being routed.
    pub task: &'a Task,
    /// Now, in node-clock nanoseconds.
    pub now_ns: u64,
    /// Which candidates may be picked.
    pub eligible: &'a dyn Fn(&AgentEntry) -> bool,
}

impl fmt::Debug for Selection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selection").field("task", &self.task.id).field("now_ns", &self.now_ns).finish_non_exhaustive()
    }
}

/// An agent's load figures read at one instant: what a learning strategy needs to know
/// the state an agent was in when a task was dispatched to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadFigures {
    /// Tasks in flight (not counting the one being dispatched).
    pub in_flight: u32,
    /// Success EWMA in [0, 1].
    pub success_rate: f64,
    /// Decayed peak-EWMA latency, ns; `None` before the first sample.
    pub latency_ewma_ns: Option<f64>,
}

impl LoadFigures {
    /// Reads `load` at `now_ns` with peak-EWMA decay `decay_ns`.
    pub fn read(load: &AgentLoad, now_ns: u64, decay_ns: f64) -> Self {
        Self {
            in_flight: load.in_flight(),
            success_rate: load.success_rate(),
            latency_ewma_ns: load.latency_ewma_ns(now_ns, decay_ns),
        }
    }
}

/// Feedback after an attempt, for learning strategies.
#[derive(Debug, Clone)]
pub struct AttemptFeedback<'a> {
    /// The agent that was tried.
    pub agent: &'a Arc<AgentEntry>,
    /// The candidates it was picked from.
    pub candidates: &'a Candidates,
    /// Round trip (or time until the failure was known), ns.
    pub latency_ns: u64,
    /// Whether the attempt succeeded.
    pub success: bool,
    /// Now, ns.
    pub now_ns: u64,
    /// The agent's load figures just before the task was dispatched to it.
    pub dispatch: LoadFigures,
}

/// A selection strategy. Implementations must be cheap and must not block.
pub trait Strategy: Send + Sync + fmt::Debug {
    /// Which strategy this is.
    fn kind(&self) -> StrategyKind;

    /// Index of the chosen candidate, or `None` when no candidate is eligible.
    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, rng: &mut SmallRng) -> Option<usize>;

    /// Called after every attempt. Default: nothing.
    fn observe(&self, _feedback: &AttemptFeedback<'_>) {}
}

/// Parameters the strategies need from the config.
#[derive(Debug, Clone, Copy)]
pub struct StrategyParams {
    /// Virtual nodes per agent on the hash ring.
    pub vnodes: u32,
    /// Peak-EWMA decay time constant, ns.
    pub ewma_decay_ns: f64,
    /// Latency assumed for agents without samples, ns.
    pub default_rtt_ns: f64,
}

/// Builds the load-balancing strategy `kind`; `None` for Q-learning, which needs the
/// node's model: build it with [`QLearningStrategy::new`](crate::q_learning::QLearningStrategy::new).
pub fn build(kind: StrategyKind, p: StrategyParams) -> Option<Arc<dyn Strategy>> {
    Some(match kind {
        StrategyKind::RoundRobin => Arc::new(RoundRobin::default()),
        StrategyKind::LeastConnections => Arc::new(LeastConnections::default()),
        StrategyKind::LoadAware => Arc::new(LoadAware::new(p.ewma_decay_ns)),
        StrategyKind::Weighted => Arc::new(Weighted::default()),
        StrategyKind::ConsistentHash => Arc::new(ConsistentHash::new(p.vnodes)),
        StrategyKind::P2cEwma => Arc::new(P2cEwma::new(p.ewma_decay_ns, p.default_rtt_ns)),
        StrategyKind::QLearning => return None,
    })
}

/// Most candidates an O(n) strategy (least-connections, load-aware, P2C's fallback)
/// scores per decision.
///
/// A full scan costs about 5–8 ns per candidate, mostly memory reads (5–9 µs at 1 000
/// candidates, measured in `benches/routing_decision.rs`), and grows linearly with the
/// cluster, on every routing decision. Above this many
/// candidates the strategy picks the best of the `SCAN_WINDOW` candidates that follow its
/// rotating cursor (wrapping), the bounded-subset idea of Envoy's least-request balancer
/// and Finagle's aperture: the cost of a decision stays flat as the cluster grows, and
/// because the cursor moves on every decision, every agent is in the window of a
/// `SCAN_WINDOW / n` share of decisions. If no candidate in the window is eligible, the
/// scan goes on until one is, so a bounded scan never answers "none" when a full scan
/// would find someone.
pub const SCAN_WINDOW: usize = 256;

/// Scans the eligible candidates starting at `start` (wrapping) and returns the index
/// minimising `key` among the first [`SCAN_WINDOW`] (or the first eligible one after
/// them, if none of those is); the rotating start spreads ties.
pub(crate) fn min_by_key_from<K: PartialOrd>(
    candidates: &[Arc<AgentEntry>],
    start: usize,
    eligible: &dyn Fn(&AgentEntry) -> bool,
    mut key: impl FnMut(&AgentEntry) -> K,
) -> Option<usize> {
    let n = candidates.len();
    let start = if n == 0 { 0 } else { start % n };
    let mut best: Option<(usize, K)> = None;
    // Two plain ranges instead of `(start + k) % n`: a division per candidate was a
    // measurable share of a 1 000-candidate scan.
    for (scanned, i) in (start..n).chain(0..start).enumerate() {
        if scanned >= SCAN_WINDOW && best.is_some() {
            break;
        }
        let e = &candidates[i];
        if !eligible(e) {
            continue;
        }
        let v = key(e);
        let better = match &best {
            None => true,
            Some((_, b)) => v.partial_cmp(b) == Some(std::cmp::Ordering::Less),
        };
        if better {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use erlmcp_flow_core::{AgentId, AgentMsg, CapabilitySet, Task};
    use erlmcp_flow_registry::{AgentEntry, Candidates, Registration};
    use ractor::{Actor, ActorProcessingErr, ActorRef};

    pub(crate) struct Nop;
    impl Actor for Nop {
        type Msg = AgentMsg;
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// Candidates backed by one idle actor (strategies never message them).
    pub(crate) async fn candidates(n: usize) -> Candidates {
        let (actor, _) = Actor::spawn(None, Nop, ()).await.unwrap();
        (0..n)
            .map(|i| {
                Arc::new(AgentEntry::new(
                    Registration {
                        id: AgentId::new(format!("agent-{i:04}")).unwrap(),
                        capabilities: CapabilitySet::parse(["x"]).unwrap(),
                        swarms: Vec::new(),
                        weight: 1 + (i as u32 % 3),
                        actor: actor.clone(),
                    },
                    i as u64,
                    1,
                    8,
                ))
            })
            .collect::<Vec<_>>()
            .into()
    }

    pub(crate) fn task() -> Task {
        Task::new(CapabilitySet::parse(["x"]).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::candidates;
    use super::*;

    /// Above `SCAN_WINDOW` candidates the scan stops after the window: a better candidate
    /// outside it is not seen, and it is picked once the rotating start brings it in.
    #[tokio::test]
    async fn scans_at_most_the_window() {
        let n = SCAN_WINDOW * 3;
        let c = candidates(n).await;
        for e in c.iter() {
            e.load.begin();
        }
        let outside = SCAN_WINDOW + 10;
        c[outside].load.end();
        let all = |_: &AgentEntry| true;
        let load = |e: &AgentEntry| e.load.in_flight();
        assert_eq!(min_by_key_from(&c, 0, &all, load), Some(0), "the idle agent is outside the window");
        assert_eq!(min_by_key_from(&c, 20, &all, load), Some(outside), "inside the window it wins");
        // Wrapping: a window starting near the end covers the first candidates.
        c[3].load.end();
        assert_eq!(min_by_key_from(&c, n - 5, &all, load), Some(3));
    }

    /// When nobody in the window is eligible the scan goes on, so a bounded scan finds an
    /// agent whenever a full scan would; with nobody eligible it answers `None`.
    #[tokio::test]
    async fn an_ineligible_window_does_not_hide_the_rest() {
        let n = SCAN_WINDOW * 2;
        let c = candidates(n).await;
        let last = n - 1;
        let only_last = |e: &AgentEntry| e.seq == last as u64;
        assert_eq!(min_by_key_from(&c, 0, &only_last, |e| e.load.in_flight()), Some(last));
        let nobody = |_: &AgentEntry| false;
        assert_eq!(min_by_key_from(&c, 7, &nobody, |e| e.load.in_flight()), None);
    }
}
