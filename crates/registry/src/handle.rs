//! [`RegistryHandle`]: the registry's API. Reads go to the shared view; writes are calls
//! to the current registry actor, retried while it is restarting.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow_core::{AgentId, AgentMsg, Capability, CapabilitySet, NodeName, SwarmName};
use erlmcp_flow_supervision::ActorSlot;
use ractor::rpc::CallResult;
use tokio::sync::broadcast;

use crate::actor::RegistryMsg;
use crate::entry::{AgentEntry, Registration, RemoteRegistration};
use crate::error::RegistryError;
use crate::view::{Candidates, LeaderChange, RegistryView};

/// Pause between write retries while the registry actor is restarting.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Cheap to clone; every clone talks to the same registry.
#[derive(Debug, Clone)]
pub struct RegistryHandle {
    view: Arc<RegistryView>,
    slot: ActorSlot<RegistryMsg>,
    write_timeout: Duration,
}

impl RegistryHandle {
    /// A handle on `view`, writing through the actor published in `slot`, giving up on a
    /// write after `write_timeout`.
    pub fn new(view: Arc<RegistryView>, slot: ActorSlot<RegistryMsg>, write_timeout: Duration) -> Self {
        Self { view, slot, write_timeout }
    }

    /// The shared view (all reads).
    pub fn view(&self) -> &Arc<RegistryView> {
        &self.view
    }

    /// The slot of the registry actor.
    pub fn slot(&self) -> &ActorSlot<RegistryMsg> {
        &self.slot
    }

    // ------------------------------------------------------------ reads

    /// The agent with this id.
    pub fn find(&self, id: &AgentId) -> Option<Arc<AgentEntry>> {
        self.view.get(id)
    }

    /// Agents with `cap`.
    pub fn find_by_capability(&self, cap: &Capability) -> Vec<Arc<AgentEntry>> {
        self.view.find_by_capability(cap)
    }

    /// Agents with all of `caps`, optionally only in `swarm` (cached, sorted by id).
    pub fn query(&self, caps: &CapabilitySet, swarm: Option<&SwarmName>) -> Candidates {
        self.view.query(caps, swarm)
    }

    /// The leader of `swarm`.
    pub fn leader(&self, swarm: &SwarmName) -> Option<AgentId> {
        self.view.leader(swarm)
    }

    /// Leadership changes.
    pub fn subscribe_leaders(&self) -> broadcast::Receiver<LeaderChange> {
        self.view.subscribe_leaders()
    }

    /// Sends `message` to every live member of `swarm`; returns how many got it.
    pub fn broadcast(&self, swarm: &SwarmName, message: Bytes) -> usize {
        self.view
            .swarm_members(swarm)
            .into_iter()
            .filter(|e| e.actor().is_some_and(|a| a.send_message(AgentMsg::Broadcast(message.clone())).is_ok()))
            .count()
    }

    // ------------------------------------------------------------ writes

    /// Registers an agent incarnation.
    pub async fn register(&self, reg: Registration) -> Result<Arc<AgentEntry>, RegistryError> {
        self.write(move |r| RegistryMsg::Register(reg.clone(), r)).await?
    }

    /// Fast path for a restarted agent: if a down entry of the same shape exists, install
    /// `reg.actor` as its new incarnation at once (two atomic writes, no mailbox round
    /// trip, so a crash storm does not queue restarts behind the registry) and ask the
    /// registry actor to monitor it. `None` means a full [`register`](Self::register) is
    /// needed.
    pub fn revive(&self, reg: &Registration) -> Option<Arc<AgentEntry>> {
        let entry = self.view.entry(&reg.id)?;
        if !entry.same_shape(reg) || !entry.revive(reg.actor.clone()) {
            return None;
        }
        if let Some(registry) = self.slot.get() {
            let _ = registry.send_message(RegistryMsg::Watch(reg.id.clone(), reg.actor.clone()));
        }
        // With no registry running, its next incarnation re-monitors every live entry.
        Some(entry)
    }

    /// Makes the remote agents of `node` exactly `agents`; returns how many entries changed.
    pub async fn sync_node(&self, node: &NodeName, agents: Vec<RemoteRegistration>) -> Result<usize, RegistryError> {
        let node = node.clone();
        self.write(move |r| RegistryMsg::SyncNode(node.clone(), agents.clone(), r)).await
    }

    /// Marks every agent of `node` reachable or not; returns how many changed.
    pub async fn set_node_reachable(&self, node: &NodeName, up: bool) -> Result<usize, RegistryError> {
        let node = node.clone();
        self.write(move |r| RegistryMsg::SetNodeReachable(node.clone(), up, r)).await
    }

    /// Unregisters an agent; true when it was registered.
    pub async fn unregister(&self, id: &AgentId) -> Result<bool, RegistryError> {
        let id = id.clone();
        self.write(move |r| RegistryMsg::Unregister(id.clone(), r)).await
    }

    /// Adds `agent` to `swarm`; false when the agent is unknown.
    pub async fn join_swarm(&self, agent: &AgentId, swarm: &SwarmName) -> Result<bool, RegistryError> {
        let (a, s) = (agent.clone(), swarm.clone());
        self.write(move |r| RegistryMsg::JoinSwarm(a.clone(), s.clone(), r)).await
    }

    /// Removes `agent` from `swarm`; false when it was not a member.
    pub async fn leave_swarm(&self, agent: &AgentId, swarm: &SwarmName) -> Result<bool, RegistryError> {
        let (a, s) = (agent.clone(), swarm.clone());
        self.write(move |r| RegistryMsg::LeaveSwarm(a.clone(), s.clone(), r)).await
    }

    /// Calls the current registry actor, retrying while it restarts, up to the write
    /// timeout. A write lost in a crashed incarnation's mailbox is retried; all writes
    /// are idempotent.
    async fn write<T: Send + 'static>(
        &self,
        build: impl Fn(ractor::RpcReplyPort<T>) -> RegistryMsg,
    ) -> Result<T, RegistryError> {
        let deadline = tokio::time::Instant::now() + self.write_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(RegistryError::Unavailable);
            }
            if let Some(actor) = self.slot.wait(left).await
                && let Ok(CallResult::Success(v)) = actor.call(&build, Some(left)).await
            {
                return Ok(v);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}
