//! Byzantine voting messages over the [`Channel`].
//!
//! Votes and proposals are one-way casts ([`Notice::Byzantine`]) to reachable peers; the
//! receiving gateway hands the bytes to the node's detector
//! ([`crate::gateway::ByzantineInbox`]), which verifies every message's MAC itself. This
//! layer only carries bytes.

use std::sync::Arc;

use erlmcp_flow_core::{Codec, NodeName};

use crate::channel::Channel;
use crate::peers::{PeerTable, Reach};
use crate::wire::Notice;

/// Sends Byzantine voting messages from one node.
#[derive(Debug, Clone)]
pub struct VoteLink {
    channel: Channel,
}

impl VoteLink {
    /// A link from node `from`.
    pub fn new(from: NodeName, peers: Arc<PeerTable>, codec: Codec) -> Self {
        Self { channel: Channel::new(from, peers, codec) }
    }

    /// Best-effort cast of `bytes` to `to`; false when it was not sent (cut off, no
    /// session, too large).
    pub fn send(&self, to: &NodeName, bytes: Vec<u8>) -> bool {
        match self.channel.cast(to, Notice::Byzantine(bytes), Reach::Reachable) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(peer = %to, error = %e, "byzantine message not sent");
                false
            }
        }
    }
}
