//! [`VectorClock`]: causal versions of replicated values (Lamport 1978; Fidge and Mattern 1988).
//!
//! A vector clock maps each node that wrote a value to the number of writes it made to that
//! value's key. Version `a` *happened before* `b` when every counter of `a` is ≤ the same
//! counter of `b` and at least one is smaller; two versions neither of which happened
//! before the other are *concurrent* (written without seeing each other), and the
//! replicated store resolves them deterministically (see [`crate::version`]).
//!
//! Clocks are bounded: at most [`MAX_CLOCK_ENTRIES`] nodes per clock, enforced on
//! [`VectorClock::increment`] and when a clock is decoded from the wire, so a forged
//! message cannot make a replica hold an unbounded clock. A counter of 0 means "never
//! wrote" and is not stored, so equal clocks have equal representations.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use erlmcp_flow_core::NodeName;
use serde::{Deserialize, Serialize};

/// Hard cap on the number of nodes in one clock (a key written by more distinct nodes is
/// refused). The store's configurable limit must be at or below it.
pub const MAX_CLOCK_ENTRIES: usize = 256;

/// The causal relation between two clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockOrdering {
    /// `self` happened before `other` (strictly smaller).
    Before,
    /// `self` happened after `other` (strictly greater).
    After,
    /// Identical clocks.
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

/// Why a clock operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Adding a node would exceed the entry limit.
    #[error("vector clock would hold {len} entries, the limit is {limit}")]
    TooManyEntries {
        /// Entries the clock would hold.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The node's counter is at `u64::MAX`.
    #[error("vector clock counter of {0} overflowed")]
    Overflow(NodeName),
}

/// Node → counter, ordered by node name. See the module docs.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<NodeName, u64>", into = "BTreeMap<NodeName, u64>")]
pub struct VectorClock {
    entries: BTreeMap<NodeName, u64>,
}

impl std::fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (n, c)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}:{c}")?;
        }
        f.write_str("}")
    }
}

impl TryFrom<BTreeMap<NodeName, u64>> for VectorClock {
    type Error = ClockError;
    fn try_from(mut entries: BTreeMap<NodeName, u64>) -> Result<Self, ClockError> {
        entries.retain(|_, c| *c > 0);
        if entries.len() > MAX_CLOCK_ENTRIES {
            return Err(ClockError::TooManyEntries { len: entries.len(), limit: MAX_CLOCK_ENTRIES });
        }
        Ok(Self { entries })
    }
}

impl From<VectorClock> for BTreeMap<NodeName, u64> {
    fn from(clock: VectorClock) -> Self {
        clock.entries
    }
}

impl VectorClock {
    /// The empty clock (before every write).
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `node` (0 when it never wrote).
    pub fn get(&self, node: &NodeName) -> u64 {
        self.entries.get(node).copied().unwrap_or(0)
    }

    /// Number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for the empty clock.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(node, counter)` pairs in node order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeName, u64)> + '_ {
        self.entries.iter().map(|(n, c)| (n, *c))
    }

    /// Sum of all counters (saturating): the number of writes this version has seen.
    /// If `a` happened before `b` then `a.sum() < b.sum()` (short of saturation), which
    /// is what makes the sum a valid first key of the conflict-resolution order.
    pub fn sum(&self) -> u64 {
        self.entries.values().fold(0u64, |s, c| s.saturating_add(*c))
    }

    /// Bumps `node`'s counter and returns its new value.
    pub fn increment(&mut self, node: &NodeName) -> Result<u64, ClockError> {
        match self.entries.get_mut(node) {
            Some(c) => {
                *c = c.checked_add(1).ok_or_else(|| ClockError::Overflow(node.clone()))?;
                Ok(*c)
            }
            None => {
                if self.entries.len() >= MAX_CLOCK_ENTRIES {
                    return Err(ClockError::TooManyEntries { len: self.entries.len() + 1, limit: MAX_CLOCK_ENTRIES });
                }
                self.entries.insert(node.clone(), 1);
                Ok(1)
            }
        }
    }

    /// Pointwise maximum with `other` (the least clock that both happened before or equal).
    /// The result may hold up to `self.len() + other.len()` entries; callers that store it
    /// check their own limit.
    pub fn merge(&mut self, other: &VectorClock) {
        for (node, c) in &other.entries {
            let mine = self.entries.entry(node.clone()).or_insert(0);
            *mine = (*mine).max(*c);
        }
    }

    /// The causal relation of `self` to `other`.
    pub fn compare(&self, other: &VectorClock) -> ClockOrdering {
        let mut less = false; // some counter of self < other
        let mut greater = false; // some counter of self > other
        // Walk both sorted maps once.
        let mut a = self.entries.iter().peekable();
        let mut b = other.entries.iter().peekable();
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => {
                    greater = true;
                    break;
                }
                (None, Some(_)) => {
                    less = true;
                    break;
                }
                (Some((na, ca)), Some((nb, cb))) => match na.cmp(nb) {
                    Ordering::Less => {
                        greater = true;
                        a.next();
                    }
                    Ordering::Greater => {
                        less = true;
                        b.next();
                    }
                    Ordering::Equal => {
                        match ca.cmp(cb) {
                            Ordering::Less => less = true,
                            Ordering::Greater => greater = true,
                            Ordering::Equal => {}
                        }
                        a.next();
                        b.next();
                    }
                },
            }
            if less && greater {
                break;
            }
        }
        match (less, greater) {
            (false, false) => ClockOrdering::Equal,
            (true, false) => ClockOrdering::Before,
            (false, true) => ClockOrdering::After,
            (true, true) => ClockOrdering::Concurrent,
        }
    }

    /// True when `self` happened after or equals `other`.
    pub fn dominates(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), ClockOrdering::After | ClockOrdering::Equal)
    }
}

impl PartialOrd for VectorClock {
    /// The causal partial order: `None` for concurrent clocks.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            ClockOrdering::Before => Some(Ordering::Less),
            ClockOrdering::After => Some(Ordering::Greater),
            ClockOrdering::Equal => Some(Ordering::Equal),
            ClockOrdering::Concurrent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::Codec;
    use proptest::prelude::*;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn clock(pairs: &[(&str, u64)]) -> VectorClock {
        VectorClock::try_from(pairs.iter().map(|(k, v)| (n(k), *v)).collect::<BTreeMap<_, _>>()).unwrap()
    }

    /// The four relations of the causal order, including absent entries read as zero.
    #[test]
    fn compare_covers_the_four_relations() {
        let a = clock(&[("a", 1)]);
        let ab = clock(&[("a", 1), ("b", 1)]);
        let b = clock(&[("b", 2)]);
        assert_eq!(a.compare(&ab), ClockOrdering::Before);
        assert_eq!(ab.compare(&a), ClockOrdering::After);
        assert_eq!(ab.compare(&ab.clone()), ClockOrdering::Equal);
        assert_eq!(a.compare(&b), ClockOrdering::Concurrent);
        assert_eq!(VectorClock::new().compare(&a), ClockOrdering::Before);
        assert!(a.partial_cmp(&b).is_none());
        assert!(ab > a);
    }

    /// Increment bumps one entry; merge is the pointwise max and dominates both inputs.
    #[test]
    fn increment_and_merge() {
        let mut x = VectorClock::new();
        assert_eq!(x.increment(&n("a")).unwrap(), 1);
        assert_eq!(x.increment(&n("a")).unwrap(), 2);
        let mut y = clock(&[("b", 5), ("a", 1)]);
        y.merge(&x);
        assert_eq!(y, clock(&[("a", 2), ("b", 5)]));
        assert!(y.dominates(&x));
        assert_eq!(y.sum(), 7);
    }

    /// A clock refuses to grow past the hard cap, from `increment` and from the wire.
    #[test]
    fn clocks_are_bounded() {
        let mut c = VectorClock::new();
        for i in 0..MAX_CLOCK_ENTRIES {
            c.increment(&n(&format!("n{i}"))).unwrap();
        }
        assert!(matches!(c.increment(&n("one-more")), Err(ClockError::TooManyEntries { .. })));
        let mut map: BTreeMap<NodeName, u64> = c.clone().into();
        map.insert(n("one-more"), 1);
        let codec = Codec::default();
        let bytes = codec.encode(&map).unwrap();
        assert!(codec.decode::<VectorClock>(&bytes).is_err());
        assert_eq!(codec.decode::<VectorClock>(&codec.encode(&c).unwrap()).unwrap(), c);
    }

    /// Zero counters are normalised away, so equal clocks are equal values.
    #[test]
    fn zero_entries_are_dropped() {
        assert_eq!(clock(&[("a", 0), ("b", 1)]), clock(&[("b", 1)]));
    }

    fn arb_clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::btree_map(0u8..4, 0u64..4, 0..4).prop_map(|m| {
            VectorClock::try_from(m.into_iter().map(|(k, v)| (n(&format!("n{k}")), v)).collect::<BTreeMap<_, _>>())
                .unwrap()
        })
    }

    proptest! {
        /// `compare` is antisymmetric, agrees with `merge` (the merge dominates both
        /// sides), and happened-before implies a strictly smaller sum.
        #[test]
        fn compare_is_consistent(a in arb_clock(), b in arb_clock()) {
            let ab = a.compare(&b);
            let ba = b.compare(&a);
            let flipped = match ab {
                ClockOrdering::Before => ClockOrdering::After,
                ClockOrdering::After => ClockOrdering::Before,
                o => o,
            };
            prop_assert_eq!(ba, flipped);
            let mut m = a.clone();
            m.merge(&b);
            prop_assert!(m.dominates(&a) && m.dominates(&b));
            if ab == ClockOrdering::Before {
                prop_assert!(a.sum() < b.sum());
            }
            prop_assert_eq!(ab == ClockOrdering::Equal, a == b);
        }
    }
}
