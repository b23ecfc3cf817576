//! The check of incoming `InstallSnapshot` chunks before openraft sees them.
//!
//! openraft 0.9 writes each chunk into an in-memory buffer at the chunk's `offset`, so a
//! chunk far beyond what was received zero-fills the gap (a second chunk at offset 2^32
//! would make the node allocate 4 GiB), and chunks that never say `done` grow the buffer
//! without bound. [`SnapshotGuard`] admits a chunk only when it starts a snapshot
//! (offset 0) or continues the one being received (same snapshot id, no gap), and only
//! while the snapshot stays within [`MAX_SNAPSHOT_BYTES`]. A leader's own stream always
//! passes: it sends chunks in order from offset 0, and resends a chunk at the same offset.

/// The largest snapshot a node accepts, in bytes.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// Why a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRefusal {
    /// It belongs to no snapshot being received (a first chunk must be at offset 0).
    #[error("chunk at offset {offset} of snapshot {id} continues no snapshot being received")]
    NotStarted {
        /// The chunk's snapshot.
        id: String,
        /// Its offset.
        offset: u64,
    },
    /// It leaves a gap after what was received.
    #[error("chunk at offset {offset} leaves a gap after the {received} bytes received")]
    Gap {
        /// Its offset.
        offset: u64,
        /// Bytes received so far.
        received: u64,
    },
    /// The snapshot would exceed [`MAX_SNAPSHOT_BYTES`].
    #[error("snapshot would reach {0} bytes, over the {MAX_SNAPSHOT_BYTES} byte limit")]
    TooLarge(u64),
}

/// The snapshot being received: its id and how many bytes of it arrived.
#[derive(Debug, Default)]
pub struct SnapshotGuard {
    current: Option<(String, u64)>,
}

impl SnapshotGuard {
    /// Admits (and records) a chunk of `len` bytes at `offset` of snapshot `id`; `done`
    /// closes the snapshot.
    pub fn admit(&mut self, id: &str, offset: u64, len: u64, done: bool) -> Result<(), ChunkRefusal> {
        let end = offset.saturating_add(len);
        if end > MAX_SNAPSHOT_BYTES {
            return Err(ChunkRefusal::TooLarge(end));
        }
        let received = match &self.current {
            _ if offset == 0 => 0,
            Some((current, received)) if current == id => *received,
            _ => return Err(ChunkRefusal::NotStarted { id: id.to_string(), offset }),
        };
        if offset > received {
            return Err(ChunkRefusal::Gap { offset, received });
        }
        self.current = if done { None } else { Some((id.to_string(), received.max(end))) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader's stream passes: chunks in order, a resent chunk, a restart from 0, done.
    #[test]
    fn an_ordered_stream_passes() {
        let mut g = SnapshotGuard::default();
        g.admit("s1", 0, 100, false).unwrap();
        g.admit("s1", 100, 100, false).unwrap();
        g.admit("s1", 100, 100, false).unwrap();
        g.admit("s1", 0, 100, false).unwrap();
        g.admit("s1", 100, 50, true).unwrap();
        g.admit("s2", 0, 10, true).unwrap();
    }

    /// The chunks that would make openraft zero-fill or grow without bound are refused.
    #[test]
    fn gaps_strangers_and_oversized_snapshots_are_refused() {
        let mut g = SnapshotGuard::default();
        assert!(matches!(g.admit("s1", 1 << 32, 1, false), Err(ChunkRefusal::TooLarge(_))));
        assert!(matches!(g.admit("s1", 10, 1, false), Err(ChunkRefusal::NotStarted { .. })));
        g.admit("s1", 0, 100, false).unwrap();
        assert_eq!(g.admit("s1", 101, 1, false), Err(ChunkRefusal::Gap { offset: 101, received: 100 }));
        assert!(matches!(g.admit("s2", 100, 1, false), Err(ChunkRefusal::NotStarted { .. })));
        let mut offset = 100;
        let refused = loop {
            match g.admit("s1", offset, 16 << 20, false) {
                Ok(()) => offset += 16 << 20,
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, ChunkRefusal::TooLarge(_)));
        g.admit("s1", 0, 1, true).unwrap();
        assert!(matches!(g.admit("s1", 1, 1, false), Err(ChunkRefusal::NotStarted { .. })));
    }
}
