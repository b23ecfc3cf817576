//! erlmcp_flow_byzantine: Byzantine quorum voting for critical decisions among
//! N ≥ 3f + 1 nodes.
//!
//! The round's leader broadcasts a signed proposal, every node broadcasts a signed vote for
//! its digest, and a node decides when it holds 2f + 1 matching valid votes before the
//! round timeout (`[byzantine] round_timeout_ms`, default 500 ms). Forged, replayed,
//! equivocating, stale and malformed messages are refused and counted; peers whose
//! attributable faults exceed `blacklist_threshold` (default 30 %) of their messages are
//! blacklisted. See [`ByzantineCore`] for the protocol, the safety argument and its limit.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use erlmcp_flow_byzantine::{Behaviour, InProcessByzantineNet, RoundOutcome, ValueDigest};
//! use erlmcp_flow_core::config::ByzantineConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Four detectors (f = 1), node 3 votes for a wrong value.
//! let net = InProcessByzantineNet::new();
//! let behaviours = [Behaviour::Honest, Behaviour::Honest, Behaviour::Honest, Behaviour::WrongValue];
//! let nodes = net.spawn_cluster("node", 4, &ByzantineConfig::default(), &behaviours, 42).await?;
//!
//! // Round 0 is led by members[0 mod 4].
//! nodes[0].propose(0, "deploy v2").await?;
//! for node in &nodes[..3] {
//!     match node.await_round(0, Duration::from_secs(5)).await? {
//!         RoundOutcome::Decided(d) => assert_eq!(d.digest, ValueDigest::of(b"deploy v2")),
//!         other => panic!("{other:?}"),
//!     }
//! }
//! println!("{:?}", nodes[0].stats().await?.peers);
//! net.stop_all();
//! # Ok(())
//! # }
//! ```
//!
//! The same protocol without actors, deterministic rounds and explicit time:
//!
//! ```
//! use erlmcp_flow_byzantine::{Behaviour, Simulation};
//! use erlmcp_flow_core::config::ByzantineConfig;
//!
//! let mut sim = Simulation::new(4, &ByzantineConfig::default(), &[Behaviour::Equivocate], 7).unwrap();
//! let report = sim.run_round(1, b"v").unwrap(); // led by node-01, honest
//! assert_eq!(report.decisions.len(), 3);
//! ```
//!
//! # Layout
//!
//! * `keys`: [`KeyRing`] (pairwise keys k_ij, [`KeyRing::provision`] for tests,
//!   [`KeyRing::from_hex_file`] for production), [`SignedBody`] and its canonical
//!   encoding, [`Authenticator`] (one HMAC-SHA256 tag per receiver).
//! * [`wire`]: [`SignedMessage`], [`encode`] / [`decode`] (bincode 2, size-limited,
//!   [`WireError`]).
//! * `core`: [`ByzantineCore`], the pure state machine (events in, [`Output`]s out, time as
//!   input), [`RejectReason`], [`ByzantineStats`].
//! * `actor`: [`ByzantineDetector`] (the ractor shell), [`ByzantineHandle`],
//!   [`ByzantineTransport`], [`InProcessByzantineNet`].
//! * `fault`: [`Behaviour`] and [`FaultInjector`], what faulty nodes do in tests.
//! * `simulation`: [`Simulation`], N cores driven deterministically.
//!
//! # Threat model
//!
//! Every pair of nodes shares its own key (PBFT authenticators, Castro & Liskov, OSDI '99):
//! a tag from B to C verifies only under k_BC, so a node A, or anyone off the cluster,
//! cannot forge B's messages to C, and identity-based blacklisting means something.
//! Replays are caught by per-round nonces and a bounded round window; equivocation (two
//! different validly signed messages for one round from one sender at one receiver) is
//! caught and charged.
//!
//! What pairwise MACs do not buy: non-repudiation. A tag convinces its receiver only; C
//! cannot show B's vote to D as proof (C holds k_BC and could have made it). So there is
//! no transferable evidence, no cluster-wide blacklist: each node blacklists on what it
//! received itself, and blacklists may differ between nodes (they only remove votes, so
//! this affects liveness, never safety). Faults that cannot be pinned on the claimed
//! sender (bad tags, replays, silence) are counted but never charged, or an attacker
//! could get honest nodes blacklisted. A leader telling different nodes different things
//! is seen by each node only partly; safety holds with at most f faulty nodes, and is lost
//! with f + 1 colluding equivocators (a property of 2f + 1 quorums among 3f + 1, not of
//! this code; see [`ByzantineCore`]). Keys are loaded once; there is no key rotation.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod actor;
mod core;
mod fault;
mod keys;
mod simulation;
pub mod wire;

pub use crate::core::{
    ByzantineCore, ByzantineStats, CoreError, Decision, Fault, MAX_NONCES_PER_SENDER, MIN_MESSAGES_BEFORE_BLACKLIST,
    Output, PeerScore, ProposeError, ROUND_WINDOW, RejectReason, Rejection,
};
pub use actor::{
    ByzantineArgs, ByzantineDetector, ByzantineError, ByzantineHandle, ByzantineMsg, ByzantineStart, ByzantineState,
    ByzantineTransport, DeliverError, InProcessByzantineNet, InProcessByzantineTransport, MAX_INBOX, MAX_WAITERS,
    RoundOutcome,
};
pub use fault::{Behaviour, FaultInjector, evil_value};
pub use keys::{
    AuthError, AuthTag, Authenticator, DOMAIN_TAG, KEY_BYTES, KeyError, KeyFileError, KeyRing, MessageKind, PairKey,
    SignedBody, ValueDigest,
};
pub use simulation::{RoundReport, Simulation, SimulationError};
pub use wire::{SignedMessage, WireError, decode, encode};
