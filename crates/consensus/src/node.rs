//! [`ConsensusNode`]: one openraft node with the ledger state machine, its storage, its
//! network, and the client paths (write forwarding, linearizable reads) on top.
//!
//! Client writes always commit through the leader. A node that is not the leader
//! forwards the command over the transport as a `ClientWrite` wire message; while an
//! election is in progress (no leader known, or the leader unreachable) it retries with a
//! short growing pause, woken early by every Raft metrics change, until
//! `raft.client_timeout_ms` has passed, then answers `Unavailable` (or `NotLeader` when a
//! leader is known but did not take the write). Retrying is safe for the ledger's own
//! commands because `Submit` and `Finish` are idempotent by task id.
//!
//! Membership changes (`add_voter`, `remove_voter`) take the same path: forwarded to the
//! leader as a `Membership` wire message and retried through elections. A repeated change
//! is harmless (openraft computes the new voter set as a union or a difference).
//!
//! Linearizable reads use Raft's ReadIndex (Raft thesis §6.4): the leader confirms its
//! leadership with a quorum (`ensure_linearizable`) and names a log index; the reading
//! node waits until it has applied that index and reads its own state. A follower gets
//! the index from the leader over the transport, so reads work on every node.

use crate::snapshot_guard::SnapshotGuard;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use bytes::Bytes;
use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::raft::AppendEntriesResponse;
use openraft::{ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use erlmcp_flow_core::RaftConfig;

use crate::error::{ConsensusError, TransportError};
use crate::fence::Fence;
use crate::ledger::{LedgerCommand, LedgerState};
use crate::network::NetworkFactory;
use crate::pre_vote::{PreVoteAnswer, PreVoteRequest};
use crate::state_machine::LedgerStateMachine;
use crate::store_mem::MemLogStore;
use crate::store_redb::{RedbLogStore, RedbSnapshotStore, open_database};
use crate::supervisor::{CoreHealth, CoreStores, LogBackend};
use crate::transport::RaftTransport;
use crate::types::{NamedNode, Raft, RaftNodeId, node_id_for};
use crate::wire::{self, CommitReceipt, MAX_COMMAND_BYTES, MembershipChange, RaftWire, RaftWireReply};

pub(crate) type Metrics = RaftMetrics<RaftNodeId, NamedNode>;

/// A node's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeRole {
    /// Accepts writes.
    Leader,
    /// Replicates the leader's log.
    Follower,
    /// Running an election.
    Candidate,
    /// Replicates but does not vote (not yet a member, or not initialized).
    Learner,
    /// Stopped.
    Shutdown,
}

impl From<ServerState> for NodeRole {
    fn from(s: ServerState) -> Self {
        match s {
            ServerState::Leader => NodeRole::Leader,
            ServerState::Follower => NodeRole::Follower,
            ServerState::Candidate => NodeRole::Candidate,
            ServerState::Learner => NodeRole::Learner,
            ServerState::Shutdown => NodeRole::Shutdown,
        }
    }
}

/// A snapshot of a node's Raft state, read from openraft's metrics without waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftStatus {
    /// This node's id.
    pub id: RaftNodeId,
    /// This node's name.
    pub name: String,
    /// Its role.
    pub state: NodeRole,
    /// Its current term.
    pub current_term: u64,
    /// The leader it knows of (id and name).
    pub leader: Option<(RaftNodeId, String)>,
    /// Index of the last entry applied to the state machine. (openraft 0.9's metrics do
    /// not publish the commit index; everything applied is committed, and the leader
    /// applies as soon as it commits.)
    pub applied_index: Option<u64>,
    /// Index of the last entry in the local log.
    pub last_log_index: Option<u64>,
    /// Index covered by the latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Names of the voters.
    pub voters: Vec<String>,
    /// Names of the learners.
    pub learners: Vec<String>,
    /// Undecodable requests received by `handle_rpc`.
    pub decode_errors: u64,
    /// Client writes this node forwarded to the leader.
    pub forwarded_writes: u64,
    /// Whether this node's openraft core is running (false while the supervisor restarts
    /// it after a fatal error, and after shutdown).
    pub core_up: bool,
    /// Times the supervisor restarted the openraft core after a fatal error.
    pub core_restarts: u64,
    /// Elections this node started after a granted pre-vote round.
    pub elections_started: u64,
    /// Pre-vote rounds this node ran that a quorum did not grant (no election, no new term).
    pub pre_votes_refused: u64,
}

pub(crate) struct NodeInner {
    pub(crate) id: RaftNodeId,
    pub(crate) name: String,
    /// The running openraft instance; replaced by the supervisor after a fatal error.
    pub(crate) core: RwLock<Raft>,
    /// What every core incarnation is built from (the node owns the stores).
    pub(crate) stores: CoreStores,
    pub(crate) sm: LedgerStateMachine,
    pub(crate) transport: Arc<dyn RaftTransport>,
    /// The current core's metrics, relayed so that they survive a core restart.
    pub(crate) metrics_tx: watch::Sender<Metrics>,
    pub(crate) metrics: watch::Receiver<Metrics>,
    pub(crate) health: watch::Sender<CoreHealth>,
    pub(crate) core_restarts: AtomicU64,
    pub(crate) client_timeout: Duration,
    pub(crate) election_timeout_min: Duration,
    pub(crate) election_timeout_max: Duration,
    pub(crate) decode_errors: AtomicU64,
    /// Admits incoming snapshot chunks (see [`crate::snapshot_guard`]).
    pub(crate) snapshot_guard: parking_lot::Mutex<SnapshotGuard>,
    pub(crate) forwarded_writes: AtomicU64,
    pub(crate) elections_started: AtomicU64,
    pub(crate) pre_votes_refused: AtomicU64,
    /// When this node last heard from a leader (or granted a vote), as time since
    /// `started_at` in µs: the pre-vote election timer's input.
    pub(crate) heard_leader_us: AtomicU64,
    pub(crate) started_at: Instant,
    pub(crate) stopped: AtomicBool,
    pub(crate) fence: Arc<Fence>,
}

impl NodeInner {
    /// The current openraft handle.
    pub(crate) fn raft(&self) -> Raft {
        self.core.read().clone()
    }

    fn heard_leader(&self) {
        let us = Instant::now().saturating_duration_since(self.started_at).as_micros() as u64;
        self.heard_leader_us.fetch_max(us, Ordering::AcqRel);
    }
}

/// A running consensus node (a cheap clone handle). See the module docs.
#[derive(Clone)]
pub struct ConsensusNode {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for ConsensusNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsensusNode").field("id", &self.inner.id).field("name", &self.inner.name).finish()
    }
}

/// Where the next attempt of a client request goes.
enum Route {
    Local,
    Remote(RaftNodeId, String),
    Wait,
}

/// A client request only the leader can serve.
enum LeaderRequest {
    Write(LedgerCommand),
    ReadIndex,
    Membership(MembershipChange),
}

impl LeaderRequest {
    fn what(&self) -> &'static str {
        match self {
            LeaderRequest::Write(_) => "write",
            LeaderRequest::ReadIndex => "read",
            LeaderRequest::Membership(_) => "membership change",
        }
    }
}

/// The leader's answer to a [`LeaderRequest`].
enum LeaderAnswer {
    Written(CommitReceipt),
    ReadIndex(u64),
    Voters(Vec<String>),
}

fn fatal(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Fatal(e.to_string())
}

impl ConsensusNode {
    /// Starts the Raft node called `name` with the storage chosen by `cfg.storage`. The node
    /// is a learner until [`initialize`](Self::initialize) (or until a leader adds it).
    pub async fn start(
        name: &str,
        cfg: &RaftConfig,
        transport: Arc<dyn RaftTransport>,
    ) -> Result<Self, ConsensusError> {
        cfg.validate().map_err(|e| ConsensusError::Config(e.to_string()))?;
        erlmcp_flow_core::NodeName::new(name).map_err(|e| ConsensusError::Config(format!("node name: {e}")))?;
        let config = openraft::Config {
            cluster_name: "erlmcp-flow".into(),
            heartbeat_interval: cfg.heartbeat_interval_ms,
            election_timeout_min: cfg.election_timeout_min_ms,
            election_timeout_max: cfg.election_timeout_max_ms,
            max_payload_entries: cfg.max_payload_entries,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_after_logs),
            // With pre-vote the node runs its own election timer (see `pre_vote`).
            enable_elect: !cfg.pre_vote,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let id = node_id_for(name);
        let network = NetworkFactory::new(transport.clone(), cfg);
        let fence = Arc::new(Fence::default());
        let (log, sm) = if cfg.is_durable() {
            let path = cfg.path.as_deref().ok_or_else(|| ConsensusError::Config("raft.path is required".into()))?;
            let db = open_database(path)?;
            let sm = LedgerStateMachine::with_snapshot_store(RedbSnapshotStore::new(db.clone()))
                .map_err(|e| ConsensusError::Storage(e.to_string()))?;
            (LogBackend::Redb(RedbLogStore::new(db)), sm)
        } else {
            (LogBackend::Memory(MemLogStore::new()), LedgerStateMachine::new())
        };
        let stores = CoreStores { id, config: Arc::new(config), network, fence: fence.clone(), log, sm: sm.clone() };
        let raft = stores.start_core().await?;
        let (metrics_tx, metrics) = watch::channel(raft.metrics().borrow().clone());
        let inner = Arc::new(NodeInner {
            id,
            name: name.to_owned(),
            core: RwLock::new(raft.clone()),
            stores,
            sm,
            transport,
            metrics_tx,
            metrics,
            health: watch::channel(CoreHealth::Up).0,
            core_restarts: AtomicU64::new(0),
            client_timeout: cfg.client_timeout(),
            election_timeout_min: Duration::from_millis(cfg.election_timeout_min_ms),
            election_timeout_max: Duration::from_millis(cfg.election_timeout_max_ms),
            decode_errors: AtomicU64::new(0),
            snapshot_guard: parking_lot::Mutex::new(SnapshotGuard::default()),
            forwarded_writes: AtomicU64::new(0),
            elections_started: AtomicU64::new(0),
            pre_votes_refused: AtomicU64::new(0),
            heard_leader_us: AtomicU64::new(0),
            started_at: Instant::now(),
            stopped: AtomicBool::new(false),
            fence,
        });
        tokio::spawn(crate::supervisor::supervise(Arc::downgrade(&inner), raft));
        if cfg.pre_vote {
            // Seeded by the node's id: each node draws its own timeouts, and a run replays.
            tokio::spawn(crate::elections::run(Arc::downgrade(&inner), id));
        }
        Ok(Self { inner })
    }

    /// This node's Raft id.
    pub fn id(&self) -> RaftNodeId {
        self.inner.id
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The openraft handle of the running core, for what this API does not cover. After
    /// a fatal core error the supervisor replaces it: hold it briefly, ask again later.
    pub fn raft(&self) -> Raft {
        self.inner.raft()
    }

    /// Whether the openraft core is running: false while the supervisor restarts it after
    /// a fatal error (the node answers `Unavailable` meanwhile), and after shutdown. What
    /// a readiness probe reports.
    pub fn is_ready(&self) -> bool {
        *self.inner.health.borrow() == CoreHealth::Up && !self.inner.stopped.load(Ordering::Acquire)
    }

    /// The core's health (see [`is_ready`](Self::is_ready)), with the reason it is down.
    pub fn core_health(&self) -> CoreHealth {
        self.inner.health.borrow().clone()
    }

    /// Forms the cluster with `voters` (names; must include this node). Idempotent: safe
    /// to call on every voter with the same list, and on a node that is already part of
    /// a cluster (then it does nothing).
    pub async fn initialize(&self, voters: &[String]) -> Result<(), ConsensusError> {
        if !voters.iter().any(|v| v == &self.inner.name) {
            return Err(ConsensusError::Config(format!(
                "voters {voters:?} must include this node {:?}",
                self.inner.name
            )));
        }
        let members: std::collections::BTreeMap<RaftNodeId, NamedNode> =
            voters.iter().map(|n| (node_id_for(n), NamedNode::new(n.clone()))).collect();
        if members.len() != voters.len() {
            return Err(ConsensusError::Config(format!("voters {voters:?} contain duplicate names")));
        }
        let raft = self.raft();
        if raft.is_initialized().await.map_err(fatal)? {
            return Ok(());
        }
        match raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(RaftError::APIError(e)) => Err(ConsensusError::Config(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }

    fn name_of(m: &Metrics, id: RaftNodeId) -> Option<String> {
        m.membership_config.membership().get_node(&id).map(|n| n.name.clone())
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<(RaftNodeId, String)> {
        let m = self.inner.metrics.borrow();
        let id = m.current_leader?;
        Self::name_of(&m, id).map(|n| (id, n))
    }

    /// The node's Raft state, from the latest metrics (no waiting).
    pub fn status(&self) -> RaftStatus {
        let m = self.inner.metrics.borrow();
        let membership = m.membership_config.membership();
        let name = |id: RaftNodeId| Self::name_of(&m, id).unwrap_or_else(|| id.to_string());
        RaftStatus {
            id: self.inner.id,
            name: self.inner.name.clone(),
            state: m.state.into(),
            current_term: m.current_term,
            leader: m.current_leader.and_then(|id| Self::name_of(&m, id).map(|n| (id, n))),
            applied_index: m.last_applied.map(|l| l.index),
            last_log_index: m.last_log_index,
            snapshot_index: m.snapshot.map(|l| l.index),
            voters: membership.voter_ids().map(name).collect(),
            learners: membership.learner_ids().map(name).collect(),
            decode_errors: self.inner.decode_errors.load(Ordering::Relaxed),
            forwarded_writes: self.inner.forwarded_writes.load(Ordering::Relaxed),
            core_up: self.is_ready(),
            core_restarts: self.inner.core_restarts.load(Ordering::Relaxed),
            elections_started: self.inner.elections_started.load(Ordering::Relaxed),
            pre_votes_refused: self.inner.pre_votes_refused.load(Ordering::Relaxed),
        }
    }

    /// Waits (on the metrics watch) until this node knows a leader, for at most `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(RaftNodeId, String), ConsensusError> {
        let mut rx = self.inner.metrics.clone();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if self.inner.stopped.load(Ordering::Acquire) {
                return Err(fatal("node is shut down"));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(fatal("node is shut down")),
                Err(_) => return Err(ConsensusError::Unavailable(format!("no leader within {timeout:?}"))),
            }
        }
    }

    /// Runs `f` on this node's applied state, without any round trip (may be stale).
    pub fn read_local<T>(&self, f: impl FnOnce(&LedgerState) -> T) -> T {
        self.inner.sm.read(f)
    }

    fn route(&self) -> Route {
        let m = self.inner.metrics.borrow();
        if m.state == ServerState::Leader {
            return Route::Local;
        }
        match m.current_leader {
            Some(id) if id != self.inner.id => match Self::name_of(&m, id) {
                Some(name) => Route::Remote(id, name),
                None => Route::Wait,
            },
            _ => Route::Wait,
        }
    }

    /// Pauses before the next attempt: until the metrics change or `pause` passes,
    /// whichever is first, never past `deadline`. Returns false once the deadline is reached.
    async fn pause(&self, deadline: Instant, pause: &mut Duration) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let mut rx = self.inner.metrics.clone();
        rx.mark_unchanged();
        let until = deadline.min(now + *pause);
        let _ = tokio::time::timeout_at(until, rx.changed()).await;
        *pause = (*pause * 2).min(Duration::from_millis(100));
        Instant::now() < deadline
    }

    /// The one retry loop of every client request: serves `req` here when this node
    /// leads, forwards it to the leader it knows otherwise, and retries retryable
    /// failures (no leader, a leader that stepped down, an unreachable leader) with a
    /// short growing pause until `raft.client_timeout_ms`. Then it answers `NotLeader`
    /// when a leader was named but did not serve, else `Unavailable`.
    ///
    /// A write that may have reached a leader's log without a confirmed commit (the
    /// leader's commit timed out, it lost leadership or its core failed with the write
    /// pending, or a forwarded write's answer was lost) makes the final answer
    /// `Indeterminate` rather than a refusal: the entry may still commit later.
    async fn through_leader(&self, req: &LeaderRequest) -> Result<LeaderAnswer, ConsensusError> {
        let deadline = Instant::now() + self.inner.client_timeout;
        let mut pause = Duration::from_millis(2);
        let mut last_err: ConsensusError;
        let mut maybe_written = false;
        loop {
            if self.inner.stopped.load(Ordering::Acquire) {
                return Err(fatal("node is shut down"));
            }
            let attempt = match self.route() {
                Route::Local => self.serve(req, deadline).await,
                Route::Remote(id, name) => self.forward(id, &name, req, deadline).await,
                Route::Wait if !self.is_ready() => {
                    Err(ConsensusError::Unavailable("the raft core is restarting after a fatal error".into()))
                }
                Route::Wait => Err(ConsensusError::Unavailable("no leader known".into())),
            };
            match attempt {
                Ok(answer) => return Ok(answer),
                Err(e) if e.is_retryable() => {
                    let written = matches!(
                        e,
                        ConsensusError::Indeterminate(_)
                            | ConsensusError::Transport(TransportError::Timeout(_) | TransportError::Lost(_))
                    );
                    if let LeaderRequest::Write(cmd) = req
                        && written
                    {
                        // Sending it again could apply it twice (a compare-and-set that
                        // succeeded would then report failure): the caller decides.
                        if !cmd.is_retry_safe() {
                            return Err(match e {
                                e @ ConsensusError::Indeterminate(_) => e,
                                e => ConsensusError::Indeterminate(format!("{} not confirmed: {e}", req.what())),
                            });
                        }
                        maybe_written = true;
                    }
                    last_err = e;
                }
                Err(e) => return Err(e),
            }
            if !self.pause(deadline, &mut pause).await {
                let within = self.inner.client_timeout;
                return Err(match last_err {
                    e if maybe_written => ConsensusError::Indeterminate(format!(
                        "{} not confirmed within {within:?} (last: {e})",
                        req.what()
                    )),
                    ConsensusError::NotLeader { leader } => ConsensusError::NotLeader { leader },
                    e => ConsensusError::Unavailable(format!("{} not done within {within:?}: {e}", req.what())),
                });
            }
        }
    }

    /// Serves `req` on this node, which should be the leader (openraft answers
    /// `ForwardToLeader` otherwise, mapped to `NotLeader`).
    async fn serve(&self, req: &LeaderRequest, deadline: Instant) -> Result<LeaderAnswer, ConsensusError> {
        match req {
            LeaderRequest::Write(cmd) => self.write_local(cmd.clone(), deadline).await.map(LeaderAnswer::Written),
            LeaderRequest::ReadIndex => self.read_index_local(deadline).await.map(LeaderAnswer::ReadIndex),
            LeaderRequest::Membership(change) => {
                self.change_membership_local(change, deadline).await.map(LeaderAnswer::Voters)
            }
        }
    }

    /// Sends `req` to the leader and unwraps its answer.
    async fn forward(
        &self,
        leader: RaftNodeId,
        leader_name: &str,
        req: &LeaderRequest,
        deadline: Instant,
    ) -> Result<LeaderAnswer, ConsensusError> {
        let wire_req = match req {
            LeaderRequest::Write(cmd) => {
                self.inner.forwarded_writes.fetch_add(1, Ordering::Relaxed);
                RaftWire::ClientWrite(cmd.clone())
            }
            LeaderRequest::ReadIndex => RaftWire::LinearizableRead,
            LeaderRequest::Membership(change) => RaftWire::Membership(change.clone()),
        };
        let answer = match (req, self.remote_call(leader, leader_name, &wire_req, deadline).await?) {
            (LeaderRequest::Write(_), RaftWireReply::ClientWrite(r)) => r.map(LeaderAnswer::Written),
            (LeaderRequest::ReadIndex, RaftWireReply::LinearizableRead(r)) => r.map(LeaderAnswer::ReadIndex),
            (LeaderRequest::Membership(_), RaftWireReply::Membership(r)) => r.map(LeaderAnswer::Voters),
            _ => return Err(ConsensusError::Unavailable(format!("{leader_name} answered with another kind of reply"))),
        };
        answer.map_err(Self::remote_failure)
    }

    /// Commits `cmd` through the leader (forwarding it when this node is not the leader)
    /// and returns its log index and the state machine's answer. Retries through
    /// elections until `raft.client_timeout_ms`, then answers `Unavailable` or
    /// `NotLeader`. A command whose encoding is over [`MAX_COMMAND_BYTES`] is refused with
    /// `Encode`.
    pub async fn submit(&self, cmd: LedgerCommand) -> Result<CommitReceipt, ConsensusError> {
        let size = wire::encode_unbounded(&cmd)?.len();
        if size > MAX_COMMAND_BYTES {
            return Err(ConsensusError::Encode(format!(
                "command of {size} bytes is over the {MAX_COMMAND_BYTES} byte limit"
            )));
        }
        match self.through_leader(&LeaderRequest::Write(cmd)).await? {
            LeaderAnswer::Written(receipt) => Ok(receipt),
            _ => Err(ConsensusError::Unavailable("a write was answered as another request".into())),
        }
    }

    /// Writes on this node, which must be the leader: a node that does not believe it
    /// leads answers `NotLeader` without touching its log (a definite refusal). Once the
    /// write is handed to openraft, every failure is `Indeterminate`: the entry may be in
    /// the log, and a later leader may commit it (openraft answers `ForwardToLeader` both
    /// when it refuses at once and when it truncates a pending entry, which another
    /// node's log may still hold).
    async fn write_local(&self, cmd: LedgerCommand, deadline: Instant) -> Result<CommitReceipt, ConsensusError> {
        if self.inner.metrics.borrow().state != ServerState::Leader {
            return Err(ConsensusError::NotLeader { leader: self.leader().map(|(_, n)| n) });
        }
        match tokio::time::timeout_at(deadline, self.raft().client_write(cmd)).await {
            Ok(Ok(resp)) => Ok(CommitReceipt { log_index: resp.log_id.index, response: resp.data }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(ConsensusError::Indeterminate(
                format!("leadership lost with the write pending (leader now {:?})", f.leader_node.map(|n| n.name)),
            )),
            Ok(Err(RaftError::APIError(e))) => Err(ConsensusError::Indeterminate(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => {
                Err(ConsensusError::Indeterminate(format!("the raft core failed with the write pending: {e}")))
            }
            Err(_) => Err(ConsensusError::Indeterminate("write not committed before the deadline".into())),
        }
    }

    /// A failure reported by the leader: its shutdown or storage failure is this node's
    /// reason to retry elsewhere, not a fatal error of this node.
    fn remote_failure(e: ConsensusError) -> ConsensusError {
        match e {
            ConsensusError::Fatal(m) | ConsensusError::Storage(m) => {
                ConsensusError::Unavailable(format!("leader failed: {m}"))
            }
            e => e,
        }
    }

    async fn remote_call(
        &self,
        target: RaftNodeId,
        target_name: &str,
        req: &RaftWire,
        deadline: Instant,
    ) -> Result<RaftWireReply, ConsensusError> {
        let body = Bytes::from(wire::encode(req)?);
        let timeout = deadline.saturating_duration_since(Instant::now());
        let reply = self.inner.transport.call(target, target_name, body, timeout).await?;
        wire::decode(&reply).map_err(|e| ConsensusError::Unavailable(format!("bad reply from {target_name}: {e}")))
    }

    /// Reads the applied state linearizably (ReadIndex, see the module docs): on the
    /// leader after confirming leadership with a quorum, on a follower after applying the
    /// leader's read index. Retries through elections until `raft.client_timeout_ms`;
    /// with no reachable leader it answers `NotLeader` (naming the leader this node
    /// believes in, if any) or `Unavailable`.
    pub async fn linearizable_read<T>(&self, f: impl FnOnce(&LedgerState) -> T + Send) -> Result<T, ConsensusError> {
        let index = match self.through_leader(&LeaderRequest::ReadIndex).await? {
            LeaderAnswer::ReadIndex(index) => index,
            _ => return Err(ConsensusError::Unavailable("a read was answered as another request".into())),
        };
        // The wait for the read index has its own full client timeout: the leader has
        // confirmed the index, only this node's apply is left.
        self.raft()
            .wait(Some(self.inner.client_timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| ConsensusError::Unavailable(format!("read index {index} not applied: {e}")))?;
        Ok(self.read_local(f))
    }

    async fn read_index_local(&self, deadline: Instant) -> Result<u64, ConsensusError> {
        match tokio::time::timeout_at(deadline, self.raft().ensure_linearizable()).await {
            Ok(Ok(log_id)) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(ConsensusError::NotLeader { leader: f.leader_node.map(|n| n.name) })
            }
            Ok(Err(RaftError::APIError(e))) => Err(ConsensusError::Unavailable(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(ConsensusError::Unavailable(format!("the raft core failed: {e}"))),
            Err(_) => Err(ConsensusError::Unavailable("leadership not confirmed before the deadline".into())),
        }
    }

    /// Server side of the transport: decodes a [`RaftWire`] request and answers it with
    /// an encoded [`RaftWireReply`]. Bytes that do not decode (garbage, truncated, over
    /// the size limit) answer `Decode` and are counted; nothing here panics on input.
    pub async fn handle_rpc(&self, body: &[u8]) -> Result<Bytes, ConsensusError> {
        let req: RaftWire = match wire::decode(body) {
            Ok(r) => r,
            Err(e) => {
                self.inner.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(node = %self.inner.name, error = %e, "undecodable raft rpc");
                return Err(e);
            }
        };
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(fatal("node is shut down"));
        }
        let raft = self.raft();
        let reply = match req {
            RaftWire::AppendEntries(r) => {
                let res = raft.append_entries(r).await;
                if matches!(&res, Ok(resp) if !matches!(resp, AppendEntriesResponse::HigherVote(_))) {
                    self.inner.heard_leader();
                }
                RaftWireReply::AppendEntries(res)
            }
            RaftWire::Vote(r) => {
                let res = raft.vote(r).await;
                if matches!(&res, Ok(resp) if resp.vote_granted) {
                    self.inner.heard_leader();
                }
                RaftWireReply::Vote(res)
            }
            RaftWire::InstallSnapshot(r) => {
                let admitted =
                    self.inner.snapshot_guard.lock().admit(&r.meta.snapshot_id, r.offset, r.data.len() as u64, r.done);
                if let Err(e) = admitted {
                    self.inner.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(node = %self.inner.name, error = %e, "snapshot chunk refused");
                    return Err(ConsensusError::Decode(e.to_string()));
                }
                let res = raft.install_snapshot(r).await;
                if res.is_ok() {
                    self.inner.heard_leader();
                }
                RaftWireReply::InstallSnapshot(res)
            }
            RaftWire::PreVote(r) => RaftWireReply::PreVote(self.judge_pre_vote(&r).await),
            RaftWire::ClientWrite(cmd) => {
                let deadline = Instant::now() + self.inner.client_timeout;
                RaftWireReply::ClientWrite(self.write_local(cmd, deadline).await)
            }
            RaftWire::LinearizableRead => {
                let deadline = Instant::now() + self.inner.client_timeout;
                RaftWireReply::LinearizableRead(self.read_index_local(deadline).await)
            }
            RaftWire::Membership(change) => {
                let deadline = Instant::now() + self.inner.client_timeout;
                RaftWireReply::Membership(self.change_membership_local(&change, deadline).await)
            }
        };
        Ok(Bytes::from(wire::encode(&reply)?))
    }

    fn membership_err(e: RaftError<RaftNodeId, ClientWriteError<RaftNodeId, NamedNode>>) -> ConsensusError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                ConsensusError::NotLeader { leader: f.leader_node.map(|n| n.name) }
            }
            // Another change still in its joint phase: worth retrying.
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(e))) => {
                ConsensusError::Unavailable(e.to_string())
            }
            // An empty voter set or an unknown learner: the request itself is wrong.
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => ConsensusError::Config(e.to_string()),
            RaftError::Fatal(e) => fatal(e),
        }
    }

    /// Applies `change` on this node, which must be the leader, before `deadline`;
    /// answers the voters of the committed membership.
    async fn change_membership_local(
        &self,
        change: &MembershipChange,
        deadline: Instant,
    ) -> Result<Vec<String>, ConsensusError> {
        // Checked here too, not only in `add_voter`/`remove_voter`: a forwarded change
        // arrives from the wire.
        let (MembershipChange::AddVoter(name) | MembershipChange::RemoveVoter(name)) = change;
        erlmcp_flow_core::NodeName::new(name).map_err(|e| ConsensusError::Config(format!("node name: {e}")))?;
        let raft = self.raft();
        let work = async {
            let changes = match change {
                MembershipChange::AddVoter(name) => {
                    let id = node_id_for(name);
                    // Blocking: returns once the learner has caught up, so the voter it
                    // becomes does not stall commits while it replays the log.
                    raft.add_learner(id, NamedNode::new(name.clone()), true).await.map_err(Self::membership_err)?;
                    ChangeMembers::AddVoterIds(BTreeSet::from([id]))
                }
                MembershipChange::RemoveVoter(name) => ChangeMembers::RemoveVoters(BTreeSet::from([node_id_for(name)])),
            };
            raft.change_membership(changes, false).await.map_err(Self::membership_err)
        };
        let resp = match tokio::time::timeout_at(deadline, work).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ConsensusError::Unavailable("membership change not committed before the deadline".into()));
            }
        };
        let voters = match resp.membership {
            Some(m) => m
                .voter_ids()
                .map(|id| m.get_node(&id).map(|n| n.name.clone()).unwrap_or_else(|| id.to_string()))
                .collect(),
            None => self.status().voters,
        };
        Ok(voters)
    }

    /// Adds the node called `name` as a voter: first as a learner (waiting until it has
    /// caught up), then through a joint-consensus membership change. Runs on the leader,
    /// forwarded there from any node, and retries through elections like
    /// [`submit`](Self::submit) (a repeated change is harmless: it is a set union).
    /// Answers the voters once the change has committed.
    pub async fn add_voter(&self, name: &str) -> Result<Vec<String>, ConsensusError> {
        erlmcp_flow_core::NodeName::new(name).map_err(|e| ConsensusError::Config(format!("node name: {e}")))?;
        self.change_membership(MembershipChange::AddVoter(name.to_string())).await
    }

    /// Removes the voter called `name` (it is not kept as a learner). Runs on the leader,
    /// forwarded there from any node, and retries through elections like
    /// [`submit`](Self::submit). Removing the last voter is refused with `Config`.
    /// Answers the voters once the change has committed.
    pub async fn remove_voter(&self, name: &str) -> Result<Vec<String>, ConsensusError> {
        erlmcp_flow_core::NodeName::new(name).map_err(|e| ConsensusError::Config(format!("node name: {e}")))?;
        self.change_membership(MembershipChange::RemoveVoter(name.to_string())).await
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>, ConsensusError> {
        match self.through_leader(&LeaderRequest::Membership(change)).await? {
            LeaderAnswer::Voters(v) => Ok(v),
            _ => Err(ConsensusError::Unavailable("a membership change was answered as another request".into())),
        }
    }

    /// Fault injection (tests, `flow node --control`'s `raft-fault`): the next log write
    /// fails with a storage error, which makes openraft's core quit on a fatal error the
    /// way a failing disk would.
    #[doc(hidden)]
    pub fn inject_storage_fault(&self) {
        self.inner.fence.fail_next_write();
    }

    /// Answers a pre-vote question (see [`crate::pre_vote`]) the way openraft would
    /// answer the real vote, without changing any state.
    async fn judge_pre_vote(&self, req: &PreVoteRequest) -> Result<PreVoteAnswer, ConsensusError> {
        let lease = self.inner.election_timeout_max;
        let view = self
            .raft()
            .with_raft_state(move |s| {
                let since = s.vote_last_modified().map(|t| Instant::now().saturating_duration_since(t));
                (s.server_state == ServerState::Leader, s.vote_ref().is_committed(), since)
            })
            .await
            .map_err(|e| ConsensusError::Unavailable(format!("the raft core failed: {e}")))?;
        let (is_leader, vote_committed, since_vote_refreshed) = view;
        let last_log_id = self.inner.stores.last_log_id().await?;
        let me = crate::pre_vote::VoterView { is_leader, vote_committed, since_vote_refreshed, lease, last_log_id };
        let answer = crate::pre_vote::judge_pre_vote(req.last_log_id.as_ref(), &me);
        tracing::debug!(node = %self.inner.name, candidate = %req.candidate, ?answer, "pre-vote");
        Ok(answer)
    }

    /// Stops the Raft node and releases its storage. Later calls answer `Fatal`.
    pub async fn shutdown(&self) {
        if self.inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.health.send_replace(CoreHealth::Stopped);
        if let Err(e) = self.raft().shutdown().await {
            tracing::warn!(node = %self.inner.name, error = %e, "raft shutdown");
        }
        self.inner.sm.release_storage();
    }
}
