//! erlmcp_flow_router: from an accepted task to exactly one terminal outcome.
//!
//! The routing pipeline (the seeds' 11 steps) runs per task in a driver over shared,
//! lock-light state; the actors in this crate are the supervised shells that maintain that
//! state and serialise control changes. See [`core`] for the pipeline.
//!
//! # Layout
//!
//! * [`core`]: [`RouterCore`], submission, the pipeline, shutdown.
//! * [`strategy`]: round-robin, least-connections, load-aware, weighted, consistent hash,
//!   P2C on peak-EWMA.
//! * [`q_learning`]: the Q-learning strategy, its model, persistence and actor.
//! * [`breaker`]: per-agent [`CircuitBreaker`]s and their maintenance actor.
//! * [`plan`]: [`RoutePlan`], one task's routing decisions as a synchronous state machine.
//! * [`backoff`]: exponential backoff with jitter.
//! * [`retry_budget`]: the lock-free retry budget.
//! * [`admission`]: the node's in-flight limit, by priority; the bounded wait queue, queue
//!   TTLs, the rate limit and discards ([`DiscardHandler`], [`AdmissionStats`]).
//! * [`queue`]: the wait queue and the token bucket as synchronous state machines.
//! * [`tasks`]: [`TaskTable`], the sharded ledger with reply channels and orphan queue.
//! * [`correlation`]: the correlation tracker (task ↔ trace, TTL, bounded).
//! * [`dead_letter`]: the inspectable dead-letter queue.
//! * [`error`]: [`StrategyError`], [`ControlError`] of the control API.
//! * [`failure_detector`]: hung agents, heartbeats, orphan recovery.
//! * [`router_actor`]: the Router actor (control plane).
//! * [`metrics`]: counters and [`FlowStats`].

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod backoff;
pub mod breaker;
pub mod core;
pub mod correlation;
pub mod dead_letter;
pub mod error;
pub mod failure_detector;
pub mod metrics;
pub mod plan;
pub mod q_learning;
pub mod queue;
pub mod retry_budget;
pub mod router_actor;
pub mod strategy;
pub mod tasks;

pub use admission::{AdmissionStats, DiscardCounts, DiscardHandler};
pub use breaker::{BreakerStatus, CircuitBreaker, CircuitBreakers, CircuitBreakersActor};
pub use core::{DrainReport, RouterCore, RouterParts, RouterSettings, TaskHandle};
pub use correlation::{CorrelationRecord, CorrelationTable, CorrelationTrackerActor};
pub use dead_letter::{DeadLetter, DeadLetterQueue};
pub use error::{ControlError, StrategyError};
pub use failure_detector::FailureDetector;
pub use metrics::FlowStats;
pub use plan::{AttemptVerdict, RoutePlan};
pub use q_learning::{QLearningActor, QLearningStrategy, QModel};
pub use router_actor::{RouterActor, RouterMsg, StrategyFactory};
pub use strategy::Strategy;
pub use tasks::TaskTable;
