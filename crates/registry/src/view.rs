//! The registry's shared read side.
//!
//! Reads never wait in a mailbox: lookups by id go to a sharded concurrent map
//! (`dashmap`, chosen over a single `RwLock<HashMap>` so readers on different cores do not
//! contend on one lock word), and capability/swarm queries read an index under a
//! read-mostly `RwLock`. Only the registry actor writes.
//!
//! Routing asks the same "agents with all of these capabilities (in this swarm)" question
//! for every task, so answers are cached per query as a shared `Arc<[Arc<AgentEntry>]>`,
//! tagged with the registry *epoch*. Every membership change bumps the epoch after the
//! index is updated; a reader tags its answer with the epoch it read *before* computing,
//! so an answer computed during a change is tagged stale and recomputed next time.
//!
//! Candidate lists include agents that are down while their supervisor restarts them
//! (see [`crate::entry`]); routing checks [`AgentEntry::is_alive`]. Every other read
//! (`get`, `all`, `find_by_capability`, swarm members, leaders) shows live agents only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use erlmcp_flow_core::hash::FoldBuildHasher;
use erlmcp_flow_core::{AgentId, Capability, CapabilitySet, NodeName, SwarmName};
use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::entry::AgentEntry;

/// A shared, cheaply cloned list of candidate agents, sorted by agent id.
pub type Candidates = Arc<[Arc<AgentEntry>]>;

/// A leadership change in a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChange {
    /// The swarm.
    pub swarm: SwarmName,
    /// The new leader; `None` when the swarm became empty.
    pub leader: Option<AgentId>,
}

#[derive(Debug, Default)]
struct Swarm {
    /// Members by registration order: the first is the oldest, and the leader.
    members: BTreeMap<u64, AgentId>,
}

#[derive(Debug, Default)]
struct Index {
    /// Agents per capability, sorted by id (so answers need no sorting).
    by_capability: HashMap<Capability, BTreeMap<AgentId, Arc<AgentEntry>>, FoldBuildHasher>,
    swarms: HashMap<SwarmName, Swarm, FoldBuildHasher>,
    /// Swarm memberships per agent.
    member_of: HashMap<AgentId, Vec<SwarmName>, FoldBuildHasher>,
}

#[derive(Debug, Clone)]
struct CachedAnswer {
    epoch: u64,
    agents: Candidates,
}

type QueryKey = (CapabilitySet, Option<SwarmName>);

/// The shared registry contents. Cloning the `Arc` is how readers get access.
#[derive(Debug)]
pub struct RegistryView {
    by_id: DashMap<AgentId, Arc<AgentEntry>, FoldBuildHasher>,
    index: RwLock<Index>,
    epoch: AtomicU64,
    cache: DashMap<QueryKey, CachedAnswer, FoldBuildHasher>,
    cache_limit: usize,
    leaders: broadcast::Sender<LeaderChange>,
    max_agents: usize,
    node: NodeName,
}

impl RegistryView {
    /// An empty registry holding at most `max_agents`, caching up to `cache_limit` queries.
    pub fn new(max_agents: usize, cache_limit: usize) -> Self {
        Self::for_node(NodeName::new("local").expect("valid name"), max_agents, cache_limit)
    }

    /// Like [`new`](Self::new) for node `node` (used to name local agents cluster-wide).
    pub fn for_node(node: NodeName, max_agents: usize, cache_limit: usize) -> Self {
        Self {
            node,
            by_id: DashMap::with_hasher(FoldBuildHasher),
            index: RwLock::new(Index::default()),
            epoch: AtomicU64::new(0),
            cache: DashMap::with_hasher(FoldBuildHasher),
            cache_limit: cache_limit.max(1),
            leaders: broadcast::channel(1024).0,
            max_agents,
        }
    }

    // ---------------------------------------------------------------- reads

    /// The live agent with this id.
    pub fn get(&self, id: &AgentId) -> Option<Arc<AgentEntry>> {
        self.entry(id).filter(|e| e.is_alive())
    }

    /// The entry for this id, live or down.
    pub fn entry(&self, id: &AgentId) -> Option<Arc<AgentEntry>> {
        self.by_id.get(id).map(|e| e.value().clone())
    }

    /// Number of live agents.
    pub fn len(&self) -> usize {
        self.by_id.iter().filter(|e| e.is_alive()).count()
    }

    /// Number of entries, live or down.
    pub fn entries_len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no live agent is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Membership epoch: changes whenever an agent is added or removed or changes swarms.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// All live agents, sorted by id.
    pub fn all(&self) -> Vec<Arc<AgentEntry>> {
        let mut v: Vec<_> = self.all_entries().into_iter().filter(|e| e.is_alive()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every entry, live or down, in no particular order.
    pub fn all_entries(&self) -> Vec<Arc<AgentEntry>> {
        self.by_id.iter().map(|e| e.value().clone()).collect()
    }

    /// Live agents having `cap`.
    pub fn find_by_capability(&self, cap: &Capability) -> Vec<Arc<AgentEntry>> {
        self.query(&CapabilitySet::from(vec![cap.clone()]), None).iter().filter(|e| e.is_alive()).cloned().collect()
    }

    /// Agents having *all* of `caps` (and in `swarm`, when given), sorted by id, including
    /// agents that are down while restarting. Cached; see the module docs. An empty `caps`
    /// matches every agent (of the swarm).
    pub fn query(&self, caps: &CapabilitySet, swarm: Option<&SwarmName>) -> Candidates {
        let epoch = self.epoch();
        let key = (caps.clone(), swarm.cloned());
        if let Some(hit) = self.cache.get(&key)
            && hit.epoch == epoch
        {
            return hit.agents.clone();
        }
        let agents = self.compute(caps, swarm);
        if self.cache.len() >= self.cache_limit {
            self.cache.clear();
        }
        let answer = CachedAnswer { epoch, agents: agents.clone() };
        self.cache
            .entry(key)
            .and_modify(|cur| {
                if cur.epoch <= epoch {
                    *cur = answer.clone();
                }
            })
            .or_insert(answer);
        agents
    }

    /// The same answer as [`query`](Self::query), computed from the index without the
    /// cache (for benchmarks and diagnostics).
    pub fn query_uncached(&self, caps: &CapabilitySet, swarm: Option<&SwarmName>) -> Candidates {
        self.compute(caps, swarm)
    }

    fn compute(&self, caps: &CapabilitySet, swarm: Option<&SwarmName>) -> Candidates {
        let index = self.index.read();
        // Iterate the smallest constraining set; each entry knows its own capabilities, so
        // the AND is a subset test per entry rather than a lookup per other set.
        let mut smallest: Option<&BTreeMap<AgentId, Arc<AgentEntry>>> = None;
        for cap in caps {
            match index.by_capability.get(cap) {
                Some(set) if smallest.is_none_or(|s| set.len() < s.len()) => smallest = Some(set),
                Some(_) => {}
                None => return Arc::from(Vec::new()),
            }
        }
        let members = match swarm {
            Some(s) => match index.swarms.get(s) {
                Some(sw) => Some(&sw.members),
                None => return Arc::from(Vec::new()),
            },
            None => None,
        };
        let in_swarm = |e: &AgentEntry| match swarm {
            None => true,
            Some(s) => index.member_of.get(&e.id).is_some_and(|of| of.contains(s)),
        };
        match (smallest, members) {
            (Some(set), m) if m.is_none_or(|m| set.len() <= m.len()) => {
                set.values().filter(|e| caps.is_subset_of(&e.capabilities) && in_swarm(e)).cloned().collect()
            }
            (_, Some(m)) => {
                let mut out: Vec<Arc<AgentEntry>> =
                    m.values().filter_map(|id| self.entry(id)).filter(|e| caps.is_subset_of(&e.capabilities)).collect();
                out.sort_by(|a, b| a.id.cmp(&b.id));
                out.into()
            }
            (_, None) => {
                let mut out: Vec<Arc<AgentEntry>> = self.by_id.iter().map(|e| e.value().clone()).collect();
                out.sort_by(|a, b| a.id.cmp(&b.id));
                out.into()
            }
        }
    }

    /// Live members of `swarm`, oldest first.
    pub fn swarm_members(&self, swarm: &SwarmName) -> Vec<Arc<AgentEntry>> {
        let index = self.index.read();
        index.swarms.get(swarm).map(|s| s.members.values().filter_map(|id| self.get(id)).collect()).unwrap_or_default()
    }

    /// Names of all swarms with at least one member.
    pub fn swarms(&self) -> Vec<SwarmName> {
        let mut v: Vec<_> = self.index.read().swarms.keys().cloned().collect();
        v.sort();
        v
    }

    /// Swarms `agent` belongs to.
    pub fn swarms_of(&self, agent: &AgentId) -> Vec<SwarmName> {
        self.index.read().member_of.get(agent).cloned().unwrap_or_default()
    }

    /// The node this registry belongs to.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The cluster-wide name of an entry: its node and its id on that node. Every node
    /// computes the same name for the same agent, which is what leader election needs.
    pub fn canonical_name(&self, e: &AgentEntry) -> (NodeName, AgentId) {
        match e.target() {
            crate::entry::AgentTarget::Local(_) => (self.node.clone(), e.id.clone()),
            crate::entry::AgentTarget::Remote(link) => (link.node().clone(), link.remote_id().clone()),
        }
    }

    /// The leader of `swarm`: the live member with the smallest cluster-wide name
    /// `(node, agent id)`. Deterministic, so every node whose view has converged agrees on
    /// it, and re-elected as soon as the leader goes down or leaves.
    pub fn leader(&self, swarm: &SwarmName) -> Option<AgentId> {
        let index = self.index.read();
        index
            .swarms
            .get(swarm)?
            .members
            .values()
            .filter_map(|id| self.get(id))
            .min_by(|a, b| self.canonical_name(a).cmp(&self.canonical_name(b)))
            .map(|e| e.id.clone())
    }

    /// Subscribes to leadership changes.
    pub fn subscribe_leaders(&self) -> broadcast::Receiver<LeaderChange> {
        self.leaders.subscribe()
    }

    // ---------------------------------------------------------------- writes (registry actor only)

    pub(crate) fn is_full(&self) -> bool {
        self.by_id.len() >= self.max_agents
    }

    pub(crate) fn max_agents(&self) -> usize {
        self.max_agents
    }

    pub(crate) fn insert(&self, entry: Arc<AgentEntry>) -> Option<Arc<AgentEntry>> {
        let old = self.remove_inner(&entry.id, None);
        {
            let mut index = self.index.write();
            for cap in &entry.capabilities {
                index.by_capability.entry(cap.clone()).or_default().insert(entry.id.clone(), entry.clone());
            }
            index.member_of.insert(entry.id.clone(), Vec::new());
            self.by_id.insert(entry.id.clone(), entry.clone());
            for s in &entry.initial_swarms {
                self.join_locked(&mut index, &entry, s);
            }
        }
        self.bump();
        old
    }

    /// Removes `id` if its current actor is `only_actor` (or unconditionally with `None`).
    pub(crate) fn remove(&self, id: &AgentId, only_actor: Option<ractor::ActorId>) -> Option<Arc<AgentEntry>> {
        let removed = self.remove_inner(id, only_actor);
        if removed.is_some() {
            self.bump();
        }
        removed
    }

    fn remove_inner(&self, id: &AgentId, only_actor: Option<ractor::ActorId>) -> Option<Arc<AgentEntry>> {
        let mut index = self.index.write();
        let entry = self.by_id.get(id)?.value().clone();
        if only_actor.is_some_and(|a| Some(a) != entry.actor_id()) {
            return None;
        }
        self.by_id.remove(id);
        for cap in &entry.capabilities {
            if let Some(set) = index.by_capability.get_mut(cap) {
                set.remove(id);
                if set.is_empty() {
                    index.by_capability.remove(cap);
                }
            }
        }
        for s in index.member_of.remove(id).unwrap_or_default() {
            self.leave_locked(&mut index, &entry, &s);
        }
        Some(entry)
    }

    pub(crate) fn join(&self, id: &AgentId, swarm: &SwarmName) -> bool {
        let Some(entry) = self.entry(id) else {
            return false;
        };
        {
            let mut index = self.index.write();
            self.join_locked(&mut index, &entry, swarm);
        }
        self.bump();
        true
    }

    pub(crate) fn leave(&self, id: &AgentId, swarm: &SwarmName) -> bool {
        let Some(entry) = self.entry(id) else {
            return false;
        };
        let left = {
            let mut index = self.index.write();
            let was = index
                .member_of
                .get_mut(id)
                .map(|v| {
                    let before = v.len();
                    v.retain(|s| s != swarm);
                    before != v.len()
                })
                .unwrap_or(false);
            if was {
                self.leave_locked(&mut index, &entry, swarm);
            }
            was
        };
        if left {
            self.bump();
        }
        left
    }

    fn join_locked(&self, index: &mut Index, entry: &AgentEntry, swarm: &SwarmName) {
        let of = index.member_of.entry(entry.id.clone()).or_default();
        if of.contains(swarm) {
            return;
        }
        of.push(swarm.clone());
        index.swarms.entry(swarm.clone()).or_default().members.insert(entry.seq, entry.id.clone());
    }

    fn leave_locked(&self, index: &mut Index, entry: &AgentEntry, swarm: &SwarmName) {
        let Some(sw) = index.swarms.get_mut(swarm) else {
            return;
        };
        sw.members.remove(&entry.seq);
        if sw.members.is_empty() {
            index.swarms.remove(swarm);
        }
    }

    pub(crate) fn publish_leader(&self, change: LeaderChange) {
        let _ = self.leaders.send(change);
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}
