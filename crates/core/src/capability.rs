//! Sets of capabilities.
//!
//! A [`CapabilitySet`] is sorted and de-duplicated at construction, so two sets with the
//! same members are equal and hash alike; that makes it usable as a cache key for
//! "which agents have all of these" queries.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::id::{Capability, NameError};

/// A sorted, de-duplicated set of capabilities, cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Capability>", into = "Vec<Capability>")]
pub struct CapabilitySet(Arc<[Capability]>);

impl CapabilitySet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a set from names, validating each.
    pub fn parse<I, S>(names: I) -> Result<Self, NameError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names.into_iter().map(Capability::new).collect::<Result<Vec<_>, _>>().map(Self::from)
    }

    /// Members in sorted order.
    pub fn iter(&self) -> std::slice::Iter<'_, Capability> {
        self.0.iter()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `cap` is a member.
    pub fn contains(&self, cap: &Capability) -> bool {
        self.0.binary_search(cap).is_ok()
    }

    /// True when every member of `self` is in `other` (a merge walk over two sorted slices).
    pub fn is_subset_of(&self, other: &CapabilitySet) -> bool {
        let mut theirs = other.0.iter();
        'outer: for mine in self.0.iter() {
            for t in theirs.by_ref() {
                match t.cmp(mine) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => continue 'outer,
                    std::cmp::Ordering::Greater => return false,
                }
            }
            return false;
        }
        true
    }
}

impl From<Vec<Capability>> for CapabilitySet {
    fn from(mut v: Vec<Capability>) -> Self {
        v.sort();
        v.dedup();
        Self(v.into())
    }
}

impl From<CapabilitySet> for Vec<Capability> {
    fn from(s: CapabilitySet) -> Self {
        s.0.to_vec()
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<T: IntoIterator<Item = Capability>>(iter: T) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a CapabilitySet {
    type Item = &'a Capability;
    type IntoIter = std::slice::Iter<'a, Capability>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter().map(|c| c.as_str())).finish()
    }
}

impl fmt::Display for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(c.as_str())?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(names: &[&str]) -> CapabilitySet {
        CapabilitySet::parse(names).unwrap()
    }

    /// Construction sorts and de-duplicates, so equal member lists give equal sets.
    #[test]
    fn normalises_order_and_duplicates() {
        assert_eq!(set(&["b", "a", "b"]), set(&["a", "b"]));
        assert_eq!(set(&["b", "a"]).len(), 2);
        assert!(set(&["a"]).contains(&Capability::new("a").unwrap()));
    }

    /// Invalid names are refused with the name error.
    #[test]
    fn invalid_member_is_refused() {
        assert!(CapabilitySet::parse(["ok", "not ok"]).is_err());
    }

    proptest! {
        /// The merge-walk subset test agrees with the obvious quadratic definition.
        #[test]
        fn subset_matches_naive(a in proptest::collection::vec("[a-e]", 0..5),
                                b in proptest::collection::vec("[a-e]", 0..5)) {
            let sa = CapabilitySet::parse(&a).unwrap();
            let sb = CapabilitySet::parse(&b).unwrap();
            let naive = sa.iter().all(|c| sb.contains(c));
            prop_assert_eq!(sa.is_subset_of(&sb), naive);
        }
    }
}
