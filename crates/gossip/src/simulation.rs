//! [`Simulation`]: many [`Gossip`] state machines in lock-step rounds, without actors,
//! threads or a real clock: deterministic for a seed.
//!
//! Each [`round`](Simulation::round) advances simulated time by one gossip interval,
//! sends heartbeats when due, ticks every running node in a random order, and delivers
//! messages (and the messages they cause) until none is in flight. Faults are injected
//! between rounds: partitions, stopped nodes, and *chaos* (each message dropped,
//! duplicated or delivered out of order with given probabilities). Used by the protocol
//! tests and by the convergence benchmark's pure variant, which counts rounds without
//! scheduling noise.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use erlmcp_flow_core::{Codec, NodeName};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::config::{ConfigError, GossipConfig};
use crate::membership::ReachabilityKind;
use crate::message::GossipMessage;
use crate::protocol::{Command, Gossip};
use crate::state::StateError;

/// Cap on deliveries in one round (a protocol bug must fail a test, not hang it).
const MAX_DELIVERIES_PER_ROUND: usize = 10_000_000;

/// Per-message fault probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Chaos {
    /// Probability a message is lost.
    pub drop: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Deliver in random order instead of FIFO.
    pub reorder: bool,
}

/// Deterministic multi-node gossip without actors. See the module docs.
#[derive(Debug)]
pub struct Simulation {
    nodes: BTreeMap<NodeName, Gossip>,
    names: Vec<NodeName>,
    stopped: HashSet<NodeName>,
    groups: HashMap<NodeName, usize>,
    chaos: Chaos,
    codec: Option<Codec>,
    rng: SmallRng,
    now: Instant,
    next_heartbeat: Instant,
    interval: Duration,
    heartbeat_interval: Duration,
    rounds: u64,
    delivered: u64,
    dropped: u64,
}

impl Simulation {
    /// `n` fully connected nodes `node-00`, `node-01`, … with `config`, all randomness from
    /// `seed`.
    pub fn new(n: usize, config: GossipConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let names: Vec<NodeName> =
            (0..n).map(|i| NodeName::new(format!("node-{i:02}")).expect("valid node name")).collect();
        let now = Instant::now();
        let mut nodes = BTreeMap::new();
        for me in &names {
            let mut g = Gossip::new(me.clone(), config.clone(), 1)?;
            for peer in names.iter().filter(|p| *p != me) {
                g.add_peer(peer, now)
                    .map_err(|e| ConfigError::Invalid { field: "max_peers", reason: e.to_string() })?;
            }
            nodes.insert(me.clone(), g);
        }
        Ok(Self {
            nodes,
            names,
            stopped: HashSet::new(),
            groups: HashMap::new(),
            chaos: Chaos::default(),
            codec: None,
            rng: SmallRng::seed_from_u64(seed),
            now,
            next_heartbeat: now,
            interval: config.interval(),
            heartbeat_interval: config.heartbeat_interval(),
            rounds: 0,
            delivered: 0,
            dropped: 0,
        })
    }

    /// Sends every message through `codec` (encode, check the limit, decode).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Node names, in order.
    pub fn names(&self) -> &[NodeName] {
        &self.names
    }

    /// A node's protocol state.
    pub fn node(&self, name: &NodeName) -> &Gossip {
        &self.nodes[name]
    }

    /// Simulated now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Rounds run.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Messages delivered and dropped so far.
    pub fn traffic(&self) -> (u64, u64) {
        (self.delivered, self.dropped)
    }

    /// Writes on `node`.
    pub fn put(&mut self, node: &NodeName, key: &str, value: impl Into<Bytes>) -> Result<(), StateError> {
        let now = self.now;
        let g = self.nodes.get_mut(node).expect("known node");
        g.put(key, value, now)?;
        Ok(())
    }

    /// Deletes on `node`.
    pub fn delete(&mut self, node: &NodeName, key: &str) -> Result<(), StateError> {
        let now = self.now;
        self.nodes.get_mut(node).expect("known node").delete(key, now)?;
        Ok(())
    }

    /// Splits the nodes into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[&[NodeName]]) {
        self.groups.clear();
        for (i, g) in groups.iter().enumerate() {
            for n in *g {
                self.groups.insert(n.clone(), i);
            }
        }
    }

    /// Removes partitions and chaos.
    pub fn heal(&mut self) {
        self.groups.clear();
        self.chaos = Chaos::default();
    }

    /// Sets per-message faults.
    pub fn set_chaos(&mut self, chaos: Chaos) {
        self.chaos = chaos;
    }

    /// Stops a node: it no longer ticks, sends or receives (a crash or SIGSTOP).
    pub fn stop(&mut self, node: &NodeName) {
        self.stopped.insert(node.clone());
    }

    /// Restarts a stopped node with its state intact (SIGCONT).
    pub fn resume(&mut self, node: &NodeName) {
        self.stopped.remove(node);
    }

    fn can_talk(&self, a: &NodeName, b: &NodeName) -> bool {
        !self.stopped.contains(a)
            && !self.stopped.contains(b)
            && match (self.groups.get(a), self.groups.get(b)) {
                (Some(x), Some(y)) => x == y,
                _ => true,
            }
    }

    /// One round: time moves one interval, heartbeats go out when due, every running node
    /// ticks (random order), and messages are delivered until none is in flight.
    pub fn round(&mut self) {
        self.rounds += 1;
        self.now += self.interval;
        let mut queue: VecDeque<(NodeName, NodeName, GossipMessage)> = VecDeque::new();
        let mut order: Vec<NodeName> = self.names.iter().filter(|n| !self.stopped.contains(*n)).cloned().collect();
        while self.next_heartbeat <= self.now {
            for name in &order {
                let cmds = self.nodes.get_mut(name).expect("known node").heartbeat_tick(self.now);
                Self::collect(name, cmds, &mut queue);
            }
            self.next_heartbeat += self.heartbeat_interval;
        }
        order.shuffle(&mut self.rng);
        for name in &order {
            let now = self.now;
            let cmds = self.nodes.get_mut(name).expect("known node").tick(now, &mut self.rng);
            Self::collect(name, cmds, &mut queue);
        }
        let mut deliveries = 0usize;
        while !queue.is_empty() {
            let next = if self.chaos.reorder {
                let i = self.rng.random_range(0..queue.len());
                queue.remove(i)
            } else {
                queue.pop_front()
            };
            let Some((from, to, message)) = next else { break };
            deliveries += 1;
            assert!(deliveries < MAX_DELIVERIES_PER_ROUND, "message storm: the protocol does not quiesce");
            if !self.can_talk(&from, &to) || self.rng.random_bool(self.chaos.drop.clamp(0.0, 1.0)) {
                self.dropped += 1;
                continue;
            }
            let message = match &self.codec {
                None => message,
                Some(codec) => {
                    let bytes = message.encode(codec).expect("every protocol message fits max_message_bytes");
                    GossipMessage::decode(codec, &bytes).expect("round trip")
                }
            };
            let copies = if self.rng.random_bool(self.chaos.duplicate.clamp(0.0, 1.0)) { 2 } else { 1 };
            for _ in 0..copies {
                self.delivered += 1;
                let now = self.now;
                let cmds = self.nodes.get_mut(&to).expect("known node").handle(&from, message.clone(), now);
                Self::collect(&to, cmds, &mut queue);
            }
        }
    }

    fn collect(from: &NodeName, cmds: Vec<Command>, queue: &mut VecDeque<(NodeName, NodeName, GossipMessage)>) {
        for c in cmds {
            if let Command::Send { to, message } = c {
                queue.push_back((from.clone(), to, message));
            }
        }
    }

    /// Runs rounds until `done` holds (checked before each round) or `max_rounds` ran;
    /// returns the rounds it took.
    pub fn run_until(&mut self, max_rounds: u64, mut done: impl FnMut(&Simulation) -> bool) -> Option<u64> {
        let start = self.rounds;
        loop {
            if done(self) {
                return Some(self.rounds - start);
            }
            if self.rounds - start >= max_rounds {
                return None;
            }
            self.round();
        }
    }

    /// True when every running node holds a live value for `key`.
    pub fn all_have(&self, key: &str) -> bool {
        self.running().all(|g| g.state().get(key).is_some())
    }

    /// True when every running node has the same live contents.
    pub fn converged(&self) -> bool {
        let mut it = self.running();
        let Some(first) = it.next() else { return true };
        let want = first.state().snapshot();
        it.all(|g| g.state().snapshot() == want)
    }

    /// True when every running node sees every other running node as `kind`.
    pub fn all_see(&self, kind: ReachabilityKind) -> bool {
        self.running().all(|g| {
            g.report(self.now)
                .peers
                .iter()
                .filter(|p| !self.stopped.contains(&p.peer))
                .all(|p| p.reachability.kind() == kind)
        })
    }

    fn running(&self) -> impl Iterator<Item = &Gossip> + '_ {
        self.nodes.iter().filter(|(n, _)| !self.stopped.contains(*n)).map(|(_, g)| g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sim(n: usize, seed: u64) -> Simulation {
        let cfg = GossipConfig::default();
        Simulation::new(n, cfg, seed).unwrap().with_codec(Codec::new(GossipConfig::default().max_message_bytes))
    }

    /// An update from one of 60 nodes reaches all of them within 2⌈log₂ 60⌉ = 12 rounds
    /// (the benchmark target), for every one of 50 seeds.
    #[test]
    fn sixty_nodes_converge_within_the_round_target() {
        // Heartbeats off the critical path: one every 10 s.
        let cfg = GossipConfig { heartbeat_interval_ms: 10_000, ..GossipConfig::default() };
        for seed in 0..50 {
            let mut s = Simulation::new(60, cfg.clone(), seed).unwrap().with_codec(Codec::new(cfg.max_message_bytes));
            let origin = s.names()[seed as usize % 60].clone();
            s.put(&origin, "k", &b"v"[..]).unwrap();
            let rounds = s.run_until(100, |s| s.all_have("k")).expect("converges");
            assert!(rounds <= 12, "seed {seed}: {rounds} rounds");
        }
    }

    /// Anti-entropy alone (rumors off) also converges, just more slowly.
    #[test]
    fn anti_entropy_alone_converges() {
        let cfg = GossipConfig { rumor_ttl: 0, ..GossipConfig::default() };
        let mut s = Simulation::new(30, cfg, 9).unwrap();
        let origin = s.names()[0].clone();
        s.put(&origin, "k", &b"v"[..]).unwrap();
        assert!(s.run_until(50, |s| s.all_have("k")).is_some());
    }

    /// Partition: each side converges on its own writes only; after the heal every node
    /// agrees, and concurrent writes to one key resolve to the same winner everywhere.
    #[test]
    fn partition_diverges_then_heals() {
        let mut s = sim(10, 3);
        let names = s.names().to_vec();
        let (left, right) = names.split_at(5);
        s.partition(&[left, right]);
        // Wait until each side has noticed the other is unreachable.
        let now_unreachable = |s: &Simulation| {
            left.iter().all(|a| {
                let r = s.node(a).report(s.now());
                right.iter().all(|b| r.peer(b).unwrap().reachability.kind() == ReachabilityKind::Unreachable)
            })
        };
        assert!(s.run_until(100, now_unreachable).is_some());
        s.put(&left[0], "left", &b"L"[..]).unwrap();
        s.put(&right[0], "right", &b"R"[..]).unwrap();
        s.put(&left[1], "both", &b"from-left"[..]).unwrap();
        s.put(&right[1], "both", &b"from-right"[..]).unwrap();
        for _ in 0..20 {
            s.round();
        }
        assert!(
            left.iter().all(|n| s.node(n).state().get("left").is_some() && s.node(n).state().get("right").is_none())
        );
        assert!(
            right.iter().all(|n| s.node(n).state().get("right").is_some() && s.node(n).state().get("left").is_none())
        );
        assert!(!s.converged());
        s.heal();
        assert!(s.run_until(100, |s| s.converged() && s.all_have("left") && s.all_have("right")).is_some());
        assert!(s.run_until(100, |s| s.all_see(ReachabilityKind::Up)).is_some());
        let winner = s.node(&names[0]).state().get("both").unwrap().clone();
        assert_eq!(winner.as_ref(), b"from-right"); // equal histories: writer node-06 > node-01
    }

    /// A stopped (frozen) node is seen unreachable by all others within 2 s of simulated
    /// time at 100 ms heartbeats; after it resumes it is Up again everywhere.
    #[test]
    fn frozen_node_detected_within_two_seconds() {
        let mut s = sim(8, 4);
        for _ in 0..30 {
            s.round(); // 3 s of regular heartbeats
        }
        let frozen = s.names()[3].clone();
        s.stop(&frozen);
        let stopped_at = s.now();
        let seen = |s: &Simulation| {
            s.names().iter().filter(|n| **n != frozen).all(|n| {
                s.node(n).report(s.now()).peer(&frozen).unwrap().reachability.kind() == ReachabilityKind::Unreachable
            })
        };
        s.run_until(100, seen).expect("detected");
        assert!(s.now() - stopped_at <= Duration::from_secs(2), "took {:?}", s.now() - stopped_at);
        s.resume(&frozen);
        assert!(s.run_until(20, |s| s.all_see(ReachabilityKind::Up)).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever messages are lost, duplicated or reordered while nodes write, once the
        /// faults stop every node converges to the same state, deletes included.
        #[test]
        fn converges_after_any_faults(
            seed in any::<u64>(),
            drop in 0.0f64..0.6,
            duplicate in 0.0f64..0.5,
            writes in proptest::collection::vec((0usize..6, 0usize..4, any::<u8>(), any::<bool>()), 1..30),
        ) {
            let mut s = Simulation::new(6, GossipConfig::default(), seed).unwrap();
            s.set_chaos(Chaos { drop, duplicate, reorder: true });
            let names = s.names().to_vec();
            for (i, (node, key, value, delete)) in writes.into_iter().enumerate() {
                let key = format!("k{key}");
                if delete { s.delete(&names[node], &key).unwrap(); } else { s.put(&names[node], &key, vec![value]).unwrap(); }
                if i % 3 == 0 { s.round(); }
            }
            s.heal();
            prop_assert!(s.run_until(60, |s| s.converged()).is_some());
        }
    }
}
