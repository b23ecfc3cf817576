//! [`Gossip`]: the gossip protocol as a synchronous state machine (events in, commands out).
//!
//! It owns the node's [`GossipState`], its [`Membership`] view and the queue of pending
//! rumors. It never does I/O and never reads a clock or a random source: the shell (the
//! [`GossipActor`](crate::GossipActor), a simulation, a test) passes `now` and an RNG in and
//! executes the returned [`Command`]s.
//!
//! **Dissemination** combines the two classic epidemic modes (Demers et al., "Epidemic
//! Algorithms for Replicated Database Maintenance", PODC 1987):
//!
//! * *rumor mongering*: a local write becomes a rumor with `rumor_ttl` hops (default 5).
//!   Each [`tick`](Gossip::tick) attaches the pending rumors to the round's messages; a
//!   receiver whose state the rumor improved queues it again with one hop less. Fresh
//!   updates so reach most nodes in a few rounds without waiting for digests to differ.
//! * *push-pull anti-entropy*: every [`tick`](Gossip::tick) sends a `Syn` carrying one
//!   digest page to `fanout` random reachable peers (default 3); the peer answers with
//!   what the sender lacks and what it wants (`Ack`), and the sender completes with
//!   `Ack2`. Anti-entropy guarantees convergence whatever rumors were lost: push-pull
//!   spreads an update to all N nodes in O(log N) rounds (Karp et al., "Randomized Rumor
//!   Spreading", FOCS 2000).
//!
//! **Heartbeats** are direct messages, not gossip state: every
//! [`heartbeat_tick`](Gossip::heartbeat_tick) sends `Heartbeat { incarnation, seq }` to
//! every peer that has not left, and each arrival feeds that peer's phi-accrual detector.
//! Direct heartbeats measure exactly what reachability means (can *I* hear *you*), with
//! regular inter-arrival times; heartbeats relayed through gossip would measure gossip
//! path delays and hide a partition behind a third node. The cost is one small message
//! per peer per interval.
//!
//! **Restarts.** A node that restarts with an empty store reuses clock counters its
//! previous incarnation already spent; its fresh writes can then lose to the old ones.
//! When a merge replaces a version this node wrote with another version *also written by
//! this node* (which only happens after such a restart), the node re-asserts its current
//! value with a clock that dominates both, as SWIM refutes a suspicion by raising its
//! incarnation. Keys the node no longer writes keep the old incarnation's values until
//! overwritten or deleted.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use erlmcp_flow_core::NodeName;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::config::{ConfigError, GossipConfig};
use crate::membership::{Membership, MembershipChange, MembershipError, MembershipReport};
use crate::message::{GossipMessage, Heartbeat, Rumor};
use crate::state::{Change, Delta, GossipState, StateError, StateLimits};

/// What the shell must do after feeding an event to [`Gossip`].
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send `message` to `to` (best effort: gossip tolerates loss).
    Send {
        /// The peer.
        to: NodeName,
        /// The message.
        message: GossipMessage,
    },
    /// The replicated state changed (a local write or a merged remote version).
    Changed(Change),
    /// A peer's reachability changed.
    Membership(MembershipChange),
}

/// Protocol counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Gossip rounds run.
    pub rounds: u64,
    /// Messages emitted, by kind.
    pub syn_sent: u64,
    /// Acks emitted.
    pub ack_sent: u64,
    /// Ack2s emitted.
    pub ack2_sent: u64,
    /// Heartbeats emitted.
    pub heartbeats_sent: u64,
    /// Rumors that improved local state and were queued onwards.
    pub rumors_forwarded: u64,
    /// Pending rumors dropped because the queue was full.
    pub rumors_dropped: u64,
    /// Versions of this node's keys re-asserted after a restart (see the module docs).
    pub reasserted: u64,
    /// Reply chunks not sent because of `max_reply_messages` (sent in a later round).
    pub reply_chunks_deferred: u64,
    /// Rumors refused for exceeding the per-message budget.
    pub rumors_refused: u64,
}

/// The gossip protocol of one node. See the module docs.
#[derive(Debug)]
pub struct Gossip {
    me: NodeName,
    incarnation: u64,
    config: GossipConfig,
    state: GossipState,
    membership: Membership,
    /// Pending rumors, oldest first, at most one per key.
    rumors: VecDeque<Rumor>,
    /// Where the next digest page starts.
    cursor: Option<String>,
    heartbeat_seq: u64,
    stats: GossipStats,
}

impl Gossip {
    /// A node named `me` with the given configuration. `incarnation` must grow across
    /// restarts of the same node (a start timestamp will do); peers reset their failure
    /// detector for it when it does.
    pub fn new(me: NodeName, config: GossipConfig, incarnation: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let state = GossipState::new(me.clone(), StateLimits::from_config(&config));
        let membership =
            Membership::new(me.clone(), config.phi(), config.failure_detector.suspect_threshold, config.max_peers);
        Ok(Self {
            me,
            incarnation,
            config,
            state,
            membership,
            rumors: VecDeque::new(),
            cursor: None,
            heartbeat_seq: 0,
            stats: GossipStats::default(),
        })
    }

    /// This node.
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The configuration.
    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    /// The replicated state.
    pub fn state(&self) -> &GossipState {
        &self.state
    }

    /// The reachability view.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Membership, reachability and φ per peer at `now`.
    pub fn report(&self, now: Instant) -> MembershipReport {
        self.membership.report(now)
    }

    /// Counters.
    pub fn stats(&self) -> GossipStats {
        self.stats
    }

    /// Rumors waiting for the next round.
    pub fn pending_rumors(&self) -> usize {
        self.rumors.len()
    }

    // ------------------------------------------------------------ peers

    /// Adds a peer to gossip with and watch.
    pub fn add_peer(&mut self, peer: &NodeName, now: Instant) -> Result<Vec<Command>, MembershipError> {
        Ok(self.membership.add_peer(peer, now)?.map(Command::Membership).into_iter().collect())
    }

    /// Forgets a peer.
    pub fn remove_peer(&mut self, peer: &NodeName) -> Vec<Command> {
        self.membership.remove_peer(peer).map(Command::Membership).into_iter().collect()
    }

    /// The transport opened a session to `peer` (added if unknown). Also sends it a
    /// `Syn` at once, so a reconnected peer catches up without waiting to be picked.
    pub fn peer_connected(&mut self, peer: &NodeName, now: Instant) -> Result<Vec<Command>, MembershipError> {
        let mut out: Vec<Command> =
            self.membership.peer_connected(peer, now)?.map(Command::Membership).into_iter().collect();
        let digest = self.state.digest_page(None);
        self.stats.syn_sent += 1;
        out.push(Command::Send { to: peer.clone(), message: GossipMessage::Syn { digest, rumors: Vec::new() } });
        Ok(out)
    }

    /// The transport lost its session to `peer`: it is unreachable at once.
    pub fn peer_disconnected(&mut self, peer: &NodeName, now: Instant) -> Vec<Command> {
        self.membership.peer_disconnected(peer, now).map(Command::Membership).into_iter().collect()
    }

    /// Tells every peer this node is leaving.
    pub fn leave(&mut self) -> Vec<Command> {
        self.membership.present().into_iter().map(|to| Command::Send { to, message: GossipMessage::Leave }).collect()
    }

    // ------------------------------------------------------------ local writes

    /// Writes `key` locally; the update spreads as a rumor and through anti-entropy.
    pub fn put(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        now: Instant,
    ) -> Result<Vec<Command>, StateError> {
        let change = self.state.put(key, value, now)?;
        self.enqueue_local(&change.key);
        Ok(vec![Command::Changed(change)])
    }

    /// Deletes `key` locally (a tombstone that spreads like a write).
    pub fn delete(&mut self, key: &str, now: Instant) -> Result<Vec<Command>, StateError> {
        let Some(change) = self.state.delete(key, now)? else { return Ok(Vec::new()) };
        self.enqueue_local(&change.key);
        Ok(vec![Command::Changed(change)])
    }

    // ------------------------------------------------------------ timers

    /// One gossip round: collects expired tombstones, re-evaluates reachability, and
    /// sends a `Syn` (the next digest page and the pending rumors) to `fanout` random
    /// reachable peers (any present peer when none is reachable).
    pub fn tick<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) -> Vec<Command> {
        self.stats.rounds += 1;
        self.state.gc(now);
        let mut out: Vec<Command> = self.membership.evaluate(now).into_iter().map(Command::Membership).collect();
        let mut candidates = self.membership.reachable();
        if candidates.is_empty() {
            candidates = self.membership.present();
        }
        let targets: Vec<NodeName> = candidates.choose_multiple(rng, self.config.fanout).cloned().collect();
        if targets.is_empty() {
            return out;
        }
        let digest = self.state.digest_page(self.cursor.as_deref());
        self.cursor = digest.end.clone();
        let rumors = self.take_rumors();
        for to in targets {
            self.stats.syn_sent += 1;
            out.push(Command::Send {
                to,
                message: GossipMessage::Syn { digest: digest.clone(), rumors: rumors.clone() },
            });
        }
        out
    }

    /// Sends this node's next heartbeat to every peer that has not left, and re-evaluates
    /// reachability.
    pub fn heartbeat_tick(&mut self, now: Instant) -> Vec<Command> {
        self.heartbeat_seq += 1;
        let hb = Heartbeat { incarnation: self.incarnation, seq: self.heartbeat_seq };
        let mut out: Vec<Command> = self.membership.evaluate(now).into_iter().map(Command::Membership).collect();
        for to in self.membership.present() {
            self.stats.heartbeats_sent += 1;
            out.push(Command::Send { to, message: GossipMessage::Heartbeat(hb) });
        }
        out
    }

    // ------------------------------------------------------------ messages

    /// Handles a message from `from` (as identified by the transport).
    pub fn handle(&mut self, from: &NodeName, message: GossipMessage, now: Instant) -> Vec<Command> {
        if from == &self.me {
            return Vec::new();
        }
        let mut out = Vec::new();
        match message {
            GossipMessage::Syn { digest, rumors } => {
                self.receive_rumors(rumors, now, &mut out);
                let mut chunks = self.state.delta_for(&digest).into_iter();
                let request = self.state.request_for(&digest);
                let first = chunks.next().unwrap_or_default();
                if !first.is_empty() || !request.is_empty() {
                    self.stats.ack_sent += 1;
                    out.push(Command::Send { to: from.clone(), message: GossipMessage::Ack { delta: first, request } });
                    self.send_chunks(from, chunks, self.config.max_reply_messages - 1, &mut out);
                }
            }
            GossipMessage::Ack { delta, request } => {
                self.merge(delta, now, &mut out);
                if !request.is_empty() {
                    let chunks = self.state.delta_for_keys(&request);
                    self.send_chunks(from, chunks.into_iter(), self.config.max_reply_messages, &mut out);
                }
            }
            GossipMessage::Ack2 { delta } => self.merge(delta, now, &mut out),
            GossipMessage::Heartbeat(hb) => {
                out.extend(self.membership.heartbeat(from, hb, now).map(Command::Membership));
            }
            GossipMessage::Leave => out.extend(self.membership.peer_left(from, now).map(Command::Membership)),
        }
        out
    }

    fn send_chunks(
        &mut self,
        to: &NodeName,
        chunks: impl Iterator<Item = Delta>,
        limit: usize,
        out: &mut Vec<Command>,
    ) {
        for (i, delta) in chunks.enumerate() {
            if i >= limit {
                self.stats.reply_chunks_deferred += 1;
                continue;
            }
            self.stats.ack2_sent += 1;
            out.push(Command::Send { to: to.clone(), message: GossipMessage::Ack2 { delta } });
        }
    }

    /// Merges a delta from anti-entropy.
    fn merge(&mut self, delta: Delta, now: Instant, out: &mut Vec<Command>) {
        for entry in delta.entries {
            if let Some(change) = self.state.apply_entry(entry, now) {
                self.after_merge(change, now, out);
            }
        }
    }

    fn receive_rumors(&mut self, rumors: Vec<Rumor>, now: Instant, out: &mut Vec<Command>) {
        let budget = self.config.part_budget();
        let mut used = 0usize;
        for rumor in rumors {
            used += GossipState::entry_size_bound(&rumor.entry) + 1;
            if used > budget {
                self.stats.rumors_refused += 1;
                continue;
            }
            let ttl = rumor.ttl;
            if let Some(change) = self.state.apply_entry(rumor.entry, now) {
                let key = change.key.clone();
                if self.after_merge(change, now, out) && ttl > 1 {
                    self.stats.rumors_forwarded += 1;
                    self.enqueue_rumor(&key, ttl - 1);
                }
            }
        }
    }

    /// Emits the change, or re-asserts this node's value when the merge replaced one of
    /// its own writes with another of its own (a previous incarnation's). Returns false
    /// when it re-asserted.
    fn after_merge(&mut self, change: Change, now: Instant, out: &mut Vec<Command>) -> bool {
        let mine = |v: &crate::Versioned| v.version.writer == self.me;
        if mine(&change.current) && change.previous.as_ref().is_some_and(mine) {
            let value = change.previous.as_ref().and_then(|p| p.value.clone());
            match self.state.reassert(change.key.clone(), value, &change.current.version.clock, now) {
                Ok(reasserted) => {
                    self.stats.reasserted += 1;
                    tracing::info!(key = %reasserted.key, "re-asserted a key an earlier incarnation of this node wrote");
                    self.enqueue_local(&reasserted.key);
                    return false;
                }
                Err(e) => tracing::warn!(key = %change.key, error = %e, "cannot re-assert a key"),
            }
        }
        out.push(Command::Changed(change));
        true
    }

    fn enqueue_local(&mut self, key: &str) {
        if self.config.rumor_ttl > 0 {
            self.enqueue_rumor(key, self.config.rumor_ttl);
        }
    }

    /// Queues the current entry of `key` as a rumor with `ttl` hops, replacing a pending
    /// rumor for the same key (keeping the larger ttl).
    fn enqueue_rumor(&mut self, key: &str, ttl: u8) {
        let Some(entry) = self.state.delta_entry(key) else { return };
        let ttl = match self.rumors.iter().position(|r| r.entry.key == key) {
            Some(i) => self.rumors.remove(i).map_or(ttl, |old| old.ttl.max(ttl)),
            None => ttl,
        };
        if self.rumors.len() >= self.config.max_pending_rumors {
            self.rumors.pop_front();
            self.stats.rumors_dropped += 1;
        }
        self.rumors.push_back(Rumor { entry, ttl });
        debug_assert!(self.rumors.len() <= self.config.max_pending_rumors);
    }

    /// Pending rumors that fit half a message, oldest first.
    fn take_rumors(&mut self) -> Vec<Rumor> {
        let budget = self.config.part_budget();
        let mut used = 10usize;
        let mut out = Vec::new();
        while let Some(r) = self.rumors.front() {
            let size = GossipState::entry_size_bound(&r.entry) + 1;
            if used + size > budget {
                break;
            }
            used += size;
            out.extend(self.rumors.pop_front());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::Codec;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::time::Duration;

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn node(name: &str, peers: &[&str], now: Instant) -> Gossip {
        let mut g = Gossip::new(n(name), GossipConfig::default(), 1).unwrap();
        for p in peers {
            g.add_peer(&n(p), now).unwrap();
        }
        g
    }

    fn sends(cmds: &[Command]) -> Vec<(NodeName, GossipMessage)> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Send { to, message } => Some((to.clone(), message.clone())),
                _ => None,
            })
            .collect()
    }

    /// A tick sends one Syn to each of `fanout` distinct peers, carrying the local
    /// write as a rumor with the configured ttl; the same seed picks the same peers.
    #[test]
    fn tick_sends_syn_with_rumors_to_fanout_peers() {
        let now = Instant::now();
        let peers = ["b", "c", "d", "e", "f"];
        let pick = |seed| {
            let mut a = node("a", &peers, now);
            a.put("k", &b"v"[..], now).unwrap();
            sends(&a.tick(now, &mut SmallRng::seed_from_u64(seed)))
        };
        let out = pick(7);
        assert_eq!(out.len(), 3);
        let mut targets: Vec<_> = out.iter().map(|(to, _)| to.clone()).collect();
        targets.dedup();
        assert_eq!(targets.len(), 3);
        for (_, m) in &out {
            let GossipMessage::Syn { digest, rumors } = m else { panic!("not a syn: {m:?}") };
            assert_eq!(digest.entries.len(), 1);
            assert_eq!((rumors.len(), rumors[0].ttl), (1, 5));
        }
        assert_eq!(pick(7), out);
    }

    /// The three-way exchange: B answers A's Syn with what A lacks and a request for what
    /// B lacks; A answers the request with Ack2; both then hold both keys.
    #[test]
    fn syn_ack_ack2_reconciles() {
        let now = Instant::now();
        let cfg = GossipConfig { rumor_ttl: 0, ..GossipConfig::default() }; // anti-entropy only
        let mut a = Gossip::new(n("a"), cfg.clone(), 1).unwrap();
        let mut b = Gossip::new(n("b"), cfg, 1).unwrap();
        a.add_peer(&n("b"), now).unwrap();
        b.add_peer(&n("a"), now).unwrap();
        a.put("from-a", &b"1"[..], now).unwrap();
        b.put("from-b", &b"2"[..], now).unwrap();
        let syn = sends(&a.tick(now, &mut SmallRng::seed_from_u64(1)));
        assert_eq!(syn.len(), 1);
        let ack = sends(&b.handle(&n("a"), syn[0].1.clone(), now));
        let GossipMessage::Ack { delta, request } = &ack[0].1 else { panic!() };
        assert_eq!(delta.entries[0].key, "from-b");
        assert_eq!(request, &vec!["from-a".to_owned()]);
        let ack2 = sends(&a.handle(&n("b"), ack[0].1.clone(), now));
        assert!(matches!(ack2[0].1, GossipMessage::Ack2 { .. }));
        let changed = b.handle(&n("a"), ack2[0].1.clone(), now);
        assert!(matches!(&changed[0], Command::Changed(c) if c.key == "from-a"));
        assert_eq!(a.state().snapshot(), b.state().snapshot());
        // In sync: a Syn gets no answer.
        let syn = sends(&a.tick(now, &mut SmallRng::seed_from_u64(2)));
        assert!(b.handle(&n("a"), syn[0].1.clone(), now).is_empty());
    }

    /// A rumor that improves the receiver's state is forwarded with ttl − 1 on its next
    /// round; a duplicate, or one arriving with ttl 1, is not.
    #[test]
    fn rumors_forward_with_decreasing_ttl() {
        let now = Instant::now();
        let mut a = node("a", &["b"], now);
        let mut b = node("b", &["a", "c"], now);
        a.put("k", &b"v"[..], now).unwrap();
        let syn = sends(&a.tick(now, &mut SmallRng::seed_from_u64(1))).remove(0).1;
        b.handle(&n("a"), syn.clone(), now);
        assert_eq!(b.pending_rumors(), 1);
        let out = sends(&b.tick(now, &mut SmallRng::seed_from_u64(1)));
        let GossipMessage::Syn { rumors, .. } = &out[0].1 else { panic!() };
        assert_eq!(rumors[0].ttl, 4);
        b.handle(&n("a"), syn, now); // duplicate: no improvement, no forwarding
        assert_eq!(b.pending_rumors(), 0);
        let mut c = node("c", &["b"], now);
        let last_hop = GossipMessage::Syn {
            digest: Default::default(),
            rumors: vec![Rumor { entry: a.state().delta_entry("k").unwrap(), ttl: 1 }],
        };
        c.handle(&n("b"), last_hop, now);
        assert_eq!((c.pending_rumors(), c.state().get("k").is_some()), (0, true));
    }

    /// Heartbeats go to every present peer with increasing sequence numbers, and their
    /// arrival keeps the sender Up at the receiver; silence makes it unreachable.
    #[test]
    fn heartbeats_feed_the_detector() {
        let t0 = Instant::now();
        let mut a = node("a", &["b", "c"], t0);
        let mut b = node("b", &["a"], t0);
        let hb = Duration::from_millis(100);
        for i in 1..=10u32 {
            let out = sends(&a.heartbeat_tick(t0 + hb * i));
            assert_eq!(out.len(), 2);
            let to_b = out.into_iter().find(|(to, _)| to == &n("b")).unwrap().1;
            assert_eq!(to_b, GossipMessage::Heartbeat(Heartbeat { incarnation: 1, seq: u64::from(i) }));
            assert!(b.handle(&n("a"), to_b, t0 + hb * i).is_empty());
        }
        let later = t0 + hb * 10 + Duration::from_secs(3);
        let changes: Vec<_> = b
            .heartbeat_tick(later)
            .into_iter()
            .filter_map(|c| match c {
                Command::Membership(m) => m.to,
                _ => None,
            })
            .collect();
        assert_eq!(changes, vec![crate::Reachability::Unreachable(crate::UnreachableCause::Phi)]);
        assert_eq!(b.report(later).unreachable(), vec![n("a")]);
    }

    /// A restarted node (same name, empty store, counters reused) whose fresh write loses
    /// to its previous incarnation's re-asserts it, and the fresh value wins everywhere.
    #[test]
    fn restarted_node_reasserts_its_writes() {
        let now = Instant::now();
        let mut old = node("a", &["b"], now);
        let mut b = node("b", &["a"], now);
        for v in 0..5u8 {
            old.put("a/agents", vec![v], now).unwrap();
        }
        let syn = sends(&old.tick(now, &mut SmallRng::seed_from_u64(1))).remove(0).1;
        b.handle(&n("a"), syn, now);
        assert_eq!(b.state().get("a/agents").unwrap().as_ref(), &[4]);

        let mut fresh = Gossip::new(n("a"), GossipConfig::default(), 2).unwrap();
        fresh.add_peer(&n("b"), now).unwrap();
        fresh.put("a/agents", &b"new"[..], now).unwrap();
        // b's Syn brings the old version to the fresh node, which re-asserts.
        let syn = sends(&b.tick(now, &mut SmallRng::seed_from_u64(1))).remove(0).1;
        let ack = sends(&fresh.handle(&n("b"), syn, now));
        for (_, m) in ack {
            for c in b.handle(&n("a"), m, now) {
                if let Command::Send { message, .. } = c {
                    fresh.handle(&n("b"), message, now);
                }
            }
        }
        assert_eq!(fresh.state().get("a/agents").unwrap().as_ref(), b"new");
        assert_eq!(fresh.stats().reasserted, 1);
        let syn = sends(&fresh.tick(now, &mut SmallRng::seed_from_u64(3))).remove(0).1;
        b.handle(&n("a"), syn, now);
        assert_eq!(b.state().get("a/agents").unwrap().as_ref(), b"new");
    }

    /// Every message the protocol emits encodes within `max_message_bytes`, even with
    /// a state many times that size and big rumor queues.
    #[test]
    fn every_message_fits_the_budget() {
        let now = Instant::now();
        let cfg = GossipConfig {
            max_message_bytes: 64 * 1024,
            max_value_bytes: 8 * 1024,
            max_clock_entries: 8,
            ..GossipConfig::default()
        };
        let codec = Codec::new(cfg.max_message_bytes);
        let mut a = Gossip::new(n("a"), cfg.clone(), 1).unwrap();
        let mut b = Gossip::new(n("b"), cfg, 1).unwrap();
        a.add_peer(&n("b"), now).unwrap();
        b.add_peer(&n("a"), now).unwrap();
        let pad = "x".repeat(250); // keys near max_key_bytes (256): digest pages and range bounds are full size
        for i in 0..300 {
            a.put(format!("a-{i:04}{pad}"), vec![1u8; 8 * 1024], now).unwrap();
            b.put(format!("b-{i:04}{pad}"), vec![2u8; 8 * 1024], now).unwrap();
        }
        let mut rng = SmallRng::seed_from_u64(5);
        let mut queue: VecDeque<(NodeName, NodeName, GossipMessage)> = VecDeque::new();
        let mut max_seen = 0;
        for _ in 0..200 {
            for g in [&mut a, &mut b] {
                for (to, m) in sends(&g.tick(now, &mut rng)) {
                    queue.push_back((g.me().clone(), to, m));
                }
            }
            while let Some((from, to, m)) = queue.pop_front() {
                let size = codec.encode(&m).expect("fits the budget").len();
                max_seen = max_seen.max(size);
                let g = if to == n("a") { &mut a } else { &mut b };
                for (next, msg) in sends(&g.handle(&from, m, now)) {
                    queue.push_back((to.clone(), next, msg));
                }
            }
            if a.state().fingerprint() == b.state().fingerprint() {
                break;
            }
        }
        assert_eq!(a.state().snapshot(), b.state().snapshot());
        assert!(max_seen > 16 * 1024, "the test did produce big messages ({max_seen} bytes)");
    }
}
