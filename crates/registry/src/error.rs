//! Registry errors.

use erlmcp_flow_core::AgentId;

/// Why a registry operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A live agent with this id is already registered.
    #[error("agent {0} is already registered")]
    AlreadyRegistered(AgentId),
    /// The registry holds `registry.max_agents` agents.
    #[error("registry is full ({max} agents)")]
    Full {
        /// The limit.
        max: usize,
    },
    /// Weight must be at least 1.
    #[error("agent {0}: weight must be at least 1")]
    InvalidWeight(AgentId),
    /// The agent's actor died before it could be registered.
    #[error("agent {0} died before it was registered")]
    AgentDead(AgentId),
    /// No registry actor answered in time (it may be restarting).
    #[error("registry unavailable")]
    Unavailable,
}
