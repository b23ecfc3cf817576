//! Consistent hashing with virtual nodes (Karger et al., *Consistent Hashing and Random
//! Trees*, 1997), for session affinity: the same key goes to the same agent while it is
//! eligible, and adding or removing one of N agents moves only about 1/N of the keys.
//!
//! Each candidate gets `vnodes` points on a 64-bit ring, placed by a stable hash of its
//! id and the point number. A key (the task's affinity key, else its id) goes to the owner
//! of the first point clockwise from the key's hash; ineligible owners are skipped, which
//! moves only their keys. Rings are built once per candidate list and cached (a handful of
//! distinct capability queries are live at a time); a new registry epoch yields a new
//! candidate list and so a new ring.

use std::sync::Arc;

use erlmcp_flow_core::StrategyKind;
use erlmcp_flow_core::task::RoutingKey;
use erlmcp_flow_registry::{AgentEntry, Candidates, splitmix64, stable_hash};
use parking_lot::Mutex;
use rand::rngs::SmallRng;

use super::{Selection, Strategy};

/// Rings kept in the cache.
const CACHED_RINGS: usize = 16;

/// The ring for one candidate list.
#[derive(Debug)]
pub struct HashRing {
    points: Vec<(u64, u32)>,
}

impl HashRing {
    /// Builds the ring of `candidates` with `vnodes` points each.
    pub fn build(candidates: &[Arc<AgentEntry>], vnodes: u32) -> Self {
        let mut points = Vec::with_capacity(candidates.len() * vnodes as usize);
        for (i, e) in candidates.iter().enumerate() {
            let base = e.id_hash();
            for v in 0..u64::from(vnodes) {
                points.push((splitmix64(base ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15)), i as u32));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The first eligible owner clockwise from `key_hash`.
    pub fn lookup(&self, key_hash: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(h, _)| *h < key_hash);
        let n = self.points.len();
        let mut last_checked = u32::MAX;
        for k in 0..n {
            let owner = self.points[(start + k) % n].1;
            if owner == last_checked {
                continue;
            }
            if eligible(owner as usize) {
                return Some(owner as usize);
            }
            last_checked = owner;
        }
        None
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True for an empty ring.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Hash of a task's routing key.
pub fn key_hash(key: RoutingKey<'_>) -> u64 {
    match key {
        RoutingKey::Affinity(k) => stable_hash(k.as_bytes()),
        RoutingKey::Task(id) => stable_hash(id.as_uuid().as_bytes()),
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct ConsistentHash {
    vnodes: u32,
    cache: Mutex<Vec<(Candidates, Arc<HashRing>)>>,
}

impl ConsistentHash {
    /// With `vnodes` points per agent.
    pub fn new(vnodes: u32) -> Self {
        Self { vnodes: vnodes.max(1), cache: Mutex::new(Vec::new()) }
    }

    /// The (cached) ring of `candidates`.
    pub fn ring(&self, candidates: &Candidates) -> Arc<HashRing> {
        let mut cache = self.cache.lock();
        // Holding the `Candidates` Arc in the cache keeps its address unique while cached.
        if let Some(pos) = cache.iter().position(|(c, _)| Arc::ptr_eq(c, candidates)) {
            let hit = cache.remove(pos);
            let ring = hit.1.clone();
            cache.push(hit);
            return ring;
        }
        let ring = Arc::new(HashRing::build(candidates, self.vnodes));
        if cache.len() == CACHED_RINGS {
            cache.remove(0);
        }
        cache.push((candidates.clone(), ring.clone()));
        ring
    }
}

impl Strategy for ConsistentHash {
    fn kind(&self) -> StrategyKind {
        StrategyKind::ConsistentHash
    }

    fn select(&self, candidates: &Candidates, sel: &Selection<'_>, _rng: &mut SmallRng) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let ring = self.ring(candidates);
        ring.lookup(key_hash(sel.task.routing_key()), |i| (sel.eligible)(&candidates[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{candidates, task};
    use rand::SeedableRng;

    fn owners(c: &Candidates, ring: &HashRing, keys: &[u64], skip: Option<usize>) -> Vec<String> {
        keys.iter()
            .map(|k| {
                let i = ring.lookup(*k, |i| Some(i) != skip).unwrap();
                c[i].id.to_string()
            })
            .collect()
    }

    /// Removing one of N agents moves only that agent's keys (about 1/N of them); adding
    /// one moves about 1/(N+1) of the keys, all to the newcomer.
    #[tokio::test]
    async fn one_agent_change_remaps_about_one_nth() {
        const N: usize = 20;
        let all = candidates(N + 1).await;
        let keys: Vec<u64> = (0..20_000u64).map(|k| stable_hash(&k.to_le_bytes())).collect();
        let base: Candidates = all[..N].to_vec().into();
        let ring = HashRing::build(&base, 150);
        let before = owners(&base, &ring, &keys, None);

        // Remove agent 7 (it becomes ineligible, as when it dies or its breaker opens).
        let after = owners(&base, &ring, &keys, Some(7));
        let moved: Vec<usize> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
        assert!(moved.iter().all(|&i| before[i] == "agent-0007"), "only the removed agent's keys move");
        let frac = moved.len() as f64 / keys.len() as f64;
        assert!(frac > 0.5 / N as f64 && frac < 1.6 / N as f64, "removed: {frac}");

        // Add agent 20: a new candidate list, a new ring.
        let grown: Candidates = all.to_vec().into();
        let ring2 = HashRing::build(&grown, 150);
        let after = owners(&grown, &ring2, &keys, None);
        let moved: Vec<usize> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
        assert!(moved.iter().all(|&i| after[i] == "agent-0020"), "keys only move to the newcomer");
        let frac = moved.len() as f64 / keys.len() as f64;
        assert!(frac > 0.5 / (N + 1) as f64 && frac < 1.6 / (N + 1) as f64, "added: {frac}");
    }

    /// The same affinity key always lands on the same agent, and rings are cached.
    #[tokio::test]
    async fn affinity_is_sticky_and_rings_are_cached() {
        let c = candidates(10).await;
        let ch = ConsistentHash::new(150);
        let all = |_: &AgentEntry| true;
        let mut rng = SmallRng::seed_from_u64(1);
        let pick = |key: &str, rng: &mut SmallRng| {
            let t = task().with_affinity_key(key);
            let sel = Selection { task: &t, now_ns: 1, eligible: &all };
            ch.select(&c, &sel, rng).unwrap()
        };
        let first = pick("session-42", &mut rng);
        for _ in 0..10 {
            assert_eq!(pick("session-42", &mut rng), first);
        }
        assert!(Arc::ptr_eq(&ch.ring(&c), &ch.ring(&c)));
        let spread: std::collections::HashSet<_> = (0..200).map(|i| pick(&format!("s{i}"), &mut rng)).collect();
        assert!(spread.len() >= 8, "keys spread over agents: {}", spread.len());
    }
}
