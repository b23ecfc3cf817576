//! Raft RPCs over the gateways.
//!
//! The consensus layer's messages (append-entries, vote, install-snapshot, forwarded client
//! writes and reads) travel as opaque bytes in [`Request::Raft`] calls between gateways, so
//! the gateway stays the node's only cluster-message actor and the consensus crate knows
//! nothing about ractor_cluster. The receiving gateway hands the bytes to the node's
//! [`RaftHandler`], which decodes them itself: an undecodable RPC is a counted error
//! answered to the caller, never a silent drop.
//!
//! Calls go only to nodes with a session record, honour the partition fault-injection
//! layer (a cut-off peer is unreachable both ways) and give up early when the peer is
//! declared down, like task deliveries do.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use erlmcp_flow_core::{Codec, NodeName};
use futures::future::BoxFuture;
use ractor::rpc::CallResult;

use crate::peers::{ClusterCounters, PeerTable};
use crate::wire::{Envelope, GatewayMsg, Request, Response, decode, encode};

/// The server side of Raft RPCs on a node: takes an encoded request, answers an encoded
/// response or an error message.
pub trait RaftHandler: Send + Sync + 'static {
    /// Handles one request received from `from`.
    fn handle(&self, from: NodeName, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

/// Where the gateway finds the node's Raft handler; empty until the consensus node runs
/// (and always empty when `raft.enabled` is off, so Raft RPCs are refused).
pub type RaftEndpoint = Arc<OnceLock<Arc<dyn RaftHandler>>>;

/// Why a Raft RPC did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftLinkError {
    /// No session with the node, it is cut off, or it went down during the call.
    #[error("node {0} is unreachable")]
    Unreachable(NodeName),
    /// No answer in time.
    #[error("no answer from {0} in time")]
    Timeout(NodeName),
    /// The request is over the codec limit; it was not sent.
    #[error("request not sent: {0}")]
    TooLarge(String),
    /// The peer answered with an error (undecodable request, Raft not running there, …).
    #[error("{node} refused the request: {reason}")]
    Refused {
        /// The peer.
        node: NodeName,
        /// What it said.
        reason: String,
    },
}

/// The client side: sends Raft RPC bytes to a named node's gateway.
#[derive(Debug, Clone)]
pub struct RaftLink {
    from: NodeName,
    peers: Arc<PeerTable>,
    codec: Codec,
}

impl RaftLink {
    /// A link from node `from` through its peer table.
    pub fn new(from: NodeName, peers: Arc<PeerTable>, codec: Codec) -> Self {
        Self { from, peers, codec }
    }

    /// This node's name.
    pub fn local(&self) -> &NodeName {
        &self.from
    }

    /// Sends `body` to `node` and waits at most `timeout` for the answer.
    pub async fn call(&self, node: &NodeName, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, RaftLinkError> {
        let request = Envelope { from: self.from.clone(), body: Request::Raft(body) };
        let bytes = encode(&self.codec, &request).map_err(|e| RaftLinkError::TooLarge(e.to_string()))?;
        if self.peers.is_blocked(node) {
            return Err(RaftLinkError::Unreachable(node.clone()));
        }
        let Some(gateway) = self.peers.gateway(node) else {
            return Err(RaftLinkError::Unreachable(node.clone()));
        };
        let mut down = self.peers.down_signal(node);
        down.borrow_and_update();
        let call = gateway.call(|reply| GatewayMsg::Call(bytes, reply), Some(timeout));
        tokio::select! {
            r = call => match r {
                Ok(CallResult::Success(bytes)) => match decode::<Response>(&self.codec, &bytes) {
                    Ok(Response::Raft(body)) => Ok(body),
                    Ok(Response::Error(reason)) | Ok(Response::Refused(reason)) => {
                        Err(RaftLinkError::Refused { node: node.clone(), reason })
                    }
                    Ok(other) => Err(RaftLinkError::Refused { node: node.clone(), reason: format!("unexpected response {other:?}") }),
                    Err(e) => {
                        ClusterCounters::inc(&self.peers.counters.bad_frames);
                        Err(RaftLinkError::Refused { node: node.clone(), reason: format!("undecodable response: {e}") })
                    }
                },
                Ok(CallResult::Timeout) => Err(RaftLinkError::Timeout(node.clone())),
                Ok(CallResult::SenderError) | Err(_) => Err(RaftLinkError::Unreachable(node.clone())),
            },
            _ = down.changed() => Err(RaftLinkError::Unreachable(node.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(limit: usize) -> RaftLink {
        RaftLink::new(NodeName::new("near").unwrap(), Arc::new(PeerTable::default()), Codec::new(limit))
    }

    /// An RPC over the codec limit is refused before anything is sent.
    #[tokio::test]
    async fn oversized_rpc_is_not_sent() {
        let r = link(1024).call(&NodeName::new("far").unwrap(), vec![0; 4096], Duration::from_secs(1)).await;
        assert!(matches!(r, Err(RaftLinkError::TooLarge(_))), "{r:?}");
    }

    /// An RPC to a node without a session is answered `Unreachable` at once, not after
    /// the timeout.
    #[tokio::test]
    async fn unknown_node_is_unreachable() {
        let r = link(1024).call(&NodeName::new("far").unwrap(), vec![1, 2, 3], Duration::from_secs(3600)).await;
        assert_eq!(r, Err(RaftLinkError::Unreachable(NodeName::new("far").unwrap())));
    }
}
