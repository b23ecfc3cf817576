//! What the registry knows about one agent.
//!
//! An entry belongs to an agent *id* and outlives the agent's incarnations: when a
//! supervised agent crashes, its entry is marked down (at once, by the failing actor
//! itself, or by the registry when the monitor reports the death) and routing skips it;
//! when the supervisor's new incarnation registers, the entry is revived with the new
//! actor. Capability indexes, cached candidate lists, breaker history, load figures and
//! bulkhead all stay in place across a restart, so a crash costs two atomic flips instead
//! of an index rebuild. An entry that stays down past `registry.restart_grace_ms`, or whose
//! agent leaves the pool, is removed.
//!
//! An entry either targets a local agent actor or, in a cluster, an agent on another node
//! reached through that node's gateway ([`RemoteAgent`]); remote entries are registered
//! under a node-qualified id (`agent@node`) so agents of different nodes never collide.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use std::sync::Arc;

use erlmcp_flow_core::{AgentId, AgentRef, CapabilitySet, NodeName, RemoteAgent, SwarmName};
use parking_lot::RwLock;
use ractor::ActorId;
use tokio::sync::Semaphore;

use crate::load::AgentLoad;

/// What an agent registers with.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its id (unique on the node).
    pub id: AgentId,
    /// What it can do.
    pub capabilities: CapabilitySet,
    /// Swarms it belongs to from the start.
    pub swarms: Vec<SwarmName>,
    /// Weight for the weighted strategy (≥ 1).
    pub weight: u32,
    /// The actor.
    pub actor: AgentRef,
}

/// Where an entry's tasks go.
#[derive(Debug, Clone)]
pub enum AgentTarget {
    /// An agent actor on this node.
    Local(AgentRef),
    /// An agent on another node.
    Remote(Arc<dyn RemoteAgent>),
}

/// What a remote agent registers with (the cluster layer fills it from gossip).
#[derive(Debug, Clone)]
pub struct RemoteRegistration {
    /// Node-qualified id (`agent@node`).
    pub id: AgentId,
    /// Capabilities.
    pub capabilities: CapabilitySet,
    /// Swarms.
    pub swarms: Vec<SwarmName>,
    /// Weight (≥ 1).
    pub weight: u32,
    /// How to reach it.
    pub link: Arc<dyn RemoteAgent>,
}

/// One registered agent. See the module docs.
pub struct AgentEntry {
    /// Agent id.
    pub id: AgentId,
    /// Capabilities.
    pub capabilities: CapabilitySet,
    /// Swarms given at registration (sorted).
    pub initial_swarms: Vec<SwarmName>,
    /// Weight (≥ 1).
    pub weight: u32,
    /// Node the agent lives on (`None`: this node).
    pub node: Option<NodeName>,
    /// Registration order on this node; lower is older (leader election uses it).
    pub seq: u64,
    /// Load counter, latency, success rate, heartbeat.
    pub load: AgentLoad,
    /// Bulkhead: permits for tasks queued at or running on this agent.
    pub bulkhead: Semaphore,
    target: RwLock<AgentTarget>,
    incarnation: AtomicU64,
    /// `UP`, `DOWN` or `RETIRED` (removed; can no longer be revived).
    state: AtomicU8,
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const RETIRED: u8 = 2;

impl AgentEntry {
    /// A new, live entry for `reg`.
    pub fn new(reg: Registration, seq: u64, now_ns: u64, bulkhead: usize) -> Self {
        let mut swarms = reg.swarms;
        swarms.sort();
        swarms.dedup();
        Self {
            id: reg.id,
            capabilities: reg.capabilities,
            initial_swarms: swarms,
            weight: reg.weight,
            node: None,
            seq,
            load: AgentLoad::new(now_ns),
            bulkhead: Semaphore::new(bulkhead),
            target: RwLock::new(AgentTarget::Local(reg.actor)),
            incarnation: AtomicU64::new(0),
            state: AtomicU8::new(UP),
        }
    }

    /// A new, live entry for an agent on another node.
    pub fn new_remote(reg: RemoteRegistration, seq: u64, now_ns: u64, bulkhead: usize) -> Self {
        let mut swarms = reg.swarms;
        swarms.sort();
        swarms.dedup();
        Self {
            id: reg.id,
            capabilities: reg.capabilities,
            initial_swarms: swarms,
            weight: reg.weight,
            node: Some(reg.link.node().clone()),
            seq,
            load: AgentLoad::new(now_ns),
            bulkhead: Semaphore::new(bulkhead),
            target: RwLock::new(AgentTarget::Remote(reg.link)),
            incarnation: AtomicU64::new(0),
            state: AtomicU8::new(UP),
        }
    }

    /// Where tasks for this agent go now.
    pub fn target(&self) -> AgentTarget {
        self.target.read().clone()
    }

    /// The current incarnation's actor, for a local agent.
    pub fn actor(&self) -> Option<AgentRef> {
        match &*self.target.read() {
            AgentTarget::Local(a) => Some(a.clone()),
            AgentTarget::Remote(_) => None,
        }
    }

    /// The current incarnation's actor id, for a local agent.
    pub fn actor_id(&self) -> Option<ActorId> {
        match &*self.target.read() {
            AgentTarget::Local(a) => Some(a.get_id()),
            AgentTarget::Remote(_) => None,
        }
    }

    /// True for an agent on this node.
    pub fn is_local(&self) -> bool {
        self.node.is_none()
    }

    /// Incarnation number (0 for the first, +1 per revival).
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Acquire)
    }

    /// True unless the agent is down (crashed and not yet restarted). One atomic load:
    /// cheap enough to call for every candidate of every decision.
    pub fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    /// Marks the entry down if `actor` is still its current incarnation; true if it was up.
    pub fn mark_down(&self, actor: ActorId) -> bool {
        let current = self.target.read();
        if !matches!(&*current, AgentTarget::Local(a) if a.get_id() == actor) {
            return false;
        }
        self.state.compare_exchange(UP, DOWN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Marks a remote entry down (its node is unreachable) or up again; true if it changed.
    pub fn set_remote_up(&self, up: bool) -> bool {
        if self.is_local() {
            return false;
        }
        let (from, to) = if up { (DOWN, UP) } else { (UP, DOWN) };
        self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Installs a new incarnation of a down entry and marks it up. Fails (false) when
    /// the entry is up or was retired (removed) meanwhile.
    pub(crate) fn revive(&self, actor: AgentRef) -> bool {
        let mut current = self.target.write();
        if !matches!(&*current, AgentTarget::Local(_)) {
            return false;
        }
        if self.state.load(Ordering::Acquire) != DOWN {
            return false;
        }
        *current = AgentTarget::Local(actor);
        self.incarnation.fetch_add(1, Ordering::AcqRel);
        self.state.compare_exchange(DOWN, UP, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Retires a down entry of incarnation `incarnation` so it can no longer be revived;
    /// true if it did.
    pub(crate) fn retire_if_down(&self, incarnation: u64) -> bool {
        let _current = self.target.write();
        self.incarnation() == incarnation
            && self.state.compare_exchange(DOWN, RETIRED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// True when `reg` describes the same agent (capabilities, swarms, weight), so a new
    /// incarnation can take this entry over in place.
    pub(crate) fn same_shape(&self, reg: &Registration) -> bool {
        let mut swarms = reg.swarms.clone();
        swarms.sort();
        swarms.dedup();
        self.capabilities == reg.capabilities && self.weight == reg.weight && self.initial_swarms == swarms
    }

    /// A stable 64-bit hash of the agent id (for consistent hashing).
    pub fn id_hash(&self) -> u64 {
        stable_hash(self.id.as_str().as_bytes())
    }
}

impl fmt::Debug for AgentEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentEntry")
            .field("id", &self.id)
            .field("capabilities", &self.capabilities)
            .field("actor", &self.actor_id())
            .field("alive", &self.is_alive())
            .field("seq", &self.seq)
            .field("in_flight", &self.load.in_flight())
            .finish()
    }
}

/// The stable hashes are core's (one copy in the tree); re-exported here for the
/// strategies and tools that always took them from the registry.
pub use erlmcp_flow_core::hash::{splitmix64, stable_hash};
