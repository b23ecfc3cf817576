//! The Router actor: the control plane of a node's routing.
//!
//! Routing itself never passes through this actor's mailbox (drivers run as tokio tasks
//! over shared state, see [`crate::core`]). The actor serialises the *changes*: strategy
//! switches and dead-letter replays, and answers inspection requests. It owns nothing that
//! a crash could lose; a restarted incarnation serves the same [`RouterCore`].

use std::sync::Arc;

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::core::RouterCore;
use crate::dead_letter::DeadLetter;
use crate::error::StrategyError;
use crate::metrics::FlowStats;
use crate::strategy::Strategy;

/// Builds strategies on request (Q-learning needs the node's model).
pub type StrategyFactory = Arc<dyn Fn(StrategyKind) -> Result<Arc<dyn Strategy>, StrategyError> + Send + Sync>;

/// Messages of the Router actor.
pub enum RouterMsg {
    /// Switch strategy.
    SetStrategy(StrategyKind, RpcReplyPort<Result<(), StrategyError>>),
    /// Current counters.
    Stats(RpcReplyPort<FlowStats>),
    /// Queued dead letters.
    DeadLetters(RpcReplyPort<Vec<DeadLetter>>),
    /// Resubmit every queued dead letter as a new task (same body, new id); returns how
    /// many were accepted.
    ReplayDeadLetters(RpcReplyPort<usize>),
}

impl std::fmt::Debug for RouterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouterMsg::SetStrategy(k, _) => k.as_str(),
            RouterMsg::Stats(_) => "Stats",
            RouterMsg::DeadLetters(_) => "DeadLetters",
            RouterMsg::ReplayDeadLetters(_) => "ReplayDeadLetters",
        })
    }
}

impl ractor::Message for RouterMsg {}

/// Arguments of the Router actor.
#[derive(Clone)]
pub struct RouterArgs {
    /// The router.
    pub core: Arc<RouterCore>,
    /// Strategy builder.
    pub strategies: StrategyFactory,
    /// Where the incarnation is published.
    pub slot: ActorSlot<RouterMsg>,
}

impl std::fmt::Debug for RouterArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterArgs").field("core", &self.core).finish_non_exhaustive()
    }
}

/// The Router actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterActor;

impl Actor for RouterActor {
    type Msg = RouterMsg;
    type State = RouterArgs;
    type Arguments = RouterArgs;

    async fn pre_start(&self, myself: ActorRef<RouterMsg>, args: RouterArgs) -> Result<RouterArgs, ActorProcessingErr> {
        args.slot.set(myself);
        Ok(args)
    }

    async fn post_stop(&self, myself: ActorRef<RouterMsg>, state: &mut RouterArgs) -> Result<(), ActorProcessingErr> {
        state.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::SetStrategy(kind, reply) => {
                let r = (state.strategies)(kind).map(|s| {
                    tracing::info!(strategy = %kind, "routing strategy changed");
                    state.core.set_strategy(s)
                });
                let _ = reply.send(r);
            }
            RouterMsg::Stats(reply) => {
                let _ = reply.send(state.core.stats());
            }
            RouterMsg::DeadLetters(reply) => {
                let _ = reply.send(state.core.parts().dead_letters.snapshot());
            }
            RouterMsg::ReplayDeadLetters(reply) => {
                let letters = state.core.parts().dead_letters.drain();
                let mut accepted = 0;
                for letter in letters {
                    let mut task = erlmcp_flow_core::Task::clone(&letter.task);
                    task.id = erlmcp_flow_core::TaskId::new_v4();
                    task.attempt = 0;
                    match state.core.try_submit(task) {
                        Ok(_) => accepted += 1,
                        Err(e) => {
                            tracing::warn!(error = %e, "dead letter not replayed");
                            state.core.parts().dead_letters.push(letter);
                        }
                    }
                }
                let _ = reply.send(accepted);
            }
        }
        Ok(())
    }
}
