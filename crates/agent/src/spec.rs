//! [`AgentSpec`]: what an agent is, independent of its code.

use erlmcp_flow_core::{AgentId, CapabilitySet, NameError, SwarmName};
use erlmcp_flow_supervision::Restart;

/// Identity, capabilities, swarms, weight and restart type of an agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Unique id on the node.
    pub id: AgentId,
    /// What it can do (at least one capability).
    pub capabilities: CapabilitySet,
    /// Swarms it joins at start.
    pub swarms: Vec<SwarmName>,
    /// Weight for the weighted strategy, ≥ 1. Default 1.
    pub weight: u32,
    /// Restart type under the AgentSupervisor. Default permanent.
    pub restart: Restart,
}

impl AgentSpec {
    /// An agent `id` with `capabilities`.
    pub fn new(id: AgentId, capabilities: CapabilitySet) -> Self {
        Self { id, capabilities, swarms: Vec::new(), weight: 1, restart: Restart::Permanent }
    }

    /// Parses the id and capability names.
    pub fn parse<I, S>(id: &str, capabilities: I) -> Result<Self, NameError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::new(AgentId::new(id)?, CapabilitySet::parse(capabilities)?))
    }

    /// Joins `swarm` at start.
    pub fn in_swarm(mut self, swarm: SwarmName) -> Self {
        if !self.swarms.contains(&swarm) {
            self.swarms.push(swarm);
        }
        self
    }

    /// Sets the weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the restart type.
    pub fn with_restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }
}
