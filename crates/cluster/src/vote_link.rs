//! Byzantine voting messages over the gateways.
//!
//! Votes and proposals are one-way casts ([`Notice::Byzantine`]) to the peer's gateway,
//! which hands the bytes to the node's detector ([`crate::gateway::ByzantineInbox`]). The
//! detector verifies every message's MAC itself; this layer only carries bytes, drops
//! what the partition layer cuts, and refuses oversized payloads before sending.

use std::sync::Arc;

use erlmcp_flow_core::{Codec, NodeName};

use crate::peers::{ClusterCounters, PeerTable};
use crate::wire::{Envelope, GatewayMsg, Notice, encode};

/// Sends Byzantine voting messages from one node.
#[derive(Debug, Clone)]
pub struct VoteLink {
    from: NodeName,
    peers: Arc<PeerTable>,
    codec: Codec,
}

impl VoteLink {
    /// A link from node `from`.
    pub fn new(from: NodeName, peers: Arc<PeerTable>, codec: Codec) -> Self {
        Self { from, peers, codec }
    }

    /// Best-effort cast of `bytes` to `to`; false when it was not sent (cut off, no
    /// session, too large).
    pub fn send(&self, to: &NodeName, bytes: Vec<u8>) -> bool {
        if self.peers.is_blocked(to) {
            ClusterCounters::inc(&self.peers.counters.partition_drops);
            return false;
        }
        let Some(gateway) = self.peers.gateway(to) else { return false };
        match encode(&self.codec, &Envelope { from: self.from.clone(), body: Notice::Byzantine(bytes) }) {
            Ok(frame) => gateway.cast(GatewayMsg::Cast(frame)).is_ok(),
            Err(e) => {
                tracing::warn!(peer = %to, error = %e, "byzantine message too large; dropped");
                false
            }
        }
    }
}
