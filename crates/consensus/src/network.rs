//! openraft's network traits on top of a [`RaftTransport`]: each RPC is encoded as a
//! [`RaftWire`] request, carried as bytes, and its [`RaftWireReply`] decoded.
//!
//! Error mapping: a peer that cannot be reached (or does not answer in time) is
//! `Unreachable`, so openraft backs off replication to it: one heartbeat interval at
//! first, doubling per failed attempt up to `election_timeout_max_ms` (a healed peer is
//! caught up within one such interval; a dead one costs a few attempts a second, not
//! twenty). An error reply from the peer's Raft is a `RemoteError`; a garbled reply is a
//! `NetworkError`. An AppendEntries batch whose encoding is over the wire limit answers
//! `PayloadTooLarge` so openraft retries with fewer entries.
//!
//! **Logging.** openraft logs every failed replication RPC itself (twice, at WARN and
//! ERROR, under `openraft::replication`), which for a peer that is down is several lines a
//! second for as long as it is down. This layer logs transport failures once per peer per
//! `DEFAULT_LOG_INTERVAL` (5 s) with the count left out (`erlmcp_flow_core`'s
//! `SharedLogLimiter`, the limiter the cluster layer uses too), and the `flow` binary's
//! default filter turns openraft's per-RPC lines off
//! (`openraft::replication=off`); a library user should do the same in their filter.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use erlmcp_flow_core::log_limit::{DEFAULT_LOG_INTERVAL, DEFAULT_LOG_KEYS, SharedLogLimiter};

use crate::error::TransportError;
use crate::transport::RaftTransport;
use crate::types::{NamedNode, RaftNodeId, TypeConfig};
use crate::wire::{self, MAX_RPC_BYTES, RaftWire, RaftWireReply};

/// Creates one [`PeerConnection`] per replication target.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    transport: Arc<dyn RaftTransport>,
    /// First back-off after an unreachable peer (the heartbeat interval).
    backoff_first: Duration,
    /// Longest back-off (the election timeout's upper bound).
    backoff_max: Duration,
    failures: Arc<SharedLogLimiter<String>>,
}

impl NetworkFactory {
    pub(crate) fn new(transport: Arc<dyn RaftTransport>, cfg: &erlmcp_flow_core::RaftConfig) -> Self {
        Self {
            transport,
            backoff_first: Duration::from_millis(cfg.heartbeat_interval_ms),
            backoff_max: Duration::from_millis(cfg.election_timeout_max_ms.max(cfg.heartbeat_interval_ms)),
            failures: Arc::new(SharedLogLimiter::new(
                erlmcp_flow_core::MonoClock::new(),
                DEFAULT_LOG_INTERVAL,
                DEFAULT_LOG_KEYS,
            )),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: RaftNodeId, node: &NamedNode) -> PeerConnection {
        PeerConnection {
            target,
            target_name: node.name.clone(),
            transport: self.transport.clone(),
            backoff_first: self.backoff_first,
            backoff_max: self.backoff_max,
            failures: self.failures.clone(),
        }
    }
}

/// The connection to one peer.
pub(crate) struct PeerConnection {
    target: RaftNodeId,
    target_name: String,
    transport: Arc<dyn RaftTransport>,
    backoff_first: Duration,
    backoff_max: Duration,
    failures: Arc<SharedLogLimiter<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WireFailure(String);

type RpcErr<E = openraft::error::Infallible> = RPCError<RaftNodeId, NamedNode, RaftError<RaftNodeId, E>>;

/// Why a call failed before openraft's own error types come in.
enum CallError {
    /// The encoded request is over the wire limit.
    TooLarge(usize),
    /// The peer could not be reached or did not answer in time.
    Unreachable(TransportError),
    /// The peer answered with an error or with bytes that are not a reply.
    Network(String),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RpcErr<E> {
        match self {
            CallError::TooLarge(size) => RPCError::Network(NetworkError::new(&WireFailure(format!(
                "request of {size} bytes is over the {MAX_RPC_BYTES} byte limit"
            )))),
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(msg) => RPCError::Network(NetworkError::new(&WireFailure(msg))),
        }
    }
}

impl PeerConnection {
    async fn call(&self, req: &RaftWire, option: &RPCOption) -> Result<RaftWireReply, CallError> {
        let bytes = wire::encode_unbounded(req).map_err(|e| CallError::Network(e.to_string()))?;
        if bytes.len() > MAX_RPC_BYTES {
            return Err(CallError::TooLarge(bytes.len()));
        }
        let reply = self.transport.call(self.target, &self.target_name, Bytes::from(bytes), option.hard_ttl()).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.log_failure(&e);
                return Err(match e {
                    TransportError::Unreachable(_) | TransportError::Timeout(_) | TransportError::Lost(_) => {
                        CallError::Unreachable(e)
                    }
                    TransportError::Remote { .. } => CallError::Network(e.to_string()),
                });
            }
        };
        wire::decode::<RaftWireReply>(&reply).map_err(|e| CallError::Network(e.to_string()))
    }

    fn log_failure(&self, e: &TransportError) {
        if let Some(suppressed) = self.failures.check(self.target_name.as_str()) {
            tracing::warn!(
                peer = %self.target_name,
                error = %e,
                suppressed,
                "raft rpc to peer failed (reported at most once per {DEFAULT_LOG_INTERVAL:?})"
            );
        }
    }

    fn unexpected<E: std::error::Error>(&self, what: &str) -> RpcErr<E> {
        CallError::Network(format!("node {} answered a {what} request with another kind of reply", self.target_name))
            .into_rpc()
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftNodeId>, RpcErr> {
        let n = rpc.entries.len() as u64;
        let req = RaftWire::AppendEntries(rpc);
        let reply = match self.call(&req, &option).await {
            Ok(reply) => reply,
            Err(CallError::TooLarge(_)) if n > 1 => {
                return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(n / 2)));
            }
            Err(e) => return Err(e.into_rpc()),
        };
        match reply {
            RaftWireReply::AppendEntries(Ok(r)) => Ok(r),
            RaftWireReply::AppendEntries(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(self.unexpected("AppendEntries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<RaftNodeId>, RpcErr<InstallSnapshotError>> {
        match self.call(&RaftWire::InstallSnapshot(rpc), &option).await.map_err(CallError::into_rpc)? {
            RaftWireReply::InstallSnapshot(Ok(r)) => Ok(r),
            RaftWireReply::InstallSnapshot(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(self.unexpected("InstallSnapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftNodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftNodeId>, RpcErr> {
        match self.call(&RaftWire::Vote(rpc), &option).await.map_err(CallError::into_rpc)? {
            RaftWireReply::Vote(Ok(r)) => Ok(r),
            RaftWireReply::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(self.unexpected("Vote")),
        }
    }

    fn backoff(&self) -> Backoff {
        let (first, max) = (self.backoff_first, self.backoff_max);
        Backoff::new(std::iter::successors(Some(first), move |d| Some((*d * 2).min(max))))
    }
}
