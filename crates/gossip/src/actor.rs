//! [`GossipActor`]: the thin ractor shell around [`Gossip`], and [`GossipHandle`], its API.
//!
//! The actor owns a [`Gossip`] state machine, a seeded RNG and a [`GossipTransport`]. It
//! turns timer ticks, incoming messages and API calls into calls on the state machine and
//! executes the returned commands: `Send` through the transport, `Changed` and
//! `Membership` as [`GossipEvent`]s on a broadcast channel. All protocol decisions live
//! in [`crate::protocol`]; nothing here needs a test of its own beyond the in-process
//! cluster tests.
//!
//! Its messages are local only (`impl ractor::Message`): the transport decides how
//! [`GossipMessage`]s cross nodes (see [`crate::message`] for the encoding), and hands
//! arrivals to [`GossipHandle::deliver`].
//!
//! Bounds: ractor mailboxes are unbounded, so the actor bounds what it is fed. Incoming
//! gossip goes through [`GossipHandle::deliver`], which refuses (and counts) messages past
//! `max_inbox_messages` queued; each timer keeps at most one tick queued (a tick that finds
//! the previous one unprocessed is skipped, never stacked); the event channel holds
//! `event_capacity` events and a slow subscriber sees `Lagged`, never blocks the actor.
//! Tick phases are randomised from the seed so nodes do not gossip in lockstep.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow_core::NodeName;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, rpc::CallResult};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, GossipConfig};
use crate::membership::{MembershipChange, MembershipError, MembershipReport};
use crate::message::GossipMessage;
use crate::protocol::{Command, Gossip, GossipStats};
use crate::state::{Change, StateError};

/// How gossip messages leave this node. Implementations must not block (queue or drop):
/// gossip tolerates loss, and the actor must keep ticking.
pub trait GossipTransport: Send + Sync + 'static {
    /// Sends `message` to `to`, best effort.
    fn send(&self, to: &NodeName, message: GossipMessage);
}

/// What subscribers of [`GossipHandle::subscribe`] receive.
#[derive(Debug, Clone, PartialEq)]
pub enum GossipEvent {
    /// The replicated state changed.
    Changed(Change),
    /// A peer's reachability changed.
    Membership(MembershipChange),
}

/// Why a gossip API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The local write was refused.
    #[error(transparent)]
    State(#[from] StateError),
    /// The peer could not be added.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The gossip actor is not running.
    #[error("the gossip actor of {0} is not running")]
    Stopped(NodeName),
    /// The gossip actor did not answer in time (retryable).
    #[error("the gossip actor of {0} did not answer within {1:?}")]
    Timeout(NodeName, Duration),
    /// The actor could not be spawned.
    #[error("cannot spawn the gossip actor: {0}")]
    Spawn(String),
}

/// Why [`GossipHandle::deliver`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// `max_inbox_messages` are queued already; the message was dropped.
    #[error("gossip inbox full ({0} messages queued)")]
    InboxFull(usize),
    /// The actor is not running.
    #[error("the gossip actor is not running")]
    Stopped,
}

/// Messages of the gossip actor (local only).
#[derive(Debug)]
pub enum GossipActorMsg {
    /// Run a gossip round.
    Tick,
    /// Send heartbeats.
    HeartbeatTick,
    /// A message from a peer, as identified by the transport.
    Incoming {
        /// The sender.
        from: NodeName,
        /// The message.
        message: GossipMessage,
    },
    /// Local write.
    Put(String, Bytes, RpcReplyPort<Result<(), StateError>>),
    /// Local delete.
    Delete(String, RpcReplyPort<Result<(), StateError>>),
    /// Read one live value.
    Get(String, RpcReplyPort<Option<Bytes>>),
    /// Read every live value.
    Snapshot(RpcReplyPort<BTreeMap<String, Bytes>>),
    /// Add a peer.
    AddPeer(NodeName, RpcReplyPort<Result<(), MembershipError>>),
    /// Forget a peer.
    RemovePeer(NodeName),
    /// The transport opened a session to the peer.
    PeerConnected(NodeName),
    /// The transport lost its session to the peer.
    PeerDisconnected(NodeName),
    /// Membership, reachability and φ per peer.
    Report(RpcReplyPort<MembershipReport>),
    /// Protocol counters.
    Stats(RpcReplyPort<GossipStats>),
    /// Tell every peer this node is leaving.
    Leave(RpcReplyPort<()>),
}

impl ractor::Message for GossipActorMsg {}

/// State shared between the actor, its timers and its handles.
#[derive(Debug)]
struct Shared {
    me: NodeName,
    events: broadcast::Sender<GossipEvent>,
    inbox: AtomicUsize,
    max_inbox: usize,
    inbox_dropped: AtomicU64,
    rounds: AtomicU64,
    tick_pending: AtomicBool,
    heartbeat_pending: AtomicBool,
}

/// Everything the actor starts from.
pub struct GossipActorArgs {
    /// This node.
    pub me: NodeName,
    /// Protocol settings.
    pub config: GossipConfig,
    /// Grows across restarts of this node (see [`Gossip::new`]).
    pub incarnation: u64,
    /// Seed of the actor's RNG (peer choice, tick phase): a run can be replayed.
    pub seed: u64,
    /// Where outgoing messages go.
    pub transport: Arc<dyn GossipTransport>,
    /// Initial peers.
    pub peers: Vec<NodeName>,
}

impl fmt::Debug for GossipActorArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipActorArgs")
            .field("me", &self.me)
            .field("incarnation", &self.incarnation)
            .field("seed", &self.seed)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

/// The actor's start-up arguments (built by [`GossipHandle::spawn`]).
#[derive(Debug)]
pub struct GossipStart(GossipActorArgs, Arc<Shared>);

/// The gossip actor. Spawn it with [`GossipHandle::spawn`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GossipActor;

/// The actor's private state.
pub struct GossipActorState {
    gossip: Gossip,
    rng: SmallRng,
    transport: Arc<dyn GossipTransport>,
    shared: Arc<Shared>,
    timers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for GossipActorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipActorState").field("gossip", &self.gossip).finish_non_exhaustive()
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sends `make()` every `period` after a first delay of `phase`, keeping at most one
/// unprocessed tick queued (`pending` is cleared by the actor when it takes the tick).
fn spawn_timer(
    actor: ActorRef<GossipActorMsg>,
    phase: Duration,
    period: Duration,
    shared: Arc<Shared>,
    pending: fn(&Shared) -> &AtomicBool,
    make: fn() -> GossipActorMsg,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if pending(&shared).swap(true, Ordering::AcqRel) {
                continue;
            }
            if actor.cast(make()).is_err() {
                break;
            }
        }
    })
}

impl Actor for GossipActor {
    type Msg = GossipActorMsg;
    type State = GossipActorState;
    type Arguments = GossipStart;

    async fn pre_start(
        &self,
        myself: ActorRef<GossipActorMsg>,
        GossipStart(args, shared): GossipStart,
    ) -> Result<GossipActorState, ActorProcessingErr> {
        let mut gossip = Gossip::new(args.me.clone(), args.config.clone(), args.incarnation)?;
        let t = now();
        for peer in &args.peers {
            gossip.add_peer(peer, t)?;
        }
        let mut rng = SmallRng::seed_from_u64(args.seed);
        let interval = args.config.interval();
        let heartbeat = args.config.heartbeat_interval();
        let timers = vec![
            spawn_timer(
                myself.clone(),
                interval.mul_f64(rng.random::<f64>()),
                interval,
                shared.clone(),
                |s| &s.tick_pending,
                || GossipActorMsg::Tick,
            ),
            spawn_timer(
                myself,
                heartbeat.mul_f64(rng.random::<f64>()),
                heartbeat,
                shared.clone(),
                |s| &s.heartbeat_pending,
                || GossipActorMsg::HeartbeatTick,
            ),
        ];
        Ok(GossipActorState { gossip, rng, transport: args.transport, shared, timers })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GossipActorMsg>,
        state: &mut GossipActorState,
    ) -> Result<(), ActorProcessingErr> {
        for t in &state.timers {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<GossipActorMsg>,
        msg: GossipActorMsg,
        state: &mut GossipActorState,
    ) -> Result<(), ActorProcessingErr> {
        let t = now();
        let commands = match msg {
            GossipActorMsg::Tick => {
                state.shared.tick_pending.store(false, Ordering::Release);
                state.shared.rounds.fetch_add(1, Ordering::Relaxed);
                state.gossip.tick(t, &mut state.rng)
            }
            GossipActorMsg::HeartbeatTick => {
                state.shared.heartbeat_pending.store(false, Ordering::Release);
                state.gossip.heartbeat_tick(t)
            }
            GossipActorMsg::Incoming { from, message } => {
                state.shared.inbox.fetch_sub(1, Ordering::AcqRel);
                state.gossip.handle(&from, message, t)
            }
            GossipActorMsg::Put(key, value, reply) => answer(reply, state.gossip.put(key, value, t)),
            GossipActorMsg::Delete(key, reply) => answer(reply, state.gossip.delete(&key, t)),
            GossipActorMsg::Get(key, reply) => {
                let _ = reply.send(state.gossip.state().get(&key).cloned());
                Vec::new()
            }
            GossipActorMsg::Snapshot(reply) => {
                let _ = reply.send(state.gossip.state().snapshot());
                Vec::new()
            }
            GossipActorMsg::AddPeer(peer, reply) => answer(reply, state.gossip.add_peer(&peer, t)),
            GossipActorMsg::RemovePeer(peer) => state.gossip.remove_peer(&peer),
            GossipActorMsg::PeerConnected(peer) => state.gossip.peer_connected(&peer, t).unwrap_or_else(|e| {
                tracing::warn!(node = %state.shared.me, %peer, error = %e, "cannot track a connected peer");
                Vec::new()
            }),
            GossipActorMsg::PeerDisconnected(peer) => state.gossip.peer_disconnected(&peer, t),
            GossipActorMsg::Report(reply) => {
                let _ = reply.send(state.gossip.report(t));
                Vec::new()
            }
            GossipActorMsg::Stats(reply) => {
                let _ = reply.send(state.gossip.stats());
                Vec::new()
            }
            GossipActorMsg::Leave(reply) => {
                let out = state.gossip.leave();
                state.execute(out);
                let _ = reply.send(());
                Vec::new()
            }
        };
        state.execute(commands);
        Ok(())
    }
}

/// Replies `Ok(())`/`Err(e)` and passes the commands on.
fn answer<E>(reply: RpcReplyPort<Result<(), E>>, result: Result<Vec<Command>, E>) -> Vec<Command>
where
    E: Send + 'static,
{
    match result {
        Ok(commands) => {
            let _ = reply.send(Ok(()));
            commands
        }
        Err(e) => {
            let _ = reply.send(Err(e));
            Vec::new()
        }
    }
}

impl GossipActorState {
    fn execute(&mut self, commands: Vec<Command>) {
        for c in commands {
            match c {
                Command::Send { to, message } => self.transport.send(&to, message),
                // No subscriber is not an error.
                Command::Changed(change) => drop(self.shared.events.send(GossipEvent::Changed(change))),
                Command::Membership(change) => {
                    tracing::debug!(node = %self.shared.me, peer = %change.peer, to = ?change.to, "reachability changed");
                    drop(self.shared.events.send(GossipEvent::Membership(change)));
                }
            }
        }
    }
}

/// The API of one running gossip node: cheap to clone.
#[derive(Clone)]
pub struct GossipHandle {
    actor: ActorRef<GossipActorMsg>,
    shared: Arc<Shared>,
    call_timeout: Duration,
}

impl erlmcp_flow_supervision::Incarnation for GossipHandle {
    fn cell(&self) -> ractor::ActorCell {
        self.actor.get_cell()
    }
}

impl fmt::Debug for GossipHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GossipHandle").field("me", &self.shared.me).field("actor", &self.actor.get_id()).finish()
    }
}

impl GossipHandle {
    /// Spawns a gossip actor (unlinked; use [`GossipHandle::spawn_linked`] under a
    /// supervisor) and returns its handle and join handle.
    pub async fn spawn(args: GossipActorArgs) -> Result<(GossipHandle, JoinHandle<()>), GossipError> {
        Self::spawn_inner(args, None).await
    }

    /// Spawns a gossip actor linked to `supervisor`.
    pub async fn spawn_linked(
        args: GossipActorArgs,
        supervisor: ractor::ActorCell,
    ) -> Result<(GossipHandle, JoinHandle<()>), GossipError> {
        Self::spawn_inner(args, Some(supervisor)).await
    }

    async fn spawn_inner(
        args: GossipActorArgs,
        supervisor: Option<ractor::ActorCell>,
    ) -> Result<(GossipHandle, JoinHandle<()>), GossipError> {
        args.config.validate()?;
        let shared = Arc::new(Shared {
            me: args.me.clone(),
            events: broadcast::channel(args.config.event_capacity).0,
            inbox: AtomicUsize::new(0),
            max_inbox: args.config.max_inbox_messages,
            inbox_dropped: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            tick_pending: AtomicBool::new(false),
            heartbeat_pending: AtomicBool::new(false),
        });
        let started = match supervisor {
            None => Actor::spawn(None, GossipActor, GossipStart(args, shared.clone())).await,
            Some(sup) => Actor::spawn_linked(None, GossipActor, GossipStart(args, shared.clone()), sup).await,
        };
        let (actor, join) = started.map_err(|e| GossipError::Spawn(e.to_string()))?;
        Ok((GossipHandle { actor, shared, call_timeout: Duration::from_secs(5) }, join))
    }

    /// Sets how long API calls wait for the actor (default 5 s).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// This node.
    pub fn me(&self) -> &NodeName {
        &self.shared.me
    }

    /// The actor.
    pub fn actor(&self) -> &ActorRef<GossipActorMsg> {
        &self.actor
    }

    /// Hands a message that arrived from `from` to the actor; refused when
    /// `max_inbox_messages` are already queued (the message is dropped and counted).
    pub fn deliver(&self, from: NodeName, message: GossipMessage) -> Result<(), DeliverError> {
        let queued = self.shared.inbox.fetch_add(1, Ordering::AcqRel);
        if queued >= self.shared.max_inbox {
            self.shared.inbox.fetch_sub(1, Ordering::AcqRel);
            self.shared.inbox_dropped.fetch_add(1, Ordering::Relaxed);
            return Err(DeliverError::InboxFull(queued));
        }
        self.actor.cast(GossipActorMsg::Incoming { from, message }).map_err(|_| {
            self.shared.inbox.fetch_sub(1, Ordering::AcqRel);
            DeliverError::Stopped
        })
    }

    /// Messages refused by [`deliver`](Self::deliver) because the inbox was full.
    pub fn inbox_dropped(&self) -> u64 {
        self.shared.inbox_dropped.load(Ordering::Relaxed)
    }

    /// Gossip rounds this node has run.
    pub fn rounds(&self) -> u64 {
        self.shared.rounds.load(Ordering::Relaxed)
    }

    /// State and membership changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<GossipEvent> {
        self.shared.events.subscribe()
    }

    async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(RpcReplyPort<T>) -> GossipActorMsg,
    ) -> Result<T, GossipError> {
        match self.actor.call(make, Some(self.call_timeout)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(GossipError::Timeout(self.me().clone(), self.call_timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(GossipError::Stopped(self.me().clone())),
        }
    }

    /// Writes `key` on this node; it spreads to every reachable node.
    pub async fn put(&self, key: impl Into<String>, value: impl Into<Bytes>) -> Result<(), GossipError> {
        let (key, value) = (key.into(), value.into());
        Ok(self.call(|r| GossipActorMsg::Put(key, value, r)).await??)
    }

    /// Deletes `key` on this node (a tombstone that spreads like a write).
    pub async fn delete(&self, key: impl Into<String>) -> Result<(), GossipError> {
        let key = key.into();
        Ok(self.call(|r| GossipActorMsg::Delete(key, r)).await??)
    }

    /// The live value of `key` on this node.
    pub async fn get(&self, key: impl Into<String>) -> Result<Option<Bytes>, GossipError> {
        let key = key.into();
        self.call(|r| GossipActorMsg::Get(key, r)).await
    }

    /// Every live value on this node.
    pub async fn snapshot(&self) -> Result<BTreeMap<String, Bytes>, GossipError> {
        self.call(GossipActorMsg::Snapshot).await
    }

    /// Adds a peer.
    pub async fn add_peer(&self, peer: NodeName) -> Result<(), GossipError> {
        Ok(self.call(|r| GossipActorMsg::AddPeer(peer, r)).await??)
    }

    /// Forgets a peer.
    pub fn remove_peer(&self, peer: NodeName) -> Result<(), GossipError> {
        self.actor.cast(GossipActorMsg::RemovePeer(peer)).map_err(|_| GossipError::Stopped(self.me().clone()))
    }

    /// For the transport: a session to `peer` is up.
    pub fn peer_connected(&self, peer: NodeName) -> Result<(), GossipError> {
        self.actor.cast(GossipActorMsg::PeerConnected(peer)).map_err(|_| GossipError::Stopped(self.me().clone()))
    }

    /// For the transport: the session to `peer` is down (the peer becomes unreachable).
    pub fn peer_disconnected(&self, peer: NodeName) -> Result<(), GossipError> {
        self.actor.cast(GossipActorMsg::PeerDisconnected(peer)).map_err(|_| GossipError::Stopped(self.me().clone()))
    }

    /// Membership, reachability and φ per peer.
    pub async fn report(&self) -> Result<MembershipReport, GossipError> {
        self.call(GossipActorMsg::Report).await
    }

    /// Protocol counters.
    pub async fn stats(&self) -> Result<GossipStats, GossipError> {
        self.call(GossipActorMsg::Stats).await
    }

    /// Tells the peers this node leaves, then stops the actor.
    pub async fn shutdown(&self) {
        let _ = self.call(GossipActorMsg::Leave).await;
        self.actor.stop(None);
    }

    /// Stops the actor without telling anyone (as a crash would look to peers).
    pub fn kill(&self) {
        self.actor.stop(None);
    }
}
