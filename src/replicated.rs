//! The replicated task ledger of a cluster node (`raft.enabled`).
//!
//! With Raft on, a node's task path becomes:
//!
//! 1. **submit**: the `Submit { task, owner: this node }` entry is committed through the
//!    Raft leader first; only then is the task accepted (the caller's `submit`/`route`
//!    returns). A node cut off from the leader answers [`SubmitError::NotLeader`] or
//!    [`SubmitError::Unavailable`] and accepts nothing.
//! 2. **route**: as on a single node (the owner drives its task's deliveries and retries,
//!    to agents anywhere in the cluster).
//! 3. **finish**: the router's finish hook queues `Finish { id, kind }` on the
//!    [`LedgerWriter`], which commits it, retrying through elections until it lands.
//!    The ledger takes the first terminal entry of a task and answers `AlreadyFinished` to
//!    any later one, so every acknowledged task has exactly one terminal state.
//! 4. **reconcile**: every node's [`RaftDuty`](crate::tree) compares, every interval, the
//!    ledger's open entries it owns with the tasks it holds locally (a submit in progress,
//!    a task the router drives, a terminal entry the writer has not committed yet). An
//!    open entry of its own that nothing holds (a `Submit` whose commit the client saw as
//!    indeterminate and that committed later, or a leftover of a previous incarnation) is
//!    claimed through the log (`RequeueNode` onto itself, which answers the ids still open
//!    at that point of the log) and driven; one the router refuses is dead-lettered with
//!    the reason. A held task is never claimed, so reconciliation cannot race a live
//!    submit.
//! 5. **adopt**: the leader also adopts the open tasks of nodes that are gone
//!    (`RequeueNode` onto itself after a grace period) and drives them.
//!
//! A submit whose commit is not confirmed by `raft.client_timeout_ms` answers
//! [`SubmitError::Indeterminate`], never a refusal: its entry may still commit, and then
//! step 4 finishes it. The client learns the outcome by id
//! ([`FlowNode::task_entry`](crate::FlowNode::task_entry): open, finished and how, or
//! unknown); the result value of a task driven by reconciliation is not kept anywhere
//! (the ledger records terminal states, not results): a client that needs the value
//! resubmits with the same id while the entry is unknown, or treats the task as done.
//!
//! Execution is at least once (a task whose owner died mid-delivery may run again on the
//! adopting leader); the ledger's terminal state is exactly once.
//!
//! Per-delivery `Assign` entries are not written on the hot path: the owner drives its own
//! retries and the leader requeues by owner, so assignments would only double the log
//! traffic. The ledger supports them for callers that want the audit trail.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use erlmcp_flow_cluster::{PeerTable, RaftHandler, RaftLink, RaftLinkError, RaftReport};
use erlmcp_flow_consensus::{
    ConsensusError, ConsensusNode, LedgerCommand, LedgerResponse, NodeRole, RaftNodeId, RaftTransport, TransportError,
};
use erlmcp_flow_core::{DeadLetterReason, NodeName, SubmitError, Task, TaskId, TaskOutcome};
use erlmcp_flow_router::{DeadLetter, RouterCore};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

/// Raft RPCs over the cluster gateways.
pub(crate) struct GatewayTransport {
    pub(crate) link: RaftLink,
}

impl RaftTransport for GatewayTransport {
    fn call(
        &self,
        _target: RaftNodeId,
        target_name: &str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let link = self.link.clone();
        let name = target_name.to_string();
        Box::pin(async move {
            let node = NodeName::new(&name).map_err(|_| TransportError::Unreachable(name.clone()))?;
            match link.call(&node, body.to_vec(), timeout).await {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(RaftLinkError::Timeout(_)) => Err(TransportError::Timeout(name)),
                Err(RaftLinkError::Unreachable(_)) => Err(TransportError::Unreachable(name)),
                Err(RaftLinkError::Lost(_)) => Err(TransportError::Lost(name)),
                Err(e @ (RaftLinkError::TooLarge(_) | RaftLinkError::Refused { .. })) => {
                    Err(TransportError::Remote { node: name, reason: e.to_string() })
                }
            }
        })
    }
}

/// The gateway's handler of incoming Raft RPCs.
pub(crate) struct ConsensusHandler(pub(crate) ConsensusNode);

impl RaftHandler for ConsensusHandler {
    fn handle(&self, _from: NodeName, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let node = self.0.clone();
        Box::pin(async move { node.handle_rpc(&body).await.map(|b| b.to_vec()).map_err(|e| e.to_string()) })
    }
}

/// Maps a consensus error for the `Submit` of task `id` onto the error its caller sees.
pub(crate) fn submit_error(e: ConsensusError, id: TaskId) -> SubmitError {
    match e {
        ConsensusError::NotLeader { leader } => SubmitError::NotLeader { leader },
        ConsensusError::Indeterminate(reason) => SubmitError::Indeterminate { task: id, reason },
        other => SubmitError::Unavailable(other.to_string()),
    }
}

/// Ids of the tasks whose submission is in progress on this node (from before their
/// `Submit` is committed until the router holds them): reconciliation leaves them alone.
#[derive(Debug, Default)]
pub(crate) struct SubmitsInProgress {
    ids: Mutex<HashSet<TaskId>>,
}

impl SubmitsInProgress {
    /// Marks `id` as in progress until the guard is dropped.
    pub(crate) fn hold(self: &Arc<Self>, id: TaskId) -> SubmitHold {
        self.ids.lock().insert(id);
        SubmitHold { owner: self.clone(), id }
    }

    fn contains(&self, id: &TaskId) -> bool {
        self.ids.lock().contains(id)
    }
}

/// See [`SubmitsInProgress::hold`].
#[derive(Debug)]
pub(crate) struct SubmitHold {
    owner: Arc<SubmitsInProgress>,
    id: TaskId,
}

impl Drop for SubmitHold {
    fn drop(&mut self) {
        self.owner.ids.lock().remove(&self.id);
    }
}

/// The node's Raft report for `flow status`.
pub(crate) fn raft_report(node: &ConsensusNode) -> RaftReport {
    let s = node.status();
    let (counts, digest, open) = node.read_local(|l| (l.counts(), l.digest(), l.open_len() as u64));
    RaftReport {
        state: format!("{:?}", s.state),
        term: s.current_term,
        leader: s.leader.map(|(_, n)| n),
        commit_index: s.applied_index.unwrap_or(0),
        last_applied: s.applied_index.unwrap_or(0),
        last_log_index: s.last_log_index.unwrap_or(0),
        voters: s.voters,
        learners: s.learners,
        ledger: [counts.accepted, counts.completed, counts.failed, counts.dead_lettered, open],
        digest,
        decode_errors: s.decode_errors,
        core_up: s.core_up,
        core_restarts: s.core_restarts,
    }
}

/// Counters of the ledger writer.
#[derive(Debug, Default)]
pub(crate) struct LedgerWriterStats {
    /// Terminal entries queued.
    pub queued: AtomicU64,
    /// Terminal entries committed (including ones the ledger already had).
    pub committed: AtomicU64,
}

/// Commits terminal entries in the background, retrying through elections, leader
/// changes and restarts of the Raft core until each one commits. Nothing is dropped while
/// the node runs; only a node shutdown stops it (what is left then is the leader's to
/// requeue once the node is gone).
///
/// The queue holds one entry per finished task that is not yet committed, so it is bounded
/// by the tasks this node accepted (themselves bounded by `router.max_in_flight` at a time
/// plus whatever an outage of the leader lets pile up, a few bytes each).
pub(crate) struct LedgerWriter {
    queue: Mutex<VecDeque<LedgerCommand>>,
    /// Ids whose terminal entry is queued or committing (reconciliation leaves them alone).
    uncommitted: Mutex<HashSet<TaskId>>,
    notify: Notify,
    /// Woken whenever the last queued entry has committed.
    drained: Notify,
    stopped: AtomicBool,
    pub(crate) stats: LedgerWriterStats,
}

/// Most terminal entries committing at once.
const WRITER_CONCURRENCY: usize = 256;

impl LedgerWriter {
    /// A writer committing through `node` (the task runs until [`LedgerWriter::stop`]).
    pub(crate) fn start(node: ConsensusNode) -> Arc<Self> {
        let writer = Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            uncommitted: Mutex::new(HashSet::new()),
            notify: Notify::new(),
            drained: Notify::new(),
            stopped: AtomicBool::new(false),
            stats: LedgerWriterStats::default(),
        });
        let w = writer.clone();
        tokio::spawn(async move { w.run(node).await });
        writer
    }

    /// Queues `cmd` for commit.
    pub(crate) fn push(&self, cmd: LedgerCommand) {
        if let Some(id) = cmd.task_id() {
            self.uncommitted.lock().insert(id);
        }
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.queue.lock().push_back(cmd);
        self.notify.notify_one();
    }

    /// Whether a terminal entry for `id` is queued or committing.
    pub(crate) fn holds(&self, id: &TaskId) -> bool {
        self.uncommitted.lock().contains(id)
    }

    /// Entries not yet committed.
    pub(crate) fn pending(&self) -> u64 {
        // Committed first: every entry counted there was queued before, so the later
        // load of `queued` is at least as large and the difference cannot wrap.
        let committed = self.stats.committed.load(Ordering::Acquire);
        self.stats.queued.load(Ordering::Acquire).saturating_sub(committed)
    }

    /// Waits until every queued entry has committed, or until `deadline`; returns
    /// whether the queue drained.
    pub(crate) async fn drain(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            // Registered before the check, so a commit in between still wakes us.
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.pending() == 0;
            }
        }
    }

    /// Stops committing (node shutdown); what is still queued is left to the leader's
    /// requeue of this node's tasks.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    async fn run(self: Arc<Self>, node: ConsensusNode) {
        let slots = Arc::new(Semaphore::new(WRITER_CONCURRENCY));
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            let next = self.queue.lock().pop_front();
            let Some(cmd) = next else {
                self.notify.notified().await;
                continue;
            };
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let (this, node) = (self.clone(), node.clone());
            tokio::spawn(async move {
                let mut pause = Duration::from_millis(10);
                loop {
                    match node.submit(cmd.clone()).await {
                        Ok(_) => {
                            if let Some(id) = cmd.task_id() {
                                this.uncommitted.lock().remove(&id);
                            }
                            this.stats.committed.fetch_add(1, Ordering::AcqRel);
                            if this.pending() == 0 {
                                this.drained.notify_waiters();
                            }
                            break;
                        }
                        // Any error while the node runs (no leader, a leader change, a
                        // restarting core, an unconfirmed commit) is retried: `Finish` is
                        // idempotent by task id.
                        Err(e) if !this.stopped.load(Ordering::Acquire) => {
                            tracing::debug!(error = %e, "terminal entry not committed yet; retrying");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(500));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "terminal entry left to the leader's requeue: the node is stopping");
                            break;
                        }
                    }
                }
                drop(permit);
            });
        }
    }
}

/// The finish hook installed on the router: queue the terminal entry.
pub(crate) fn finish_hook(writer: Arc<LedgerWriter>) -> erlmcp_flow_router::core::FinishHook {
    Arc::new(move |task: &Task, outcome: &TaskOutcome| {
        writer.push(LedgerCommand::Finish { id: task.id, kind: outcome.kind() });
    })
}

/// Commits `Submit` for `task`, owned by `owner`, retrying through an election until
/// the consensus node's client timeout (the same id is safe to retry: the ledger answers
/// `Duplicate` to a second submit).
pub(crate) async fn commit_submit(node: &ConsensusNode, task: &Task, owner: &str) -> Result<(), SubmitError> {
    match node.submit(LedgerCommand::Submit { task: task.clone(), owner: owner.to_string() }).await {
        Ok(receipt) => match receipt.response {
            LedgerResponse::Accepted => Ok(()),
            // Most often our own earlier attempt whose answer was lost (a retry through an
            // election): the entry is there, so accept the task; a true duplicate is still
            // refused by the router's own duplicate window.
            LedgerResponse::Duplicate => Ok(()),
            other => Err(SubmitError::Unavailable(format!("unexpected ledger answer {other:?}"))),
        },
        Err(e) => Err(submit_error(e, task.id)),
    }
}

/// Reconciles the replicated ledger with what this node drives (see the module docs,
/// steps 4 and 5). Called periodically by the Raft actor, on every node.
pub(crate) struct Reconciler {
    pub(crate) me: String,
    pub(crate) node: ConsensusNode,
    pub(crate) core: Arc<RouterCore>,
    pub(crate) peers: Arc<PeerTable>,
    pub(crate) submits: Arc<SubmitsInProgress>,
    pub(crate) writer: Arc<LedgerWriter>,
    /// How long a node must be unreachable (or unknown) before its tasks are adopted.
    pub(crate) grace: Duration,
    /// When each owner was first seen gone.
    pub(crate) gone_since: HashMap<String, Instant>,
    /// Tasks of dead nodes this node adopted and started driving.
    pub(crate) adopted: Arc<AtomicU64>,
    /// Open entries of this node's own that nothing held, claimed and started here.
    pub(crate) reclaimed: Arc<AtomicU64>,
}

impl Reconciler {
    /// One round; returns how many tasks it started driving.
    pub(crate) async fn tick(&mut self) -> usize {
        if self.node.leader().is_none() || !self.node.is_ready() {
            self.gone_since.clear();
            return 0;
        }
        let mut driven = self.reconcile_own().await;
        if self.node.status().state == NodeRole::Leader {
            driven += self.adopt_dead_nodes().await;
        } else {
            self.gone_since.clear();
        }
        driven
    }

    /// Whether this node holds task `id`: a submit in progress, a task the router drives,
    /// or a terminal entry not committed yet.
    fn holds(&self, id: &TaskId) -> bool {
        self.submits.contains(id) || self.core.parts().tasks.task(id).is_some() || self.writer.holds(id)
    }

    /// Claims and drives this node's own open entries that nothing holds.
    async fn reconcile_own(&self) -> usize {
        let me = self.me.as_str();
        let loose: HashSet<TaskId> = self
            .node
            .read_local(|l| l.open_tasks().filter(|(_, t)| t.owner == me).map(|(id, _)| *id).collect::<Vec<_>>())
            .into_iter()
            .filter(|id| !self.holds(id))
            .collect();
        if loose.is_empty() {
            return 0;
        }
        // Through the log: answers the ids still open (and ours) at this point of it, so
        // an entry finished meanwhile is not run again. An id held by the time it answers
        // (a client resubmitting it) is refused by the router's duplicate check below.
        let tasks = match self.claim(me.to_string()).await {
            Ok(tasks) => tasks,
            Err(e) => {
                tracing::debug!(error = %e, "own open entries not claimed yet");
                return 0;
            }
        };
        let n = self.drive(tasks.into_iter().filter(|t| loose.contains(&t.id))).await;
        if n > 0 {
            tracing::info!(tasks = n, "drove open ledger entries of this node that nothing held");
        }
        self.reclaimed.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// The leader's duty: adopt the open tasks of nodes gone for longer than the grace.
    async fn adopt_dead_nodes(&mut self) -> usize {
        let owners: Vec<String> = self.node.read_local(|l| {
            let mut o: Vec<String> = l.open_tasks().map(|(_, t)| t.owner.clone()).collect();
            o.sort();
            o.dedup();
            o
        });
        let now = Instant::now();
        self.gone_since.retain(|n, _| owners.contains(n));
        let mut adopted = 0;
        for owner in owners {
            if owner == self.me {
                continue;
            }
            let alive = NodeName::new(&owner)
                .ok()
                .and_then(|n| self.peers.get(&n))
                .is_some_and(|p| p.reachable && p.gateway.is_some());
            if alive {
                self.gone_since.remove(&owner);
                continue;
            }
            let since = *self.gone_since.entry(owner.clone()).or_insert(now);
            if now.duration_since(since) < self.grace {
                continue;
            }
            match self.claim(owner.clone()).await {
                Ok(tasks) => {
                    let n = self.drive(tasks.into_iter()).await;
                    adopted += n;
                    self.adopted.fetch_add(n as u64, Ordering::Relaxed);
                    self.gone_since.remove(&owner);
                    tracing::warn!(node = %owner, tasks = n, "adopted the open tasks of a dead node");
                }
                Err(e) => tracing::warn!(node = %owner, error = %e, "requeue not committed"),
            }
        }
        adopted
    }

    /// Commits `RequeueNode { owner → this node }` and returns the tasks it moved.
    async fn claim(&self, owner: String) -> Result<Vec<Task>, ConsensusError> {
        let receipt = self.node.submit(LedgerCommand::RequeueNode { node: owner, new_owner: self.me.clone() }).await?;
        let LedgerResponse::Requeued(ids) = receipt.response else { return Ok(Vec::new()) };
        // The entry may have been applied on the leader only so far; read the tasks from
        // a local state machine that has applied it.
        self.node
            .raft()
            .wait(Some(Duration::from_secs(5)))
            .applied_index_at_least(Some(receipt.log_index), "requeue applied")
            .await
            .map_err(|e| ConsensusError::Unavailable(e.to_string()))?;
        Ok(self.node.read_local(|l| ids.iter().filter_map(|id| l.get(id).map(|t| t.task.clone())).collect()))
    }

    /// Starts driving `tasks` here (their outcomes reach the ledger through the finish
    /// hook); returns how many started. A task the router refuses for good is finished as
    /// dead-lettered, with the reason in the dead-letter queue.
    async fn drive(&self, tasks: impl Iterator<Item = Task>) -> usize {
        let mut started = 0;
        for mut task in tasks {
            let id = task.id;
            // It may have been delivered before (by a dead owner, or by this node's previous
            // incarnation): an at-most-once task is failed as "may have run" by the router
            // instead of being delivered again.
            task.attempt = task.attempt.max(1);
            match self.core.submit(task.clone()).await {
                Ok(_handle) => started += 1,
                // Already routing or just finished here.
                Err(SubmitError::DuplicateTask(_)) => {}
                // Stopping or draining: the leader requeues it once this node is gone.
                Err(
                    SubmitError::NodeStopped
                    | SubmitError::Draining
                    | SubmitError::Discarded { reason: erlmcp_flow_core::DiscardReason::Draining },
                ) => {}
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "open ledger entry cannot be routed; dead-lettering it");
                    let parts = self.core.parts();
                    parts.dead_letters.push(DeadLetter {
                        task: Arc::new(task),
                        reason: DeadLetterReason::NoAvailableAgent { detail: format!("refused by the router: {e}") },
                        attempts: 0,
                        at_ns: parts.clock.now_ns(),
                    });
                    self.writer.push(LedgerCommand::Finish { id, kind: erlmcp_flow_core::TerminalKind::DeadLettered });
                }
            }
        }
        started
    }
}

// ---------------------------------------------------------------- the Raft child of the tree

/// Messages of the [`RaftDuty`] actor.
#[derive(Debug)]
pub enum RaftDutyMsg {
    /// Run one reconciliation round.
    Tick,
}

impl ractor::Message for RaftDutyMsg {}

/// Start-up arguments of [`RaftDuty`].
#[derive(Clone)]
pub struct RaftDutyArgs {
    pub(crate) reconciler: Arc<tokio::sync::Mutex<Reconciler>>,
    pub(crate) interval: Duration,
    pub(crate) slot: erlmcp_flow_supervision::ActorSlot<RaftDutyMsg>,
}

impl std::fmt::Debug for RaftDutyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftDutyArgs").field("interval", &self.interval).finish_non_exhaustive()
    }
}

/// The `raft` child of the FlowSupervisor: the shell around the node's consensus duties.
///
/// The openraft instance itself is node-owned (its log and state machine must outlive any
/// actor incarnation, and openraft runs its own tasks; its core has its own supervisor,
/// which restarts it on the same stores after a fatal error); this actor reconciles the
/// ledger every interval: it drives this node's open entries that nothing holds, and on
/// the leader adopts the open tasks of nodes that are gone (see `Reconciler` in
/// `src/replicated.rs`). A crash loses nothing: the next incarnation picks up from the
/// replicated ledger.
#[derive(Debug, Clone, Copy, Default)]
pub struct RaftDuty;

/// State of a [`RaftDuty`] incarnation.
#[derive(Debug)]
pub struct RaftDutyState {
    args: RaftDutyArgs,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl ractor::Actor for RaftDuty {
    type Msg = RaftDutyMsg;
    type State = RaftDutyState;
    type Arguments = RaftDutyArgs;

    async fn pre_start(
        &self,
        myself: ractor::ActorRef<RaftDutyMsg>,
        args: RaftDutyArgs,
    ) -> Result<RaftDutyState, ractor::ActorProcessingErr> {
        let ticker = myself.send_interval(args.interval, || RaftDutyMsg::Tick);
        args.slot.set(myself);
        Ok(RaftDutyState { args, ticker: Some(ticker) })
    }

    async fn post_stop(
        &self,
        myself: ractor::ActorRef<RaftDutyMsg>,
        state: &mut RaftDutyState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<RaftDutyMsg>,
        msg: RaftDutyMsg,
        state: &mut RaftDutyState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            RaftDutyMsg::Tick => {
                // A round can wait on commits; run it off the mailbox, one at a time.
                if let Ok(mut reconciler) = state.args.reconciler.clone().try_lock_owned() {
                    tokio::spawn(async move {
                        reconciler.tick().await;
                    });
                }
            }
        }
        Ok(())
    }
}
