//! [`PeerTable`]: what this node knows about the other nodes, shared by the cluster actor
//! (the only writer of membership), the gateway and every remote-agent link (readers).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::{NodeName, SharedLogLimiter};
use parking_lot::RwLock;
use ractor::ActorRef;
use tokio::sync::watch;

use crate::wire::GatewayMsg;

/// One peer.
///
/// Suspicion (φ) and the time since its last heartbeat live in the gossip actor's failure
/// detector; [`NodeReport`](crate::NodeReport) (`flow status`) shows them.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its gateway actor (a ractor_cluster remote proxy) while a session is up.
    pub gateway: Option<ActorRef<GatewayMsg>>,
    /// ractor's per-connection node id of the current session.
    pub node_id: Option<u64>,
    /// Its incarnation (changes when the process restarts).
    pub incarnation: u64,
    /// Where it listens.
    pub listen: String,
    /// Whether we consider it reachable (session up and heartbeats arriving).
    pub reachable: bool,
}

/// Counters of cluster-level trouble.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Sessions that closed before authenticating (wrong cookie, protocol mismatch).
    pub refused_sessions: AtomicU64,
    /// Frames that could not be decoded.
    pub bad_frames: AtomicU64,
    /// Requests naming an agent this node does not have.
    pub unknown_agents: AtomicU64,
    /// Messages from a node this node has no session record of (a misnamed or forged sender).
    pub unknown_nodes: AtomicU64,
    /// Requests refused because too many remote deliveries were in flight.
    pub overloaded: AtomicU64,
    /// Messages dropped by the partition fault-injection layer.
    pub partition_drops: AtomicU64,
    /// Calls abandoned because their peer became unreachable while they waited.
    pub abandoned_calls: AtomicU64,
    /// Re-dials attempted.
    pub redials: AtomicU64,
    /// Connections closed because they had not completed the ractor_cluster handshake
    /// within `cluster.handshake_timeout_ms`.
    pub handshake_timeouts: AtomicU64,
    /// Incoming connections closed at once because `cluster.max_pending_handshakes`
    /// connections were already waiting for their handshake.
    pub handshakes_rejected: AtomicU64,
    /// Connections waiting for their handshake now (a gauge).
    pub handshakes_pending: AtomicU64,
    /// Failed `accept` calls on the cluster listener (out of file descriptors, …).
    pub accept_errors: AtomicU64,
}

impl ClusterCounters {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter by its name in `flow status`.
    pub fn named(&self) -> Vec<(String, u64)> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("refused_sessions", get(&self.refused_sessions)),
            ("bad_frames", get(&self.bad_frames)),
            ("unknown_agents", get(&self.unknown_agents)),
            ("unknown_nodes", get(&self.unknown_nodes)),
            ("overloaded", get(&self.overloaded)),
            ("partition_drops", get(&self.partition_drops)),
            ("abandoned_calls", get(&self.abandoned_calls)),
            ("redials", get(&self.redials)),
            ("handshake_timeouts", get(&self.handshake_timeouts)),
            ("handshakes_rejected", get(&self.handshakes_rejected)),
            ("handshakes_pending", get(&self.handshakes_pending)),
            ("accept_errors", get(&self.accept_errors)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The repeated transport events whose log lines are rate-limited
/// ([`PeerTable::log_now`]): at most one line per event and peer (or address) per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportEvent {
    /// A message to or from a peer dropped by the partition fault-injection layer.
    PartitionDrop,
    /// An undecodable frame.
    BadFrame,
    /// A message from a node without a session record.
    UnknownSender,
    /// A failed dial.
    DialFailed,
    /// A failed `accept` on the cluster port.
    AcceptFailed,
    /// A peer's session was lost, or gossip declared it unreachable.
    PeerDown,
    /// A session closed before authenticating (a wrong cookie?).
    SessionRefused,
    /// A connection closed because too many wait for their handshake.
    HandshakeCap,
    /// A connection closed because its handshake took too long.
    HandshakeTimeout,
}

impl TransportEvent {
    /// Its name in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportEvent::PartitionDrop => "partition_drop",
            TransportEvent::BadFrame => "bad_frame",
            TransportEvent::UnknownSender => "unknown_sender",
            TransportEvent::DialFailed => "dial_failed",
            TransportEvent::AcceptFailed => "accept_failed",
            TransportEvent::PeerDown => "peer_down",
            TransportEvent::SessionRefused => "session_refused",
            TransportEvent::HandshakeCap => "handshake_cap",
            TransportEvent::HandshakeTimeout => "handshake_timeout",
        }
    }

    /// Injected on purpose (logged at debug level).
    fn is_fault_injection(self) -> bool {
        self == TransportEvent::PartitionDrop
    }
}

/// Which of a peer's gateways a one-way message may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only a peer considered reachable (work, votes).
    Reachable,
    /// Any peer with a session, reachable or not (heartbeats: a peer declared
    /// unreachable must still hear from us, or it could never come back).
    AnySession,
}

/// See the module docs.
#[derive(Debug)]
pub struct PeerTable {
    peers: RwLock<HashMap<NodeName, Peer>>,
    /// Per-peer "became unreachable" signals: the value increases each time.
    down: RwLock<HashMap<NodeName, watch::Sender<u64>>>,
    /// Peers cut off by the partition fault-injection layer.
    blocked: RwLock<HashSet<NodeName>>,
    /// Counters.
    pub counters: ClusterCounters,
    /// Rate limit of repeated transport-error lines (per kind and peer).
    pub transport_log: SharedLogLimiter<(TransportEvent, String)>,
}

impl Default for PeerTable {
    fn default() -> Self {
        Self {
            peers: RwLock::new(HashMap::new()),
            down: RwLock::new(HashMap::new()),
            blocked: RwLock::new(HashSet::new()),
            counters: ClusterCounters::default(),
            transport_log: SharedLogLimiter::default(),
        }
    }
}

impl PeerTable {
    /// A copy of a peer's record.
    pub fn get(&self, node: &NodeName) -> Option<Peer> {
        self.peers.read().get(node).cloned()
    }

    /// All peers, sorted by name.
    pub fn all(&self) -> Vec<(NodeName, Peer)> {
        let mut v: Vec<_> = self.peers.read().iter().map(|(k, p)| (k.clone(), p.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The gateway of `node`'s current session, if `reach` allows it. The partition
    /// layer is not consulted here: that is [`crate::channel::Channel`]'s one check.
    pub(crate) fn gateway(&self, node: &NodeName, reach: Reach) -> Option<ActorRef<GatewayMsg>> {
        let peers = self.peers.read();
        let peer = peers.get(node)?;
        match reach {
            Reach::Reachable if !peer.reachable => None,
            _ => peer.gateway.clone(),
        }
    }

    /// Whether an `event` concerning `key` (a peer, an address) is to be logged now:
    /// `Some(suppressed repeats)` at most once per event and key per interval.
    pub fn log_now(&self, event: TransportEvent, key: &str) -> Option<u64> {
        self.transport_log.check(&(event, key.to_string()))
    }

    /// Logs the repeats suppressed in windows that have ended (called periodically, so a
    /// burst that stops is still reported with its count).
    pub fn flush_transport_log(&self) {
        for (key, suppressed) in self.transport_log.flush() {
            match key {
                Some((event, key)) if event.is_fault_injection() => {
                    tracing::debug!(event = event.as_str(), %key, suppressed, "repeated events not logged")
                }
                Some((event, key)) => {
                    tracing::warn!(event = event.as_str(), %key, suppressed, "repeated events not logged")
                }
                None => tracing::warn!(suppressed, "repeated cluster events not logged (too many distinct keys)"),
            }
        }
    }

    /// Inserts or updates a peer.
    pub fn upsert(&self, node: &NodeName, f: impl FnOnce(&mut Peer)) {
        let mut peers = self.peers.write();
        let peer = peers.entry(node.clone()).or_insert_with(|| Peer {
            gateway: None,
            node_id: None,
            incarnation: 0,
            listen: String::new(),
            reachable: false,
        });
        f(peer);
    }

    /// Whether `node` ever had a session with this node (a record exists).
    pub fn knows(&self, node: &NodeName) -> bool {
        self.peers.read().contains_key(node)
    }

    /// The peer whose current session has ractor node id `node_id`.
    pub fn by_node_id(&self, node_id: u64) -> Option<NodeName> {
        self.peers.read().iter().find(|(_, p)| p.node_id == Some(node_id)).map(|(n, _)| n.clone())
    }

    /// Marks `node` unreachable and fires its down signal (in-flight deliveries give up).
    pub fn mark_unreachable(&self, node: &NodeName) -> bool {
        let changed = {
            let mut peers = self.peers.write();
            match peers.get_mut(node) {
                Some(p) if p.reachable => {
                    p.reachable = false;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.signal_down(node);
        }
        changed
    }

    /// Fires `node`'s down signal.
    pub fn signal_down(&self, node: &NodeName) {
        let down = self.down.read();
        if let Some(tx) = down.get(node) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// A receiver that changes whenever `node` becomes unreachable.
    pub fn down_signal(&self, node: &NodeName) -> watch::Receiver<u64> {
        if let Some(tx) = self.down.read().get(node) {
            return tx.subscribe();
        }
        self.down.write().entry(node.clone()).or_insert_with(|| watch::Sender::new(0)).subscribe()
    }

    /// Cuts `node` off (partition fault injection): nothing is sent to it and what it
    /// sends is dropped.
    pub fn block(&self, node: &NodeName) {
        self.blocked.write().insert(node.clone());
        self.signal_down(node);
    }

    /// Heals a cut.
    pub fn unblock(&self, node: &NodeName) {
        self.blocked.write().remove(node);
    }

    /// True when `node` is cut off.
    pub fn is_blocked(&self, node: &NodeName) -> bool {
        self.blocked.read().contains(node)
    }

    /// Peers currently cut off.
    pub fn blocked(&self) -> Vec<NodeName> {
        let mut v: Vec<_> = self.blocked.read().iter().cloned().collect();
        v.sort();
        v
    }
}
