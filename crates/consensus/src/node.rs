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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use erlmcp_flow_core::RaftConfig;

use crate::error::ConsensusError;
use crate::ledger::{LedgerCommand, LedgerState};
use crate::network::NetworkFactory;
use crate::state_machine::LedgerStateMachine;
use crate::store_mem::MemLogStore;
use crate::store_redb::{RedbLogStore, RedbSnapshotStore, open_database};
use crate::transport::RaftTransport;
use crate::types::{NamedNode, Raft, RaftNodeId, node_id_for};
use crate::wire::{self, CommitReceipt, MAX_COMMAND_BYTES, MembershipChange, RaftWire, RaftWireReply};

type Metrics = RaftMetrics<RaftNodeId, NamedNode>;

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
}

struct NodeInner {
    id: RaftNodeId,
    name: String,
    raft: Raft,
    sm: LedgerStateMachine,
    transport: Arc<dyn RaftTransport>,
    metrics: watch::Receiver<Metrics>,
    client_timeout: Duration,
    decode_errors: AtomicU64,
    forwarded_writes: AtomicU64,
    stopped: AtomicBool,
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
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let id = node_id_for(name);
        let network =
            NetworkFactory { transport: transport.clone(), backoff: Duration::from_millis(cfg.heartbeat_interval_ms) };
        let (raft, sm) = if cfg.is_durable() {
            let path = cfg.path.as_deref().ok_or_else(|| ConsensusError::Config("raft.path is required".into()))?;
            let db = open_database(path)?;
            let sm = LedgerStateMachine::with_snapshot_store(RedbSnapshotStore::new(db.clone()))
                .map_err(|e| ConsensusError::Storage(e.to_string()))?;
            let raft =
                Raft::new(id, Arc::new(config), network, RedbLogStore::new(db), sm.clone()).await.map_err(fatal)?;
            (raft, sm)
        } else {
            let sm = LedgerStateMachine::new();
            (Raft::new(id, Arc::new(config), network, MemLogStore::new(), sm.clone()).await.map_err(fatal)?, sm)
        };
        let metrics = raft.metrics();
        Ok(Self {
            inner: Arc::new(NodeInner {
                id,
                name: name.to_owned(),
                raft,
                sm,
                transport,
                metrics,
                client_timeout: cfg.client_timeout(),
                decode_errors: AtomicU64::new(0),
                forwarded_writes: AtomicU64::new(0),
                stopped: AtomicBool::new(false),
            }),
        })
    }

    /// This node's Raft id.
    pub fn id(&self) -> RaftNodeId {
        self.inner.id
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The openraft handle, for what this API does not cover.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
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
        if self.inner.raft.is_initialized().await.map_err(fatal)? {
            return Ok(());
        }
        match self.inner.raft.initialize(members).await {
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
    async fn through_leader(&self, req: &LeaderRequest) -> Result<LeaderAnswer, ConsensusError> {
        let deadline = Instant::now() + self.inner.client_timeout;
        let mut pause = Duration::from_millis(2);
        let mut last_err: ConsensusError;
        loop {
            if self.inner.stopped.load(Ordering::Acquire) {
                return Err(fatal("node is shut down"));
            }
            let attempt = match self.route() {
                Route::Local => self.serve(req, deadline).await,
                Route::Remote(id, name) => self.forward(id, &name, req, deadline).await,
                Route::Wait => Err(ConsensusError::Unavailable("no leader known".into())),
            };
            match attempt {
                Ok(answer) => return Ok(answer),
                Err(e) if e.is_retryable() => last_err = e,
                Err(e) => return Err(e),
            }
            if !self.pause(deadline, &mut pause).await {
                return Err(match last_err {
                    ConsensusError::NotLeader { leader } => ConsensusError::NotLeader { leader },
                    e => ConsensusError::Unavailable(format!(
                        "{} not done within {:?}: {e}",
                        req.what(),
                        self.inner.client_timeout
                    )),
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

    /// Writes on this node, which must be the leader.
    async fn write_local(&self, cmd: LedgerCommand, deadline: Instant) -> Result<CommitReceipt, ConsensusError> {
        match tokio::time::timeout_at(deadline, self.inner.raft.client_write(cmd)).await {
            Ok(Ok(resp)) => Ok(CommitReceipt { log_index: resp.log_id.index, response: resp.data }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ConsensusError::NotLeader { leader: f.leader_node.map(|n| n.name) })
            }
            Ok(Err(RaftError::APIError(e))) => Err(ConsensusError::Unavailable(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
            Err(_) => Err(ConsensusError::Unavailable("write not committed before the deadline".into())),
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
        self.inner
            .raft
            .wait(Some(self.inner.client_timeout))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| ConsensusError::Unavailable(format!("read index {index} not applied: {e}")))?;
        Ok(self.read_local(f))
    }

    async fn read_index_local(&self, deadline: Instant) -> Result<u64, ConsensusError> {
        match tokio::time::timeout_at(deadline, self.inner.raft.ensure_linearizable()).await {
            Ok(Ok(log_id)) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(ConsensusError::NotLeader { leader: f.leader_node.map(|n| n.name) })
            }
            Ok(Err(RaftError::APIError(e))) => Err(ConsensusError::Unavailable(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(fatal(e)),
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
        let raft = &self.inner.raft;
        let reply = match req {
            RaftWire::AppendEntries(r) => RaftWireReply::AppendEntries(raft.append_entries(r).await),
            RaftWire::Vote(r) => RaftWireReply::Vote(raft.vote(r).await),
            RaftWire::InstallSnapshot(r) => RaftWireReply::InstallSnapshot(raft.install_snapshot(r).await),
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
        let raft = &self.inner.raft;
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

    /// Stops the Raft node and releases its storage. Later calls answer `Fatal`.
    pub async fn shutdown(&self) {
        if self.inner.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(node = %self.inner.name, error = %e, "raft shutdown");
        }
        self.inner.sm.release_storage();
    }
}
