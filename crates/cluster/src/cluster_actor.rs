//! The cluster actor: NodeServer, sessions, discovery, dialing, liveness, directories.
//!
//! * **Transport.** It starts a ractor_cluster `NodeServer` named after this node (so a
//!   session's peer name is the peer's cluster-wide node name; ractor's own node ids are
//!   per-connection counters) and feeds it the connections accepted on the node's own
//!   listener (bound once at start, so its port is known even when configured as 0).
//! * **Sessions.** It subscribes to the NodeServer's session events. A session that closes
//!   before authenticating (a wrong cookie) is refused, logged and counted; the node keeps
//!   running. A session that drops makes its peer unreachable at once.
//! * **Discovery.** Peers' gateways appear in the pg group [`GATEWAY_GROUP`]; each newly
//!   seen gateway is greeted (`Hello`) to learn the peer's incarnation and listen address.
//! * **Dialing.** Seeds and every peer address learned are dialled, and re-dialled with
//!   exponential backoff after a failure or a lost session (ractor_cluster never
//!   reconnects by itself).
//! * **Gossip.** The node's gossip actor (a FlowSupervisor child, see
//!   [`crate::gossip_link`]) carries the agent directory (`agents/<node>`: id, capabilities,
//!   swarms, weight, up/down), load (`load/<node>`) and listen addresses (`addr/<node>`,
//!   how a node joining one seed finds the whole mesh), and its heartbeats drive
//!   phi-accrual reachability. This actor publishes its node's keys every
//!   `directory_interval_ms` (when they changed) and follows the gossip events: a peer's
//!   directory is mirrored into the local registry as remote entries named `agent@node`;
//!   a peer that turns unreachable (φ over the threshold: a frozen process, a partition) has
//!   its agents marked down and its in-flight deliveries abandoned (the router redelivers
//!   them) until it is up again.
//! * **Partitions (fault injection).** `Block`/`Unblock` cut a peer off at this layer:
//!   nothing is sent to it, what it sends is dropped, so both sides see the other go
//!   silent and declare it unreachable, exactly as with a real network partition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::config::ClusterConfig;
use erlmcp_flow_core::{Codec, MonoClock, NodeName};
use erlmcp_flow_registry::{RegistryHandle, RemoteRegistration};
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use tokio::net::TcpListener;

use erlmcp_flow_gossip::{AgentRecord, GossipEvent, GossipHandle, MembershipChange, NodeLoad, ReachabilityKind};

use crate::channel::Channel;
use crate::gossip_link::GossipSlot;
use crate::handshake::{Closed, HandshakeGuard, HandshakeLimits, Opened};
use crate::link::RemoteAgentLink;
use crate::peers::{ClusterCounters, PeerTable, TransportEvent};
use crate::status::{NodeReport, PeerReport, RaftReport};

/// Where the cluster actor finds the node's Raft report for status answers; empty when
/// Raft is off.
pub type RaftReportSource = Arc<std::sync::OnceLock<Arc<dyn Fn() -> RaftReport + Send + Sync>>>;
use crate::wire::{GATEWAY_GROUP, GatewayMsg, Hello, PROTOCOL_VERSION, Request, Response, decode, encode};

/// The longest period of the actor's tick (heartbeats, dials, discovery and handshake
/// deadlines are looked at every tick; it is `heartbeat_interval_ms` when shorter).
const MAX_TICK: Duration = Duration::from_millis(100);

/// Addresses kept for dialing at most (bounds what peers can make us remember).
const MAX_KNOWN_ADDRESSES: usize = 1024;

/// A session event from the NodeServer.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A TCP session opened: `(session, its actor, incoming, peer address)`.
    Opened(ActorId, ActorCell, bool, String),
    /// It passed the cookie challenge.
    Authenticated(ActorId),
    /// It finished the initial exchange: `(session, peer name, ractor node id, peer address, incoming)`.
    Ready(ActorId, NodeName, u64, String, bool),
    /// It closed: `(session, peer name, ractor node id, peer address)`.
    Disconnected(ActorId, Option<NodeName>, u64, String),
}

/// Messages of the cluster actor.
pub enum ClusterMsg {
    /// From the NodeServer subscription.
    Session(SessionEvent),
    /// A greeted gateway answered (or did not).
    Greeted(u64, ActorRef<GatewayMsg>, Result<Hello, String>),
    /// An event of the gossip actor this incarnation follows.
    Gossip(ActorId, GossipEvent),
    /// Timer: heartbeats, liveness, dialing, discovery.
    Tick,
    /// Timer: publish this node's directory.
    Publish,
    /// Cut peers off (partition fault injection).
    Block(Vec<NodeName>, RpcReplyPort<()>),
    /// Heal cuts.
    Unblock(Vec<NodeName>, RpcReplyPort<()>),
    /// Status report.
    Report(RpcReplyPort<NodeReport>),
}

impl std::fmt::Debug for ClusterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterMsg::Session(e) => write!(f, "Session({e:?})"),
            ClusterMsg::Greeted(id, _, r) => write!(f, "Greeted({id}, {r:?})"),
            ClusterMsg::Gossip(_, e) => write!(f, "Gossip({e:?})"),
            ClusterMsg::Tick => f.write_str("Tick"),
            ClusterMsg::Publish => f.write_str("Publish"),
            ClusterMsg::Block(n, _) => write!(f, "Block({n:?})"),
            ClusterMsg::Unblock(n, _) => write!(f, "Unblock({n:?})"),
            ClusterMsg::Report(_) => f.write_str("Report"),
        }
    }
}

impl ractor::Message for ClusterMsg {}

/// Start-up arguments of the cluster actor.
#[derive(Clone)]
pub struct ClusterArgs {
    /// `[cluster]` settings.
    pub cfg: ClusterConfig,
    /// This node's identity.
    pub hello: Hello,
    /// The node's listener (bound once, reused by every incarnation).
    pub listener: Arc<TcpListener>,
    /// The registry (local agents, and where remote agents are mirrored).
    pub registry: RegistryHandle,
    /// Shared peer table.
    pub peers: Arc<PeerTable>,
    /// Wire codec.
    pub codec: Codec,
    /// Node clock.
    pub clock: MonoClock,
    /// Where this incarnation is published (the gateway asks it for status reports).
    pub slot: ActorSlot<ClusterMsg>,
    /// Ledger counts for status reports.
    pub ledger: Arc<dyn Fn() -> [u64; 4] + Send + Sync>,
    /// The node's Raft report, once the consensus node runs (`raft.enabled`).
    pub raft: RaftReportSource,
    /// The node's gossip actor.
    pub gossip: GossipSlot,
}

impl std::fmt::Debug for ClusterArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterArgs").field("node", &self.hello.node).finish_non_exhaustive()
    }
}

/// The cluster actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterActor;

struct Dial {
    next_at_ns: u64,
    backoff: Duration,
}

/// The cluster actor's state.
pub struct ClusterState {
    args: ClusterArgs,
    channel: Channel,
    server: ActorRef<NodeServerMessage>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Every session from its opening to its end: the handshake deadline and cap.
    handshakes: HandshakeGuard<ActorId, (ActorCell, String)>,
    /// Outgoing sessions by the address we dialled.
    connected_addrs: HashMap<String, ActorId>,
    dials: HashMap<String, Dial>,
    /// Gateways being greeted, by ractor node id.
    greeting: HashSet<u64>,
    /// The gossip actor followed now, and the task forwarding its events.
    following: Option<(ActorId, tokio::task::JoinHandle<()>)>,
    /// What was last written to gossip for this node (`None`: not yet on this actor).
    published_agents: Option<Vec<AgentRecord>>,
    published_load: Option<NodeLoad>,
    published_addr: bool,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState").field("node", &self.args.hello.node).finish_non_exhaustive()
    }
}

struct Subscription(ActorRef<ClusterMsg>);

fn name_of(ses: &NodeServerSessionInformation) -> Option<NodeName> {
    let full = &ses.peer_name.as_ref()?.name;
    NodeName::new(full.split('@').next().unwrap_or(full)).ok()
}

impl NodeEventSubscription for Subscription {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(ClusterMsg::Session(SessionEvent::Opened(
            ses.actor.get_id(),
            ses.actor.get_cell(),
            ses.is_server,
            ses.peer_addr.clone(),
        )));
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(ClusterMsg::Session(SessionEvent::Authenticated(ses.actor.get_id())));
    }
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        if let Some(name) = name_of(&ses) {
            let _ = self.0.send_message(ClusterMsg::Session(SessionEvent::Ready(
                ses.actor.get_id(),
                name,
                ses.node_id,
                ses.peer_addr.clone(),
                ses.is_server,
            )));
        }
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(ClusterMsg::Session(SessionEvent::Disconnected(
            ses.actor.get_id(),
            name_of(&ses),
            ses.node_id,
            ses.peer_addr.clone(),
        )));
    }
}

impl Actor for ClusterActor {
    type Msg = ClusterMsg;
    type State = ClusterState;
    type Arguments = ClusterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ClusterMsg>,
        args: ClusterArgs,
    ) -> Result<ClusterState, ActorProcessingErr> {
        let node_server = NodeServer::new(
            0,
            args.cfg.cookie.clone(),
            args.hello.node.to_string(),
            "127.0.0.1".into(),
            None,
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(args.listener.local_addr()?.ip());
        let (server, _) = Actor::spawn_linked(None, node_server, (), myself.get_cell()).await?;
        server.cast(NodeServerMessage::SubscribeToEvents {
            id: "erlmcp-flow".into(),
            subscription: Box::new(Subscription(myself.clone())),
        })?;
        ractor::pg::monitor(GATEWAY_GROUP.to_string(), myself.get_cell());

        let max_pending = u64::from(args.cfg.max_pending_handshakes);
        if let Some(limit) = crate::listener::descriptor_limit()
            && max_pending.saturating_mul(2) > limit
        {
            tracing::warn!(
                max_pending_handshakes = max_pending,
                descriptor_limit = limit,
                "cluster.max_pending_handshakes is over half the file-descriptor limit: idle connections can exhaust it"
            );
        }
        args.peers.counters.handshakes_pending.store(0, std::sync::atomic::Ordering::Relaxed);
        let accept =
            crate::listener::spawn_accept_loop(args.listener.clone(), server.clone(), args.peers.clone(), max_pending);
        let tick = Duration::from_millis(args.cfg.heartbeat_interval_ms).min(MAX_TICK);
        let ticker = myself.send_interval(tick, || ClusterMsg::Tick);
        let publisher =
            myself.send_interval(Duration::from_millis(args.cfg.directory_interval_ms), || ClusterMsg::Publish);
        myself.send_message(ClusterMsg::Tick)?;

        let now = args.clock.now_ns();
        let dials = args
            .cfg
            .seeds
            .iter()
            .map(|s| (s.clone(), Dial { next_at_ns: now, backoff: Duration::from_millis(args.cfg.reconnect_base_ms) }))
            .collect();
        args.slot.set(myself);
        tracing::info!(node = %args.hello.node, listen = %args.hello.listen, "cluster node up");
        let channel = Channel::new(args.hello.node.clone(), args.peers.clone(), args.codec);
        let handshakes = HandshakeGuard::new(HandshakeLimits {
            timeout: Duration::from_millis(args.cfg.handshake_timeout_ms),
            max_pending_incoming: args.cfg.max_pending_handshakes as usize,
        });
        Ok(ClusterState {
            args,
            channel,
            server,
            tasks: vec![accept, ticker, publisher],
            handshakes,
            connected_addrs: HashMap::new(),
            dials,
            greeting: HashSet::new(),
            following: None,
            published_agents: None,
            published_load: None,
            published_addr: false,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ClusterMsg>,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        for t in &state.tasks {
            t.abort();
        }
        if let Some((_, forwarder)) = &state.following {
            forwarder.abort();
        }
        state.server.stop(None);
        state.args.slot.clear_if(&myself);
        // Sessions go down with the NodeServer: every peer is unreachable from here.
        for (name, _) in state.args.peers.all() {
            state.args.peers.mark_unreachable(&name);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ClusterMsg>,
        msg: ClusterMsg,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ClusterMsg::Session(event) => state.on_session(event).await,
            ClusterMsg::Greeted(node_id, gateway, result) => state.on_greeted(node_id, gateway, result).await,
            ClusterMsg::Gossip(actor, event) => {
                if state.following.as_ref().is_some_and(|(a, _)| *a == actor) {
                    state.on_gossip(event).await;
                }
            }
            ClusterMsg::Tick => state.on_tick(&myself).await,
            ClusterMsg::Publish => state.publish().await,
            ClusterMsg::Block(nodes, reply) => {
                for n in &nodes {
                    tracing::warn!(peer = %n, "partition injected: peer cut off");
                    state.args.peers.block(n);
                }
                let _ = reply.send(());
            }
            ClusterMsg::Unblock(nodes, reply) => {
                for n in &nodes {
                    tracing::warn!(peer = %n, "partition healed");
                    state.args.peers.unblock(n);
                }
                let _ = reply.send(());
            }
            ClusterMsg::Report(reply) => {
                let report = state.report().await;
                let _ = reply.send(report);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ClusterMsg>,
        evt: SupervisionEvent,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ProcessGroupChanged(_) => state.discover(&myself),
            SupervisionEvent::ActorFailed(cell, err) if cell.get_id() == state.server.get_id() => {
                return Err(format!("NodeServer failed: {err}").into());
            }
            SupervisionEvent::ActorTerminated(cell, ..) if cell.get_id() == state.server.get_id() => {
                return Err("NodeServer stopped".into());
            }
            _ => {}
        }
        Ok(())
    }
}

impl ClusterState {
    fn node(&self) -> &NodeName {
        &self.args.hello.node
    }

    async fn on_session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Opened(id, cell, incoming, peer_addr) => {
                let now = self.args.clock.now_ns();
                if self.handshakes.opened(id, (cell.clone(), peer_addr.clone()), incoming, now) == Opened::OverCap {
                    ClusterCounters::inc(&self.args.peers.counters.handshakes_rejected);
                    if let Some(suppressed) = self.args.peers.log_now(TransportEvent::HandshakeCap, "sessions") {
                        tracing::warn!(%peer_addr, suppressed, "too many connections waiting for their handshake; closed");
                    }
                    cell.stop(Some("too many pending handshakes".into()));
                }
                self.publish_pending_handshakes();
            }
            SessionEvent::Authenticated(id) => {
                self.handshakes.authenticated(&id);
                self.publish_pending_handshakes();
            }
            SessionEvent::Ready(id, name, node_id, peer_addr, incoming) => {
                if name == *self.node() {
                    return;
                }
                tracing::info!(peer = %name, node_id, %peer_addr, incoming, "session ready");
                if !incoming {
                    self.connected_addrs.insert(peer_addr.clone(), id);
                    if let Some(d) = self.dials.get_mut(&peer_addr) {
                        d.backoff = Duration::from_millis(self.args.cfg.reconnect_base_ms);
                    }
                }
                self.args.peers.upsert(&name, |p| p.node_id = Some(node_id));
            }
            SessionEvent::Disconnected(id, name, node_id, peer_addr) => {
                if self.handshakes.closed(&id) == Closed::Refused {
                    ClusterCounters::inc(&self.args.peers.counters.refused_sessions);
                    if let Some(suppressed) = self.args.peers.log_now(TransportEvent::SessionRefused, &peer_addr) {
                        tracing::warn!(%peer_addr, suppressed, "session closed before authenticating (wrong cookie?); refused");
                    }
                }
                self.publish_pending_handshakes();
                self.connected_addrs.retain(|_, s| *s != id);
                if let Some(name) = name {
                    // Only the peer's current session matters: ractor closes the loser of a
                    // simultaneous connect, which is not a disconnection of the peer.
                    let record = self.args.peers.get(&name);
                    let current = record.as_ref().is_some_and(|p| p.node_id == Some(node_id));
                    let member = record.as_ref().is_some_and(|p| p.incarnation != 0);
                    if current && !member {
                        // A session that never greeted (a status probe): nothing to mark.
                        tracing::debug!(peer = %name, "non-member session closed");
                        self.args.peers.upsert(&name, |p| p.node_id = None);
                    } else if current {
                        if let Some(suppressed) = self.args.peers.log_now(TransportEvent::PeerDown, name.as_str()) {
                            tracing::warn!(peer = %name, suppressed, "session lost; peer unreachable");
                        }
                        self.args.peers.upsert(&name, |p| {
                            p.gateway = None;
                            p.node_id = None;
                        });
                        if let Some(g) = self.gossip() {
                            let _ = g.peer_disconnected(name.clone());
                        }
                        self.set_unreachable(&name).await;
                    }
                }
            }
        }
    }

    fn gossip(&self) -> Option<GossipHandle> {
        self.args.gossip.get()
    }

    async fn set_unreachable(&mut self, name: &NodeName) {
        self.args.peers.mark_unreachable(name);
        if let Err(e) = self.args.registry.set_node_reachable(name, false).await {
            tracing::warn!(peer = %name, error = %e, "could not mark the peer's agents down");
        }
    }

    async fn set_reachable(&mut self, name: &NodeName) {
        let mut changed = false;
        self.args.peers.upsert(name, |p| {
            if !p.reachable && p.gateway.is_some() {
                p.reachable = true;
                changed = true;
            }
        });
        if changed {
            tracing::info!(peer = %name, "peer reachable");
            if let Err(e) = self.args.registry.set_node_reachable(name, true).await {
                tracing::warn!(peer = %name, error = %e, "could not mark the peer's agents up");
            }
        }
    }

    /// Greets every remote gateway we have not greeted yet (once its session is ready,
    /// so its node's name is known).
    fn discover(&mut self, myself: &ActorRef<ClusterMsg>) {
        for cell in ractor::pg::get_members(&GATEWAY_GROUP.to_string()) {
            let ActorId::Remote { node_id, .. } = cell.get_id() else { continue };
            let Some(name) = self.args.peers.by_node_id(node_id) else { continue };
            let known = self
                .args
                .peers
                .get(&name)
                .is_some_and(|p| p.gateway.as_ref().is_some_and(|g| g.get_id() == cell.get_id()));
            if known || !self.greeting.insert(node_id) {
                continue;
            }
            let gateway: ActorRef<GatewayMsg> = cell.into();
            let (me, channel, hello) = (myself.clone(), self.channel.clone(), self.args.hello.clone());
            let timeout = Duration::from_millis(self.args.cfg.hello_timeout_ms);
            tokio::spawn(async move {
                let result = match channel.call_gateway(&gateway, &name, Request::Hello(hello), timeout).await {
                    Ok(Response::Hello(h)) => Ok(h),
                    Ok(other) => Err(channel.unexpected(&name, &other).to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = me.send_message(ClusterMsg::Greeted(node_id, gateway, result));
            });
        }
    }

    async fn on_greeted(&mut self, node_id: u64, gateway: ActorRef<GatewayMsg>, result: Result<Hello, String>) {
        self.greeting.remove(&node_id);
        let hello = match result {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(node_id, error = %e, "greeting failed; will retry");
                return;
            }
        };
        if hello.version != PROTOCOL_VERSION {
            ClusterCounters::inc(&self.args.peers.counters.refused_sessions);
            tracing::warn!(peer = %hello.node, version = hello.version, "peer speaks another protocol version; ignored");
            return;
        }
        if hello.node == *self.node() {
            return;
        }
        let restarted =
            self.args.peers.get(&hello.node).is_some_and(|p| p.incarnation != 0 && p.incarnation != hello.incarnation);
        if restarted {
            // A new process under an old name: its old agents are gone until it republishes.
            tracing::info!(peer = %hello.node, "peer restarted");
            let _ = self.args.registry.sync_node(&hello.node, Vec::new()).await;
        }
        self.args.peers.upsert(&hello.node, |p| {
            p.gateway = Some(gateway);
            p.node_id = Some(node_id);
            p.incarnation = hello.incarnation;
            p.listen = hello.listen.clone();
        });
        if let Some(g) = self.gossip() {
            let _ = g.add_peer(hello.node.clone()).await;
            let _ = g.peer_connected(hello.node.clone());
        }
        self.set_reachable(&hello.node).await;
        self.learn_address(&hello.listen);
    }

    fn learn_address(&mut self, addr: &str) {
        if addr.is_empty() || addr == self.args.hello.listen || self.dials.len() >= MAX_KNOWN_ADDRESSES {
            return;
        }
        let base = Duration::from_millis(self.args.cfg.reconnect_base_ms);
        self.dials.entry(addr.to_string()).or_insert(Dial { next_at_ns: 0, backoff: base });
    }

    /// Follows the current gossip actor: after a (re)start, subscribe, re-add every peer we
    /// know and republish this node's keys (a restarted gossip actor starts empty).
    fn follow_gossip(&mut self, myself: &ActorRef<ClusterMsg>) {
        let Some(handle) = self.gossip() else { return };
        let actor = handle.actor().get_id();
        if self.following.as_ref().is_some_and(|(a, _)| *a == actor) {
            return;
        }
        if let Some((_, old)) = self.following.take() {
            old.abort();
        }
        let mut events = handle.subscribe();
        let me = myself.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if me.send_message(ClusterMsg::Gossip(actor, e)).is_err() {
                            break;
                        }
                    }
                    // Missed events are repaired by the next full read on publish.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "gossip events lagged");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        self.following = Some((actor, forwarder));
        self.published_agents = None;
        self.published_load = None;
        self.published_addr = false;
        let known: Vec<(NodeName, bool)> =
            self.args.peers.all().into_iter().map(|(n, p)| (n, p.gateway.is_some())).collect();
        tokio::spawn(async move {
            for (peer, connected) in known {
                let _ = handle.add_peer(peer.clone()).await;
                if connected {
                    let _ = handle.peer_connected(peer);
                }
            }
        });
        tracing::info!("following a new gossip actor");
    }

    async fn on_gossip(&mut self, event: GossipEvent) {
        match event {
            GossipEvent::Changed(change) => {
                if let Some(node) = change.key.strip_prefix(erlmcp_flow_gossip::directory::AGENTS_PREFIX) {
                    let Ok(node) = NodeName::new(node) else { return };
                    if node == *self.node() {
                        return;
                    }
                    let records: Vec<AgentRecord> = match change.value() {
                        Some(v) => match decode(&self.args.codec, v) {
                            Ok(r) => r,
                            Err(e) => {
                                ClusterCounters::inc(&self.args.peers.counters.bad_frames);
                                tracing::warn!(peer = %node, error = %e, "undecodable agent directory");
                                return;
                            }
                        },
                        None => Vec::new(),
                    };
                    self.apply_directory(&node, records).await;
                } else if let Some(node) = change.key.strip_prefix(erlmcp_flow_gossip::directory::ADDR_PREFIX)
                    && node != self.node().as_str()
                    && let Some(v) = change.value()
                    && let Ok(addr) = std::str::from_utf8(v)
                {
                    self.learn_address(addr);
                }
            }
            GossipEvent::Membership(MembershipChange { peer, to, .. }) => {
                if peer == *self.node() {
                    return;
                }
                match to.map(|r| r.kind()) {
                    Some(ReachabilityKind::Up) => self.set_reachable(&peer).await,
                    Some(ReachabilityKind::Unreachable) | Some(ReachabilityKind::Left) | None => {
                        if self.args.peers.get(&peer).is_some_and(|p| p.reachable) {
                            if let Some(suppressed) = self.args.peers.log_now(TransportEvent::PeerDown, peer.as_str()) {
                                tracing::warn!(%peer, suppressed, "gossip declares the peer unreachable");
                            }
                            self.set_unreachable(&peer).await;
                        }
                    }
                    Some(ReachabilityKind::Suspect) => {}
                }
            }
        }
    }

    async fn apply_directory(&mut self, node: &NodeName, records: Vec<AgentRecord>) {
        let regs: Vec<RemoteRegistration> = records
            .iter()
            .filter(|a| a.node == *node)
            .filter_map(|a| {
                let id = erlmcp_flow_core::AgentId::new(format!("{}@{}", a.id, node)).ok()?;
                Some(RemoteRegistration {
                    id,
                    capabilities: a.capabilities.clone(),
                    swarms: a.swarms.clone(),
                    weight: a.weight.max(1),
                    link: Arc::new(RemoteAgentLink::new(node.clone(), a.id.clone(), self.channel.clone())),
                })
            })
            .collect();
        match self.args.registry.sync_node(node, regs).await {
            Ok(changed) => {
                if changed > 0 {
                    tracing::debug!(peer = %node, changed, agents = records.len(), "directory applied");
                }
                // Each remote agent is up when its node is reachable and it is up there.
                let reachable = self.args.peers.get(node).is_some_and(|p| p.reachable);
                for a in &records {
                    if let Ok(id) = erlmcp_flow_core::AgentId::new(format!("{}@{}", a.id, node))
                        && let Some(e) = self.args.registry.view().entry(&id)
                    {
                        e.set_remote_up(reachable && a.alive);
                    }
                }
            }
            Err(e) => tracing::warn!(peer = %node, error = %e, "directory not applied"),
        }
    }

    /// Writes this node's directory, load and address to gossip when they changed.
    async fn publish(&mut self) {
        let Some(gossip) = self.gossip() else { return };
        if self.following.as_ref().is_none_or(|(a, _)| *a != gossip.actor().get_id()) {
            return;
        }
        let view = self.args.registry.view();
        let mut agents: Vec<AgentRecord> = view
            .all_entries()
            .into_iter()
            .filter(|e| e.is_local())
            .map(|e| AgentRecord {
                id: e.id.clone(),
                node: self.node().clone(),
                capabilities: e.capabilities.clone(),
                swarms: view.swarms_of(&e.id),
                weight: e.weight,
                alive: e.is_alive(),
            })
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        if self.published_agents.as_ref() != Some(&agents) {
            match encode(&self.args.codec, &agents) {
                Ok(bytes) => {
                    let key = erlmcp_flow_gossip::agents_key(self.node());
                    if gossip.put(key, bytes).await.is_ok() {
                        self.published_agents = Some(agents);
                    }
                }
                Err(e) => tracing::error!(error = %e, "agent directory too large for gossip"),
            }
        }
        let load = NodeLoad {
            in_flight: (self.args.ledger)()[0].saturating_sub({
                let l = (self.args.ledger)();
                l[1] + l[2] + l[3]
            }),
            agents_alive: self
                .published_agents
                .as_ref()
                .map(|a| a.iter().filter(|r| r.alive).count() as u32)
                .unwrap_or(0),
        };
        if self.published_load != Some(load)
            && let Ok(bytes) = encode(&self.args.codec, &load)
            && gossip.put(erlmcp_flow_gossip::load_key(self.node()), bytes).await.is_ok()
        {
            self.published_load = Some(load);
        }
        if !self.published_addr
            && gossip
                .put(erlmcp_flow_gossip::addr_key(self.node()), self.args.hello.listen.clone().into_bytes())
                .await
                .is_ok()
        {
            self.published_addr = true;
        }
    }

    async fn on_tick(&mut self, myself: &ActorRef<ClusterMsg>) {
        let now = self.args.clock.now_ns();
        self.expire_handshakes(now);
        self.args.peers.flush_transport_log();
        self.follow_gossip(myself);
        self.discover(myself);
        self.dial(now);
    }

    /// Closes the sessions that did not authenticate in time.
    fn expire_handshakes(&mut self, now: u64) {
        let due = self.handshakes.expire(now);
        for (cell, peer_addr) in &due {
            ClusterCounters::inc(&self.args.peers.counters.handshake_timeouts);
            if let Some(suppressed) = self.args.peers.log_now(TransportEvent::HandshakeTimeout, "sessions") {
                tracing::warn!(
                    %peer_addr,
                    timeout_ms = self.args.cfg.handshake_timeout_ms,
                    suppressed,
                    "connection did not complete its handshake in time; closed"
                );
            }
            cell.stop(Some("handshake timeout".into()));
        }
        if !due.is_empty() {
            self.publish_pending_handshakes();
        }
    }

    /// Publishes the number of incoming sessions waiting for their handshake (for the
    /// accept loop's fast path and `flow status`).
    fn publish_pending_handshakes(&self) {
        let pending = self.handshakes.pending_incoming() as u64;
        self.args.peers.counters.handshakes_pending.store(pending, std::sync::atomic::Ordering::Relaxed);
    }

    fn dial(&mut self, now: u64) {
        let reachable_listens: HashSet<String> =
            self.args.peers.all().into_iter().filter(|(_, p)| p.gateway.is_some()).map(|(_, p)| p.listen).collect();
        let max = Duration::from_millis(self.args.cfg.reconnect_max_ms);
        let me = self.args.hello.listen.clone();
        for (addr, d) in self.dials.iter_mut() {
            if *addr == me || self.connected_addrs.contains_key(addr) || reachable_listens.contains(addr) {
                continue;
            }
            if now < d.next_at_ns {
                continue;
            }
            d.next_at_ns = now + d.backoff.as_nanos() as u64;
            d.backoff = (d.backoff * 2).min(max);
            let Ok(target) = addr.parse::<SocketAddr>() else { continue };
            ClusterCounters::inc(&self.args.peers.counters.redials);
            let (server, peers) = (self.server.clone(), self.args.peers.clone());
            tokio::spawn(async move {
                if let Err(e) = ractor_cluster::client_connect(&server, target).await
                    && let Some(suppressed) = peers.log_now(TransportEvent::DialFailed, &target.to_string())
                {
                    tracing::info!(%target, error = %e, suppressed, "dial failed; will retry");
                }
            });
        }
    }

    async fn report(&self) -> NodeReport {
        let view = self.args.registry.view();
        let entries = view.all();
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for e in entries.iter().filter(|e| !e.is_local()) {
            if let Some(n) = &e.node {
                *per_node.entry(n.to_string()).or_default() += 1;
            }
        }
        let membership = match self.gossip() {
            Some(g) => g.report().await.ok(),
            None => None,
        };
        let peers = self
            .args
            .peers
            .all()
            .into_iter()
            // Sessions that never greeted (a `flow status` probe, a foreign ractor node)
            // are not members.
            .filter(|(_, p)| p.incarnation != 0)
            .map(|(name, p)| {
                let m = membership.as_ref().and_then(|m| m.peer(&name));
                PeerReport {
                    node: name.to_string(),
                    reachable: p.reachable && !self.args.peers.is_blocked(&name),
                    phi: m.map(|m| m.phi).unwrap_or(0.0),
                    blocked: self.args.peers.is_blocked(&name),
                    listen: p.listen,
                    silent_ms: m.and_then(|m| m.last_heartbeat_ms_ago),
                    agents: per_node.get(name.as_str()).copied().unwrap_or(0),
                }
            })
            .collect();
        let mut counters = self.args.peers.counters.named();
        counters.push(("gossip_inbox_dropped".into(), self.gossip().map(|g| g.inbox_dropped()).unwrap_or(0)));
        NodeReport {
            node: self.node().to_string(),
            incarnation: self.args.hello.incarnation,
            listen: self.args.hello.listen.clone(),
            peers,
            local_agents: entries.iter().filter(|e| e.is_local()).count(),
            remote_agents: entries.iter().filter(|e| !e.is_local()).count(),
            counters,
            ledger: (self.args.ledger)(),
            raft: self.args.raft.get().map(|f| f()),
        }
    }
}
