//! Versions of replicated values and the deterministic order that resolves conflicts.
//!
//! Every stored value carries a [`Version`]: the key's [`VectorClock`] and the node that
//! wrote it. Two replicas that saw different writes must end up with the same value
//! whatever order the writes reach them in, so the merge of two versions must be
//! commutative, associative and idempotent. We get that by making the merge the maximum
//! under one *total* order on versions that extends the causal order:
//!
//! 1. the clock's [`sum`](VectorClock::sum) (how many writes the version has seen): if
//!    `a` happened before `b`, `a.sum() < b.sum()`, so a causally newer write always wins;
//! 2. then the writer's node name (the larger name wins a tie between concurrent writes);
//! 3. then a stable 64-bit fingerprint of the clock, the tombstone flag and the value;
//! 4. then, should two different versions share all of the above (a fingerprint
//!    collision, or a node that lost its state and reused counters), the clock entries
//!    and the value bytes themselves, so the order is total on distinct versions.
//!
//! The maximum of a total order is a join-semilattice, hence the three merge laws; the
//! property tests in [`crate::state`] check them. The first three keys form the
//! [`Stamp`] that digests carry, so peers compare versions without shipping values.
//!
//! This is "last writer wins" where "last" means "has seen the most writes", with the
//! node name as the arbiter of true ties: it needs no synchronised wall clocks (unlike
//! timestamp LWW as in Cassandra) and never lets an older write shadow a newer one that
//! saw it.

use std::cmp::Ordering;

use bytes::Bytes;
use erlmcp_flow_core::NodeName;
use erlmcp_flow_core::hash::StableHasher;
use serde::{Deserialize, Serialize};

use crate::vector_clock::VectorClock;

/// The causal version of a value: its key's clock and who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The key's vector clock after this write.
    pub clock: VectorClock,
    /// The node that made this write (its entry in `clock` was bumped by it).
    pub writer: NodeName,
}

/// A value (or a tombstone) with its version: what replicas exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Versioned {
    /// The version.
    pub version: Version,
    /// The value; `None` is a tombstone (the key was deleted).
    pub value: Option<Bytes>,
}

/// The conflict-resolution key of a version, compared field by field (see the module
/// docs). Digests carry stamps instead of values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// Sum of the clock's counters.
    pub sum: u64,
    /// The writer.
    pub writer: NodeName,
    /// Stable fingerprint of clock, tombstone flag and value.
    pub fingerprint: u64,
}

impl Versioned {
    /// True for a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The stamp (first three keys of the resolution order).
    pub fn stamp(&self) -> Stamp {
        Stamp { sum: self.version.clock.sum(), writer: self.version.writer.clone(), fingerprint: self.fingerprint() }
    }

    /// Stable (process- and platform-independent) fingerprint of the version's content.
    pub fn fingerprint(&self) -> u64 {
        let mut h = StableHasher::new();
        for (node, counter) in self.version.clock.iter() {
            h.write(node.as_str().as_bytes());
            h.write(&[0xff]);
            h.write(&counter.to_le_bytes());
        }
        h.write(self.version.writer.as_str().as_bytes());
        match &self.value {
            None => h.write(&[0]),
            Some(v) => {
                h.write(&[1]);
                h.write(&(v.len() as u64).to_le_bytes());
                h.write(v);
            }
        }
        h.finish()
    }

    /// The total resolution order (see the module docs); the merge keeps the greater.
    pub fn resolution_cmp(&self, other: &Versioned) -> Ordering {
        self.stamp().cmp(&other.stamp()).then_with(|| self.content_cmp(other))
    }

    /// Same as [`resolution_cmp`](Self::resolution_cmp) with `self`'s stamp already known.
    pub(crate) fn resolution_cmp_with(&self, my_stamp: &Stamp, other: &Versioned, other_stamp: &Stamp) -> Ordering {
        my_stamp.cmp(other_stamp).then_with(|| self.content_cmp(other))
    }

    fn content_cmp(&self, other: &Versioned) -> Ordering {
        self.version.clock.iter().cmp(other.version.clock.iter()).then_with(|| self.value.cmp(&other.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn write(base: Option<&Versioned>, by: &str, value: Option<&'static [u8]>) -> Versioned {
        let mut clock = base.map(|b| b.version.clock.clone()).unwrap_or_default();
        clock.increment(&n(by)).unwrap();
        Versioned { version: Version { clock, writer: n(by) }, value: value.map(Bytes::from_static) }
    }

    /// A write that saw another always wins over it, whoever wrote either.
    #[test]
    fn causally_newer_wins() {
        let a1 = write(None, "zzz", Some(b"1"));
        let a2 = write(Some(&a1), "aaa", Some(b"2"));
        assert_eq!(a2.resolution_cmp(&a1), Ordering::Greater);
        let del = write(Some(&a2), "mmm", None);
        assert_eq!(del.resolution_cmp(&a2), Ordering::Greater);
    }

    /// Concurrent writes with equal history are decided by the writer's name, the same
    /// way from both sides.
    #[test]
    fn concurrent_tie_goes_to_larger_writer() {
        let base = write(None, "a", Some(b"0"));
        let x = write(Some(&base), "b", Some(b"x"));
        let y = write(Some(&base), "c", Some(b"y"));
        assert_eq!(x.version.clock.compare(&y.version.clock), crate::ClockOrdering::Concurrent);
        assert_eq!(y.resolution_cmp(&x), Ordering::Greater);
        assert_eq!(x.resolution_cmp(&y), Ordering::Less);
    }

    /// Distinct versions with the same clock and writer (a node that lost its state) are
    /// still strictly ordered; equal versions compare equal.
    #[test]
    fn order_is_total_on_distinct_versions() {
        let x = write(None, "a", Some(b"x"));
        let y = write(None, "a", Some(b"y"));
        assert_ne!(x.resolution_cmp(&y), Ordering::Equal);
        assert_eq!(x.resolution_cmp(&y), y.resolution_cmp(&x).reverse());
        assert_eq!(x.resolution_cmp(&x.clone()), Ordering::Equal);
    }

    /// The fingerprint is a fixed function of the content (pinned so a change to it,
    /// which would split mixed-version clusters, is noticed).
    #[test]
    fn fingerprint_is_stable() {
        let x = write(None, "a", Some(b"x"));
        assert_eq!(x.fingerprint(), x.clone().fingerprint());
        let mut h = StableHasher::new();
        h.write(b"erlmcp-flow");
        assert_eq!(h.finish(), 0xaba7_26c1_60af_4ba0);
    }
}
