//! The Raft control plane of erlmcp-flow: an [openraft] node whose state machine is the
//! replicated **task ledger** (submitted → assigned(agent, node) → terminal, exactly once)
//! plus a small **control KV** (swarm leaders, config), with in-memory or redb storage
//! and a byte-level transport the cluster layer carries over ractor_cluster.
//!
//! # Quick start
//!
//! Three nodes in one process on the [`InProcessTransport`]; a write on a follower is
//! forwarded to the leader, and every replica ends with the same ledger.
//!
//! ```no_run
//! # async fn demo() -> Result<(), erlmcp_flow_consensus::ConsensusError> {
//! use std::time::Duration;
//! use erlmcp_flow_consensus::{ConsensusNode, InProcessTransport, LedgerCommand, LedgerResponse};
//! use erlmcp_flow_core::{CapabilitySet, RaftConfig, Task};
//!
//! let net = InProcessTransport::new();
//! let names: Vec<String> = ["n1", "n2", "n3"].map(String::from).into();
//! let mut nodes = Vec::new();
//! for name in &names {
//!     let node = ConsensusNode::start(name, &RaftConfig::default(), net.endpoint(name)).await?;
//!     net.register(&node);
//!     nodes.push(node);
//! }
//! for node in &nodes {
//!     node.initialize(&names).await?; // idempotent, same list everywhere
//! }
//! nodes[0].wait_for_leader(Duration::from_secs(2)).await?;
//! let task = Task::new(CapabilitySet::parse(["erlang"]).unwrap());
//! let receipt = nodes[2].submit(LedgerCommand::Submit { task, owner: "n3".into() }).await?;
//! assert_eq!(receipt.response, LedgerResponse::Accepted);
//! let open = nodes[1].linearizable_read(|l| l.open_len()).await?;
//! assert_eq!(open, 1);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`ledger`]: the replicated state ([`LedgerState`]), its commands and answers. Pure,
//!   deterministic, tested directly (including a proptest of the no-loss invariant).
//! - [`state_machine`]: openraft's `RaftStateMachine` over the ledger; snapshots.
//! - [`store_mem`]: the in-memory log store (default).
//! - [`store_redb`]: the durable log store, vote and snapshot in one redb file.
//! - [`transport`]: [`RaftTransport`] (bytes to a named peer) and [`InProcessTransport`].
//! - `network`: openraft's `RaftNetwork` on top of a `RaftTransport`.
//! - [`wire`]: the request/reply enums between nodes and their size-limited codec.
//! - [`node`]: [`ConsensusNode`], the API: start, initialize, submit (forwarding to the
//!   leader), linearizable and local reads, membership changes, status, readiness,
//!   shutdown.
//! - `supervisor`: restarts the openraft core on the same stores after a fatal error
//!   ([`CoreHealth`]); `fence`: store handles fenced by core incarnation (and the storage
//!   fault injection the tests use).
//! - [`pre_vote`]: pre-vote (Raft thesis §9.6) on openraft 0.9, which has none: the pure
//!   election timer and vote rules; `elections`: the task that drives them.
//! - [`types`]: openraft's type configuration; node names and ids ([`node_id_for`]).
//!
//! # Why openraft
//!
//! Raft is easy to get almost right. openraft is a maintained, widely deployed
//! implementation (Databend, CnosDB) with joint-consensus membership changes, snapshots,
//! ReadIndex-style linearizable reads, pluggable storage and network, and a storage test
//! suite (`openraft::testing::Suite`, run here against both stores). We supply only the
//! parts that are ours: the state machine, the stores and the transport. The 0.9 line is
//! used with features `serde` (wire and storage encoding) and `storage-v2` (implement the
//! split `RaftLogStorage` / `RaftStateMachine` traits directly, without the v1 adaptor).
//!
//! # Guarantees and limits
//!
//! - A `submit` that returned `Ok` is committed by a quorum and applied by every replica
//!   exactly once; `Submit` and `Finish` are idempotent by task id, so clients retry
//!   with the same id after `Unavailable`/`NotLeader`/`Indeterminate`/transport errors.
//! - `NotLeader` and `Unavailable` on a write mean it reached no leader's log: it did not
//!   and will not commit. `Indeterminate` means it may have (a leader took it but did
//!   not confirm the commit in time); it may still commit later.
//! - A fatal error of openraft's core does not end the node: the core is restarted on the
//!   same stores, and the node answers `Unavailable` (and [`ConsensusNode::is_ready`]
//!   false) meanwhile.
//! - With `raft.pre_vote` (the default) a node campaigns only after a majority said it
//!   would vote for it: a paused, cut-off or restarted node does not unseat a live leader.
//! - A node on the minority side of a partition cannot commit: its `submit` answers
//!   `NotLeader` or `Unavailable` within `raft.client_timeout_ms`.
//! - Everything is bounded: request size ([`wire::MAX_RPC_BYTES`]), command size
//!   ([`wire::MAX_COMMAND_BYTES`]), client retries (by the client deadline), the ledger's
//!   memory of finished ids ([`ledger::FINISHED_WINDOW`]).

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(unsafe_code)]

mod elections;
pub mod error;
mod fence;
pub mod ledger;
mod network;
pub mod node;
pub mod pre_vote;
pub mod snapshot_guard;
pub mod state_machine;
pub mod store_mem;
pub mod store_redb;
mod supervisor;
pub mod transport;
pub mod types;
pub mod wire;

pub use erlmcp_flow_core::RaftConfig;
pub use error::{ConsensusError, TransportError};
pub use ledger::{LedgerCommand, LedgerResponse, LedgerState, OpenTask, TaskEntry};
pub use node::{ConsensusNode, NodeRole, RaftStatus};
pub use supervisor::CoreHealth;
pub use transport::{InProcessTransport, RaftTransport};
pub use types::{NamedNode, RaftNodeId, TypeConfig, node_id_for};
pub use wire::{CommitReceipt, MembershipChange, RaftWire, RaftWireReply};
