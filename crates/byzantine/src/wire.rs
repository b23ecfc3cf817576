//! The signed messages and their wire encoding.
//!
//! A [`SignedMessage`] is a [`SignedBody`] (what the MACs cover), the proposed value for a
//! proposal, and the sender's [`Authenticator`]. On the wire it is bincode 2 (through
//! serde, the project [`Codec`]) with a size limit: [`encode`] refuses oversized messages at
//! the sender and [`decode`] refuses garbage, truncated or oversized input with a typed
//! [`WireError`], and checks the shape the protocol relies on (a proposal's digest matches
//! its value, one tag per receiver at most, bounded sizes). The MAC covers the canonical
//! encoding, not these bytes, so the wire format can change without touching signatures.

use erlmcp_flow_core::{Codec, CodecError};
use serde::{Deserialize, Serialize};

use crate::keys::{Authenticator, MessageKind, SignedBody, ValueDigest};

/// Largest proposed value, bytes (64 KiB).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest cluster (tags per authenticator).
pub const MAX_MEMBERS: usize = 256;
/// Largest encoded message, bytes: a maximal value plus a full authenticator.
pub const MAX_MESSAGE_BYTES: usize = MAX_VALUE_BYTES + MAX_MEMBERS * 200 + 1024;

/// A proposal or a vote with its authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The authenticated fields.
    pub body: SignedBody,
    /// The proposed value (proposals only; `body.digest` is its SHA-256).
    pub value: Option<Vec<u8>>,
    /// One tag per receiver.
    pub auth: Authenticator,
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The codec refused the bytes (garbage, truncated, trailing bytes, too large).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The message decoded but is not well formed.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

fn codec() -> Codec {
    Codec::new(MAX_MESSAGE_BYTES)
}

impl SignedMessage {
    /// Checks the shape: proposals carry a value of at most [`MAX_VALUE_BYTES`] whose
    /// digest is `body.digest`, votes carry none; at most [`MAX_MEMBERS`] tags, no receiver
    /// twice.
    pub fn check_shape(&self) -> Result<(), WireError> {
        match (self.body.kind, &self.value) {
            (MessageKind::Proposal, Some(v)) => {
                if v.len() > MAX_VALUE_BYTES {
                    return Err(WireError::Malformed("value too large"));
                }
                if ValueDigest::of(v) != self.body.digest {
                    return Err(WireError::Malformed("proposal digest does not match its value"));
                }
            }
            (MessageKind::Proposal, None) => return Err(WireError::Malformed("proposal without a value")),
            (MessageKind::Vote, Some(_)) => return Err(WireError::Malformed("vote with a value")),
            (MessageKind::Vote, None) => {}
        }
        if self.auth.0.len() > MAX_MEMBERS {
            return Err(WireError::Malformed("too many tags"));
        }
        let mut receivers: Vec<&str> = self.auth.0.iter().map(|t| t.receiver.as_str()).collect();
        receivers.sort_unstable();
        if receivers.windows(2).any(|w| w[0] == w[1]) {
            return Err(WireError::Malformed("two tags for one receiver"));
        }
        Ok(())
    }
}

/// Encodes `message` (refusing it if over [`MAX_MESSAGE_BYTES`]).
pub fn encode(message: &SignedMessage) -> Result<Vec<u8>, WireError> {
    Ok(codec().encode(message)?)
}

/// Decodes and shape-checks a message; never panics on any input.
pub fn decode(bytes: &[u8]) -> Result<SignedMessage, WireError> {
    let message: SignedMessage = codec().decode(bytes)?;
    message.check_shape()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use erlmcp_flow_core::NodeName;
    use proptest::prelude::*;

    use super::*;
    use crate::keys::KeyRing;

    fn sample() -> SignedMessage {
        let nodes: Vec<NodeName> = (0..4).map(|i| NodeName::new(format!("n{i}")).unwrap()).collect();
        let rings = KeyRing::provision(&nodes, 1).unwrap();
        let value = b"value".to_vec();
        let body = SignedBody {
            kind: MessageKind::Proposal,
            sender: nodes[0].clone(),
            round: 3,
            nonce: 9,
            digest: ValueDigest::of(&value),
        };
        let auth = rings[&nodes[0]].authenticate(&body);
        SignedMessage { body, value: Some(value), auth }
    }

    /// encode then decode gives the same message.
    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
    }

    /// Every truncation of a valid encoding, and trailing bytes, are typed errors.
    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let bytes = encode(&sample()).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(WireError::Codec(CodecError::TrailingBytes { .. }))));
    }

    /// A proposal whose value does not match its digest, or a vote with a value, is malformed.
    #[test]
    fn shape_errors() {
        let mut m = sample();
        m.value = Some(b"other".to_vec());
        assert!(matches!(decode(&encode(&m).unwrap()), Err(WireError::Malformed(_))));
        let mut v = sample();
        v.body.kind = MessageKind::Vote;
        assert!(matches!(decode(&encode(&v).unwrap()), Err(WireError::Malformed(_))));
        let mut dup = sample();
        let first = dup.auth.0[0].clone();
        dup.auth.0.push(first);
        assert!(matches!(decode(&encode(&dup).unwrap()), Err(WireError::Malformed(_))));
    }

    /// Oversized input is refused before decoding.
    #[test]
    fn oversized_input_is_refused() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(decode(&big), Err(WireError::Codec(CodecError::TooLarge { .. }))));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        /// Flipping any byte of a valid message either fails to decode or changes the message.
        #[test]
        fn bit_flips_are_detected_or_harmless(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let m = sample();
            let mut bytes = encode(&m).unwrap();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(d) = decode(&bytes) { prop_assert_ne!(d, m); }
        }
    }
}
