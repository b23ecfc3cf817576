//! The registry actor: the single writer of the [`RegistryView`].
//!
//! It monitors every registered agent actor (ractor `monitors`), so when an agent dies,
//! for any reason, its entry is removed: no stale entries. A removal only happens if the
//! dead actor is still the registered incarnation, because a restarted agent may have
//! registered its new actor before the old one's exit event arrives.
//!
//! The view is shared and outlives the actor. When the registry actor is restarted, the
//! new incarnation rebuilds what the old one held privately: it drops entries whose
//! actors died while no registry was listening, and monitors the rest again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::{AgentId, MonoClock, SwarmName};
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::Semaphore;

use crate::entry::{AgentEntry, Registration};
use crate::error::RegistryError;
use crate::load::AgentLoad;
use crate::view::RegistryView;

/// Messages the registry actor takes (all writes).
#[derive(Debug)]
pub enum RegistryMsg {
    /// Register an agent incarnation.
    Register(Registration, RpcReplyPort<Result<Arc<AgentEntry>, RegistryError>>),
    /// Remove an agent.
    Unregister(AgentId, RpcReplyPort<bool>),
    /// Add an agent to a swarm.
    JoinSwarm(AgentId, SwarmName, RpcReplyPort<bool>),
    /// Remove an agent from a swarm.
    LeaveSwarm(AgentId, SwarmName, RpcReplyPort<bool>),
    /// Fault injection for supervision tests.
    #[doc(hidden)]
    InjectPanic,
}

impl ractor::Message for RegistryMsg {}

/// Start-up arguments: the shared view and where to publish the actor.
#[derive(Debug, Clone)]
pub struct RegistryArgs {
    /// The shared contents.
    pub view: Arc<RegistryView>,
    /// Where this incarnation is published.
    pub slot: ActorSlot<RegistryMsg>,
    /// Node clock.
    pub clock: MonoClock,
    /// Bulkhead size for new entries.
    pub bulkhead_capacity: usize,
    /// Registration counter shared by incarnations (keeps `seq` increasing).
    pub seq: Arc<AtomicU64>,
}

/// The registry actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

/// The actor's private state.
#[derive(Debug)]
pub struct RegistryState {
    args: RegistryArgs,
    /// Monitored actor → agent id.
    watching: HashMap<ActorId, AgentId>,
}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(&self, myself: ActorRef<RegistryMsg>, args: RegistryArgs) -> Result<RegistryState, ActorProcessingErr> {
        let mut watching = HashMap::new();
        let mut dropped = 0usize;
        for entry in args.view.all() {
            if entry.is_alive() {
                myself.get_cell().monitor(entry.actor.get_cell());
                watching.insert(entry.actor.get_id(), entry.id.clone());
            } else if args.view.remove(&entry.id, Some(entry.actor.get_id())).is_some() {
                dropped += 1;
            }
        }
        if dropped > 0 || !watching.is_empty() {
            tracing::info!(kept = watching.len(), dropped, "registry rebuilt from the shared view");
        }
        args.slot.set(myself);
        Ok(RegistryState { args, watching })
    }

    async fn post_stop(&self, myself: ActorRef<RegistryMsg>, state: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(&self, myself: ActorRef<RegistryMsg>, msg: RegistryMsg, state: &mut RegistryState) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Register(reg, reply) => {
                let r = state.register(&myself, reg);
                let _ = reply.send(r);
            }
            RegistryMsg::Unregister(id, reply) => {
                let removed = state.args.view.remove(&id, None);
                if let Some(e) = &removed {
                    myself.get_cell().unmonitor(e.actor.get_cell());
                    state.watching.remove(&e.actor.get_id());
                }
                let _ = reply.send(removed.is_some());
            }
            RegistryMsg::JoinSwarm(id, swarm, reply) => {
                let _ = reply.send(state.args.view.join(&id, &swarm));
            }
            RegistryMsg::LeaveSwarm(id, swarm, reply) => {
                let _ = reply.send(state.args.view.leave(&id, &swarm));
            }
            RegistryMsg::InjectPanic => panic!("registry: injected panic"),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<RegistryMsg>,
        evt: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorTerminated(cell, ..) | SupervisionEvent::ActorFailed(cell, _) = evt {
            let actor = cell.get_id();
            if let Some(id) = state.watching.remove(&actor)
                && state.args.view.remove(&id, Some(actor)).is_some()
            {
                tracing::debug!(agent = %id, "agent died; unregistered");
            }
        }
        Ok(())
    }
}

impl RegistryState {
    fn register(&mut self, myself: &ActorRef<RegistryMsg>, reg: Registration) -> Result<Arc<AgentEntry>, RegistryError> {
        if reg.weight == 0 {
            return Err(RegistryError::InvalidWeight(reg.id));
        }
        let view = &self.args.view;
        if let Some(existing) = view.get(&reg.id) {
            if existing.is_alive() && existing.actor.get_id() != reg.actor.get_id() {
                return Err(RegistryError::AlreadyRegistered(reg.id));
            }
        } else if view.is_full() {
            return Err(RegistryError::Full { max: view.len() });
        }
        let entry = Arc::new(AgentEntry {
            id: reg.id.clone(),
            capabilities: reg.capabilities,
            weight: reg.weight,
            actor: reg.actor,
            node: None,
            seq: self.args.seq.fetch_add(1, Ordering::Relaxed),
            load: AgentLoad::new(self.args.clock.now_ns()),
            bulkhead: Semaphore::new(self.args.bulkhead_capacity),
        });
        if let Some(old) = view.insert(entry.clone(), &reg.swarms) {
            myself.get_cell().unmonitor(old.actor.get_cell());
            self.watching.remove(&old.actor.get_id());
        }
        myself.get_cell().monitor(entry.actor.get_cell());
        self.watching.insert(entry.actor.get_id(), entry.id.clone());
        // The actor may have died before we started monitoring it.
        if !entry.is_alive() {
            view.remove(&entry.id, Some(entry.actor.get_id()));
            self.watching.remove(&entry.actor.get_id());
            return Err(RegistryError::AgentDead(entry.id.clone()));
        }
        Ok(entry)
    }
}
