//! What the registry knows about one agent incarnation.

use std::fmt;

use erlmcp_flow_core::{AgentId, AgentRef, CapabilitySet, NodeName, SwarmName};
use ractor::ActorStatus;
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

/// One registered agent incarnation: identity, actor, and the live figures the router
/// reads and updates without going through the registry's mailbox.
pub struct AgentEntry {
    /// Agent id.
    pub id: AgentId,
    /// Capabilities.
    pub capabilities: CapabilitySet,
    /// Weight (≥ 1).
    pub weight: u32,
    /// The actor of this incarnation.
    pub actor: AgentRef,
    /// Node the agent lives on (`None`: this node).
    pub node: Option<NodeName>,
    /// Registration order on this node; lower is older (leader election uses it).
    pub seq: u64,
    /// Load counter, latency, success rate, heartbeat.
    pub load: AgentLoad,
    /// Bulkhead: permits for tasks queued at or running on this agent.
    pub bulkhead: Semaphore,
}

impl AgentEntry {
    /// True while the actor can take messages.
    pub fn is_alive(&self) -> bool {
        self.actor.get_status() <= ActorStatus::Running
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
            .field("actor", &self.actor.get_id())
            .field("seq", &self.seq)
            .field("in_flight", &self.load.in_flight())
            .finish()
    }
}

/// FNV-1a followed by a splitmix64 finaliser: stable across runs, platforms and Rust
/// versions (unlike `DefaultHasher`), and well spread for ring placement.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

/// The splitmix64 finaliser.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
