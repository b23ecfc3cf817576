//! [`Membership`]: what this node knows about each peer's reachability.
//!
//! Reachability is an *observer's* view, as in Akka: "I cannot hear B" is what a
//! partition looks like from A, even if C hears B fine. Each peer is in one state:
//!
//! | state | when |
//! |---|---|
//! | `Up` | heartbeats arrive as expected (φ below `suspect_threshold`) |
//! | `Suspect(φ)` | heartbeats are late: `suspect_threshold ≤ φ < threshold` |
//! | `Unreachable(Phi)` | φ ≥ `threshold` (default 8): a frozen, overloaded or cut-off node |
//! | `Unreachable(Disconnected)` | the transport reported the session down; at once, no φ needed |
//! | `Left` | the peer said it is leaving |
//!
//! φ comes from one [`PhiAccrualDetector`] per peer, fed by direct heartbeats. A peer is
//! primed when added (as if a heartbeat had just arrived), so a peer that never speaks
//! becomes unreachable too. A reconnect resets the peer's history (the gap was the
//! disconnect, not a heartbeat interval), and a heartbeat with a higher incarnation (the
//! peer restarted) does the same. Stale or duplicated heartbeats (an `(incarnation, seq)`
//! not above the last one) are ignored, so reordering and duplication cannot fake
//! liveness or skew the intervals.
//!
//! [`Membership::evaluate`] recomputes every state at a given time and reports changes of
//! state kind (an Up → Suspect move, not every φ wiggle). [`Membership::report`] is what a
//! `flow status` command prints: per peer, its state, φ, connection flag, heartbeat count
//! and age.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use erlmcp_flow_core::NodeName;
use serde::Serialize;

use crate::message::Heartbeat;
use crate::phi::{PhiAccrualDetector, PhiConfig};

/// Why a peer is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreachableCause {
    /// φ reached the threshold.
    Phi,
    /// The transport reported the session down.
    Disconnected,
}

/// A peer's state as seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// Heartbeats arrive as expected.
    Up,
    /// Heartbeats are late; the φ at the last evaluation.
    Suspect(f64),
    /// Considered failed or cut off.
    Unreachable(UnreachableCause),
    /// Left the cluster on purpose.
    Left,
}

/// [`Reachability`] without its payload, for comparisons and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReachabilityKind {
    /// See [`Reachability::Up`].
    Up,
    /// See [`Reachability::Suspect`].
    Suspect,
    /// See [`Reachability::Unreachable`].
    Unreachable,
    /// See [`Reachability::Left`].
    Left,
}

impl Reachability {
    /// The state without payload.
    pub fn kind(&self) -> ReachabilityKind {
        match self {
            Reachability::Up => ReachabilityKind::Up,
            Reachability::Suspect(_) => ReachabilityKind::Suspect,
            Reachability::Unreachable(_) => ReachabilityKind::Unreachable,
            Reachability::Left => ReachabilityKind::Left,
        }
    }

    /// Up or merely suspect: worth gossiping with.
    pub fn is_reachable(&self) -> bool {
        matches!(self, Reachability::Up | Reachability::Suspect(_))
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reachability::Up => f.write_str("up"),
            Reachability::Suspect(phi) => write!(f, "suspect (phi {phi:.1})"),
            Reachability::Unreachable(UnreachableCause::Phi) => f.write_str("unreachable (phi)"),
            Reachability::Unreachable(UnreachableCause::Disconnected) => f.write_str("unreachable (disconnected)"),
            Reachability::Left => f.write_str("left"),
        }
    }
}

/// A peer moved from one state kind to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembershipChange {
    /// The peer.
    pub peer: NodeName,
    /// Its previous state (`None`: it was just added).
    pub from: Option<Reachability>,
    /// Its new state (`None`: it was removed).
    pub to: Option<Reachability>,
}

/// Why a peer could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The peer table is full.
    #[error("peer table holds its limit of {limit} peers")]
    TooManyPeers {
        /// The limit.
        limit: usize,
    },
    /// A node is not its own peer.
    #[error("{0} is this node")]
    IsSelf(NodeName),
}

#[derive(Debug, Clone)]
struct Peer {
    detector: PhiAccrualDetector,
    connected: bool,
    left: bool,
    status: Reachability,
    last: Option<Heartbeat>,
    heartbeats: u64,
}

/// One peer's line in a [`MembershipReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerReport {
    /// The peer.
    pub peer: NodeName,
    /// Its state now.
    pub reachability: Reachability,
    /// φ now.
    pub phi: f64,
    /// The transport's session flag.
    pub connected: bool,
    /// Heartbeats accepted from it.
    pub heartbeats: u64,
    /// Milliseconds since the last heartbeat (or since it was added, before any).
    pub last_heartbeat_ms_ago: Option<u64>,
    /// Its incarnation, once heard.
    pub incarnation: Option<u64>,
}

/// Membership, reachability and φ per peer, as seen by `node`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembershipReport {
    /// The observing node.
    pub node: NodeName,
    /// One line per peer, by name.
    pub peers: Vec<PeerReport>,
}

impl MembershipReport {
    /// Number of peers in each state kind.
    pub fn count(&self, kind: ReachabilityKind) -> usize {
        self.peers.iter().filter(|p| p.reachability.kind() == kind).count()
    }

    /// Peers this node cannot reach.
    pub fn unreachable(&self) -> Vec<NodeName> {
        self.peers
            .iter()
            .filter(|p| p.reachability.kind() == ReachabilityKind::Unreachable)
            .map(|p| p.peer.clone())
            .collect()
    }

    /// The line for `peer`.
    pub fn peer(&self, peer: &NodeName) -> Option<&PeerReport> {
        self.peers.iter().find(|p| &p.peer == peer)
    }
}

impl fmt::Display for MembershipReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "membership seen from {}: {} up, {} suspect, {} unreachable, {} left",
            self.node,
            self.count(ReachabilityKind::Up),
            self.count(ReachabilityKind::Suspect),
            self.count(ReachabilityKind::Unreachable),
            self.count(ReachabilityKind::Left)
        )?;
        writeln!(f, "{:<24} {:<28} {:>9} {:>10} {:>12}", "peer", "state", "phi", "heartbeats", "last hb (ms)")?;
        for p in &self.peers {
            let age = p.last_heartbeat_ms_ago.map_or_else(|| "-".to_owned(), |a| a.to_string());
            writeln!(
                f,
                "{:<24} {:<28} {:>9.2} {:>10} {:>12}",
                p.peer.as_str(),
                p.reachability.to_string(),
                p.phi,
                p.heartbeats,
                age
            )?;
        }
        Ok(())
    }
}

/// Per-peer reachability of one node. See the module docs.
#[derive(Debug, Clone)]
pub struct Membership {
    me: NodeName,
    phi: PhiConfig,
    suspect_threshold: f64,
    max_peers: usize,
    peers: BTreeMap<NodeName, Peer>,
    ignored_heartbeats: u64,
}

impl Membership {
    /// An empty view for node `me`.
    pub fn new(me: NodeName, phi: PhiConfig, suspect_threshold: f64, max_peers: usize) -> Self {
        Self { me, phi, suspect_threshold, max_peers, peers: BTreeMap::new(), ignored_heartbeats: 0 }
    }

    /// Adds `peer` (primed as if it had just sent a heartbeat). A peer that had left is
    /// taken back. Returns the change, `None` if it was already a member.
    pub fn add_peer(&mut self, peer: &NodeName, now: Instant) -> Result<Option<MembershipChange>, MembershipError> {
        if peer == &self.me {
            return Err(MembershipError::IsSelf(peer.clone()));
        }
        if let Some(p) = self.peers.get_mut(peer) {
            if !p.left {
                return Ok(None);
            }
            p.left = false;
            p.detector.reset();
            p.detector.heartbeat(now);
            return Ok(self.reevaluate(peer, now));
        }
        if self.peers.len() >= self.max_peers {
            return Err(MembershipError::TooManyPeers { limit: self.max_peers });
        }
        let mut detector = PhiAccrualDetector::new(self.phi.clone());
        detector.heartbeat(now);
        self.peers.insert(
            peer.clone(),
            Peer { detector, connected: true, left: false, status: Reachability::Up, last: None, heartbeats: 0 },
        );
        Ok(Some(MembershipChange { peer: peer.clone(), from: None, to: Some(Reachability::Up) }))
    }

    /// Forgets `peer`. Returns the change, `None` if it was not a member.
    pub fn remove_peer(&mut self, peer: &NodeName) -> Option<MembershipChange> {
        self.peers.remove(peer).map(|p| MembershipChange { peer: peer.clone(), from: Some(p.status), to: None })
    }

    /// A heartbeat from `peer` arrived at `now`.
    pub fn heartbeat(&mut self, peer: &NodeName, hb: Heartbeat, now: Instant) -> Option<MembershipChange> {
        let Some(p) = self.peers.get_mut(peer) else {
            self.ignored_heartbeats += 1;
            return None;
        };
        match p.last {
            Some(last) if hb <= last => {
                self.ignored_heartbeats += 1;
                return None;
            }
            Some(last) if hb.incarnation > last.incarnation => {
                // The peer restarted: its old history says nothing about the new process.
                p.detector.reset();
                p.left = false;
            }
            _ => {}
        }
        if p.left {
            // A leaver's late heartbeat (same incarnation) does not bring it back.
            self.ignored_heartbeats += 1;
            return None;
        }
        p.last = Some(hb);
        p.heartbeats += 1;
        p.detector.heartbeat(now);
        self.reevaluate(peer, now)
    }

    /// The transport opened a session to `peer` (adding it if unknown): its history
    /// restarts now.
    pub fn peer_connected(
        &mut self,
        peer: &NodeName,
        now: Instant,
    ) -> Result<Option<MembershipChange>, MembershipError> {
        if !self.peers.contains_key(peer) {
            return self.add_peer(peer, now);
        }
        let p = self.peers.get_mut(peer).expect("checked above");
        p.connected = true;
        p.detector.reset();
        p.detector.heartbeat(now);
        Ok(self.reevaluate(peer, now))
    }

    /// The transport lost its session to `peer`: unreachable at once.
    pub fn peer_disconnected(&mut self, peer: &NodeName, now: Instant) -> Option<MembershipChange> {
        self.peers.get_mut(peer)?.connected = false;
        self.reevaluate(peer, now)
    }

    /// `peer` announced it is leaving.
    pub fn peer_left(&mut self, peer: &NodeName, now: Instant) -> Option<MembershipChange> {
        self.peers.get_mut(peer)?.left = true;
        self.reevaluate(peer, now)
    }

    /// Recomputes every peer's state at `now`; returns the changes of state kind.
    pub fn evaluate(&mut self, now: Instant) -> Vec<MembershipChange> {
        let names: Vec<NodeName> = self.peers.keys().cloned().collect();
        names.iter().filter_map(|n| self.reevaluate(n, now)).collect()
    }

    fn reevaluate(&mut self, peer: &NodeName, now: Instant) -> Option<MembershipChange> {
        let status = self.status_at(peer, now)?;
        let p = self.peers.get_mut(peer)?;
        let before = std::mem::replace(&mut p.status, status);
        (before.kind() != status.kind()).then(|| MembershipChange {
            peer: peer.clone(),
            from: Some(before),
            to: Some(status),
        })
    }

    fn status_at(&self, peer: &NodeName, now: Instant) -> Option<Reachability> {
        let p = self.peers.get(peer)?;
        Some(if p.left {
            Reachability::Left
        } else if !p.connected {
            Reachability::Unreachable(UnreachableCause::Disconnected)
        } else {
            let phi = p.detector.phi(now);
            if phi >= self.phi.threshold {
                Reachability::Unreachable(UnreachableCause::Phi)
            } else if phi >= self.suspect_threshold {
                Reachability::Suspect(phi)
            } else {
                Reachability::Up
            }
        })
    }

    /// The state of `peer` at the last evaluation.
    pub fn status(&self, peer: &NodeName) -> Option<Reachability> {
        self.peers.get(peer).map(|p| p.status)
    }

    /// φ of `peer` at `now`.
    pub fn phi(&self, peer: &NodeName, now: Instant) -> Option<f64> {
        self.peers.get(peer).map(|p| p.detector.phi(now))
    }

    /// Every peer, by name.
    pub fn peers(&self) -> impl Iterator<Item = &NodeName> + '_ {
        self.peers.keys()
    }

    /// Number of peers (left ones included).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True without peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Peers Up or Suspect at the last evaluation, by name: gossip targets.
    pub fn reachable(&self) -> Vec<NodeName> {
        self.peers.iter().filter(|(_, p)| p.status.is_reachable()).map(|(n, _)| n.clone()).collect()
    }

    /// Peers that have not left, by name: heartbeat targets (unreachable ones included,
    /// so that they can see us again after a partition heals).
    pub fn present(&self) -> Vec<NodeName> {
        self.peers.iter().filter(|(_, p)| !p.left).map(|(n, _)| n.clone()).collect()
    }

    /// Heartbeats ignored: from unknown peers, stale or duplicated.
    pub fn ignored_heartbeats(&self) -> u64 {
        self.ignored_heartbeats
    }

    /// Membership, reachability and φ per peer at `now`.
    pub fn report(&self, now: Instant) -> MembershipReport {
        let peers = self
            .peers
            .iter()
            .map(|(name, p)| PeerReport {
                peer: name.clone(),
                reachability: self.status_at(name, now).unwrap_or(p.status),
                phi: p.detector.phi(now),
                connected: p.connected,
                heartbeats: p.heartbeats,
                last_heartbeat_ms_ago: p
                    .detector
                    .last_heartbeat()
                    .map(|t| now.saturating_duration_since(t).as_millis().min(u128::from(u64::MAX)) as u64),
                incarnation: p.last.map(|h| h.incarnation),
            })
            .collect();
        MembershipReport { node: self.me.clone(), peers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HB: Duration = Duration::from_millis(100);

    fn n(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn membership() -> Membership {
        Membership::new(n("me"), PhiConfig::default(), 3.0, 8)
    }

    fn hb(seq: u64) -> Heartbeat {
        Heartbeat { incarnation: 1, seq }
    }

    /// A silent peer goes Up → Suspect → Unreachable as φ grows, and comes back Up when
    /// its heartbeats resume.
    #[test]
    fn silence_degrades_then_heartbeats_restore() {
        let t0 = Instant::now();
        let mut m = membership();
        let b = n("b");
        m.add_peer(&b, t0).unwrap();
        for i in 1..=20u32 {
            assert_eq!(m.heartbeat(&b, hb(i.into()), t0 + HB * i), None);
        }
        let last = t0 + HB * 20;
        assert!(m.evaluate(last + HB).is_empty());
        let mut kinds = Vec::new();
        for step in 1..=30u32 {
            for c in m.evaluate(last + Duration::from_millis(100) * step) {
                kinds.push(c.to.unwrap().kind());
            }
        }
        assert_eq!(kinds, vec![ReachabilityKind::Suspect, ReachabilityKind::Unreachable]);
        assert_eq!(m.report(last + Duration::from_secs(3)).unreachable(), vec![b.clone()]);
        let back = last + Duration::from_secs(5);
        let change = m.heartbeat(&b, hb(21), back).unwrap();
        assert_eq!(change.to, Some(Reachability::Up));
    }

    /// A transport disconnect makes the peer unreachable immediately, whatever φ says;
    /// a reconnect makes it Up with a fresh history.
    #[test]
    fn disconnect_is_immediate() {
        let t0 = Instant::now();
        let mut m = membership();
        let b = n("b");
        m.add_peer(&b, t0).unwrap();
        let c = m.peer_disconnected(&b, t0).unwrap();
        assert_eq!(c.to, Some(Reachability::Unreachable(UnreachableCause::Disconnected)));
        assert!(m.reachable().is_empty());
        assert_eq!(m.present(), vec![b.clone()]);
        let c = m.peer_connected(&b, t0 + Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(c.to, Some(Reachability::Up));
    }

    /// Duplicated and reordered heartbeats are ignored; a restart (higher incarnation)
    /// is accepted even with a lower sequence number.
    #[test]
    fn stale_heartbeats_are_ignored() {
        let t0 = Instant::now();
        let mut m = membership();
        let b = n("b");
        m.add_peer(&b, t0).unwrap();
        m.heartbeat(&b, hb(5), t0 + HB);
        m.heartbeat(&b, hb(5), t0 + HB * 2);
        m.heartbeat(&b, hb(4), t0 + HB * 2);
        m.heartbeat(&n("stranger"), hb(1), t0);
        assert_eq!(m.ignored_heartbeats(), 3);
        m.heartbeat(&b, Heartbeat { incarnation: 2, seq: 1 }, t0 + HB * 3);
        let r = m.report(t0 + HB * 3);
        assert_eq!((r.peers[0].heartbeats, r.peers[0].incarnation), (2, Some(2)));
    }

    /// A peer that announced leaving is Left, is no heartbeat target, and is not revived
    /// by a late heartbeat of the same incarnation; the peer table is bounded.
    #[test]
    fn leaving_and_bounds() {
        let t0 = Instant::now();
        let mut m = Membership::new(n("me"), PhiConfig::default(), 3.0, 2);
        let (b, c) = (n("b"), n("c"));
        m.add_peer(&b, t0).unwrap();
        m.add_peer(&c, t0).unwrap();
        assert_eq!(m.add_peer(&n("d"), t0), Err(MembershipError::TooManyPeers { limit: 2 }));
        assert_eq!(m.add_peer(&n("me"), t0), Err(MembershipError::IsSelf(n("me"))));
        m.heartbeat(&b, hb(1), t0);
        assert_eq!(m.peer_left(&b, t0).unwrap().to, Some(Reachability::Left));
        assert_eq!(m.heartbeat(&b, hb(2), t0), None);
        assert_eq!(m.present(), vec![c]);
        assert_eq!(m.status(&b), Some(Reachability::Left));
        let text = m.report(t0).to_string();
        assert!(text.contains("1 up") && text.contains("1 left"), "{text}");
    }
}
