//! The project's hash functions: stable ones for anything that must agree across
//! processes, fast ones for internal tables.
//!
//! **Stable** (the same value in every process, platform and release, unlike std's
//! `DefaultHasher`, whose algorithm and seed may change): [`fnv1a64`], the published
//! 64-bit FNV-1a (Raft node ids, state-machine digests, file checksums); [`splitmix64`],
//! the finaliser of Steele, Lea and Flood's SplitMix64 (seed derivation); [`stable_hash`],
//! FNV-1a finished with splitmix64 so that nearby inputs land far apart (consistent-hash
//! rings, gossip digests); [`StableHasher`], its incremental form. These are the only
//! copies in the tree.
//!
//! **Fast**:
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

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::new();
    h.write(bytes);
    h.fnv1a64()
}

/// The SplitMix64 finaliser: a bijection of `u64` that spreads every input bit over the
/// output.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a followed by the splitmix64 finaliser: stable and well spread.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    splitmix64(fnv1a64(bytes))
}

/// [`stable_hash`] over several writes: `finish` equals `stable_hash` of the
/// concatenated bytes.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self(FNV_OFFSET)
    }

    /// Adds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
        }
    }

    /// The plain FNV-1a of what was written.
    pub fn fnv1a64(&self) -> u64 {
        self.0
    }

    /// [`stable_hash`] of what was written.
    pub fn finish(&self) -> u64 {
        splitmix64(self.0)
    }
}

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

    /// The stable functions give their published values (FNV-1a 64 test vectors, the
    /// SplitMix64 sequence from seed 0), and the incremental hasher equals the one-shot
    /// function over the concatenation: the values every process and release must agree on.
    #[test]
    fn stable_functions_keep_their_published_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(stable_hash(b"node-1"), splitmix64(fnv1a64(b"node-1")));
        let mut h = StableHasher::new();
        h.write(b"node");
        h.write(b"-1");
        assert_eq!((h.fnv1a64(), h.finish()), (fnv1a64(b"node-1"), stable_hash(b"node-1")));
    }

    /// Distinct task ids and names hash to distinct values (no trivial collisions).
    #[test]
    fn spreads_keys() {
        let ids: HashSet<u64> = (0..10_000).map(|_| TaskIdBuildHasher.hash_one(TaskId::new_v4())).collect();
        assert_eq!(ids.len(), 10_000);
        let names: HashSet<u64> = (0..10_000).map(|i| FoldBuildHasher.hash_one(format!("agent-{i}"))).collect();
        assert_eq!(names.len(), 10_000);
    }
}
