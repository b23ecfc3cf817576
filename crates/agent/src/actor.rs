//! [`AgentActor`]: the ractor shell around a user's [`Agent`].
//!
//! * registers itself (id, capabilities, swarms, weight) in `pre_start`, so an agent is
//!   routable exactly while its actor lives (the registry unregisters it on death);
//! * executes one task at a time, marking itself busy (the failure detector kills an
//!   agent busy for longer than `failure_detector.hung_agent_after_ms`);
//! * catches a panic in agent code, answers the caller of *that* task with
//!   [`AgentReplyError::Panicked`], then fails on purpose so its supervisor restarts it
//!   with a fresh agent from the factory (the agent's state may be corrupt: let it crash).
//!   Tasks still queued in its mailbox see their reply channel close and are redelivered
//!   elsewhere by the router without spending an attempt (they never ran).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use erlmcp_flow_core::{Agent, AgentMsg, AgentReplyError, MonoClock};
use erlmcp_flow_registry::{AgentEntry, Registration, RegistryHandle};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::panic_scope::AgentScope;
use crate::spec::AgentSpec;

/// Start-up arguments of an agent actor.
#[derive(Debug)]
pub struct AgentArgs<A> {
    /// The agent value (fresh from the factory on every start).
    pub agent: A,
    /// Its spec.
    pub spec: AgentSpec,
    /// Where to register.
    pub registry: RegistryHandle,
    /// Node clock.
    pub clock: MonoClock,
}

/// The actor wrapping agent type `A`.
#[derive(Debug)]
pub struct AgentActor<A>(std::marker::PhantomData<fn() -> A>);

impl<A> Default for AgentActor<A> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// An agent actor's state.
#[derive(Debug)]
pub struct AgentState<A> {
    agent: A,
    entry: Arc<AgentEntry>,
    clock: MonoClock,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl<A: Agent> Actor for AgentActor<A> {
    type Msg = AgentMsg;
    type State = AgentState<A>;
    type Arguments = AgentArgs<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<AgentMsg>,
        args: AgentArgs<A>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let reg = Registration {
            id: args.spec.id.clone(),
            capabilities: args.spec.capabilities.clone(),
            swarms: args.spec.swarms.clone(),
            weight: args.spec.weight,
            actor: myself,
        };
        let entry = match args.registry.revive(&reg) {
            Some(entry) => entry,
            None => args.registry.register(reg).await?,
        };
        Ok(AgentState { agent: args.agent, entry, clock: args.clock })
    }

    async fn post_stop(&self, myself: ActorRef<AgentMsg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.entry.mark_down(myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<AgentMsg>,
        msg: AgentMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.clock.now_ns();
        state.entry.load.heartbeat(now);
        match msg {
            AgentMsg::Execute { task, reply } => {
                if reply.is_closed() {
                    // The router gave up on this attempt (timeout) while it was queued.
                    return Ok(());
                }
                state.entry.load.set_busy_since(now);
                // `handle` is called inside the async block, i.e. during the first poll,
                // so a panic in an agent's synchronous part (before its future exists) is
                // caught and silenced like one inside the future.
                let agent = &mut state.agent;
                let result =
                    AssertUnwindSafe(AgentScope::new(async { agent.handle(&task).await })).catch_unwind().await;
                state.entry.load.set_busy_since(0);
                state.entry.load.heartbeat(state.clock.now_ns());
                match result {
                    Ok(r) => {
                        let _ = reply.send(r.map_err(AgentReplyError::from));
                    }
                    Err(panic) => {
                        let message = panic_message(panic.as_ref());
                        // Out of routing before anyone else sends to this incarnation.
                        state.entry.mark_down(myself.get_id());
                        let _ = reply.send(Err(AgentReplyError::Panicked(message.clone())));
                        return Err(format!("agent {} panicked: {message}", state.entry.id).into());
                    }
                }
            }
            AgentMsg::Broadcast(message) => {
                let agent = &mut state.agent;
                let r = AssertUnwindSafe(AgentScope::new(async { agent.on_broadcast(&message).await }))
                    .catch_unwind()
                    .await;
                if let Err(panic) = r {
                    state.entry.mark_down(myself.get_id());
                    return Err(format!(
                        "agent {} panicked on a broadcast: {}",
                        state.entry.id,
                        panic_message(panic.as_ref())
                    )
                    .into());
                }
            }
            AgentMsg::Heartbeat => {}
        }
        Ok(())
    }
}
