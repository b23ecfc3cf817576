//! How consensus nodes reach each other: the [`RaftTransport`] trait, and
//! [`InProcessTransport`], a registry of nodes in one process with fault injection.
//!
//! The transport only carries opaque bytes to a named peer and returns its reply; the
//! bytes are [`RaftWire`](crate::wire::RaftWire) requests that the peer hands to
//! [`ConsensusNode::handle_rpc`]. The cluster layer implements the trait over
//! ractor_cluster gateway calls; tests and benches use [`InProcessTransport`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::RwLock;

use crate::error::TransportError;
use crate::node::ConsensusNode;
use crate::types::{RaftNodeId, node_id_for};

/// Carries opaque RPC bytes to a named peer; the cluster layer implements it over
/// ractor_cluster gateways. The future must finish within `timeout` (answering
/// [`TransportError::Timeout`]) and must not panic.
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `body` to `target` (called `target_name`) and returns its reply bytes.
    fn call(
        &self,
        target: RaftNodeId,
        target_name: &str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>>;
}

#[derive(Debug, Default)]
struct Faults {
    isolated: BTreeSet<RaftNodeId>,
    cut: BTreeSet<(RaftNodeId, RaftNodeId)>,
    /// (caller, callee): the callee handles the next request, its reply is lost.
    lose_reply_once: BTreeSet<(RaftNodeId, RaftNodeId)>,
    /// (caller, callee): the callee handles the next request, then the link is cut.
    cut_after_once: BTreeSet<(RaftNodeId, RaftNodeId)>,
}

impl Faults {
    fn blocked(&self, a: RaftNodeId, b: RaftNodeId) -> bool {
        self.isolated.contains(&a) || self.isolated.contains(&b) || self.cut.contains(&(a.min(b), a.max(b)))
    }
}

#[derive(Default)]
struct Registry {
    nodes: RwLock<BTreeMap<RaftNodeId, ConsensusNode>>,
    faults: RwLock<Faults>,
}

/// A registry of [`ConsensusNode`]s in one process, delivering calls by direct method
/// call, with fault injection ([`isolate`](Self::isolate), [`cut`](Self::cut),
/// [`heal_all`](Self::heal_all)) so tests can partition the cluster.
///
/// One registry is shared by all nodes; each node gets its own [`endpoint`](Self::endpoint)
/// (a `RaftTransport` that knows who is calling, so a cut between two nodes blocks both
/// directions). A call to an unregistered, isolated or cut-off node answers
/// [`TransportError::Unreachable`] at once.
#[derive(Clone, Default)]
pub struct InProcessTransport {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessTransport")
            .field("nodes", &self.registry.nodes.read().keys().collect::<Vec<_>>())
            .field("faults", &*self.registry.faults.read())
            .finish()
    }
}

impl InProcessTransport {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport the node called `name` sends through.
    pub fn endpoint(&self, name: &str) -> Arc<dyn RaftTransport> {
        Arc::new(InProcessEndpoint { from: node_id_for(name), registry: self.registry.clone() })
    }

    /// Makes `node` reachable.
    pub fn register(&self, node: &ConsensusNode) {
        self.registry.nodes.write().insert(node.id(), node.clone());
    }

    /// Makes node `id` unreachable and drops the registry's handle on it.
    pub fn unregister(&self, id: RaftNodeId) {
        self.registry.nodes.write().remove(&id);
    }

    /// Cuts node `id` off from every other node, both directions.
    pub fn isolate(&self, id: RaftNodeId) {
        self.registry.faults.write().isolated.insert(id);
    }

    /// Cuts the link between `a` and `b`, both directions.
    pub fn cut(&self, a: RaftNodeId, b: RaftNodeId) {
        self.registry.faults.write().cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link between the two groups (a partition).
    pub fn partition(&self, left: &[RaftNodeId], right: &[RaftNodeId]) {
        for a in left {
            for b in right {
                self.cut(*a, *b);
            }
        }
    }

    /// The next call from `from` to `to` is handled by `to`, and its reply is lost: the
    /// caller sees [`TransportError::Lost`] (a peer that acted and went down, or a link
    /// that broke after the request went through).
    pub fn lose_next_reply(&self, from: RaftNodeId, to: RaftNodeId) {
        self.registry.faults.write().lose_reply_once.insert((from, to));
    }

    /// The next call from `from` to `to` is handled by `to`, then the link between them
    /// is cut (until [`heal_all`](Self::heal_all)) and the caller sees
    /// [`TransportError::Lost`].
    pub fn cut_after_next_request(&self, from: RaftNodeId, to: RaftNodeId) {
        self.registry.faults.write().cut_after_once.insert((from, to));
    }

    /// Removes every isolation and cut.
    pub fn heal_all(&self) {
        let mut f = self.registry.faults.write();
        f.isolated.clear();
        f.cut.clear();
        f.lose_reply_once.clear();
        f.cut_after_once.clear();
    }
}

struct InProcessEndpoint {
    from: RaftNodeId,
    registry: Arc<Registry>,
}

impl RaftTransport for InProcessEndpoint {
    fn call(
        &self,
        target: RaftNodeId,
        target_name: &str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let name = target_name.to_owned();
        let node = if self.registry.faults.read().blocked(self.from, target) {
            None
        } else {
            self.registry.nodes.read().get(&target).cloned()
        };
        let registry = self.registry.clone();
        let from = self.from;
        Box::pin(async move {
            let Some(node) = node else {
                return Err(TransportError::Unreachable(name));
            };
            let reply = match tokio::time::timeout(timeout, node.handle_rpc(&body)).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => return Err(TransportError::Remote { node: name, reason: e.to_string() }),
                Err(_) => return Err(TransportError::Timeout(name)),
            };
            // A link cut while the request was in flight loses the reply; the request was
            // handled.
            let mut faults = registry.faults.write();
            if faults.cut_after_once.remove(&(from, target)) {
                faults.cut.insert((from.min(target), from.max(target)));
            }
            if faults.lose_reply_once.remove(&(from, target)) || faults.blocked(from, target) {
                return Err(TransportError::Lost(name));
            }
            Ok(reply)
        })
    }
}
