//! Errors of the router's control API (strategy switches, dead-letter replays).

use erlmcp_flow_core::StrategyKind;

/// Why a routing strategy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    /// The strategy is not part of this build.
    #[error("strategy {0} is not available in this build")]
    Unavailable(StrategyKind),
}

/// Why a control request to the Router actor failed. Routing itself never goes through
/// the actor, so none of these affects tasks in flight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No Router actor incarnation appeared within the wait (it is restarting, or the
    /// node is stopping). Retryable.
    #[error("the router actor is unavailable")]
    RouterUnavailable,
    /// The Router actor did not answer within the wait (or died while answering).
    /// Retryable.
    #[error("the router actor did not answer")]
    NoAnswer,
    /// The requested strategy cannot be built. Not retryable.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
}

impl ControlError {
    /// True if trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ControlError::RouterUnavailable | ControlError::NoAnswer)
    }
}
