//! Agents: the actors that execute tasks, and the supervisor that keeps them up.
//!
//! # Layout
//!
//! * [`spec`]: [`AgentSpec`] (id, capabilities, swarms, weight, restart type).
//! * [`actor`]: [`AgentActor`], the panic-safe ractor shell around an
//!   [`Agent`](erlmcp_flow_core::Agent).
//! * [`pool`]: [`AgentPool`], the dynamic AgentSupervisor plus the table that lets a
//!   restarted supervisor bring every agent back.
//! * [`panic_scope`]: telling agent panics from other panics (quiet panic hook).
//! * [`fn_agent`]: [`FnAgent`], an agent from a closure.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod fn_agent;
pub mod panic_scope;
pub mod pool;
pub mod spec;

pub use actor::{AgentActor, AgentArgs};
pub use fn_agent::FnAgent;
pub use panic_scope::{AgentScope, in_agent_code, quiet_agent_panics, silenced_agent_panics};
pub use pool::{AgentPool, AgentPoolError};
pub use spec::AgentSpec;
