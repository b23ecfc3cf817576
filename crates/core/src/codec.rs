//! The one codec for everything that crosses a process boundary.
//!
//! bincode 2 in its `standard` configuration (varint integers, little endian) through
//! serde. Two limits guard the wire:
//!
//! * [`Codec::encode`] refuses a value whose encoding exceeds the codec's limit, so an
//!   oversized message is refused at the sender with a clear error instead of silently
//!   dropping the whole ractor_cluster link (its frame limit is 16 MiB).
//! * [`Codec::decode`] refuses input over the limit before decoding and caps what bincode
//!   may allocate, so a forged length prefix cannot make the receiver allocate gigabytes;
//!   trailing bytes are an error, not ignored.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::PAYLOAD_HARD_LIMIT_BYTES;

/// Allocation cap handed to bincode while decoding (16 MiB, the frame limit).
const DECODE_ALLOCATION_LIMIT: usize = 16 * 1024 * 1024;

/// Why encoding or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The encoded form (or the input) is larger than allowed.
    #[error("message is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Actual size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// serde/bincode could not encode the value.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The value decoded but bytes were left over.
    #[error("{trailing} trailing bytes after the message")]
    TrailingBytes {
        /// How many.
        trailing: usize,
    },
}

/// Encoder/decoder with a size limit.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_bytes: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(PAYLOAD_HARD_LIMIT_BYTES)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_ALLOCATION_LIMIT>()
}

impl Codec {
    /// A codec that refuses messages over `max_bytes` (clamped to the hard limit).
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes: max_bytes.min(PAYLOAD_HARD_LIMIT_BYTES) }
    }

    /// The size limit in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Encodes `value`, refusing results over the limit.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let bytes = bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))?;
        if bytes.len() > self.max_bytes {
            return Err(CodecError::TooLarge { size: bytes.len(), limit: self.max_bytes });
        }
        Ok(bytes)
    }

    /// Decodes a `T` that must use all of `bytes`.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        if bytes.len() > self.max_bytes {
            return Err(CodecError::TooLarge { size: bytes.len(), limit: self.max_bytes });
        }
        let (value, used) =
            bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError::Decode(e.to_string()))?;
        if used != bytes.len() {
            return Err(CodecError::TrailingBytes { trailing: bytes.len() - used });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::CapabilitySet;
    use crate::task::Task;
    use proptest::prelude::*;

    /// A task survives an encode/decode round trip unchanged.
    #[test]
    fn task_round_trips() {
        let task = Task::new(CapabilitySet::parse(["a", "b"]).unwrap())
            .with_payload(&b"hello"[..])
            .with_affinity_key("session-9");
        let codec = Codec::default();
        let bytes = codec.encode(&task).unwrap();
        assert_eq!(codec.decode::<Task>(&bytes).unwrap(), task);
    }

    /// Oversized values are refused on encode, oversized input on decode.
    #[test]
    fn size_limit_is_enforced_both_ways() {
        let codec = Codec::new(64);
        let big = vec![7u8; 100];
        assert!(matches!(codec.encode(&big), Err(CodecError::TooLarge { limit: 64, .. })));
        assert!(matches!(codec.decode::<Vec<u8>>(&[0u8; 65]), Err(CodecError::TooLarge { size: 65, .. })));
    }

    /// Garbage, truncated and padded input give typed errors, never a panic.
    #[test]
    fn bad_input_is_a_typed_error() {
        let codec = Codec::default();
        let task = Task::new(CapabilitySet::parse(["a"]).unwrap());
        let bytes = codec.encode(&task).unwrap();
        assert!(matches!(codec.decode::<Task>(&bytes[..bytes.len() / 2]), Err(CodecError::Decode(_))));
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(codec.decode::<Task>(&padded), Err(CodecError::TrailingBytes { trailing: 1 }));
        // A length prefix claiming 2^60 elements must not allocate.
        let forged = [0xfdu8, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(codec.decode::<Vec<u64>>(&forged).is_err());
    }

    proptest! {
        /// Arbitrary bytes decode to an error or a task, never a panic.
        #[test]
        fn decoding_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Codec::default().decode::<Task>(&bytes);
        }
    }
}
