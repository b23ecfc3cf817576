//! [`ByzantineDetector`]: the thin ractor shell around [`ByzantineCore`], its API
//! ([`ByzantineHandle`]), the [`ByzantineTransport`] trait and [`InProcessByzantineNet`].
//!
//! The actor feeds the core API calls, bytes from the transport and timer ticks (every
//! `round_timeout_ms / 10`, at least 1 ms; a tick that finds the previous one unprocessed is
//! skipped), with `tokio::time::Instant::now()` as the clock, and executes its outputs:
//! broadcasts are encoded once and handed to the transport for every peer; decisions and
//! timeouts answer the callers waiting on that round. Messages are local only
//! (`impl ractor::Message`); the cluster layer implements [`ByzantineTransport`] over its
//! gateways and hands arrivals to [`ByzantineHandle::deliver`].
//!
//! Bounds: incoming bytes past `MAX_INBOX` queued are dropped and counted; at most
//! `MAX_WAITERS` callers wait on decisions at once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow_core::NodeName;
use erlmcp_flow_core::config::ByzantineConfig;
use parking_lot::{Mutex, RwLock};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, rpc::CallResult};
use tokio::task::JoinHandle;

use crate::core::{ByzantineCore, ByzantineStats, CoreError, Decision, Output, ProposeError};
use crate::fault::{Behaviour, FaultInjector};
use crate::keys::{KeyError, KeyRing};
use crate::wire;

/// Incoming messages queued per actor before further ones are dropped.
pub const MAX_INBOX: usize = 4096;
/// Callers waiting on decisions at once.
pub const MAX_WAITERS: usize = 4096;

/// How Byzantine messages leave this node. Must not block (queue or drop).
pub trait ByzantineTransport: Send + Sync + 'static {
    /// Sends encoded `bytes` to node `to`, best effort.
    fn send(&self, to: &NodeName, bytes: Bytes);
}

/// How a round ended at one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Decided.
    Decided(Decision),
    /// Timed out without a decision.
    TimedOut,
    /// The round is below the kept window: its outcome is forgotten.
    Forgotten,
}

/// Why a call on the detector failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByzantineError {
    /// The proposal was refused.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The core could not be built.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Keys could not be provisioned.
    #[error("keys: {0}")]
    Keys(String),
    /// Too many callers wait on decisions (retryable).
    #[error("too many callers waiting on decisions")]
    TooManyWaiters,
    /// The actor is not running.
    #[error("the byzantine detector of {0} is not running")]
    Stopped(NodeName),
    /// The actor did not answer in time.
    #[error("the byzantine detector of {0} did not answer within {1:?}")]
    Timeout(NodeName, Duration),
    /// The actor could not be spawned.
    #[error("cannot spawn the byzantine detector: {0}")]
    Spawn(String),
}

impl From<KeyError> for ByzantineError {
    fn from(e: KeyError) -> Self {
        ByzantineError::Keys(e.to_string())
    }
}

/// Why [`ByzantineHandle::deliver`] refused bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// `MAX_INBOX` messages are queued; dropped.
    #[error("byzantine inbox full ({0} queued)")]
    InboxFull(usize),
    /// The actor is not running.
    #[error("the byzantine detector is not running")]
    Stopped,
}

/// Messages of the detector (local only).
#[derive(Debug)]
pub enum ByzantineMsg {
    /// Propose `value` for `round` (this node must lead it).
    Propose {
        /// The round.
        round: u64,
        /// The value.
        value: Vec<u8>,
        /// Answered once the proposal is broadcast.
        reply: RpcReplyPort<Result<(), ProposeError>>,
    },
    /// Bytes from the network.
    Incoming(Bytes),
    /// Check round timeouts.
    Tick,
    /// Answer once `round` is decided or timed out here.
    AwaitRound(u64, RpcReplyPort<Result<RoundOutcome, ByzantineError>>),
    /// Counters and scores.
    Stats(RpcReplyPort<ByzantineStats>),
}

impl ractor::Message for ByzantineMsg {}

#[derive(Debug)]
struct Shared {
    me: NodeName,
    inbox: AtomicUsize,
    inbox_dropped: AtomicU64,
    tick_pending: AtomicBool,
}

/// What the detector starts from.
pub struct ByzantineArgs {
    /// This node's keys (its peers are the other members).
    pub keys: KeyRing,
    /// Protocol settings.
    pub config: ByzantineConfig,
    /// Where outgoing messages go.
    pub transport: Arc<dyn ByzantineTransport>,
}

impl fmt::Debug for ByzantineArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByzantineArgs").field("keys", &self.keys).field("config", &self.config).finish_non_exhaustive()
    }
}

/// Start-up arguments (built by [`ByzantineHandle::spawn`]).
#[derive(Debug)]
pub struct ByzantineStart(ByzantineArgs, Arc<Shared>);

/// The Byzantine quorum-voting actor. Spawn it with [`ByzantineHandle::spawn`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ByzantineDetector;

/// The actor's private state.
pub struct ByzantineState {
    core: ByzantineCore,
    transport: Arc<dyn ByzantineTransport>,
    peers: Vec<NodeName>,
    shared: Arc<Shared>,
    waiters: BTreeMap<u64, Vec<RpcReplyPort<Result<RoundOutcome, ByzantineError>>>>,
    waiting: usize,
    timer: Option<JoinHandle<()>>,
}

impl fmt::Debug for ByzantineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByzantineState").field("core", &self.core).finish_non_exhaustive()
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl ByzantineState {
    fn execute(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Broadcast(message) => match wire::encode(&message) {
                    Ok(bytes) => {
                        let bytes = Bytes::from(bytes);
                        for peer in &self.peers {
                            self.transport.send(peer, bytes.clone());
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "byzantine: cannot encode own message"),
                },
                Output::Decided(d) => {
                    let round = d.round;
                    self.answer(round, RoundOutcome::Decided(d));
                }
                Output::TimedOut { round } => self.answer(round, RoundOutcome::TimedOut),
                Output::Rejected(r) => tracing::debug!(?r, "byzantine: message rejected"),
                Output::Charged { node, round, fault } => {
                    tracing::info!(%node, round, ?fault, "byzantine: fault charged")
                }
                Output::Blacklisted(node) => tracing::warn!(%node, "byzantine: blacklisted"),
            }
        }
        // Waiters on rounds that fell out of the window.
        let forgotten: Vec<u64> = self.waiters.keys().copied().filter(|r| self.core.is_forgotten(*r)).collect();
        for round in forgotten {
            self.answer(round, RoundOutcome::Forgotten);
        }
    }

    fn answer(&mut self, round: u64, outcome: RoundOutcome) {
        for reply in self.waiters.remove(&round).unwrap_or_default() {
            self.waiting -= 1;
            let _ = reply.send(Ok(outcome.clone()));
        }
    }
}

impl Actor for ByzantineDetector {
    type Msg = ByzantineMsg;
    type State = ByzantineState;
    type Arguments = ByzantineStart;

    async fn pre_start(
        &self,
        myself: ActorRef<ByzantineMsg>,
        ByzantineStart(args, shared): ByzantineStart,
    ) -> Result<ByzantineState, ActorProcessingErr> {
        let nonce_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        let peers: Vec<NodeName> = args.keys.peers().cloned().collect();
        let core = ByzantineCore::new(args.keys, &args.config, nonce_start)?;
        let period = Duration::from_millis((args.config.round_timeout_ms / 10).max(1));
        let timer_shared = shared.clone();
        let timer = tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if timer_shared.tick_pending.swap(true, Ordering::AcqRel) {
                    continue;
                }
                if myself.cast(ByzantineMsg::Tick).is_err() {
                    break;
                }
            }
        });
        Ok(ByzantineState {
            core,
            transport: args.transport,
            peers,
            shared,
            waiters: BTreeMap::new(),
            waiting: 0,
            timer: Some(timer),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ByzantineMsg>,
        state: &mut ByzantineState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.timer.take() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ByzantineMsg>,
        msg: ByzantineMsg,
        state: &mut ByzantineState,
    ) -> Result<(), ActorProcessingErr> {
        let t = now();
        match msg {
            ByzantineMsg::Propose { round, value, reply } => match state.core.propose(round, value, t) {
                Ok(outputs) => {
                    state.execute(outputs);
                    let _ = reply.send(Ok(()));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            ByzantineMsg::Incoming(bytes) => {
                state.shared.inbox.fetch_sub(1, Ordering::AcqRel);
                let outputs = state.core.on_bytes(&bytes, t);
                state.execute(outputs);
            }
            ByzantineMsg::Tick => {
                state.shared.tick_pending.store(false, Ordering::Release);
                let outputs = state.core.on_tick(t);
                state.execute(outputs);
            }
            ByzantineMsg::AwaitRound(round, reply) => {
                let outcome = if let Some(d) = state.core.decision(round) {
                    Some(RoundOutcome::Decided(d.clone()))
                } else if state.core.timed_out(round) {
                    Some(RoundOutcome::TimedOut)
                } else if state.core.is_forgotten(round) {
                    Some(RoundOutcome::Forgotten)
                } else {
                    None
                };
                match outcome {
                    Some(o) => {
                        let _ = reply.send(Ok(o));
                    }
                    None if state.waiting >= MAX_WAITERS => {
                        let _ = reply.send(Err(ByzantineError::TooManyWaiters));
                    }
                    None => {
                        state.waiting += 1;
                        state.waiters.entry(round).or_default().push(reply);
                    }
                }
            }
            ByzantineMsg::Stats(reply) => {
                let _ = reply.send(state.core.stats().clone());
            }
        }
        Ok(())
    }
}

/// The API of one running detector. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ByzantineHandle {
    actor: ActorRef<ByzantineMsg>,
    shared: Arc<Shared>,
    call_timeout: Duration,
}

impl erlmcp_flow_supervision::Incarnation for ByzantineHandle {
    fn cell(&self) -> ractor::ActorCell {
        self.actor.get_cell()
    }
}

impl ByzantineHandle {
    /// Spawns an unnamed detector (no process-global registration).
    pub async fn spawn(args: ByzantineArgs) -> Result<(ByzantineHandle, JoinHandle<()>), ByzantineError> {
        let shared = Arc::new(Shared {
            me: args.keys.me().clone(),
            inbox: AtomicUsize::new(0),
            inbox_dropped: AtomicU64::new(0),
            tick_pending: AtomicBool::new(false),
        });
        let (actor, join) = Actor::spawn(None, ByzantineDetector, ByzantineStart(args, shared.clone()))
            .await
            .map_err(|e| ByzantineError::Spawn(e.to_string()))?;
        Ok((ByzantineHandle { actor, shared, call_timeout: Duration::from_secs(5) }, join))
    }

    /// Spawns a detector linked to `supervisor` (a child of a supervision tree: its
    /// abnormal exit is the supervisor's to handle).
    pub async fn spawn_linked(
        args: ByzantineArgs,
        supervisor: ractor::ActorCell,
    ) -> Result<ByzantineHandle, ByzantineError> {
        let shared = Arc::new(Shared {
            me: args.keys.me().clone(),
            inbox: AtomicUsize::new(0),
            inbox_dropped: AtomicU64::new(0),
            tick_pending: AtomicBool::new(false),
        });
        let (actor, _join) =
            Actor::spawn_linked(None, ByzantineDetector, ByzantineStart(args, shared.clone()), supervisor)
                .await
                .map_err(|e| ByzantineError::Spawn(e.to_string()))?;
        Ok(ByzantineHandle { actor, shared, call_timeout: Duration::from_secs(5) })
    }

    /// Sets how long calls wait for the actor (default 5 s).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// This node.
    pub fn me(&self) -> &NodeName {
        &self.shared.me
    }

    /// The actor.
    pub fn actor(&self) -> &ActorRef<ByzantineMsg> {
        &self.actor
    }

    /// Hands bytes from the network to the detector; refuses past [`MAX_INBOX`] queued.
    pub fn deliver(&self, bytes: Bytes) -> Result<(), DeliverError> {
        let queued = self.shared.inbox.fetch_add(1, Ordering::AcqRel);
        if queued >= MAX_INBOX {
            self.shared.inbox.fetch_sub(1, Ordering::AcqRel);
            self.shared.inbox_dropped.fetch_add(1, Ordering::Relaxed);
            return Err(DeliverError::InboxFull(queued));
        }
        self.actor.cast(ByzantineMsg::Incoming(bytes)).map_err(|_| {
            self.shared.inbox.fetch_sub(1, Ordering::AcqRel);
            DeliverError::Stopped
        })
    }

    /// Incoming messages dropped because the inbox was full.
    pub fn inbox_dropped(&self) -> u64 {
        self.shared.inbox_dropped.load(Ordering::Relaxed)
    }

    async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(RpcReplyPort<T>) -> ByzantineMsg,
        timeout: Duration,
    ) -> Result<T, ByzantineError> {
        match self.actor.call(make, Some(timeout)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(ByzantineError::Timeout(self.me().clone(), timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(ByzantineError::Stopped(self.me().clone())),
        }
    }

    /// Proposes `value` for `round`; returns once the proposal is broadcast.
    pub async fn propose(&self, round: u64, value: impl Into<Vec<u8>>) -> Result<(), ByzantineError> {
        let value = value.into();
        Ok(self.call(|reply| ByzantineMsg::Propose { round, value, reply }, self.call_timeout).await??)
    }

    /// Waits until `round` is decided or timed out here (or `wait` passes: `Timeout`).
    pub async fn await_round(&self, round: u64, wait: Duration) -> Result<RoundOutcome, ByzantineError> {
        self.call(|reply| ByzantineMsg::AwaitRound(round, reply), wait).await?
    }

    /// Counters and per-peer scores.
    pub async fn stats(&self) -> Result<ByzantineStats, ByzantineError> {
        self.call(ByzantineMsg::Stats, self.call_timeout).await
    }

    /// Stops the actor.
    pub fn stop(&self) {
        self.actor.stop(None);
    }
}

#[derive(Default)]
struct NetInner {
    nodes: RwLock<HashMap<NodeName, ByzantineHandle>>,
    injectors: Mutex<HashMap<NodeName, FaultInjector>>,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

/// Detectors of one process wired to each other, with per-node fault injection (a faulty
/// node's outgoing messages are rewritten by its [`FaultInjector`]). For tests, examples
/// and the benchmark. Cheap to clone.
#[derive(Clone, Default)]
pub struct InProcessByzantineNet {
    inner: Arc<NetInner>,
}

impl fmt::Debug for InProcessByzantineNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessByzantineNet")
            .field("nodes", &self.inner.nodes.read().len())
            .field("delivered", &self.delivered())
            .finish()
    }
}

/// The transport of one node of an [`InProcessByzantineNet`].
#[derive(Debug, Clone)]
pub struct InProcessByzantineTransport {
    me: NodeName,
    net: InProcessByzantineNet,
}

impl ByzantineTransport for InProcessByzantineTransport {
    fn send(&self, to: &NodeName, bytes: Bytes) {
        self.net.send(&self.me, to, bytes);
    }
}

impl InProcessByzantineNet {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// The transport for node `me`.
    pub fn transport(&self, me: NodeName) -> InProcessByzantineTransport {
        InProcessByzantineTransport { me, net: self.clone() }
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Messages dropped (unknown target, full inbox, silent node).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, from: &NodeName, to: &NodeName, bytes: Bytes) {
        let Some(target) = self.inner.nodes.read().get(to).cloned() else {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let rewritten = {
            let mut injectors = self.inner.injectors.lock();
            injectors.get_mut(from).map(|injector| match wire::decode(&bytes) {
                Ok(m) => {
                    injector.rewrite(to, &m).iter().filter_map(|m| wire::encode(m).ok().map(Bytes::from)).collect()
                }
                Err(_) => Vec::new(),
            })
        };
        let batch = rewritten.unwrap_or_else(|| vec![bytes]);
        if batch.is_empty() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        for b in batch {
            match target.deliver(b) {
                Ok(()) => self.inner.delivered.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.inner.dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    /// Spawns detectors `prefix-00`… with `behaviours[i]` for node i (missing: honest), keys
    /// from [`KeyRing::provision`] with `seed`, registered on this network.
    pub async fn spawn_cluster(
        &self,
        prefix: &str,
        n: usize,
        config: &ByzantineConfig,
        behaviours: &[Behaviour],
        seed: u64,
    ) -> Result<Vec<ByzantineHandle>, ByzantineError> {
        let names: Vec<NodeName> = (0..n)
            .map(|i| NodeName::new(format!("{prefix}-{i:02}")))
            .collect::<Result<_, _>>()
            .map_err(|e| ByzantineError::Keys(e.to_string()))?;
        let rings = KeyRing::provision(&names, seed)?;
        let mut handles = Vec::with_capacity(n);
        for (i, name) in names.iter().enumerate() {
            let ring = rings[name].clone();
            let behaviour = behaviours.get(i).copied().unwrap_or(Behaviour::Honest);
            if behaviour != Behaviour::Honest {
                self.inner.injectors.lock().insert(name.clone(), FaultInjector::new(behaviour, ring.clone()));
            }
            let args =
                ByzantineArgs { keys: ring, config: config.clone(), transport: Arc::new(self.transport(name.clone())) };
            let (handle, _join) = ByzantineHandle::spawn(args).await?;
            self.inner.nodes.write().insert(name.clone(), handle.clone());
            handles.push(handle);
        }
        Ok(handles)
    }

    /// Stops every node.
    pub fn stop_all(&self) {
        for h in self.inner.nodes.read().values() {
            h.stop();
        }
    }
}
