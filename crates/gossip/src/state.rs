//! [`GossipState`]: the replicated key → value store that gossip keeps in agreement.
//!
//! Values are opaque bytes (the agent directory, load figures, anything the cluster layer
//! encodes with the codec), each carrying a [`Version`]. A local [`put`](GossipState::put)
//! or [`delete`](GossipState::delete) bumps this node's entry in the key's vector clock;
//! remote versions arrive in [`Delta`]s and are merged by [`apply`](GossipState::apply),
//! which keeps, per key, the maximum under the total order of [`crate::version`]. That
//! merge is commutative, associative and idempotent, so replicas that have seen the same
//! set of versions hold the same state, whatever order and however many times the
//! versions arrived (property-tested below).
//!
//! Anti-entropy uses three pure operations, after Scuttlebutt (van Renesse et al.,
//! "Efficient Reconciliation and Flow Control for Anti-Entropy Protocols", 2008) but with
//! one digest row per key, since any node may write any key:
//!
//! * [`digest_page`](GossipState::digest_page): `(key, stamp)` rows for a contiguous key
//!   range, as many as fit in half a message; successive rounds walk the key space;
//! * [`delta_for`](GossipState::delta_for): the entries in the digest's range that the
//!   peer lacks or holds an older version of, split into chunks of half a message each;
//! * [`request_for`](GossipState::request_for): keys of the digest for which the peer is
//!   ahead of us; the peer answers with [`delta_for_keys`](GossipState::delta_for_keys).
//!
//! Deletes leave tombstones so the delete wins over the value it removes. A tombstone is
//! dropped `tombstone_ttl` after this replica learned it ([`gc`](GossipState::gc)). So that
//! a collected tombstone is not fetched back from a replica that still holds it (which
//! would keep tombstones alive forever), anti-entropy only moves a tombstone to a replica
//! that holds the key: a digest row for a tombstone is not requested by a replica without
//! the key, and a tombstone is not sent for a key missing from the peer's digest. A replica
//! cut off for longer than `tombstone_ttl` can bring a deleted key back, as in Cassandra.
//!
//! Bounds: keys (tombstones included), key and value length, writers per clock, and the
//! encoded size of every digest page, delta chunk and key request (computed from a
//! worst-case size per entry, so the encoded message never exceeds it).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::{Duration, Instant};

use bytes::Bytes;
use erlmcp_flow_core::NodeName;
use serde::{Deserialize, Serialize};

use crate::config::GossipConfig;
use crate::vector_clock::{ClockError, VectorClock};
use crate::version::{Stamp, Version, Versioned};
use erlmcp_flow_core::hash::StableHasher;

/// Bytes counted per varint or length prefix when bounding encoded sizes.
const INT: usize = 10;

/// Why a local write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Keys must not be empty.
    #[error("gossip key must not be empty")]
    EmptyKey,
    /// The key is longer than `max_key_bytes`.
    #[error("gossip key is {len} bytes, the limit is {limit}")]
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The value is larger than `max_value_bytes`.
    #[error("gossip value is {len} bytes, the limit is {limit}")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The store holds `max_keys` keys already.
    #[error("gossip state holds its limit of {limit} keys")]
    TooManyKeys {
        /// The limit.
        limit: usize,
    },
    /// The key's clock has `max_clock_entries` writers already.
    #[error("the key's vector clock has {len} writers, the limit is {limit}")]
    ClockTooLarge {
        /// Writers it would have.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The clock could not be advanced.
    #[error(transparent)]
    Clock(#[from] ClockError),
}

/// The store's bounds (taken from [`GossipConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLimits {
    /// Keys held, tombstones included.
    pub max_keys: usize,
    /// Longest key, bytes.
    pub max_key_bytes: usize,
    /// Largest value, bytes.
    pub max_value_bytes: usize,
    /// Writers per clock.
    pub max_clock_entries: usize,
    /// Encoded-size budget of one digest page, delta chunk or key request, bytes.
    pub part_budget_bytes: usize,
    /// Tombstone lifetime.
    pub tombstone_ttl: Duration,
}

impl StateLimits {
    /// The limits a configuration sets.
    pub fn from_config(config: &GossipConfig) -> Self {
        Self {
            max_keys: config.max_keys,
            max_key_bytes: config.max_key_bytes,
            max_value_bytes: config.max_value_bytes,
            max_clock_entries: config.max_clock_entries,
            part_budget_bytes: config.part_budget(),
            tombstone_ttl: config.tombstone_ttl(),
        }
    }
}

impl Default for StateLimits {
    fn default() -> Self {
        Self::from_config(&GossipConfig::default())
    }
}

/// One replicated entry on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeltaEntry {
    /// The key.
    pub key: String,
    /// Its version and value (or tombstone).
    pub versioned: Versioned,
}

/// A batch of entries for a peer; one [`Delta`] fits in half a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The entries, in key order.
    pub entries: Vec<DeltaEntry>,
}

impl Delta {
    /// True when the delta carries nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One digest row: what version of a key a replica holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// The key.
    pub key: String,
    /// The stamp of the replica's version.
    pub stamp: Stamp,
    /// The version is a tombstone.
    pub deleted: bool,
}

/// The versions a replica holds for every key in `[start, end)` (unbounded where `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// First key of the range (inclusive); `None`: from the first key.
    pub start: Option<String>,
    /// End of the range (exclusive); `None`: to the last key.
    pub end: Option<String>,
    /// Rows for every key the replica holds in the range, in key order.
    pub entries: Vec<DigestEntry>,
}

impl Digest {
    fn bounds(&self) -> Option<(Bound<&str>, Bound<&str>)> {
        if let (Some(s), Some(e)) = (&self.start, &self.end)
            && s > e
        {
            return None;
        }
        let start = self.start.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let end = self.end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        Some((start, end))
    }
}

/// A change to the local state: a local write, or a remote version that won the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// What the replica held before (`None`: nothing).
    pub previous: Option<Versioned>,
    /// What it holds now.
    pub current: Versioned,
}

impl Change {
    /// The new value (`None` when the key was deleted).
    pub fn value(&self) -> Option<&Bytes> {
        self.current.value.as_ref()
    }
}

/// Counters of what [`GossipState::apply`] did with incoming entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Entries that won the merge and changed the state.
    pub applied: u64,
    /// Entries not newer than what the replica holds.
    pub stale: u64,
    /// Entries refused as malformed (key, value or clock out of bounds; writer missing
    /// from its clock).
    pub rejected_invalid: u64,
    /// Entries for new keys refused because the store was full.
    pub rejected_full: u64,
    /// Tombstones collected by [`GossipState::gc`].
    pub tombstones_collected: u64,
}

#[derive(Debug, Clone)]
struct Stored {
    versioned: Versioned,
    stamp: Stamp,
    /// Upper bound on the encoded size of this entry as a [`DeltaEntry`].
    size_bound: usize,
    /// When a tombstone may be collected.
    tombstone_expires: Option<Instant>,
}

/// The replicated store of one node. See the module docs.
#[derive(Debug, Clone)]
pub struct GossipState {
    me: NodeName,
    limits: StateLimits,
    entries: BTreeMap<String, Stored>,
    live: usize,
    /// Wrapping sum of per-entry hashes of `(key, stamp)`: equal states have equal
    /// fingerprints whatever order they were built in.
    fingerprint: u64,
    /// No tombstone expires before this (so `gc` is O(1) while nothing is due).
    next_gc: Option<Instant>,
    stats: StateStats,
}

fn entry_hash(key: &str, stamp: &Stamp) -> u64 {
    let mut h = StableHasher::new();
    h.write(key.as_bytes());
    h.write(&[0]);
    h.write(&stamp.sum.to_le_bytes());
    h.write(stamp.writer.as_str().as_bytes());
    h.write(&stamp.fingerprint.to_le_bytes());
    h.finish()
}

fn size_bound(key: &str, v: &Versioned) -> usize {
    let clock: usize = v.version.clock.iter().map(|(n, _)| INT + n.as_str().len() + INT).sum();
    INT + key.len()
        + 1
        + INT
        + v.value.as_ref().map_or(0, Bytes::len)
        + INT
        + clock
        + INT
        + v.version.writer.as_str().len()
        + 8
}

fn digest_row_bound(key: &str, stamp: &Stamp) -> usize {
    INT + key.len() + INT + INT + stamp.writer.as_str().len() + INT + 1
}

impl GossipState {
    /// An empty store for node `me`.
    pub fn new(me: NodeName, limits: StateLimits) -> Self {
        Self {
            me,
            limits,
            entries: BTreeMap::new(),
            live: 0,
            fingerprint: 0,
            next_gc: None,
            stats: StateStats::default(),
        }
    }

    /// The local node.
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// The bounds.
    pub fn limits(&self) -> &StateLimits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> StateStats {
        self.stats
    }

    /// The live value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.entries.get(key).and_then(|s| s.versioned.value.as_ref())
    }

    /// The version held for `key`, tombstone or live.
    pub fn get_versioned(&self, key: &str) -> Option<&Versioned> {
        self.entries.get(key).map(|s| &s.versioned)
    }

    /// Live `(key, value)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> + '_ {
        self.entries.iter().filter_map(|(k, s)| s.versioned.value.as_ref().map(|v| (k.as_str(), v)))
    }

    /// Live pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Bytes)> + 'a {
        self.entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter_map(|(k, s)| s.versioned.value.as_ref().map(|v| (k.as_str(), v)))
    }

    /// Every entry, tombstones included, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Versioned)> + '_ {
        self.entries.iter().map(|(k, s)| (k.as_str(), &s.versioned))
    }

    /// A copy of the live contents.
    pub fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect()
    }

    /// Keys held, tombstones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Live keys.
    pub fn live_len(&self) -> usize {
        self.live
    }

    /// Order-independent fingerprint of every `(key, version)` held, tombstones included.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    // ------------------------------------------------------------ local writes

    /// Writes `value` under `key` as this node, after every version of it held here.
    pub fn put(&mut self, key: impl Into<String>, value: impl Into<Bytes>, now: Instant) -> Result<Change, StateError> {
        let value = value.into();
        if value.len() > self.limits.max_value_bytes {
            return Err(StateError::ValueTooLarge { len: value.len(), limit: self.limits.max_value_bytes });
        }
        self.write_local(key.into(), Some(value), None, now)
    }

    /// Deletes `key` (leaves a tombstone). `Ok(None)` when there was no live value.
    pub fn delete(&mut self, key: &str, now: Instant) -> Result<Option<Change>, StateError> {
        match self.entries.get(key) {
            Some(s) if !s.versioned.is_tombstone() => self.write_local(key.to_owned(), None, None, now).map(Some),
            _ => Ok(None),
        }
    }

    /// Re-writes this node's `value` (or tombstone) for `key` with a clock that dominates
    /// both what is held now and `seen`: how a restarted node makes its fresh writes win
    /// over versions its previous incarnation wrote with the same counters.
    pub(crate) fn reassert(
        &mut self,
        key: String,
        value: Option<Bytes>,
        seen: &VectorClock,
        now: Instant,
    ) -> Result<Change, StateError> {
        self.write_local(key, value, Some(seen), now)
    }

    fn write_local(
        &mut self,
        key: String,
        value: Option<Bytes>,
        seen: Option<&VectorClock>,
        now: Instant,
    ) -> Result<Change, StateError> {
        self.check_key(&key)?;
        let previous = self.entries.get(&key).map(|s| s.versioned.clone());
        if previous.is_none() && self.entries.len() >= self.limits.max_keys {
            return Err(StateError::TooManyKeys { limit: self.limits.max_keys });
        }
        let mut clock = previous.as_ref().map(|p| p.version.clock.clone()).unwrap_or_default();
        if let Some(seen) = seen {
            clock.merge(seen);
        }
        clock.increment(&self.me)?;
        if clock.len() > self.limits.max_clock_entries {
            return Err(StateError::ClockTooLarge { len: clock.len(), limit: self.limits.max_clock_entries });
        }
        let current = Versioned { version: Version { clock, writer: self.me.clone() }, value };
        debug_assert!(
            previous.as_ref().is_none_or(|p| current.resolution_cmp(p).is_gt()),
            "a local write must win over what it overwrites"
        );
        self.store(key.clone(), current.clone(), now);
        Ok(Change { key, previous, current })
    }

    fn check_key(&self, key: &str) -> Result<(), StateError> {
        if key.is_empty() {
            return Err(StateError::EmptyKey);
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(StateError::KeyTooLong { len: key.len(), limit: self.limits.max_key_bytes });
        }
        Ok(())
    }

    /// Inserts or replaces, keeping `live` and `fingerprint` in step.
    fn store(&mut self, key: String, versioned: Versioned, now: Instant) {
        let stamp = versioned.stamp();
        let hash = entry_hash(&key, &stamp);
        let tombstone_expires = versioned.is_tombstone().then(|| now + self.limits.tombstone_ttl);
        if let Some(t) = tombstone_expires {
            self.next_gc = Some(self.next_gc.map_or(t, |g| g.min(t)));
        }
        let stored = Stored { size_bound: size_bound(&key, &versioned), versioned, stamp, tombstone_expires };
        let live = !stored.versioned.is_tombstone();
        if let Some(old) = self.entries.insert(key.clone(), stored) {
            self.fingerprint = self.fingerprint.wrapping_sub(entry_hash(&key, &old.stamp));
            if !old.versioned.is_tombstone() {
                self.live -= 1;
            }
        }
        self.fingerprint = self.fingerprint.wrapping_add(hash);
        if live {
            self.live += 1;
        }
        debug_assert!(self.entries.len() <= self.limits.max_keys);
        debug_assert!(self.live <= self.entries.len());
    }

    // ------------------------------------------------------------ merging

    /// Merges remote versions; returns the entries that changed the state (those that
    /// won the resolution order against what was held).
    pub fn apply(&mut self, delta: Delta, now: Instant) -> Vec<Change> {
        delta.entries.into_iter().filter_map(|e| self.apply_entry(e, now)).collect()
    }

    /// Merges one remote version.
    pub fn apply_entry(&mut self, entry: DeltaEntry, now: Instant) -> Option<Change> {
        if !self.is_valid(&entry) {
            self.stats.rejected_invalid += 1;
            return None;
        }
        let DeltaEntry { key, versioned } = entry;
        let incoming_stamp = versioned.stamp();
        let previous = match self.entries.get(&key) {
            Some(held) => {
                if !versioned.resolution_cmp_with(&incoming_stamp, &held.versioned, &held.stamp).is_gt() {
                    self.stats.stale += 1;
                    return None;
                }
                Some(held.versioned.clone())
            }
            None => {
                if self.entries.len() >= self.limits.max_keys {
                    self.stats.rejected_full += 1;
                    return None;
                }
                None
            }
        };
        self.stats.applied += 1;
        self.store(key.clone(), versioned.clone(), now);
        Some(Change { key, previous, current: versioned })
    }

    fn is_valid(&self, e: &DeltaEntry) -> bool {
        let v = &e.versioned;
        !e.key.is_empty()
            && e.key.len() <= self.limits.max_key_bytes
            && v.value.as_ref().is_none_or(|b| b.len() <= self.limits.max_value_bytes)
            && v.version.clock.len() <= self.limits.max_clock_entries
            && v.version.clock.get(&v.version.writer) > 0
    }

    /// Drops tombstones whose lifetime has passed; returns how many.
    pub fn gc(&mut self, now: Instant) -> usize {
        if self.next_gc.is_none_or(|t| t > now) {
            return 0;
        }
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        for (k, s) in &self.entries {
            match s.tombstone_expires {
                Some(t) if t <= now => expired.push(k.clone()),
                Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
        self.next_gc = next;
        for key in &expired {
            if let Some(old) = self.entries.remove(key) {
                self.fingerprint = self.fingerprint.wrapping_sub(entry_hash(key, &old.stamp));
            }
        }
        self.stats.tombstones_collected += expired.len() as u64;
        expired.len()
    }

    // ------------------------------------------------------------ anti-entropy

    /// Digest rows for every key, in one digest (may exceed the message budget; the
    /// protocol uses [`digest_page`](Self::digest_page)).
    pub fn digest(&self) -> Digest {
        Digest { start: None, end: None, entries: self.entries.iter().map(|(k, s)| row(k, s)).collect() }
    }

    /// Digest rows from `start` (inclusive; `None`: the first key) for as many keys as
    /// fit in the part budget. The page's `end` is where the next page starts (`None`
    /// when the page reaches the last key).
    pub fn digest_page(&self, start: Option<&str>) -> Digest {
        let lower = start.map_or(Bound::Unbounded, Bound::Included);
        // Vec length, both range bounds (the end is a key not known yet: reserve the longest).
        let mut used = INT + 2 * (1 + INT) + start.map_or(0, str::len) + self.limits.max_key_bytes;
        let mut entries = Vec::new();
        let mut end = None;
        for (k, s) in self.entries.range::<str, _>((lower, Bound::Unbounded)) {
            let size = digest_row_bound(k, &s.stamp);
            if used + size > self.limits.part_budget_bytes && !entries.is_empty() {
                end = Some(k.clone());
                break;
            }
            used += size;
            entries.push(row(k, s));
        }
        Digest { start: start.map(str::to_owned), end, entries }
    }

    /// The entries in the digest's range that its sender lacks or holds an older version
    /// of, in chunks that each fit the part budget. Tombstones are only sent for keys the
    /// peer listed (see the module docs).
    pub fn delta_for(&self, digest: &Digest) -> Vec<Delta> {
        let Some(bounds) = digest.bounds() else { return Vec::new() };
        let theirs: HashMap<&str, &DigestEntry> = digest.entries.iter().map(|d| (d.key.as_str(), d)).collect();
        let wanted = self.entries.range::<str, _>(bounds).filter(|(k, s)| match theirs.get(k.as_str()) {
            Some(d) => s.stamp > d.stamp,
            None => !s.versioned.is_tombstone(),
        });
        self.chunk(wanted)
    }

    /// Keys of the digest for which its sender holds a newer version than ours (or one we
    /// lack, tombstones excepted), as many as fit the part budget.
    pub fn request_for(&self, digest: &Digest) -> Vec<String> {
        let mut used = INT;
        let mut keys = Vec::new();
        for d in &digest.entries {
            if d.key.is_empty() || d.key.len() > self.limits.max_key_bytes {
                continue;
            }
            let behind = match self.entries.get(&d.key) {
                Some(s) => d.stamp > s.stamp,
                None => !d.deleted,
            };
            if behind {
                used += INT + d.key.len();
                if used > self.limits.part_budget_bytes {
                    break;
                }
                keys.push(d.key.clone());
            }
        }
        keys
    }

    /// The entries held for `keys` (tombstones included), in chunks that each fit the
    /// part budget. Unknown keys are skipped.
    pub fn delta_for_keys(&self, keys: &[String]) -> Vec<Delta> {
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        self.chunk(keys.into_iter().filter_map(|k| self.entries.get_key_value(k)))
    }

    /// The entry for `key` as it would travel in a delta or rumor.
    pub fn delta_entry(&self, key: &str) -> Option<DeltaEntry> {
        self.entries.get(key).map(|s| DeltaEntry { key: key.to_owned(), versioned: s.versioned.clone() })
    }

    /// Worst-case encoded size of an entry.
    pub fn entry_size_bound(entry: &DeltaEntry) -> usize {
        size_bound(&entry.key, &entry.versioned)
    }

    fn chunk<'a>(&self, entries: impl Iterator<Item = (&'a String, &'a Stored)>) -> Vec<Delta> {
        let mut chunks = Vec::new();
        let mut current = Delta::default();
        let mut used = INT;
        for (k, s) in entries {
            if used + s.size_bound > self.limits.part_budget_bytes && !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                used = INT;
            }
            used += s.size_bound;
            current.entries.push(DeltaEntry { key: k.clone(), versioned: s.versioned.clone() });
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
    }
}

fn row(key: &str, s: &Stored) -> DigestEntry {
    DigestEntry { key: key.to_owned(), stamp: s.stamp.clone(), deleted: s.versioned.is_tombstone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::Codec;
    use proptest::prelude::*;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn state(me: &str) -> GossipState {
        GossipState::new(n(me), StateLimits::default())
    }

    /// Brings `to` up to date with `from` through one full anti-entropy exchange
    /// (digest → delta + request → delta), as the protocol does.
    fn sync(from: &GossipState, to: &mut GossipState, now: Instant) {
        let digest = to.digest();
        for d in from.delta_for(&digest) {
            to.apply(d, now);
        }
        let back = to.request_for(&from.digest());
        assert!(back.is_empty(), "after taking from's delta, `to` is not behind: {back:?}");
    }

    /// A local put is readable, versioned by this node, and a second put dominates it.
    #[test]
    fn put_get_delete() {
        let now = Instant::now();
        let mut s = state("a");
        let c1 = s.put("k", &b"v1"[..], now).unwrap();
        assert_eq!(s.get("k").unwrap().as_ref(), b"v1");
        assert_eq!(c1.current.version.clock.get(&n("a")), 1);
        let c2 = s.put("k", &b"v2"[..], now).unwrap();
        assert!(c2.current.version.clock.dominates(&c1.current.version.clock));
        let del = s.delete("k", now).unwrap().unwrap();
        assert!(del.current.is_tombstone());
        assert_eq!(s.get("k"), None);
        assert_eq!((s.len(), s.live_len()), (1, 0));
        assert_eq!(s.delete("k", now).unwrap(), None);
        assert_eq!(s.delete("missing", now).unwrap(), None);
    }

    /// Keys, values and the key count are bounded, with typed errors.
    #[test]
    fn local_writes_are_bounded() {
        let now = Instant::now();
        let limits = StateLimits { max_keys: 2, max_key_bytes: 4, max_value_bytes: 3, ..StateLimits::default() };
        let mut s = GossipState::new(n("a"), limits);
        assert_eq!(s.put("", &b""[..], now), Err(StateError::EmptyKey));
        assert!(matches!(s.put("12345", &b""[..], now), Err(StateError::KeyTooLong { len: 5, limit: 4 })));
        assert!(matches!(s.put("k", &b"1234"[..], now), Err(StateError::ValueTooLarge { .. })));
        s.put("a", &b"1"[..], now).unwrap();
        s.put("b", &b"1"[..], now).unwrap();
        assert_eq!(s.put("c", &b"1"[..], now), Err(StateError::TooManyKeys { limit: 2 }));
        s.put("a", &b"2"[..], now).unwrap(); // existing keys can still change
    }

    /// Remote entries that are malformed or overflow the store are refused and counted.
    #[test]
    fn bad_remote_entries_are_refused() {
        let now = Instant::now();
        let mut a = state("a");
        let good = a.put("k", &b"v"[..], now).unwrap().current;
        let mut b = GossipState::new(n("b"), StateLimits { max_keys: 1, ..StateLimits::default() });
        let forged = Versioned { version: Version { clock: VectorClock::new(), writer: n("x") }, value: None };
        b.apply(
            Delta {
                entries: vec![
                    DeltaEntry { key: String::new(), versioned: good.clone() },
                    DeltaEntry { key: "f".into(), versioned: forged },
                    DeltaEntry { key: "k".into(), versioned: good.clone() },
                    DeltaEntry { key: "k2".into(), versioned: good },
                ],
            },
            now,
        );
        let st = b.stats();
        assert_eq!((st.applied, st.rejected_invalid, st.rejected_full), (1, 2, 1));
    }

    /// Anti-entropy in both directions makes two diverged replicas equal, and concurrent
    /// writes to one key resolve the same way on both.
    #[test]
    fn anti_entropy_reconciles_two_replicas() {
        let now = Instant::now();
        let (mut a, mut b) = (state("a"), state("b"));
        a.put("only-a", &b"1"[..], now).unwrap();
        b.put("only-b", &b"2"[..], now).unwrap();
        a.put("both", &b"from-a"[..], now).unwrap();
        b.put("both", &b"from-b"[..], now).unwrap();
        let snapshot_a = a.clone();
        sync(&b, &mut a, now);
        sync(&snapshot_a, &mut b, now);
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.get("both").unwrap().as_ref(), b"from-b"); // equal sums: "b" > "a"
        assert_eq!(a.live_len(), 3);
    }

    /// A delete reaches a replica holding the value; a replica without the key is not
    /// sent the tombstone, and one that collected its tombstone does not ask for it back.
    #[test]
    fn tombstones_travel_only_where_needed_and_expire() {
        let t0 = Instant::now();
        let (mut a, mut b, mut c) = (state("a"), state("b"), state("c"));
        a.put("k", &b"v"[..], t0).unwrap();
        sync(&a, &mut b, t0);
        a.delete("k", t0).unwrap();
        sync(&a, &mut b, t0);
        assert_eq!(b.get("k"), None);
        assert!(b.get_versioned("k").unwrap().is_tombstone());
        assert!(a.delta_for(&c.digest()).is_empty(), "no tombstone for a key c never had");
        sync(&a, &mut c, t0);
        assert!(c.is_empty());
        let later = t0 + StateLimits::default().tombstone_ttl;
        assert_eq!(a.gc(later), 1);
        assert!(a.is_empty());
        assert!(a.request_for(&b.digest()).is_empty(), "a does not fetch the collected tombstone back");
        assert_eq!(a.stats().tombstones_collected, 1);
    }

    /// A digest walked page by page covers every key once, and deltas and digests stay
    /// under the budget when encoded.
    #[test]
    fn pages_and_chunks_respect_the_budget() {
        let now = Instant::now();
        let limits = StateLimits { part_budget_bytes: 2048, max_value_bytes: 700, ..StateLimits::default() };
        let mut a = GossipState::new(n("a"), limits.clone());
        for i in 0..200 {
            a.put(format!("key-{i:04}"), vec![i as u8; 300], now).unwrap();
        }
        let codec = Codec::default();
        let mut seen = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = a.digest_page(start.as_deref());
            assert!(codec.encode(&page).unwrap().len() <= limits.part_budget_bytes);
            seen.extend(page.entries.iter().map(|e| e.key.clone()));
            match page.end {
                Some(e) => start = Some(e),
                None => break,
            }
        }
        assert_eq!(seen, a.entries().map(|(k, _)| k.to_owned()).collect::<Vec<_>>());
        let empty = GossipState::new(n("b"), limits.clone());
        let chunks = a.delta_for(&empty.digest());
        assert!(chunks.len() > 20);
        let mut b = empty;
        for c in chunks {
            assert!(codec.encode(&c).unwrap().len() <= limits.part_budget_bytes);
            b.apply(c, now);
        }
        assert_eq!(a.snapshot(), b.snapshot());
    }

    /// A digest with an inverted range is answered with nothing, not a panic.
    #[test]
    fn inverted_digest_range_is_harmless() {
        let mut a = state("a");
        a.put("m", &b"1"[..], Instant::now()).unwrap();
        let d = Digest { start: Some("z".into()), end: Some("a".into()), entries: vec![] };
        assert!(a.delta_for(&d).is_empty());
    }

    // ------------------------------------------------------------ merge properties

    #[derive(Debug, Clone)]
    enum Op {
        Put(usize, usize, u8),
        Delete(usize, usize),
        /// Writer `.0` merges writer `.1`'s state (so later writes are causally after).
        Sync(usize, usize),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, 0..3usize, any::<u8>()).prop_map(|(w, k, v)| Op::Put(w, k, v)),
            1 => (0..3usize, 0..3usize).prop_map(|(w, k)| Op::Delete(w, k)),
            2 => (0..3usize, 0..3usize).prop_map(|(a, b)| Op::Sync(a, b)),
        ]
    }

    /// Runs writers through `ops`; returns every version any of them produced.
    fn produce(ops: &[Op]) -> Vec<DeltaEntry> {
        let now = Instant::now();
        let mut writers: Vec<GossipState> = (0..3).map(|i| state(&format!("w{i}"))).collect();
        let mut produced = Vec::new();
        for op in ops {
            match *op {
                Op::Put(w, k, v) => {
                    let c = writers[w].put(format!("k{k}"), vec![v], now).unwrap();
                    produced.push(DeltaEntry { key: c.key, versioned: c.current });
                }
                Op::Delete(w, k) => {
                    if let Some(c) = writers[w].delete(&format!("k{k}"), now).unwrap() {
                        produced.push(DeltaEntry { key: c.key, versioned: c.current });
                    }
                }
                Op::Sync(a, b) if a != b => {
                    let delta = Delta {
                        entries: writers[b]
                            .entries()
                            .map(|(k, v)| DeltaEntry { key: k.to_owned(), versioned: v.clone() })
                            .collect(),
                    };
                    writers[a].apply(delta, now);
                }
                Op::Sync(..) => {}
            }
        }
        produced
    }

    fn full_state(s: &GossipState) -> Vec<(String, Versioned)> {
        s.entries().map(|(k, v)| (k.to_owned(), v.clone())).collect()
    }

    proptest! {
        /// The headline property: replicas that receive the same set of versions in any
        /// order, any batching and with any duplication end in the same state, and that
        /// state holds, per key, the maximum of the resolution order.
        #[test]
        fn any_order_and_duplication_converges(
            ops in proptest::collection::vec(arb_op(), 1..40),
            deliveries in proptest::collection::vec(
                (any::<u64>(), 1..5usize), 3..6),
        ) {
            use rand::{SeedableRng, seq::SliceRandom, Rng as _};
            let now = Instant::now();
            let versions = produce(&ops);
            let mut expected: BTreeMap<String, Versioned> = BTreeMap::new();
            for e in &versions {
                match expected.get(&e.key) {
                    Some(v) if v.resolution_cmp(&e.versioned).is_ge() => {}
                    _ => { expected.insert(e.key.clone(), e.versioned.clone()); }
                }
            }
            let mut results = Vec::new();
            for (seed, dup) in deliveries {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
                let mut stream: Vec<DeltaEntry> = versions.to_vec();
                for _ in 1..dup {
                    stream.extend(versions.iter().filter(|_| rng.random_bool(0.5)).cloned());
                }
                stream.shuffle(&mut rng);
                let mut replica = state("r");
                let mut rest = stream.as_slice();
                while !rest.is_empty() {
                    let take = rng.random_range(1..=rest.len().min(7));
                    replica.apply(Delta { entries: rest[..take].to_vec() }, now);
                    rest = &rest[take..];
                }
                results.push(replica);
            }
            let want: Vec<(String, Versioned)> = expected.into_iter().collect();
            for r in &results {
                prop_assert_eq!(&full_state(r), &want);
                prop_assert_eq!(r.fingerprint(), results[0].fingerprint());
            }
        }

        /// Merge laws on single versions: commutative, associative, idempotent.
        #[test]
        fn merge_is_a_semilattice(ops in proptest::collection::vec(arb_op(), 1..30), picks in proptest::collection::vec(any::<prop::sample::Index>(), 3)) {
            let now = Instant::now();
            let versions: Vec<DeltaEntry> = produce(&ops).into_iter().map(|mut e| { e.key = "k".into(); e }).collect();
            prop_assume!(!versions.is_empty());
            let pick = |i: &prop::sample::Index| versions[i.index(versions.len())].clone();
            let (x, y, z) = (pick(&picks[0]), pick(&picks[1]), pick(&picks[2]));
            let merged = |order: &[&DeltaEntry]| {
                let mut s = state("r");
                for e in order { s.apply_entry((*e).clone(), now); }
                full_state(&s)
            };
            prop_assert_eq!(merged(&[&x, &y]), merged(&[&y, &x]));
            prop_assert_eq!(merged(&[&x, &y, &z]), merged(&[&z, &y, &x]));
            prop_assert_eq!(merged(&[&x, &y, &z]), merged(&[&y, &z, &x]));
            prop_assert_eq!(merged(&[&x, &x]), merged(&[&x]));
        }
    }
}
