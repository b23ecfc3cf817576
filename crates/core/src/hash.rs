//! Fast hashers for internal tables.
//!
//! std's default SipHash is built to resist hash flooding by untrusted keys, at several
//! times the cost of a multiply-rotate hash. The keys of the hot tables here are
//! [`TaskId`](crate::TaskId)s (random v4 UUIDs: their bits are already uniform) and short
//! names chosen by the services that own the node (agent ids, capabilities), so the
//! routing path uses:
//!
//! * [`TaskIdBuildHasher`]: folds the UUID's 128 random bits to 64, no mixing needed;
//! * [`FoldBuildHasher`]: a folded-multiply hash over 8-byte words (the mixing step of
//!   foldhash): each word is XORed into the state, which is multiplied by a constant as a
//!   128-bit product whose halves are folded together, so every input bit reaches every
//!   output bit (a plain multiply-rotate, as in the classic Fx hash, only carries bits
//!   upward and collides on names that differ in a high byte).

use std::hash::{BuildHasher, Hasher};

/// Hasher for [`TaskId`](crate::TaskId) keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct TaskIdBuildHasher;

impl BuildHasher for TaskIdBuildHasher {
    type Hasher = TaskIdHasher;
    fn build_hasher(&self) -> TaskIdHasher {
        TaskIdHasher(0)
    }
}

/// See [`TaskIdBuildHasher`].
#[derive(Debug, Default, Clone, Copy)]
pub struct TaskIdHasher(u64);

impl Hasher for TaskIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A UUID arrives as its 16 bytes; anything else is folded word by word.
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(23) ^ u64::from_le_bytes(w);
        }
    }
    fn write_usize(&mut self, _len: usize) {
        // Length prefixes of fixed-size keys carry no information.
    }
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Builds [`FoldHasher`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct FoldBuildHasher;

impl BuildHasher for FoldBuildHasher {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0)
    }
}

/// See [`FoldBuildHasher`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FoldHasher(u64);

impl FoldHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = folded_multiply(self.0 ^ word, FX_SEED);
    }
}

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskId;
    use std::collections::HashSet;

    /// Distinct task ids and names hash to distinct values (no trivial collisions).
    #[test]
    fn spreads_keys() {
        let ids: HashSet<u64> = (0..10_000).map(|_| TaskIdBuildHasher.hash_one(TaskId::new_v4())).collect();
        assert_eq!(ids.len(), 10_000);
        let names: HashSet<u64> = (0..10_000).map(|i| FoldBuildHasher.hash_one(format!("agent-{i}"))).collect();
        assert_eq!(names.len(), 10_000);
    }
}
