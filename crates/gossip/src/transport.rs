//! [`InProcessNetwork`]: a [`GossipTransport`] whose peers are other gossip actors in the
//! same process, with fault injection (partitions, isolated nodes). For tests, examples
//! and the convergence benchmark; the cluster layer supplies the ractor_cluster transport.
//!
//! Optionally every message goes through the codec (`encode` then `decode`), as it would
//! on the wire, so tests also prove that what the protocol emits fits the size limit.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::{Codec, NodeName};
use parking_lot::RwLock;

use crate::actor::{GossipActorArgs, GossipError, GossipHandle, GossipTransport};
use crate::config::GossipConfig;
use crate::message::GossipMessage;

#[derive(Debug, Default)]
struct Rules {
    /// Partition group per node; nodes in different groups cannot talk. Nodes without a
    /// group talk to everyone not isolated.
    groups: HashMap<NodeName, usize>,
    /// Nodes that neither send nor receive (a frozen process, a cut cable).
    isolated: HashSet<NodeName>,
}

#[derive(Default)]
struct Inner {
    nodes: RwLock<HashMap<NodeName, GossipHandle>>,
    rules: RwLock<Rules>,
    codec: Option<Codec>,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

/// Gossip actors of one process wired to each other. Cheap to clone.
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    inner: Arc<Inner>,
}

impl fmt::Debug for InProcessNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessNetwork")
            .field("nodes", &self.inner.nodes.read().len())
            .field("delivered", &self.delivered())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The transport of one node of an [`InProcessNetwork`].
#[derive(Clone)]
pub struct InProcessTransport {
    me: NodeName,
    net: InProcessNetwork,
}

impl fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessTransport").field("me", &self.me).finish()
    }
}

impl GossipTransport for InProcessTransport {
    fn send(&self, to: &NodeName, message: GossipMessage) {
        self.net.send(&self.me, to, message);
    }
}

impl InProcessNetwork {
    /// A network that hands messages over as values.
    pub fn new() -> Self {
        Self::default()
    }

    /// A network that encodes and decodes every message with `codec`, as a wire would;
    /// a message the codec refuses is dropped and counted.
    pub fn with_codec(codec: Codec) -> Self {
        Self { inner: Arc::new(Inner { codec: Some(codec), ..Inner::default() }) }
    }

    /// The transport for node `me`.
    pub fn transport(&self, me: NodeName) -> InProcessTransport {
        InProcessTransport { me, net: self.clone() }
    }

    /// Makes `handle` reachable under its node name.
    pub fn register(&self, handle: GossipHandle) {
        self.inner.nodes.write().insert(handle.me().clone(), handle);
    }

    /// Removes a node (messages to it are dropped).
    pub fn unregister(&self, node: &NodeName) -> Option<GossipHandle> {
        self.inner.nodes.write().remove(node)
    }

    /// Spawns a gossip actor for `me` on this network, registered, with every other
    /// `peers` entry as a peer.
    pub async fn spawn_node(
        &self,
        me: NodeName,
        config: GossipConfig,
        peers: &[NodeName],
        seed: u64,
    ) -> Result<GossipHandle, GossipError> {
        let args = GossipActorArgs {
            me: me.clone(),
            config,
            incarnation: 1,
            seed,
            transport: Arc::new(self.transport(me.clone())),
            peers: peers.iter().filter(|p| **p != me).cloned().collect(),
        };
        let (handle, _join) = GossipHandle::spawn(args).await?;
        self.register(handle.clone());
        Ok(handle)
    }

    /// Spawns `n` fully connected nodes named `{prefix}-00`, `{prefix}-01`, …; node `i`
    /// gets seed `seed + i`.
    pub async fn spawn_cluster(
        &self,
        prefix: &str,
        n: usize,
        config: &GossipConfig,
        seed: u64,
    ) -> Result<Vec<GossipHandle>, GossipError> {
        let names: Vec<NodeName> = (0..n)
            .map(|i| NodeName::new(format!("{prefix}-{i:02}")).map_err(|e| GossipError::Spawn(e.to_string())))
            .collect::<Result<_, _>>()?;
        let mut handles = Vec::with_capacity(n);
        for (i, name) in names.iter().enumerate() {
            handles.push(self.spawn_node(name.clone(), config.clone(), &names, seed.wrapping_add(i as u64)).await?);
        }
        Ok(handles)
    }

    /// Splits the network: nodes of different groups cannot talk (both directions).
    pub fn partition(&self, groups: &[Vec<NodeName>]) {
        let mut rules = self.inner.rules.write();
        rules.groups.clear();
        for (i, group) in groups.iter().enumerate() {
            for node in group {
                rules.groups.insert(node.clone(), i);
            }
        }
    }

    /// Cuts `node` off entirely (to others it looks frozen: no heartbeats, no gossip).
    pub fn isolate(&self, node: &NodeName) {
        self.inner.rules.write().isolated.insert(node.clone());
    }

    /// Removes every partition and isolation.
    pub fn heal(&self) {
        let mut rules = self.inner.rules.write();
        rules.groups.clear();
        rules.isolated.clear();
    }

    /// True when a message from `a` to `b` would be delivered.
    pub fn can_talk(&self, a: &NodeName, b: &NodeName) -> bool {
        let rules = self.inner.rules.read();
        if rules.isolated.contains(a) || rules.isolated.contains(b) {
            return false;
        }
        match (rules.groups.get(a), rules.groups.get(b)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }

    /// Messages handed to a node.
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Messages dropped (partition, unknown or stopped node, full inbox, codec refusal).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, from: &NodeName, to: &NodeName, message: GossipMessage) {
        let target = if self.can_talk(from, to) { self.inner.nodes.read().get(to).cloned() } else { None };
        let Some(target) = target else {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let message = match &self.inner.codec {
            None => message,
            Some(codec) => match message.encode(codec).and_then(|b| GossipMessage::decode(codec, &b)) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%from, %to, kind = message.kind(), error = %e, "gossip message refused by the codec");
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        match target.deliver(from.clone(), message) {
            Ok(()) => self.inner.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.inner.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}
