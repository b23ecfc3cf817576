//! [`QLearningStrategy`]: the Q-table as a routing [`Strategy`].
//!
//! `select` discretises each eligible candidate's live load figures into its state (see
//! [`super::state`]), looks up `Q(state, agent)` in the current snapshot and chooses
//! ε-greedily (see [`super::policy`]). `observe` reads the agent's figures after the
//! outcome and queues `(figures at dispatch, figures now, latency, success)` for the
//! QLearning actor. Neither waits on a lock or a mailbox.

use std::sync::Arc;

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_registry::Candidates;
use rand::rngs::SmallRng;

use super::model::{QModel, TdSample};
use super::policy::epsilon_greedy;
use super::state::discretise;
use crate::strategy::{AttemptFeedback, LoadFigures, Selection, Strategy};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct QLearningStrategy {
    model: Arc<QModel>,
}

impl QLearningStrategy {
    /// A strategy reading and feeding `model`.
    pub fn new(model: Arc<QModel>) -> Self {
        Self { model }
    }

    /// The model.
    pub fn model(&self) -> &Arc<QModel> {
        &self.model
    }
}

impl Strategy for QLearningStrategy {
    fn kind(&self) -> StrategyKind {
        StrategyKind::QLearning
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, rng: &mut SmallRng) -> Option<usize> {
        let snap = self.model.snapshot();
        let settings = self.model.settings();
        let (cap, decay, reference) = (settings.capacity, settings.ewma_decay_ns, snap.latency_ref_ns());
        epsilon_greedy(
            snap.epsilon(),
            candidates.len(),
            |i| {
                let e = &candidates[i];
                if !(sel.eligible)(e) {
                    return None;
                }
                let state = discretise(&LoadFigures::read(&e.load, sel.now_ns, decay), cap, reference);
                Some(snap.value(e.id.as_str(), state))
            },
            rng,
        )
    }

    fn observe(&self, fb: &AttemptFeedback<'_>) {
        let after = LoadFigures::read(&fb.agent.load, fb.now_ns, self.model.settings().ewma_decay_ns);
        self.model.record(TdSample {
            agent: fb.agent.clone(),
            dispatch: fb.dispatch,
            after,
            latency_ns: fb.latency_ns,
            success: fb.success,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q_learning::model::QModelSettings;
    use crate::q_learning::table::QParams;
    use crate::strategy::test_support::{candidates, task};
    use erlmcp_flow_registry::AgentEntry;
    use rand::SeedableRng;

    fn greedy_params() -> QParams {
        QParams { epsilon: 0.0, epsilon_min: 0.0, ..QParams::default() }
    }

    /// Feeds one outcome of candidate `i` through the strategy, as the router does.
    fn outcome(s: &QLearningStrategy, c: &Candidates, i: usize, now_ns: u64, latency_ns: u64, success: bool) {
        let e = &c[i];
        let dispatch = LoadFigures::read(&e.load, now_ns, 1e10);
        e.load.begin();
        e.load.end();
        e.load.observe(now_ns + latency_ns, latency_ns, success, 1e10);
        s.observe(&AttemptFeedback {
            agent: e,
            candidates: c,
            latency_ns,
            success,
            now_ns: now_ns + latency_ns,
            dispatch,
        });
    }

    /// Observed outcomes reach the table only through the pump; afterwards the greedy
    /// strategy prefers the agent that answered fast and reliably.
    #[tokio::test]
    async fn learns_to_prefer_the_better_agent() {
        let c = candidates(3).await;
        let model = QModel::in_memory(greedy_params(), QModelSettings::default());
        let s = QLearningStrategy::new(model.clone());
        let mut now = 1_000;
        for round in 0..30 {
            outcome(&s, &c, 0, now, 4_000_000, true);
            outcome(&s, &c, 1, now, 1_000_000, true);
            outcome(&s, &c, 2, now, 1_000_000, round % 10 == 0);
            now += 5_000_000;
        }
        assert_eq!(model.with_table(|t| t.updates()), 0, "nothing applied before a pump");
        let report = model.pump(now);
        assert_eq!(report, crate::q_learning::PumpReport { applied: 90, published: true });
        let t = task();
        let all = |_: &AgentEntry| true;
        let sel = Selection { task: &t, now_ns: now, eligible: &all };
        let mut rng = SmallRng::seed_from_u64(9);
        for _ in 0..50 {
            assert_eq!(s.select(&c, &sel, &mut rng), Some(1));
        }
        let not_one = |e: &AgentEntry| e.id.as_str() != "agent-0001";
        let sel = Selection { task: &t, now_ns: now, eligible: &not_one };
        assert_eq!(s.select(&c, &sel, &mut rng), Some(0), "slow beats flaky once the fast one is out");
        let none = |_: &AgentEntry| false;
        let sel = Selection { task: &t, now_ns: now, eligible: &none };
        assert_eq!(s.select(&c, &sel, &mut rng), None);
    }

    /// The feedback queue is bounded: samples beyond its capacity are dropped and
    /// counted, never blocking the caller.
    #[tokio::test]
    async fn full_queue_drops_and_counts() {
        let c = candidates(1).await;
        let settings = QModelSettings { queue_capacity: 4, ..QModelSettings::default() };
        let model = QModel::in_memory(QParams::default(), settings);
        let s = QLearningStrategy::new(model.clone());
        for k in 0..10 {
            outcome(&s, &c, 0, 1 + k, 1_000, true);
        }
        let st = model.stats();
        assert_eq!((st.recorded, st.dropped), (4, 6));
        assert_eq!(model.pump(100).applied, 4);
        assert_eq!(model.stats().updates, 4);
    }

    /// Snapshots are republished at most once per interval; pending changes are
    /// published by a later pump.
    #[tokio::test]
    async fn snapshots_are_rate_limited() {
        let c = candidates(1).await;
        let model = QModel::in_memory(QParams::default(), QModelSettings::default());
        let s = QLearningStrategy::new(model.clone());
        outcome(&s, &c, 0, 1, 1_000, true);
        assert!(model.pump(1_000).published);
        outcome(&s, &c, 0, 2, 1_000, true);
        let r = model.pump(2_000);
        assert_eq!((r.applied, r.published), (1, false));
        assert_eq!(model.snapshot().updates(), 1);
        assert!(model.pump(20_000_000).published);
        assert_eq!(model.snapshot().updates(), 2);
        assert!(!model.pump(90_000_000).published, "nothing new to publish");
    }
}
