//! erlmcp_flow_gossip: the AP data plane of an erlmcp-flow cluster.
//!
//! Nodes keep a replicated key → value store (the agent directory, load figures,
//! anything encoded to bytes) in agreement by gossip, and each node keeps its own view
//! of which peers it can reach:
//!
//! * **dissemination**: push-pull anti-entropy with `fanout` random peers (default 3) every
//!   interval, plus rumors that push fresh writes ahead for up to `rumor_ttl` hops
//!   (default 5);
//! * **versions**: one vector clock per key; concurrent writes are resolved by a
//!   deterministic total order, so the merge is commutative, associative and idempotent
//!   and every delivery order converges to the same state;
//! * **failure detection**: phi-accrual over direct heartbeats (threshold 8 by default),
//!   combined with the transport's session events: per peer `Up`, `Suspect(φ)`,
//!   `Unreachable` or `Left`;
//! * **partitions**: each side keeps working and converging on its own; after a heal,
//!   anti-entropy reconciles and views agree again.
//!
//! The protocol is a pure state machine ([`Gossip`]: events in, [`Command`]s out, time and
//! randomness as inputs); [`GossipActor`] is a thin ractor shell around it, and the
//! network is behind the [`GossipTransport`] trait, so the crate does not depend on how
//! nodes are connected. [`InProcessNetwork`] wires actors of one process together for
//! tests and benchmarks; the cluster layer carries [`GossipMessage`]s over
//! ractor_cluster as codec-encoded bytes (see [`message`]).
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use erlmcp_flow_gossip::{GossipConfig, InProcessNetwork};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Three gossip actors in one process, 5 ms rounds.
//! let net = InProcessNetwork::new();
//! let nodes = net.spawn_cluster("node", 3, &GossipConfig::for_test(), 42).await?;
//!
//! nodes[0].put("agents/node-00", &b"[...]"[..]).await?;
//!
//! // Gossip carries it to the others within a few rounds.
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
//! for node in &nodes {
//!     while node.get("agents/node-00").await?.is_none() {
//!         assert!(tokio::time::Instant::now() < deadline, "not converged");
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!     }
//! }
//!
//! // Who can each node reach, and how suspicious is it of each peer?
//! let report = nodes[0].report().await?;
//! assert_eq!(report.peers.len(), 2);
//! println!("{report}");
//! # for n in &nodes { n.kill(); }
//! # Ok(())
//! # }
//! ```
//!
//! The same protocol without actors, in deterministic rounds:
//!
//! ```
//! use erlmcp_flow_gossip::{GossipConfig, Simulation};
//!
//! let mut sim = Simulation::new(60, GossipConfig::default(), 7).unwrap();
//! let origin = sim.names()[0].clone();
//! sim.put(&origin, "k", &b"v"[..]).unwrap();
//! let rounds = sim.run_until(100, |s| s.all_have("k")).unwrap();
//! assert!(rounds <= 12); // 2⌈log₂ 60⌉
//! ```
//!
//! # Layout
//!
//! * [`vector_clock`]: [`VectorClock`], the causal partial order ([`ClockOrdering`]).
//! * [`version`]: [`Version`], [`Versioned`] and the conflict-resolution order ([`Stamp`]).
//! * [`state`]: [`GossipState`], the replicated store: local writes, tombstones, digests,
//!   deltas and the merge.
//! * [`phi`]: [`PhiAccrualDetector`], the phi-accrual failure detector.
//! * [`membership`]: [`Membership`], per-peer reachability and the status report.
//! * [`directory`]: the agent directory ([`AgentRecord`]) and load ([`NodeLoad`]) as
//!   gossip keys, and [`Directory`], their decoded view.
//! * [`message`]: [`GossipMessage`], the wire messages, and how to carry them.
//! * [`protocol`]: [`Gossip`], the protocol state machine, and its [`Command`]s.
//! * [`actor`]: [`GossipActor`] and [`GossipHandle`], the ractor shell and its API;
//!   [`GossipTransport`], the network seam.
//! * [`transport`]: [`InProcessNetwork`], actors of one process as peers, with partitions.
//! * [`simulation`]: [`Simulation`], many state machines in deterministic rounds.
//! * [`config`]: [`GossipConfig`], every knob with its default and bound.
//!
//! Property tests use `proptest` (a shrinking, seedable property-testing library) rather
//! than hand-rolled random loops: a failing case shrinks to a minimal delivery order.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod config;
pub mod directory;
pub mod membership;
pub mod message;
pub mod phi;
pub mod protocol;
pub mod simulation;
pub mod state;
pub mod transport;
pub mod vector_clock;
pub mod version;

pub use actor::{
    DeliverError, GossipActor, GossipActorArgs, GossipActorMsg, GossipError, GossipEvent, GossipHandle, GossipTransport,
};
pub use config::{ConfigError, FailureDetectorConfig, GossipConfig};
pub use directory::{AgentRecord, Directory, NodeLoad, addr_key, agents_key, load_key};
pub use membership::{
    Membership, MembershipChange, MembershipError, MembershipReport, PeerReport, Reachability, ReachabilityKind,
    UnreachableCause,
};
pub use message::{GossipMessage, Heartbeat, Rumor};
pub use phi::{PhiAccrualDetector, PhiConfig};
pub use protocol::{Command, Gossip, GossipStats};
pub use simulation::{Chaos, Simulation};
pub use state::{Change, Delta, DeltaEntry, Digest, DigestEntry, GossipState, StateError, StateLimits, StateStats};
pub use transport::{InProcessNetwork, InProcessTransport};
pub use vector_clock::{ClockError, ClockOrdering, VectorClock};
pub use version::{Stamp, Version, Versioned};
