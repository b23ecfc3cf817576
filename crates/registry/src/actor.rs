//! The registry actor: the single writer of the [`RegistryView`].
//!
//! It monitors every registered agent actor (ractor `monitors`). When an agent dies its
//! entry is marked down at once (no stale routing: candidates that are down are skipped)
//! and, unless a new incarnation registers within `registry.restart_grace_ms`, removed.
//! A death only counts if the dead actor is still the entry's current incarnation: a
//! restarted agent may have registered its new actor before the old one's exit event
//! arrives.
//!
//! The view is shared and outlives the actor. When the registry actor is restarted, the
//! new incarnation rebuilds what the old one held privately: it marks down entries whose
//! actors died while no registry was listening, and monitors the rest again.
//!
//! It also publishes leadership changes: after every event it recomputes the leaders of
//! the swarms involved and announces those that differ from what it last announced.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use erlmcp_flow_core::{AgentId, MonoClock, NodeName, SwarmName};
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent};

use crate::entry::{AgentEntry, Registration, RemoteRegistration};
use crate::error::RegistryError;
use crate::view::{LeaderChange, RegistryView};

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
    /// Monitor a new incarnation that revived its entry itself (see
    /// [`RegistryHandle::revive`](crate::RegistryHandle::revive)).
    Watch(AgentId, erlmcp_flow_core::AgentRef),
    /// Make the remote agents of `node` exactly these (the cluster layer sends the node's
    /// directory as gossip delivers it); returns how many entries changed.
    SyncNode(NodeName, Vec<RemoteRegistration>, RpcReplyPort<usize>),
    /// Mark every agent of `node` reachable (up) or not (down).
    SetNodeReachable(NodeName, bool, RpcReplyPort<usize>),
    /// Remove entries down for longer than the grace period.
    Reap,
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
    /// How long a down entry waits for a new incarnation before it is removed.
    pub restart_grace: Duration,
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
    /// Down entries: id → (incarnation when it went down, when).
    down: HashMap<AgentId, (u64, u64)>,
    /// Leaders as last announced.
    announced: HashMap<SwarmName, Option<AgentId>>,
    reaper: tokio::task::JoinHandle<()>,
}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RegistryMsg>,
        args: RegistryArgs,
    ) -> Result<RegistryState, ActorProcessingErr> {
        let reaper = myself.send_interval((args.restart_grace / 2).max(Duration::from_millis(1)), || RegistryMsg::Reap);
        let mut state =
            RegistryState { watching: HashMap::new(), down: HashMap::new(), announced: HashMap::new(), reaper, args };
        let now = state.args.clock.now_ns();
        for entry in state.args.view.all_entries() {
            // Remote entries are the cluster layer's business.
            let Some(actor) = entry.actor() else { continue };
            if entry.is_alive() && actor.get_status() <= ActorStatus::Running {
                myself.get_cell().monitor(actor.get_cell());
                state.watching.insert(actor.get_id(), entry.id.clone());
            } else {
                entry.mark_down(actor.get_id());
                state.down.insert(entry.id.clone(), (entry.incarnation(), now));
            }
        }
        for swarm in state.args.view.swarms() {
            let leader = state.args.view.leader(&swarm);
            state.announced.insert(swarm, leader);
        }
        if !state.watching.is_empty() || !state.down.is_empty() {
            tracing::info!(
                live = state.watching.len(),
                down = state.down.len(),
                "registry rebuilt from the shared view"
            );
        }
        state.args.slot.set(myself);
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RegistryMsg>,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        state.reaper.abort();
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Register(reg, reply) => {
                let r = state.register(&myself, reg);
                if let Ok(e) = &r {
                    state.announce(&e.initial_swarms.clone());
                }
                let _ = reply.send(r);
            }
            RegistryMsg::Unregister(id, reply) => {
                let removed = state.remove(&myself, &id);
                let _ = reply.send(removed);
            }
            RegistryMsg::JoinSwarm(id, swarm, reply) => {
                let ok = state.args.view.join(&id, &swarm);
                state.announce(std::slice::from_ref(&swarm));
                let _ = reply.send(ok);
            }
            RegistryMsg::LeaveSwarm(id, swarm, reply) => {
                let ok = state.args.view.leave(&id, &swarm);
                state.announce(std::slice::from_ref(&swarm));
                let _ = reply.send(ok);
            }
            RegistryMsg::Watch(id, actor) => state.watch(&myself, id, actor),
            RegistryMsg::SyncNode(node, agents, reply) => {
                let changed = state.sync_node(&myself, &node, agents);
                let _ = reply.send(changed);
            }
            RegistryMsg::SetNodeReachable(node, up, reply) => {
                let mut changed = 0;
                let mut swarms = Vec::new();
                for e in state.args.view.all_entries() {
                    if e.node.as_ref() == Some(&node) && e.set_remote_up(up) {
                        changed += 1;
                        swarms.extend(e.initial_swarms.iter().cloned());
                    }
                }
                swarms.sort();
                swarms.dedup();
                state.announce(&swarms);
                let _ = reply.send(changed);
            }
            RegistryMsg::Reap => state.reap(&myself),
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
                && let Some(entry) = state.args.view.entry(&id)
                && entry.actor_id() == Some(actor)
            {
                entry.mark_down(actor);
                state.down.insert(id.clone(), (entry.incarnation(), state.args.clock.now_ns()));
                tracing::debug!(agent = %id, "agent died; marked down");
                let swarms = state.args.view.swarms_of(&id);
                state.announce(&swarms);
            }
        }
        Ok(())
    }
}

impl RegistryState {
    fn register(
        &mut self,
        myself: &ActorRef<RegistryMsg>,
        reg: Registration,
    ) -> Result<Arc<AgentEntry>, RegistryError> {
        if reg.weight == 0 {
            return Err(RegistryError::InvalidWeight(reg.id));
        }
        if reg.actor.get_status() > ActorStatus::Running {
            return Err(RegistryError::AgentDead(reg.id));
        }
        let view = self.args.view.clone();
        let existing = view.entry(&reg.id);
        if let Some(e) = &existing {
            let Some(current) = e.actor() else {
                // A remote agent holds this id.
                return Err(RegistryError::AlreadyRegistered(reg.id));
            };
            if e.is_alive() && current.get_id() != reg.actor.get_id() && current.get_status() <= ActorStatus::Running {
                return Err(RegistryError::AlreadyRegistered(reg.id));
            }
            if e.same_shape(&reg) && (e.actor_id() == Some(reg.actor.get_id()) || e.revive(reg.actor.clone())) {
                // A new incarnation of the same agent took the entry over in place.
                self.watch(myself, reg.id.clone(), reg.actor.clone());
                return self.confirm_alive(e.clone());
            }
        } else if view.is_full() {
            return Err(RegistryError::Full { max: view.max_agents() });
        }
        let entry = Arc::new(AgentEntry::new(
            reg,
            self.args.seq.fetch_add(1, Ordering::Relaxed),
            self.args.clock.now_ns(),
            self.args.bulkhead_capacity,
        ));
        if let Some(old) = view.insert(entry.clone())
            && let Some(old_actor) = old.actor()
        {
            myself.get_cell().unmonitor(old_actor.get_cell());
            self.watching.remove(&old_actor.get_id());
        }
        self.down.remove(&entry.id);
        let actor = entry.actor().expect("a local registration");
        myself.get_cell().monitor(actor.get_cell());
        self.watching.insert(actor.get_id(), entry.id.clone());
        self.confirm_alive(entry)
    }

    fn sync_node(&mut self, myself: &ActorRef<RegistryMsg>, node: &NodeName, agents: Vec<RemoteRegistration>) -> usize {
        let view = self.args.view.clone();
        let mut changed = 0;
        let mut swarms: Vec<SwarmName> = Vec::new();
        let wanted: std::collections::HashSet<AgentId> = agents.iter().map(|r| r.id.clone()).collect();
        for e in view.all_entries() {
            if e.node.as_ref() == Some(node) && !wanted.contains(&e.id) {
                swarms.extend(view.swarms_of(&e.id));
                self.remove(myself, &e.id);
                changed += 1;
            }
        }
        for reg in agents {
            if reg.link.node() != node {
                tracing::warn!(agent = %reg.id, "remote registration for another node ignored");
                continue;
            }
            if let Some(e) = view.entry(&reg.id) {
                let same =
                    e.node.as_ref() == Some(node) && e.capabilities == reg.capabilities && e.weight == reg.weight && {
                        let mut s = reg.swarms.clone();
                        s.sort();
                        s.dedup();
                        s == e.initial_swarms
                    };
                if same {
                    continue;
                }
                if e.is_local() {
                    tracing::warn!(agent = %reg.id, "remote agent id clashes with a local agent; ignored");
                    continue;
                }
                self.remove(myself, &reg.id);
            } else if view.is_full() {
                tracing::warn!(agent = %reg.id, "registry full; remote agent not added");
                continue;
            }
            swarms.extend(reg.swarms.iter().cloned());
            let entry = Arc::new(AgentEntry::new_remote(
                reg,
                self.args.seq.fetch_add(1, Ordering::Relaxed),
                self.args.clock.now_ns(),
                self.args.bulkhead_capacity,
            ));
            view.insert(entry);
            changed += 1;
        }
        swarms.sort();
        swarms.dedup();
        self.announce(&swarms);
        changed
    }

    /// Monitors the incarnation `actor` of `id` if it is still the entry's current one.
    fn watch(&mut self, myself: &ActorRef<RegistryMsg>, id: AgentId, actor: erlmcp_flow_core::AgentRef) {
        let Some(entry) = self.args.view.entry(&id) else {
            return;
        };
        if entry.actor_id() != Some(actor.get_id()) {
            return;
        }
        if let Some(old) = self.watching.iter().find(|(_, v)| **v == id).map(|(k, _)| *k)
            && old != actor.get_id()
        {
            self.watching.remove(&old);
        }
        myself.get_cell().monitor(actor.get_cell());
        self.watching.insert(actor.get_id(), id.clone());
        self.down.remove(&id);
        let _ = self.confirm_alive(entry.clone());
        let swarms = self.args.view.swarms_of(&id);
        self.announce(&swarms);
    }

    /// The actor may have died before we started monitoring it.
    fn confirm_alive(&mut self, entry: Arc<AgentEntry>) -> Result<Arc<AgentEntry>, RegistryError> {
        let Some(actor) = entry.actor() else { return Ok(entry) };
        if actor.get_status() > ActorStatus::Running {
            entry.mark_down(actor.get_id());
            self.watching.remove(&actor.get_id());
            self.down.insert(entry.id.clone(), (entry.incarnation(), self.args.clock.now_ns()));
            return Err(RegistryError::AgentDead(entry.id.clone()));
        }
        Ok(entry)
    }

    fn remove(&mut self, myself: &ActorRef<RegistryMsg>, id: &AgentId) -> bool {
        let swarms = self.args.view.swarms_of(id);
        let Some(e) = self.args.view.remove(id, None) else {
            return false;
        };
        if let Some(actor) = e.actor() {
            myself.get_cell().unmonitor(actor.get_cell());
            self.watching.remove(&actor.get_id());
        }
        self.down.remove(id);
        self.announce(&swarms);
        true
    }

    fn reap(&mut self, myself: &ActorRef<RegistryMsg>) {
        let now = self.args.clock.now_ns();
        let grace = self.args.restart_grace.as_nanos() as u64;
        let expired: Vec<AgentId> = self
            .down
            .iter()
            .filter(|(_, (_, since))| now.saturating_sub(*since) >= grace)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let (incarnation, _) = self.down.remove(&id).expect("listed above");
            if let Some(e) = self.args.view.entry(&id)
                && e.retire_if_down(incarnation)
            {
                tracing::debug!(agent = %id, "agent stayed down past the grace period; removed");
                self.remove(myself, &id);
            }
        }
    }

    fn announce(&mut self, swarms: &[SwarmName]) {
        for swarm in swarms {
            let leader = self.args.view.leader(swarm);
            let before = self.announced.insert(swarm.clone(), leader.clone());
            if before.flatten() != leader {
                self.args.view.publish_leader(LeaderChange { swarm: swarm.clone(), leader });
            }
        }
    }
}
