//! The shared vocabulary of erlmcp-flow.
//!
//! Everything here is plain data or a pure state machine, used by every other crate:
//!
//! # Layout
//!
//! * [`id`]: validated names ([`AgentId`], [`SwarmName`], [`NodeName`], [`Capability`])
//!   and [`TaskId`].
//! * [`capability`]: [`CapabilitySet`], sorted and de-duplicated.
//! * [`task`]: [`Task`] and its builder methods, [`Priority`].
//! * [`outcome`]: [`TaskOutcome`] (Completed / Failed / DeadLettered) and why attempts fail.
//! * [`agent`]: the [`Agent`] trait users implement and the [`AgentMsg`] an agent actor takes.
//! * [`delivery`]: [`deliver_local`] and the [`DeliveryVerdict`] every delivery (local,
//!   remote, on the wire) ends in.
//! * [`trace_context`]: strict W3C `traceparent` parsing ([`TraceContext`]).
//! * [`ledger`]: [`TaskLedger`], the pure state machine behind the no-loss invariant.
//! * [`clock`]: [`MonoClock`], nanoseconds as `u64` for atomics on hot paths.
//! * [`config`]: [`FlowConfig`], the TOML configuration with validation.
//! * [`codec`]: [`Codec`], bincode 2 with size limits, for anything crossing a process.
//! * [`hash`]: fast hashers for the hot tables.
//! * [`log_limit`]: [`LogLimiter`], one log line per key per interval for repeated events.
//! * [`error`]: [`SubmitError`], what the node answers to a refused submission.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod capability;
pub mod clock;
pub mod codec;
pub mod config;
pub mod delivery;
pub mod error;
pub mod hash;
pub mod id;
pub mod ledger;
pub mod log_limit;
pub mod outcome;
pub mod task;
pub mod trace_context;

pub use agent::{Agent, AgentError, AgentMsg, AgentRef, AgentReply, AgentReplyError, RemoteAgent, RemoteDelivery};
pub use capability::CapabilitySet;
pub use clock::MonoClock;
pub use codec::{Codec, CodecError};
pub use config::{
    ConfigError, DiscardPolicy, FlowConfig, HttpConfig, McpConfig, McpUpstreamConfig, QueueConfig, RaftConfig,
    RateLimitConfig, StrategyKind,
};
pub use delivery::{DeliveryVerdict, deliver_local};
pub use error::{DiscardReason, SubmitError};
pub use id::{AgentId, Capability, NameError, NodeName, SwarmName, TaskId};
pub use ledger::{LedgerCounts, LedgerError, OpenState, TaskLedger};
pub use log_limit::{LogLimiter, SharedLogLimiter};
pub use outcome::{AttemptError, DeadLetterReason, FailureReason, TaskOutcome, TerminalKind};
pub use task::{Priority, Task};
pub use trace_context::{TraceContext, TraceContextError};
