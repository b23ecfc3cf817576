//! OTP-style supervision for ractor actors.
//!
//! ractor gives linking and supervision events; this crate adds the supervisor behaviour
//! Erlang programmers expect: `one_for_one`, `one_for_all` and `rest_for_one` strategies,
//! `permanent` / `transient` / `temporary` children, restart intensity with escalation
//! ("meltdown") to the parent, and dynamic children.
//!
//! It is our own because `ractor-supervisor` 0.2 does not compile with ractor's `cluster`
//! feature (its messages lack `ractor::Message` impls for cluster builds).
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use erlmcp_flow_supervision::{ChildSpec, Restart, RestartIntensity, Strategy, Supervisor, SupervisorSpec};
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//!
//! struct Worker;
//! impl Actor for Worker {
//!     type Msg = ();
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let spec = SupervisorSpec::new("root", Strategy::OneForOne, RestartIntensity::new(3, Duration::from_secs(5)))
//!     .child(ChildSpec::new("worker", Restart::Permanent, |sup| async move {
//!         Actor::spawn_linked(None, Worker, (), sup).await.map(|(r, _)| r.get_cell())
//!     }));
//! let (sup, handle) = Supervisor::start(spec).await.unwrap();
//! let children = Supervisor::which_children(&sup, Duration::from_secs(1)).await.unwrap();
//! assert_eq!(children.len(), 1);
//! sup.stop(None);
//! handle.await.unwrap();
//! # }
//! ```
//!
//! # Layout
//!
//! * [`intensity`]: the pure restart-intensity rule ([`RestartTracker`]).
//! * [`spec`]: [`ChildSpec`], [`SupervisorSpec`], strategies, restart types, counters.
//! * [`supervisor`]: the [`Supervisor`] actor and its messages.
//! * [`slot`]: [`Slot`] (and [`ActorSlot`]), where the current incarnation of a supervised child is found.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod intensity;
pub mod slot;
pub mod spec;
pub mod supervisor;

pub use intensity::{RestartIntensity, RestartTracker, RestartVerdict};
pub use slot::{ActorSlot, Incarnation, Slot};
pub use spec::{ChildExit, ChildSpec, OnChildRemoved, Restart, Strategy, SupervisorSpec, SupervisorStats};
pub use supervisor::{CHILD_SHUTDOWN_TIMEOUT, ChildInfo, Supervisor, SupervisorError, SupervisorMsg};
