//! [`PeerTable`]: what this node knows about the other nodes, shared by the cluster actor
//! (the only writer of membership), the gateway and every remote-agent link (readers).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::NodeName;
use parking_lot::RwLock;
use ractor::ActorRef;
use tokio::sync::watch;

use crate::wire::GatewayMsg;

/// One peer.
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
    /// Suspicion level from the failure detector (0 when fresh).
    pub phi: f64,
    /// Milliseconds since its last heartbeat, when one was seen.
    pub silent_ms: Option<u64>,
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
    /// Remote deliveries abandoned because their node became unreachable.
    pub abandoned_deliveries: AtomicU64,
    /// Re-dials attempted.
    pub redials: AtomicU64,
}

impl ClusterCounters {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
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
}

impl Default for PeerTable {
    fn default() -> Self {
        Self {
            peers: RwLock::new(HashMap::new()),
            down: RwLock::new(HashMap::new()),
            blocked: RwLock::new(HashSet::new()),
            counters: ClusterCounters::default(),
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

    /// Gateways of reachable, unblocked peers.
    pub fn reachable_gateways(&self) -> Vec<(NodeName, ActorRef<GatewayMsg>)> {
        let blocked = self.blocked.read();
        self.peers
            .read()
            .iter()
            .filter(|(n, p)| p.reachable && !blocked.contains(*n))
            .filter_map(|(n, p)| p.gateway.clone().map(|g| (n.clone(), g)))
            .collect()
    }

    /// The gateway to use for `node`, unless it is unreachable or cut off.
    pub fn gateway(&self, node: &NodeName) -> Option<ActorRef<GatewayMsg>> {
        if self.is_blocked(node) {
            return None;
        }
        self.peers.read().get(node).filter(|p| p.reachable).and_then(|p| p.gateway.clone())
    }

    /// The gateway of `node`'s current session, reachable or not, unless cut off.
    pub fn any_gateway(&self, node: &NodeName) -> Option<ActorRef<GatewayMsg>> {
        if self.is_blocked(node) {
            return None;
        }
        self.peers.read().get(node).and_then(|p| p.gateway.clone())
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
            phi: 0.0,
            silent_ms: None,
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
