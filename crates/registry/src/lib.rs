//! erlmcp_flow_registry: where agents are found.
//!
//! * register on spawn with capabilities; automatic unregister when the actor dies
//!   (the registry monitors every agent);
//! * find by id, by capability, and by a set of capabilities (AND), optionally within a
//!   swarm; answers for routing are cached per query and invalidated by an epoch;
//! * load counters, peak-EWMA latency, success rate and heartbeats per agent, updated
//!   with atomics on the hot path;
//! * swarms (groups) with broadcast, and one leader per swarm: its longest-registered
//!   live member, re-elected when the leader leaves or dies.
//!
//! Reads never wait in a mailbox; writes go through the [`Registry`] actor, whose state
//! is rebuilt from the shared view and the live agents when it is restarted.
//!
//! # Layout
//!
//! * [`view`]: [`RegistryView`], the shared read side and its index.
//! * [`actor`]: the [`Registry`] actor, sole writer.
//! * [`handle`]: [`RegistryHandle`], the API.
//! * [`entry`]: [`AgentEntry`] and [`Registration`].
//! * [`load`]: [`AgentLoad`], lock-free per-agent figures.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod entry;
pub mod error;
pub mod handle;
pub mod load;
pub mod view;

pub use actor::{Registry, RegistryArgs, RegistryMsg};
pub use entry::{AgentEntry, AgentTarget, Registration, RemoteRegistration, splitmix64, stable_hash};
pub use error::RegistryError;
pub use handle::RegistryHandle;
pub use load::{AgentLoad, decay_factor};
pub use view::{Candidates, LeaderChange, RegistryView};
