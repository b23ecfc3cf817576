//! Raft RPCs over the [`Channel`].
//!
//! The consensus layer's messages (append-entries, vote, install-snapshot, forwarded client
//! writes and reads) travel as opaque bytes in [`Request::Raft`] calls between gateways, so
//! the gateway stays the node's only cluster-message actor and the consensus crate knows
//! nothing about ractor_cluster. The receiving gateway hands the bytes to the node's
//! [`RaftHandler`], which decodes them itself: an undecodable RPC is a counted error
//! answered to the caller, never a silent drop.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use erlmcp_flow_core::{Codec, NodeName};
use futures::future::BoxFuture;

use crate::channel::{Channel, ChannelError};
use crate::peers::PeerTable;
use crate::wire::{Request, Response};

/// The server side of Raft RPCs on a node: takes an encoded request, answers an encoded
/// response or an error message.
pub trait RaftHandler: Send + Sync + 'static {
    /// Handles one request received from `from`.
    fn handle(&self, from: NodeName, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

/// Where the gateway finds the node's Raft handler; empty until the consensus node runs
/// (and always empty when `raft.enabled` is off, so Raft RPCs are refused).
pub type RaftEndpoint = Arc<OnceLock<Arc<dyn RaftHandler>>>;

/// Why a Raft RPC did not get an answer: the channel's error.
pub type RaftLinkError = ChannelError;

/// The client side: sends Raft RPC bytes to a named node.
#[derive(Debug, Clone)]
pub struct RaftLink {
    channel: Channel,
}

impl RaftLink {
    /// A link from node `from` through its peer table, framing with `codec` (sized for
    /// the largest RPC).
    pub fn new(from: NodeName, peers: Arc<PeerTable>, codec: Codec) -> Self {
        Self { channel: Channel::new(from, peers, codec) }
    }

    /// This node's name.
    pub fn local(&self) -> &NodeName {
        self.channel.me()
    }

    /// Sends `body` to `node` and waits at most `timeout` for the answer.
    pub async fn call(&self, node: &NodeName, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, RaftLinkError> {
        match self.channel.call(node, Request::Raft(body), timeout).await? {
            Response::Raft(body) => Ok(body),
            other => Err(self.channel.unexpected(node, &other)),
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

    /// An RPC to a peer cut off by the partition layer is refused and counted in
    /// `partition_drops`, like gossip and votes (Raft traffic went uncounted when each
    /// link checked the partition on its own).
    #[tokio::test]
    async fn partitioned_rpc_is_counted() {
        let far = NodeName::new("far").unwrap();
        let peers = Arc::new(PeerTable::default());
        peers.upsert(&far, |p| p.reachable = true);
        peers.block(&far);
        let link = RaftLink::new(NodeName::new("near").unwrap(), peers.clone(), Codec::new(1024));
        let r = link.call(&far, vec![1, 2, 3], Duration::from_secs(3600)).await;
        assert_eq!(r, Err(RaftLinkError::Unreachable(far)));
        assert_eq!(peers.counters.partition_drops.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
