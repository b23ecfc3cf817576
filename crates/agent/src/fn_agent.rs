//! [`FnAgent`]: an agent made from a closure, for tests, demos and simple services.

use std::future::Future;

use bytes::Bytes;
use erlmcp_flow_core::{Agent, AgentError, Task};

/// Wraps `F: FnMut(&Task) -> impl Future<Output = Result<Bytes, AgentError>>`.
///
/// ```
/// use erlmcp_flow_agent::FnAgent;
/// use erlmcp_flow_core::{AgentError, Task};
/// let echo = FnAgent::new(|task: &Task| {
///     let out = task.payload.clone();
///     async move { Ok::<_, AgentError>(out) }
/// });
/// # let _ = echo;
/// ```
pub struct FnAgent<F>(F);

impl<F> std::fmt::Debug for FnAgent<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnAgent")
    }
}

impl<F> FnAgent<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self(f)
    }
}

impl<F, Fut> Agent for FnAgent<F>
where
    F: FnMut(&Task) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Bytes, AgentError>> + Send,
{
    fn handle(&mut self, task: &Task) -> impl Future<Output = Result<Bytes, AgentError>> + Send {
        (self.0)(task)
    }
}
