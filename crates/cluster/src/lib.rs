//! erlmcp-flow across processes: nodes over ractor_cluster.
//!
//! ractor_cluster is the distributed engine (NodeServer, cookie authentication, remote
//! actor proxies, pg groups across nodes). This crate adds what erlmcp-flow needs on top:
//! cluster-wide node names, re-dialling (ractor_cluster never reconnects), liveness for
//! frozen peers (it never notices them), a per-node gateway that is the only
//! cluster-message actor, remote agents in the local registry, and size-checked,
//! self-decoded wire payloads (an undecodable remote message is otherwise dropped silently
//! and one message over 16 MiB drops the whole link).
//!
//! # Quick start
//!
//! A node in a cluster is started through the facade (`FlowNode` with `[cluster]
//! enabled = true`; `flow node` runs one). Inside, every cross-node exchange is one verb of
//! the node's [`Channel`]: a call to a node without a session fails at once with a typed
//! error instead of waiting for its timeout.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::{sync::Arc, time::Duration};
//! use erlmcp_flow_cluster::{Channel, ChannelError, PeerTable, wire::Request};
//! use erlmcp_flow_core::{Codec, NodeName};
//!
//! let far = NodeName::new("node-2").unwrap();
//! let channel = Channel::new(NodeName::new("node-1").unwrap(), Arc::new(PeerTable::default()), Codec::default());
//! let answer = channel.call(&far, Request::Status, Duration::from_secs(60)).await;
//! assert_eq!(answer, Err(ChannelError::Unreachable(far)));
//! # }
//! ```
//!
//! # Layout
//!
//! * [`wire`]: the gateway message, requests, responses, notices, directories.
//! * [`channel`]: the [`Channel`], the one way every cross-node exchange goes (call, cast,
//!   and the receive side's admission check).
//! * [`gateway`]: the [`Gateway`] actor, one handler per request or notice kind.
//! * [`cluster_actor`]: the [`ClusterActor`] (NodeServer, sessions, discovery, dialing,
//!   liveness, directories, partition fault injection).
//! * [`gossip_link`]: the gossip actor's transport over the gateways, its slot and start-up.
//! * [`handshake`]: the [`HandshakeGuard`](handshake::HandshakeGuard): a deadline and a cap
//!   for connections that have not authenticated (ractor_cluster has neither).
//! * `listener`: the accept loop of the node's cluster port (cap fast path, backoff).
//! * [`peers`]: the shared [`PeerTable`].
//! * [`link`]: [`RemoteAgentLink`], how the router reaches a remote agent.
//! * [`raft_link`]: Raft RPCs between gateways ([`RaftLink`], [`RaftHandler`]).
//! * [`vote_link`]: Byzantine voting messages between gateways ([`VoteLink`]).
//! * [`status`]: status reports for `flow status`.
//! * [`probe`]: asking a running node for its status from outside.
//! * [`echo`]: a bare remote round trip, the baseline of the cluster benchmarks.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod channel;
pub mod cluster_actor;
pub mod echo;
pub mod gateway;
pub mod gossip_link;
pub mod handshake;
pub mod link;
mod listener;
pub mod peers;
pub mod probe;
pub mod raft_link;
pub mod status;
pub mod vote_link;
pub mod wire;

pub use channel::{Channel, ChannelError, Rejection};
pub use cluster_actor::{ClusterActor, ClusterArgs, ClusterMsg, RaftReportSource};
pub use echo::{ECHO_GROUP, EchoActor, spawn_echo};
pub use gateway::{ByzantineInbox, Gateway, GatewayArgs, GatewayState};
pub use gossip_link::{ClusterGossipTransport, GossipChildArgs, GossipSlot, gossip_config};
pub use link::RemoteAgentLink;
pub use peers::{Peer, PeerTable, Reach, TransportEvent};
pub use probe::{ProbeError, query_status};
pub use raft_link::{RaftEndpoint, RaftHandler, RaftLink, RaftLinkError};
pub use status::{NodeReport, PeerReport, RaftReport};
pub use vote_link::VoteLink;
pub use wire::{GatewayMsg, Hello};
