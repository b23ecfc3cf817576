//! [`GossipMessage`]: what gossip nodes send each other.
//!
//! One push-pull exchange (Scuttlebutt's three-way handshake) plus two control messages:
//!
//! ```text
//!  A (round timer)                         B
//!  ── Syn { digest page, rumors } ───────▶  merges rumors; compares the digest
//!  ◀── Ack { delta for A, request } ──────  (+ Ack2 for further delta chunks)
//!  merges; ── Ack2 { delta for B } ──────▶  merges
//!
//!  ── Heartbeat { incarnation, seq } ────▶  every heartbeat interval, to every peer
//!  ── Leave ──────────────────────────────▶  once, on graceful shutdown
//! ```
//!
//! The sender is not part of the message: the transport tells the receiver who sent it
//! (it knows the authenticated session), so a peer cannot claim another's identity by
//! writing a name into a field.
//!
//! **Carrying messages between nodes.** Encode with [`GossipMessage::encode`] (the
//! workspace [`Codec`], bincode 2, refusing anything over the configured
//! `max_message_bytes`), carry the bytes as a `Vec<u8>` field of a ractor_cluster message
//! (fields must be `BytesConvertable`, and its `from_bytes` cannot fail), and call
//! [`GossipMessage::decode`] in the receiving gateway, where a bad message is a counted
//! [`CodecError`], never a panic. Every message the protocol emits encodes within
//! `max_message_bytes`.

use erlmcp_flow_core::{Codec, CodecError};
use serde::{Deserialize, Serialize};

use crate::state::{Delta, DeltaEntry, Digest};

/// A node's liveness signal. Heartbeats are ordered by `(incarnation, seq)`; a higher
/// incarnation means the peer restarted and its detector history starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Fixed for the life of a node process (chosen at start, larger on every restart).
    pub incarnation: u64,
    /// Increases by one per heartbeat.
    pub seq: u64,
}

/// A fresh update pushed ahead of anti-entropy (infect-and-forward with a hop limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rumor {
    /// The entry.
    pub entry: DeltaEntry,
    /// Hops left including this one: a receiver whose state the rumor improved forwards
    /// it with `ttl − 1` if that is still ≥ 1.
    pub ttl: u8,
}

/// A gossip protocol message. See the module docs for the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMessage {
    /// Opens a round: the sender's digest for one key range, and hot rumors.
    Syn {
        /// Versions the sender holds in a key range.
        digest: Digest,
        /// Rumors to merge (and maybe forward).
        rumors: Vec<Rumor>,
    },
    /// Answers a Syn: the first chunk of what the Syn's sender lacks, and the keys the
    /// answering node wants (those in the digest it is behind on).
    Ack {
        /// Entries for the Syn's sender.
        delta: Delta,
        /// Keys the Ack's sender wants.
        request: Vec<String>,
    },
    /// Entries with no answer expected: the reply to an Ack's request, or extra delta
    /// chunks after an Ack.
    Ack2 {
        /// Entries for the receiver.
        delta: Delta,
    },
    /// The sender is alive.
    Heartbeat(Heartbeat),
    /// The sender is leaving the cluster on purpose.
    Leave,
}

impl GossipMessage {
    /// A short name of the variant, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GossipMessage::Syn { .. } => "syn",
            GossipMessage::Ack { .. } => "ack",
            GossipMessage::Ack2 { .. } => "ack2",
            GossipMessage::Heartbeat(_) => "heartbeat",
            GossipMessage::Leave => "leave",
        }
    }

    /// Encodes for the wire; `codec` should be `Codec::new(config.max_message_bytes)`.
    pub fn encode(&self, codec: &Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode(self)
    }

    /// Decodes bytes from the wire.
    pub fn decode(codec: &Codec, bytes: &[u8]) -> Result<Self, CodecError> {
        codec.decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant survives the codec, and garbage is a typed error.
    #[test]
    fn round_trips_and_rejects_garbage() {
        let codec = Codec::new(64 * 1024);
        let msgs = vec![
            GossipMessage::Syn { digest: Digest::default(), rumors: vec![] },
            GossipMessage::Ack { delta: Delta::default(), request: vec!["k".into()] },
            GossipMessage::Ack2 { delta: Delta::default() },
            GossipMessage::Heartbeat(Heartbeat { incarnation: 3, seq: 9 }),
            GossipMessage::Leave,
        ];
        for m in msgs {
            let bytes = m.encode(&codec).unwrap();
            assert_eq!(GossipMessage::decode(&codec, &bytes).unwrap(), m);
        }
        assert!(GossipMessage::decode(&codec, &[0xff, 0xff, 0xff]).is_err());
        assert!(GossipMessage::decode(&codec, &[]).is_err());
    }
}
