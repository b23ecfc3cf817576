//! The QLearning actor: the supervised writer of the node's [`QModel`].
//!
//! Every `tick_interval` (5 ms by default) it pumps the model: applies the queued TD
//! samples and republishes the snapshot when one is due. Every
//! `q_learning.persist_interval_ms` (0: never on a timer) and when it stops normally it
//! saves the table to `q_learning.model_path` if one is configured and the table changed. A save error is logged and
//! counted; it never stops the actor.
//!
//! The model (table, queue, snapshot) is owned by the node, so a crash loses nothing: the
//! samples that arrive while no incarnation runs wait in the bounded queue (or are
//! dropped and counted when it is full), and the next incarnation applies them. The
//! routing path never depends on this actor being up: it keeps reading the last
//! snapshot.
//!
//! Its mailbox only ever holds timer ticks and rare control calls: the tick timer sends
//! one message per interval, and a tick does a bounded amount of work (`max_batch`).

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::MonoClock;
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::model::{QModel, QModelStats};

/// Default interval between pumps.
pub const DEFAULT_TICK: Duration = Duration::from_millis(5);

/// Messages of the QLearning actor.
pub enum QLearningMsg {
    /// Pump the model (and save it when the persist interval has passed).
    Tick,
    /// Pump and save now; answers whether a file was written, or the error.
    Persist(RpcReplyPort<Result<bool, String>>),
    /// The model's counters.
    Stats(RpcReplyPort<QModelStats>),
}

impl std::fmt::Debug for QLearningMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QLearningMsg::Tick => "Tick",
            QLearningMsg::Persist(_) => "Persist",
            QLearningMsg::Stats(_) => "Stats",
        })
    }
}

impl ractor::Message for QLearningMsg {}

/// Arguments of the QLearning actor.
#[derive(Debug, Clone)]
pub struct QLearningArgs {
    /// The node's model.
    pub model: Arc<QModel>,
    /// Node clock.
    pub clock: MonoClock,
    /// Interval between pumps.
    pub tick_interval: Duration,
    /// Interval between saves (`None`: only when stopping).
    pub persist_interval: Option<Duration>,
    /// Where the incarnation is published.
    pub slot: ActorSlot<QLearningMsg>,
}

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct QLearningActor;

/// Its state.
#[derive(Debug)]
pub struct QLearningState {
    args: QLearningArgs,
    timer: tokio::task::JoinHandle<()>,
    last_save_ns: u64,
}

impl QLearningState {
    fn pump(&self) {
        self.args.model.pump(self.args.clock.now_ns());
    }

    fn save(&mut self) -> Result<bool, String> {
        self.last_save_ns = self.args.clock.now_ns();
        self.args.model.persist().map_err(|e| e.to_string())
    }
}

impl Actor for QLearningActor {
    type Msg = QLearningMsg;
    type State = QLearningState;
    type Arguments = QLearningArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<QLearningMsg>,
        args: QLearningArgs,
    ) -> Result<QLearningState, ActorProcessingErr> {
        let timer = myself.send_interval(args.tick_interval, || QLearningMsg::Tick);
        args.slot.set(myself);
        let last_save_ns = args.clock.now_ns();
        Ok(QLearningState { args, timer, last_save_ns })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<QLearningMsg>,
        state: &mut QLearningState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        state.pump();
        state.args.model.publish();
        // Errors are logged and counted by the model.
        let _ = state.save();
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<QLearningMsg>,
        msg: QLearningMsg,
        state: &mut QLearningState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            QLearningMsg::Tick => {
                state.pump();
                if let Some(every) = state.args.persist_interval {
                    let now = state.args.clock.now_ns();
                    if now.saturating_sub(state.last_save_ns) >= every.as_nanos() as u64 {
                        let _ = state.save();
                    }
                }
            }
            QLearningMsg::Persist(reply) => {
                state.pump();
                let _ = reply.send(state.save());
            }
            QLearningMsg::Stats(reply) => {
                let _ = reply.send(state.args.model.stats());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q_learning::QLearningStrategy;
    use crate::strategy::test_support::candidates;
    use crate::strategy::{AttemptFeedback, LoadFigures, Strategy};
    use erlmcp_flow_core::config::FlowConfig;
    use ractor::rpc::CallResult;

    /// The actor applies queued samples on its own ticks, and saves the model on a
    /// persist request and when it stops; a new model opened on the same file gets the
    /// learned table back.
    #[tokio::test]
    async fn pumps_on_ticks_and_saves_on_request_and_stop() {
        let dir = std::env::temp_dir().join(format!("erlmcp-qactor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = FlowConfig::for_test();
        cfg.q_learning.model_path = Some(dir.join("q.bin"));
        let model = QModel::open(&cfg);
        assert!(!model.loaded_from_file() && model.load_warning().is_none());
        let clock = MonoClock::new();
        let slot = ActorSlot::new();
        let args = QLearningArgs {
            model: model.clone(),
            clock,
            tick_interval: Duration::from_millis(1),
            persist_interval: None,
            slot: slot.clone(),
        };
        let (actor, handle) = Actor::spawn(None, QLearningActor, args).await.unwrap();
        assert!(slot.get().is_some());

        let c = candidates(2).await;
        let s = QLearningStrategy::new(model.clone());
        for i in 0..10u64 {
            let e = &c[(i % 2) as usize];
            let dispatch = LoadFigures::read(&e.load, i, 1e10);
            s.observe(&AttemptFeedback {
                agent: e,
                candidates: &c,
                latency_ns: 1_000,
                success: true,
                now_ns: i,
                dispatch,
            });
        }
        // Applied by the actor's ticks, not by us.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while model.stats().updates < 10 {
            assert!(tokio::time::Instant::now() < deadline, "ticks applied nothing");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let saved = actor.call(QLearningMsg::Persist, None).await.unwrap();
        assert!(matches!(saved, CallResult::Success(Ok(true))));
        let again = actor.call(QLearningMsg::Persist, None).await.unwrap();
        assert!(matches!(again, CallResult::Success(Ok(false))), "unchanged: nothing to write");

        s.observe(&AttemptFeedback {
            agent: &c[0],
            candidates: &c,
            latency_ns: 1_000,
            success: false,
            now_ns: 99,
            dispatch: LoadFigures::read(&c[0].load, 99, 1e10),
        });
        actor.stop(None);
        handle.await.unwrap();
        assert!(slot.get().is_none());
        assert_eq!(model.stats().saves, 2, "saved again on stop, with the last sample");
        let reopened = QModel::open(&cfg);
        assert!(reopened.loaded_from_file());
        assert_eq!(reopened.stats().updates, 11);
        assert_eq!(reopened.with_table(|t| t.to_data()), model.with_table(|t| t.to_data()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
