//! openraft's network traits on top of a [`RaftTransport`]: each RPC is encoded as a
//! [`RaftWire`] request, carried as bytes, and its [`RaftWireReply`] decoded.
//!
//! Error mapping: a peer that cannot be reached (or does not answer in time) is
//! `Unreachable`, so openraft backs off replication to it for one heartbeat interval
//! rather than its default 500 ms (which would slow catching up after a partition heals);
//! an error reply from the peer's Raft is a `RemoteError`; a garbled reply is a
//! `NetworkError`. An AppendEntries batch whose encoding is over the wire limit answers
//! `PayloadTooLarge` so openraft retries with fewer entries.

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

use crate::error::TransportError;
use crate::transport::RaftTransport;
use crate::types::{NamedNode, RaftNodeId, TypeConfig};
use crate::wire::{self, MAX_RPC_BYTES, RaftWire, RaftWireReply};

/// Creates one [`PeerConnection`] per replication target.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) transport: Arc<dyn RaftTransport>,
    pub(crate) backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: RaftNodeId, node: &NamedNode) -> PeerConnection {
        PeerConnection {
            target,
            target_name: node.name.clone(),
            transport: self.transport.clone(),
            backoff: self.backoff,
        }
    }
}

/// The connection to one peer.
pub(crate) struct PeerConnection {
    target: RaftNodeId,
    target_name: String,
    transport: Arc<dyn RaftTransport>,
    backoff: Duration,
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
        let reply =
            self.transport.call(self.target, &self.target_name, Bytes::from(bytes), option.hard_ttl()).await.map_err(
                |e| match e {
                    TransportError::Unreachable(_) | TransportError::Timeout(_) => CallError::Unreachable(e),
                    TransportError::Remote { .. } => CallError::Network(e.to_string()),
                },
            )?;
        wire::decode::<RaftWireReply>(&reply).map_err(|e| CallError::Network(e.to_string()))
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
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
