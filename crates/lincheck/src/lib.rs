//! erlmcp_flow_lincheck: a linearizability checker for recorded key-value histories.
//!
//! # What it checks
//!
//! Record what clients of a key-value store did ([`Recorder`]): when each operation was
//! invoked, when it completed and how (returned a result, definitely failed, or timed
//! out with an unknown outcome). [`check`] then decides whether the history is
//! *linearizable* (Herlihy & Wing, TOPLAS 1990): whether every operation can be given a
//! single instant, between its invocation and its completion, at which it took effect
//! atomically, such that the results the clients saw are those of a sequential store
//! ([`op`] gives its specification: [`Op::Put`], [`Op::Get`], [`Op::Cas`],
//! [`Op::Delete`], starting empty).
//!
//! That is the contract of a Raft-backed store: a read never sees a value older than a
//! write that completed before the read began, two successful CASes never both win, an
//! acknowledged write is never lost. Failures in the system under test are what make
//! outcomes uncertain, and the checker takes that into account:
//!
//! * a **failed** operation ([`OpHandle::fail`]) definitely did not take effect and is
//!   ignored;
//! * an **unknown** operation ([`OpHandle::unknown`], or a handle dropped uncompleted)
//!   may take effect at any point after its invocation, or never: its return is
//!   +infinity and its result is unconstrained.
//!
//! # The algorithm
//!
//! The history is first split by key: linearizability is compositional, so a KV
//! history is linearizable iff each key's sub-history is ([`checker`]). Each key is a
//! register searched with Wing & Gong's algorithm and Lowe's memoization of
//! `(linearized-set bitset, register state)` configurations: walk the time-sorted call
//! and return entries; at a call, tentatively linearize that operation next if its
//! recorded result matches the register; at a return of an operation not yet
//! linearized, backtrack; skip any configuration already explored. A violation is reported with the deepest partial linearization the search found and the
//! operation that could not be placed after it ([`Violation`]).
//!
//! # Complexity
//!
//! Checking linearizability is NP-complete in general (Gibbons & Korach 1997). The
//! search is linear for a sequential history and exponential in the number of
//! *mutually concurrent* operations on one key; memoization keeps typical histories fast,
//! but many overlapping writes to one key (or many unknown-outcome writes, whose
//! intervals never close) can blow it up. Hence [`CheckConfig::max_steps_per_key`]: past
//! it the result is [`CheckResult::Inconclusive`] rather than a hang. Spread a workload
//! over several keys and keep per-client timeouts short to keep histories checkable.
//!
//! # Quick start
//!
//! ```
//! use erlmcp_flow_lincheck::{CheckResult, History, Op, OpResult, Recorder, check};
//!
//! let recorder = Recorder::new();
//!
//! // Client 1 writes x = 1 and is acknowledged.
//! let put = recorder.invoke(1, Op::put("x", "1"));
//! put.ok(OpResult::Done);
//! // Afterwards client 2 reads x and sees nothing: a stale read.
//! let get = recorder.invoke(2, Op::get("x"));
//! get.ok(OpResult::value(None));
//!
//! let history = recorder.history();
//! let result = check(&history);
//! let CheckResult::NotLinearizable { key, violation } = &result else { panic!("{result}") };
//! assert_eq!(key, "x");
//! assert_eq!(violation.stuck.op, Op::get("x"));
//! println!("{result}");
//!
//! // Save the failing key's history and replay it later.
//! let json = history.for_key("x").to_json();
//! assert_eq!(check(&History::from_json(&json).unwrap()), result);
//! ```
//!
//! # Layout
//!
//! * [`op`]: [`Op`] and [`OpResult`], the store's operations and sequential
//!   specification; [`ClientId`], [`OpId`].
//! * [`history`]: [`History`], validated events ([`Event`], [`EventKind`]) and the
//!   [`Operation`]s they pair into, with JSON save/replay; [`HistoryError`].
//! * [`recorder`]: [`Recorder`] and [`OpHandle`], the thread-safe recorder with a
//!   logical clock.
//! * [`checker`]: [`check`], [`check_with`], [`CheckConfig`], [`CheckResult`],
//!   [`Violation`]: per-key partitioning and the verdict.
//! * `wgl` (private): the Wing & Gong / Lowe search over one key, with its sources.
//! * `model` (private): the register model, with values interned for cheap memoization.
//!
//! Property tests (`tests/properties.rs`) use `proptest` to generate histories from real
//! sequential executions with random overlapping intervals; classic histories are in
//! `tests/histories.rs`.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod checker;
pub mod history;
mod model;
pub mod op;
pub mod recorder;
mod wgl;

pub use checker::{CheckConfig, CheckResult, Violation, check, check_with};
pub use history::{Event, EventKind, History, HistoryError, Operation, Outcome};
pub use op::{ClientId, Op, OpId, OpResult};
pub use recorder::{OpHandle, Recorder};
