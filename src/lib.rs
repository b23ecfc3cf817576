//! erlmcp-flow: distributed agent routing on ractor.
//!
//! Rust services spawn *agents* (actors with capabilities) and submit *tasks*; a node
//! finds capable agents, picks one (round-robin, least-connections, load-aware, weighted,
//! consistent hash, P2C on peak-EWMA, Q-learning), delivers the task, retries elsewhere
//! on failure behind circuit breakers and bulkheads, and never loses an accepted task:
//! every task ends `Completed`, `Failed` or `DeadLettered`, exactly once. An OTP-style
//! supervision tree keeps the node's services and agents up.
//!
//! This crate is the one import a user needs.
//!
//! # Quick start
//!
//! An agent on typed values (serde), and a typed call; see [`typed`].
//!
//! ```
//! use erlmcp_flow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Sentence { text: String }
//!
//! struct Upper;
//!
//! impl TypedAgent for Upper {
//!     type Input = Sentence;
//!     type Output = String;
//!     async fn handle(&mut self, input: Sentence) -> Result<String, AgentError> {
//!         Ok(input.text.to_uppercase())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let node = FlowNode::builder().start().await?;
//! // The factory runs again on every restart of the agent.
//! node.spawn_agent(AgentSpec::parse("upper-1", ["text"])?, || Typed(Upper)).await?;
//!
//! let task = Task::new(CapabilitySet::parse(["text"])?);
//! let out: String = node.route_typed(task, &Sentence { text: "hello".into() }).await?;
//! assert_eq!(out, "HELLO");
//!
//! // The `Bytes` API, for those who serialise themselves.
//! node.spawn_agent(AgentSpec::parse("echo-1", ["raw"])?, || {
//!     FnAgent::new(|task: &Task| {
//!         let out = task.payload.to_ascii_uppercase();
//!         async move { Ok(Bytes::from(out)) }
//!     })
//! })
//! .await?;
//! let task = Task::new(CapabilitySet::parse(["raw"])?).with_payload("hello");
//! match node.route(task).await? {
//!     TaskOutcome::Completed { output, agent, .. } => {
//!         assert_eq!(&output[..], b"HELLO");
//!         assert_eq!(agent.as_str(), "echo-1");
//!     }
//!     other => panic!("unexpected outcome {other:?}"),
//! }
//! let stats = node.stats();
//! assert_eq!(stats.flow.accepted, stats.flow.completed + stats.flow.failed + stats.flow.dead_lettered);
//! node.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Queueing, rate limits and draining
//!
//! At `router.max_in_flight` submitters wait in a bounded queue (`router.queue`): a full
//! queue turns the newcomer away or pushes out a waiter (`discard`), a waiter past its
//! queue TTL is discarded, an optional token bucket limits admissions
//! (`router.rate_limit`). Every discard reaches the submitter as
//! [`SubmitError::Discarded`] with its [`DiscardReason`], the handler set with
//! [`FlowNodeBuilder::on_discard`], and the per-reason counters in
//! [`NodeStats::admission`]. A discarded task was never accepted.
//!
//! ```
//! use std::time::Duration;
//! use erlmcp_flow::prelude::*;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let mut config = FlowConfig::default();
//! config.router.max_in_flight = 64;
//! config.router.queue.capacity = 1_000; // submitters waiting for a slot, at most
//! config.router.queue.discard = DiscardPolicy::Oldest; // full: push out the oldest waiter
//! config.router.queue.ttl_ms = Some(5_000); // default longest wait for admission
//! config.router.rate_limit = Some(RateLimitConfig { per_second: 500.0, burst: 50 });
//! let node = FlowNode::builder()
//!     .config(config)
//!     .on_discard(|task: &Task, reason: DiscardReason| eprintln!("{} discarded: {reason}", task.id))
//!     .start()
//!     .await?;
//!
//! // A pool of identical agents, worker-0 .. worker-3, resized at runtime.
//! let template = AgentSpec::parse("worker", ["work"])?;
//! let echo = || {
//!     FnAgent::new(|task: &Task| {
//!         let out = task.payload.clone();
//!         async move { Ok(out) }
//!     })
//! };
//! node.scale_agents(&template, echo, 4).await?;
//!
//! let task = Task::new(CapabilitySet::parse(["work"])?).with_queue_ttl(Duration::from_millis(200));
//! match node.submit(task).await {
//!     Ok(handle) => assert!(matches!(handle.await, TaskOutcome::Completed { .. })),
//!     Err(SubmitError::Discarded { reason }) => eprintln!("not accepted: {reason}"),
//!     Err(e) => return Err(e.into()),
//! }
//! // Shrinking retires agents once they hold no task.
//! assert_eq!(node.scale_agents(&template, echo, 1).await?.len(), 1);
//!
//! // Stop taking tasks, finish those accepted; waiters are discarded (`Draining`).
//! let report = node.drain(Duration::from_secs(5)).await;
//! assert_eq!(report.still_open, 0);
//! assert!(matches!(node.submit(Task::new(CapabilitySet::parse(["work"])?)).await, Err(SubmitError::Draining)));
//! let s = node.stats();
//! assert_eq!(s.flow.accepted, s.flow.completed + s.flow.failed + s.flow.dead_lettered);
//! println!("discarded: {:?}", s.admission.discarded);
//! node.shutdown(Duration::from_secs(1)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! * [`FlowNode`] ([`node`]): start a node ([`FlowNode::builder`]), spawn agents, submit
//!   tasks, inspect, shut down.
//! * [`typed`]: typed agents and tasks (serde values over the `Bytes` API, a versioned
//!   payload codec, [`TypedError`]).
//! * [`tree`]: the FlowSupervisor tree, its strategies and intensities.
//! * Re-exported subsystems: [`core`] (vocabulary, config, codec, ledger),
//!   [`supervision`] (OTP-style supervisors), [`registry`], [`agent`], [`router`],
//!   [`cluster`] (nodes over ractor_cluster), [`consensus`] (the openraft node and the
//!   replicated task ledger), [`byzantine`] (Byzantine quorum voting).
//! * Cluster nodes (`cluster.enabled`) with `raft.enabled` acknowledge a task only once
//!   its `Submit` entry has committed, record its terminal entry, and let the Raft leader
//!   adopt the tasks of dead nodes ([`FlowNode::consensus`]); with `byzantine.enabled`
//!   they run the ByzantineDetector ([`FlowNode::byzantine`]). See the README's cluster
//!   section and `docs/architecture.md`.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod node;
mod replicated;
pub mod tree;
pub mod typed;
mod voting;

pub use erlmcp_flow_agent as agent;
pub use erlmcp_flow_byzantine as byzantine;
pub use erlmcp_flow_cluster as cluster;
pub use erlmcp_flow_consensus as consensus;
pub use erlmcp_flow_core as core;
pub use erlmcp_flow_registry as registry;
pub use erlmcp_flow_router as router;
pub use erlmcp_flow_supervision as supervision;

pub use erlmcp_flow_agent::{AgentSpec, FnAgent, quiet_agent_panics};
pub use erlmcp_flow_core::{
    Agent, AgentError, AgentId, Capability, CapabilitySet, DiscardPolicy, DiscardReason, FlowConfig, RateLimitConfig,
    StrategyKind, SubmitError, SwarmName, Task, TaskId, TaskOutcome,
};
pub use erlmcp_flow_router::{AdmissionStats, DiscardCounts, DiscardHandler, DrainReport, FlowStats, TaskHandle};
pub use node::{FlowNode, FlowNodeBuilder, NodeStats, NodeStatus, StartError};
pub use typed::{PayloadCodec, PayloadError, Typed, TypedAgent, TypedError, TypedHandle, TypedRoute};

/// Everything a typical program needs: what the quick start touches, the outcome and
/// error types it matches on, and the typed layer.
pub mod prelude {
    pub use crate::node::{FlowNode, FlowNodeBuilder, NodeStats, NodeStatus, StartError};
    pub use crate::typed::{PayloadCodec, PayloadError, Typed, TypedAgent, TypedError, TypedHandle, TypedRoute};
    pub use bytes::Bytes;
    pub use erlmcp_flow_agent::{AgentPoolError, AgentSpec, FnAgent};
    pub use erlmcp_flow_core::{
        Agent, AgentError, AgentId, CapabilitySet, DeadLetterReason, DiscardPolicy, DiscardReason, FailureReason,
        FlowConfig, Priority, RateLimitConfig, StrategyKind, SubmitError, SwarmName, Task, TaskId, TaskOutcome,
    };
    pub use erlmcp_flow_router::{AdmissionStats, DiscardCounts, DiscardHandler, DrainReport, FlowStats, TaskHandle};
}
