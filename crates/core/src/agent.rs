//! The agent contract: what users implement, and the messages an agent actor takes.
//!
//! An agent is an actor with capabilities that executes one task at a time. Users
//! implement [`Agent`]; the agent crate wraps it in an actor that catches panics,
//! answers the exact caller whose task panicked, and then fails so its supervisor
//! restarts it with fresh state (let it crash).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::{ActorRef, RpcReplyPort};

use crate::delivery::DeliveryVerdict;
use crate::id::NodeName;
use crate::task::Task;

/// An error an agent returns for one task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum AgentError {
    /// Something transient went wrong with this agent; another agent may succeed.
    /// Counts against this agent's circuit breaker.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The task itself cannot be done; retrying elsewhere is pointless. Does not count
    /// against the agent's circuit breaker.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What users implement: handle one task, return its output.
///
/// The future may borrow `self` and `task`. A panic inside `handle` is caught: the
/// caller gets [`AgentReplyError::Panicked`] and the agent is restarted by its
/// supervisor with a fresh value from its factory.
pub trait Agent: Send + 'static {
    /// Executes one task.
    fn handle(&mut self, task: &Task) -> impl Future<Output = Result<Bytes, AgentError>> + Send;

    /// Receives a swarm broadcast. Ignored by default.
    fn on_broadcast(&mut self, message: &Bytes) -> impl Future<Output = ()> + Send {
        let _ = message;
        async {}
    }
}

/// Why an agent actor could not return an output for a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum AgentReplyError {
    /// The agent returned an error.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The agent panicked while handling this task.
    #[error("panicked: {0}")]
    Panicked(String),
}

/// The reply to [`AgentMsg::Execute`].
pub type AgentReply = Result<Bytes, AgentReplyError>;

/// Messages an agent actor accepts. Local only: agents never take cluster messages
/// (every cluster-capable actor costs a proxy on every peer), gateways do.
#[derive(Debug)]
pub enum AgentMsg {
    /// Execute a task and reply.
    Execute {
        /// The task, with `attempt` set for this delivery.
        task: Arc<Task>,
        /// Where the reply goes.
        reply: RpcReplyPort<AgentReply>,
    },
    /// A swarm broadcast.
    Broadcast(Bytes),
    /// Periodic liveness tick (the agent records that its mailbox is being served).
    Heartbeat,
}

impl ractor::Message for AgentMsg {}

/// A reference to an agent actor.
pub type AgentRef = ActorRef<AgentMsg>;

/// A boxed future of the [`DeliveryVerdict`] of a delivery to another node.
pub type RemoteDelivery = Pin<Box<dyn Future<Output = DeliveryVerdict> + Send + 'static>>;

/// An agent living on another node, as seen by this node's router. The cluster layer
/// implements it (over the nodes' gateway actors); the router only calls `deliver`.
pub trait RemoteAgent: Send + Sync + std::fmt::Debug + 'static {
    /// The node the agent lives on.
    fn node(&self) -> &NodeName;

    /// The agent's id on its own node.
    fn remote_id(&self) -> &crate::id::AgentId;

    /// Delivers one attempt of `task`, waiting at most `timeout` for the answer.
    fn deliver(&self, task: Arc<Task>, timeout: Duration) -> RemoteDelivery;
}
