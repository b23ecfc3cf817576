//! [`RouterCore`]: submission and the routing pipeline.
//!
//! Every accepted task gets a *driver*, a tokio task that walks the seeds' 11 steps:
//!
//! 1. trace context: the task's span, a child span per attempt (W3C Trace Context);
//! 2. discovery: agents with all required capabilities (in the swarm, if set), from the
//!    registry's cached query: a shared-slice read, no mailbox;
//! 3. strategy selection among eligible candidates (alive, not yet tried);
//! 4. circuit-breaker admission for the chosen agent (refused → choose again);
//! 5. bulkhead slot on the agent (full → choose another; all full → wait, bounded by
//!    `timeouts.routing_ms`; never dropped);
//! 6. correlation record of the attempt;
//! 7. load counter increment;
//! 8. delivery to the agent actor;
//! 9. wait for the reply within the attempt timeout;
//! 10. on failure: another agent, after exponential backoff with jitter (not after a
//!     panic: the agent is gone, the next one is healthy), within the node's retry budget;
//!     when the attempts of the primary candidates are spent, the fallback swarm; then
//!     `Failed` (agents ran it and failed) or `DeadLettered` (no agent could take it);
//! 11. breaker, load, latency and strategy feedback.
//!
//! A task whose agent died *before running it* (its mailbox was dropped) is redelivered
//! without spending an attempt, up to `failure_detector.max_redeliveries` times.
//!
//! The pipeline is written as plain async code rather than a tower `Service` stack: the
//! candidate set differs per task (capabilities, swarm) and per attempt (exclusions), and
//! breaker/bulkhead state is per agent, which tower's `Balance` over a fixed service set
//! does not model. tower's `TpsBudget` is used as is for the retry budget.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use erlmcp_flow_core::config::FlowConfig;
use erlmcp_flow_core::{
    AgentError, AgentId, AgentReplyError, DeadLetterReason, DeliveryVerdict, FailureReason, MonoClock, StrategyKind,
    SubmitError, SwarmName, Task, TaskId, TaskOutcome, deliver_local,
};
use erlmcp_flow_registry::{AgentEntry, AgentTarget, Candidates, RegistryHandle, splitmix64};
use parking_lot::RwLock;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::oneshot;

use crate::admission::{AdmissionGate, AdmissionPermit, AdmissionStats, DiscardHandler, TryAdmitError};
use crate::backoff::Backoff;
use crate::breaker::{Admission, BreakerCell, CircuitBreakers};
use crate::correlation::{CorrelationRecord, CorrelationTable};
use crate::dead_letter::{DeadLetter, DeadLetterQueue};
use crate::metrics::{FlowStats, RouterMetrics};
use crate::plan::{AttemptVerdict, Event, Health, PlanLimits, RoutePlan, Step};
use crate::retry_budget::RetryBudget;
use crate::strategy::{AttemptFeedback, LoadFigures, Selection, Strategy, StrategyParams};
use crate::tasks::TaskTable;

/// How many times `acquire` yields to the runtime, waiting for a crashed agent to be
/// restarted, before it falls back to sleeping (see the `None` branch there).
const RESTART_YIELDS: u32 = 64;

/// Routing settings derived from the config.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Attempts per phase (primary, fallback).
    pub max_attempts: u32,
    /// Retry backoff.
    pub backoff: Backoff,
    /// Redeliveries of never-run tasks per task.
    pub max_redeliveries: u32,
    /// Driver losses tolerated per task.
    pub max_orphan_recoveries: u32,
    /// Longest wait for a usable agent.
    pub routing_timeout: Duration,
    /// Default attempt timeout.
    pub execution_timeout: Duration,
    /// Node-wide fallback swarm.
    pub fallback_swarm: Option<SwarmName>,
    /// Largest accepted payload.
    pub max_payload_bytes: usize,
    /// Strategy parameters.
    pub strategy_params: StrategyParams,
}

impl RouterSettings {
    /// The limits a task's [`RoutePlan`] decides within.
    pub fn plan_limits(&self) -> PlanLimits {
        PlanLimits {
            max_attempts: self.max_attempts,
            max_redeliveries: self.max_redeliveries,
            backoff: self.backoff,
            routing_timeout_ns: self.routing_timeout.as_nanos() as u64,
        }
    }

    /// From a validated config.
    pub fn from_config(cfg: &FlowConfig) -> Self {
        let fd = &cfg.failure_detector;
        Self {
            max_attempts: fd.max_retry_attempts,
            backoff: Backoff {
                base: Duration::from_millis(fd.base_retry_delay_ms),
                max: Duration::from_millis(fd.max_retry_delay_ms),
            },
            max_redeliveries: fd.max_redeliveries,
            max_orphan_recoveries: fd.max_orphan_recoveries,
            routing_timeout: Duration::from_millis(cfg.timeouts.routing_ms),
            execution_timeout: Duration::from_millis(cfg.timeouts.execution_ms),
            fallback_swarm: cfg.router.fallback_swarm.as_deref().map(|s| SwarmName::new(s).expect("validated config")),
            max_payload_bytes: cfg.codec.max_payload_bytes,
            strategy_params: StrategyParams {
                vnodes: cfg.load_balancer.consistent_hash_vnodes,
                ewma_decay_ns: cfg.load_balancer.ewma_decay_ms as f64 * 1e6,
                default_rtt_ns: cfg.load_balancer.ewma_default_rtt_us as f64 * 1e3,
            },
        }
    }
}

/// The shared pieces a router works with (owned by the node, outliving every actor).
#[derive(Debug, Clone)]
pub struct RouterParts {
    /// Agents.
    pub registry: RegistryHandle,
    /// Per-agent breakers.
    pub breakers: Arc<CircuitBreakers>,
    /// Correlation records.
    pub correlation: Arc<CorrelationTable>,
    /// The ledger.
    pub tasks: Arc<TaskTable>,
    /// Dead letters.
    pub dead_letters: Arc<DeadLetterQueue>,
    /// Node clock.
    pub clock: MonoClock,
}

/// What [`RouterCore::drain`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DrainReport {
    /// Tasks open when the drain began that finished during it.
    pub finished: u64,
    /// Tasks still open when the drain gave up waiting (0: the node is idle).
    pub still_open: u64,
    /// Submitters waiting for admission that were discarded (`Draining`) by this drain.
    pub discarded_waiters: u64,
}

/// The router's lifecycle, in one atomic: accepting, draining, stopped.
const ACCEPTING: u8 = 0;
const DRAINING: u8 = 1;
const STOPPED: u8 = 2;

/// The future of one accepted task's outcome.
#[derive(Debug)]
pub struct TaskHandle {
    id: TaskId,
    rx: oneshot::Receiver<TaskOutcome>,
}

impl TaskHandle {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }
}

impl Future for TaskHandle {
    type Output = TaskOutcome;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TaskOutcome> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            // Only possible if the node was dropped without shutting down.
            r.unwrap_or(TaskOutcome::DeadLettered { reason: DeadLetterReason::NodeStopped, attempts: 0 })
        })
    }
}

/// The router. Cheap to share (`Arc`); see the module docs.
pub struct RouterCore {
    settings: RouterSettings,
    parts: RouterParts,
    metrics: RouterMetrics,
    strategy: RwLock<Arc<dyn Strategy>>,
    budget: RetryBudget,
    admission: Arc<AdmissionGate>,
    seed: u64,
    rng_counter: AtomicU64,
    lifecycle: AtomicU8,
    finish_hook: std::sync::OnceLock<FinishHook>,
}

/// Called once per task when it reaches its terminal outcome on this node, before the
/// task stops counting as open and before the submitter hears of it. A cluster node with
/// the replicated ledger queues the terminal entry from here. It runs under a lock of the
/// task table: it must not block and must not call back into the router (it queues work).
pub type FinishHook = Arc<dyn Fn(&Task, &TaskOutcome) + Send + Sync>;

impl fmt::Debug for RouterCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterCore")
            .field("strategy", &self.strategy.read().kind())
            .field("in_flight", &self.parts.tasks.open_count())
            .finish_non_exhaustive()
    }
}

/// A bulkhead slot plus breaker admission on one agent; the slot is returned on drop.
struct Lease {
    entry: Arc<AgentEntry>,
    breaker: Arc<BreakerCell>,
    probe: bool,
    /// When it was granted (node clock), the start of the attempt.
    granted_ns: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.entry.bulkhead.add_permits(1);
    }
}

/// What [`RouterCore::acquire`] found.
enum Acquisition {
    /// A usable agent, leased.
    Leased(Lease),
    /// Every usable agent is in the plan's `tried` list.
    AllTried,
    /// None usable within the routing wait.
    Unavailable { detail: String, trial_in_ns: Option<u64> },
}

/// The one translation of a delivery's verdict into the plan's [`AttemptVerdict`].
fn verdict_of(delivered: DeliveryVerdict, timeout: Duration) -> AttemptVerdict {
    let reply = match delivered {
        DeliveryVerdict::Answered(reply) => reply,
        DeliveryVerdict::TimedOut => return AttemptVerdict::TimedOut { after_ms: timeout.as_millis() as u64 },
        DeliveryVerdict::Lost => return AttemptVerdict::Lost,
        DeliveryVerdict::Refused(why) => return AttemptVerdict::Refused(why),
    };
    match reply {
        Ok(output) => AttemptVerdict::Completed(output),
        Err(AgentReplyError::Agent(AgentError::Permanent(message))) => AttemptVerdict::Permanent(message),
        Err(AgentReplyError::Agent(AgentError::Retryable(message))) => AttemptVerdict::Failed(message),
        Err(AgentReplyError::Panicked(message)) => AttemptVerdict::Panicked(message),
    }
}

/// Marks the task orphaned if its driver is dropped before finishing it.
struct DriverGuard<'a> {
    tasks: &'a TaskTable,
    id: TaskId,
    armed: bool,
}

impl Drop for DriverGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.tasks.mark_orphan(self.id);
        }
    }
}

impl RouterCore {
    /// A router with `strategy`, seeded with `seed` for every random choice.
    pub fn new(cfg: &FlowConfig, parts: RouterParts, strategy: Arc<dyn Strategy>, seed: u64) -> Arc<Self> {
        let r = &cfg.router;
        Arc::new(Self {
            settings: RouterSettings::from_config(cfg),
            metrics: RouterMetrics::default(),
            strategy: RwLock::new(strategy),
            budget: RetryBudget::new(
                Duration::from_millis(r.retry_budget_ttl_ms),
                r.retry_budget_min_per_sec,
                r.retry_budget_ratio,
            ),
            admission: AdmissionGate::with_queue(r.max_in_flight, &r.queue, r.rate_limit.as_ref(), parts.clock),
            seed,
            rng_counter: AtomicU64::new(0),
            lifecycle: AtomicU8::new(ACCEPTING),
            finish_hook: std::sync::OnceLock::new(),
            parts,
        })
    }

    /// Installs the [`FinishHook`]; only the first call takes effect (false after that).
    pub fn set_finish_hook(&self, hook: FinishHook) -> bool {
        self.finish_hook.set(hook).is_ok()
    }

    /// Correlation record of a task, open (live) or finished (from the log).
    pub fn correlation(&self, task: &TaskId) -> Option<CorrelationRecord> {
        self.parts.tasks.correlation(task).or_else(|| self.parts.correlation.get(task))
    }

    /// Correlation records of every task in a trace, open or finished.
    pub fn correlation_by_trace(&self, trace_id: &[u8; 16]) -> Vec<CorrelationRecord> {
        let mut v = self.parts.tasks.correlation_by_trace(trace_id);
        v.extend(self.parts.correlation.by_trace(trace_id));
        v
    }

    /// The shared parts.
    pub fn parts(&self) -> &RouterParts {
        &self.parts
    }

    /// The settings.
    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// The current strategy.
    pub fn strategy(&self) -> Arc<dyn Strategy> {
        self.strategy.read().clone()
    }

    /// Which strategy is in use.
    pub fn strategy_kind(&self) -> StrategyKind {
        self.strategy.read().kind()
    }

    /// Replaces the strategy (tasks already routing keep the one they started with).
    pub fn set_strategy(&self, strategy: Arc<dyn Strategy>) {
        *self.strategy.write() = strategy;
    }

    /// Installs the handler told about every discarded task; only the first call takes
    /// effect (false after that).
    pub fn set_discard_handler(&self, handler: Arc<dyn DiscardHandler>) -> bool {
        self.admission.set_handler(handler)
    }

    /// Admission figures: waiters, discards per reason, cancellations.
    pub fn admission_stats(&self) -> AdmissionStats {
        self.admission.stats()
    }

    /// Submits a task, waiting for an admission slot when the node is at
    /// `router.max_in_flight` (higher priorities first) in the bounded queue; a task
    /// discarded while it waits answers [`SubmitError::Discarded`].
    pub async fn submit(self: &Arc<Self>, task: Task) -> Result<TaskHandle, SubmitError> {
        let (task, permit) = self.admit(task).await?;
        self.accept_admitted(task, permit)
    }

    /// Submits a task, or fails with [`SubmitError::Overloaded`] at the in-flight limit
    /// (or [`SubmitError::Discarded`] over the rate limit).
    pub fn try_submit(self: &Arc<Self>, task: Task) -> Result<TaskHandle, SubmitError> {
        self.validate(&task)?;
        let permit = self.admission.try_admit(&task).map_err(|e| match e {
            TryAdmitError::Overloaded => SubmitError::Overloaded { limit: self.admission.limit() },
            TryAdmitError::Discarded(reason) => SubmitError::Discarded { reason },
        })?;
        self.accept_admitted(Arc::new(task), permit)
    }

    /// The door checks and admission without acceptance: the task's admission slot, after
    /// waiting in the queue if need be. [`accept_admitted`](Self::accept_admitted) then
    /// accepts it (a cluster node commits the task to the replicated ledger in between,
    /// so that a task discarded while queued never becomes a ledger entry).
    pub async fn admit(&self, task: Task) -> Result<(Arc<Task>, AdmissionPermit), SubmitError> {
        self.validate(&task)?;
        let task = Arc::new(task);
        let permit = self.admission.admit(&task).await.map_err(|reason| SubmitError::Discarded { reason })?;
        Ok((task, permit))
    }

    /// Accepts an admitted task and starts its driver.
    pub fn accept_admitted(
        self: &Arc<Self>,
        task: Arc<Task>,
        permit: AdmissionPermit,
    ) -> Result<TaskHandle, SubmitError> {
        self.accept(task, permit)
    }

    /// Whether `task` would be accepted now (capabilities, payload size, node running),
    /// without accepting it.
    pub fn check(&self, task: &Task) -> Result<(), SubmitError> {
        self.validate(task)
    }

    fn validate(&self, task: &Task) -> Result<(), SubmitError> {
        self.check_lifecycle()?;
        if task.capabilities.is_empty() {
            return Err(SubmitError::EmptyCapabilities);
        }
        if task.payload.len() > self.settings.max_payload_bytes {
            return Err(SubmitError::PayloadTooLarge {
                size: task.payload.len(),
                limit: self.settings.max_payload_bytes,
            });
        }
        Ok(())
    }

    /// Submits a task and routes it on the caller's own task (no spawned driver): the
    /// cheapest way to get one outcome. If the caller stops waiting midway, the task is
    /// not lost: its driver guard hands it to the failure detector, which routes it on.
    pub async fn route(&self, task: Task) -> Result<TaskOutcome, SubmitError> {
        let (task, permit) = self.admit(task).await?;
        self.route_admitted(task, permit).await
    }

    /// [`route`](Self::route) for a task already admitted ([`admit`](Self::admit)).
    pub async fn route_admitted(&self, task: Arc<Task>, permit: AdmissionPermit) -> Result<TaskOutcome, SubmitError> {
        let (task, rx) = self.open(task, permit)?;
        let id = task.id;
        self.drive(task).await;
        Ok(TaskHandle { id, rx }.await)
    }

    fn accept(self: &Arc<Self>, task: Arc<Task>, permit: AdmissionPermit) -> Result<TaskHandle, SubmitError> {
        let (task, rx) = self.open(task, permit)?;
        let id = task.id;
        self.spawn_driver(task);
        Ok(TaskHandle { id, rx })
    }

    /// Enters a task in the ledger: from here on it is accepted.
    fn open(
        &self,
        task: Arc<Task>,
        permit: AdmissionPermit,
    ) -> Result<(Arc<Task>, oneshot::Receiver<TaskOutcome>), SubmitError> {
        self.check_lifecycle()?;
        let id = task.id;
        let now = self.parts.clock.now_ns();
        let rx =
            self.parts.tasks.accept(task.clone(), Some(permit), now).map_err(|_| SubmitError::DuplicateTask(id))?;
        self.budget.deposit(now);
        Ok((task, rx))
    }

    /// Starts a driver for an open task (new, or recovered from the orphan queue).
    pub fn spawn_driver(self: &Arc<Self>, task: Arc<Task>) {
        let core = self.clone();
        tokio::spawn(async move { core.drive(task).await });
    }

    /// Recovers orphaned tasks: each gets a new driver, or fails as internal after
    /// `max_orphan_recoveries` losses. Returns how many were handled.
    pub fn recover_orphans(self: &Arc<Self>) -> usize {
        let orphans = self.parts.tasks.take_orphans();
        let n = orphans.len();
        for o in orphans {
            RouterMetrics::inc(&self.metrics.orphan_recoveries);
            if o.orphan_count > self.settings.max_orphan_recoveries {
                tracing::error!(task = %o.task.id, "task lost its routing driver too often; failing it");
                self.finish(
                    &o.task,
                    TaskOutcome::Failed {
                        reason: FailureReason::Internal(format!("routing driver lost {} times", o.orphan_count)),
                        attempts: 0,
                    },
                );
            } else {
                tracing::warn!(task = %o.task.id, "re-driving an orphaned task");
                self.spawn_driver(o.task);
            }
        }
        n
    }

    async fn drive(&self, task: Arc<Task>) {
        let mut guard = DriverGuard { tasks: &self.parts.tasks, id: task.id, armed: true };
        let outcome = self.pipeline(&task).await;
        self.finish(&task, outcome);
        guard.armed = false;
    }

    fn finish(&self, task: &Arc<Task>, outcome: TaskOutcome) {
        let now = self.parts.clock.now_ns();
        // The hook runs before the task stops counting as open, so a shutdown that waits
        // for idle also finds what the hook queued (the replicated ledger's terminal entry).
        let hook = self.finish_hook.get();
        let on_terminal = |t: &Task| {
            if let Some(hook) = hook {
                hook(t, &outcome);
            }
        };
        let Some(finished) = self.parts.tasks.finish_then(&task.id, outcome.kind(), now, on_terminal) else {
            RouterMetrics::inc(&self.metrics.late_finishes);
            return;
        };
        if let TaskOutcome::DeadLettered { reason, attempts } = &outcome {
            self.parts.dead_letters.push(DeadLetter {
                task: task.clone(),
                reason: reason.clone(),
                attempts: *attempts,
                at_ns: now,
            });
        }
        // Log first, so whoever receives the outcome can already look the record up.
        self.parts.correlation.push(finished.record);
        finished.answer.send(outcome);
    }

    fn rng(&self) -> SmallRng {
        let n = self.rng_counter.fetch_add(1, Ordering::Relaxed);
        SmallRng::seed_from_u64(splitmix64(self.seed ^ splitmix64(n)))
    }

    /// Routes one task to a terminal outcome (steps 2–11): executes the steps of the
    /// task's [`RoutePlan`] and feeds back what happened; every decision is the plan's.
    async fn pipeline(&self, task: &Arc<Task>) -> TaskOutcome {
        let mut rng = self.rng();
        let strategy = self.strategy();
        let fallback = task.fallback_swarm.clone().or_else(|| self.settings.fallback_swarm.clone());
        let mut plan = RoutePlan::new(self.settings.plan_limits(), task.swarm.clone(), fallback);
        if task.at_most_once {
            plan = plan.at_most_once(task.attempt > 0);
        }
        let mut step = plan.start();
        // The lease taken by the last acquisition and the candidates it was chosen from.
        let mut leased: Option<(Lease, Candidates)> = None;
        loop {
            let event = match step {
                Step::Finish(outcome) => return outcome,
                Step::Acquire { retry } => {
                    if retry {
                        RouterMetrics::inc(&self.metrics.retries);
                    }
                    let candidates = self.parts.registry.query(&task.capabilities, plan.swarm());
                    if candidates.is_empty() {
                        Event::NoCandidates
                    } else {
                        match self.acquire(task, &candidates, strategy.as_ref(), plan.tried(), &mut rng).await {
                            Acquisition::Leased(lease) => {
                                let event = Event::Acquired { agent: lease.entry.id.clone(), seq: lease.entry.seq };
                                leased = Some((lease, candidates));
                                event
                            }
                            Acquisition::AllTried => Event::AllTried,
                            Acquisition::Unavailable { detail, trial_in_ns } => {
                                Event::Unavailable { detail, trial_in_ns }
                            }
                        }
                    }
                }
                Step::Deliver { attempt } => {
                    let (lease, candidates) = leased.take().expect("the plan delivers after an acquisition");
                    let verdict = self.attempt(task, lease, attempt, &candidates, strategy.as_ref(), &mut rng).await;
                    match &verdict {
                        AttemptVerdict::Completed(_) | AttemptVerdict::Permanent(_) => {}
                        AttemptVerdict::Lost | AttemptVerdict::Refused(_) => {
                            RouterMetrics::inc(&self.metrics.redeliveries);
                            self.parts.tasks.requeue(&task.id);
                        }
                        _ => {
                            self.parts.tasks.requeue(&task.id);
                        }
                    }
                    Event::Attempted(verdict)
                }
                Step::WithdrawBudget => Event::Budget(self.budget.withdraw(self.parts.clock.now_ns())),
                Step::Wait(delay) => {
                    tokio::time::sleep(delay).await;
                    Event::Woke
                }
            };
            step = plan
                .on_event(event, self.parts.clock.now_ns(), &mut rng)
                .expect("a routing plan answers every event it asked for until it finishes");
        }
    }

    /// A dry-run routing decision (steps 2–5 without waiting or sending): the agent the
    /// task would go to now, or `None`. Breaker admission and the bulkhead slot are taken
    /// and given back. For benchmarks and diagnostics.
    pub fn decide(&self, task: &Task) -> Option<AgentId> {
        let candidates = self.parts.registry.query(&task.capabilities, task.swarm.as_ref());
        let strategy = self.strategy();
        let mut rng = self.rng();
        let now = self.parts.clock.now_ns();
        let mut skipped: Vec<u64> = Vec::new();
        loop {
            let pick = {
                let eligible = |e: &AgentEntry| e.is_alive() && !skipped.contains(&e.seq);
                strategy.select(&candidates, &Selection { task, now_ns: now, eligible: &eligible }, &mut rng)
            }?;
            let entry = &candidates[pick];
            let admission = self.parts.breakers.admit(&entry.id, now);
            if admission.is_allowed()
                && let Ok(permit) = entry.bulkhead.try_acquire()
            {
                drop(permit);
                self.parts.breakers.on_abandon(&entry.id, admission.is_probe());
                return Some(entry.id.clone());
            }
            self.parts.breakers.on_abandon(&entry.id, admission.is_probe());
            skipped.push(entry.seq);
        }
    }

    /// Steps 3–5: choose an agent that is eligible (alive, not in `tried`), admitted by its
    /// breaker and has a bulkhead slot, waiting (up to the routing timeout) for a slot or
    /// for a crashed agent's restart; the plan decides what a failure means.
    async fn acquire(
        &self,
        task: &Task,
        candidates: &Candidates,
        strategy: &dyn Strategy,
        tried: &[u64],
        rng: &mut SmallRng,
    ) -> Acquisition {
        let mut skipped: Vec<u64> = Vec::new();
        let mut saturated: Vec<Arc<AgentEntry>> = Vec::new();
        let mut breaker_refusals = 0usize;
        // The soonest any refusing breaker lets a trial request through, ns.
        let mut trial_in_ns = u64::MAX;
        let mut now = self.parts.clock.now_ns();
        let deadline = now + self.settings.routing_timeout.as_nanos() as u64;
        let mut pause = Duration::from_micros(200);
        let mut yields = 0u32;
        loop {
            let pick = {
                let eligible = |e: &AgentEntry| e.is_alive() && !tried.contains(&e.seq) && !skipped.contains(&e.seq);
                strategy.select(candidates, &Selection { task, now_ns: now, eligible: &eligible }, rng)
            };
            match pick {
                Some(i) => {
                    let entry = candidates[i].clone();
                    let breaker = self.parts.breakers.cell(&entry.id);
                    let admission = self.parts.breakers.admit_on(&entry.id, &breaker, now);
                    if let Admission::Rejected { retry_in_ns } = admission {
                        breaker_refusals += 1;
                        trial_in_ns = trial_in_ns.min(retry_in_ns);
                        skipped.push(entry.seq);
                        continue;
                    }
                    let got_slot = match entry.bulkhead.try_acquire() {
                        Ok(permit) => {
                            permit.forget();
                            true
                        }
                        Err(_) => false,
                    };
                    if got_slot {
                        return Acquisition::Leased(Lease {
                            entry,
                            breaker,
                            probe: admission.is_probe(),
                            granted_ns: now,
                        });
                    }
                    self.parts.breakers.abandon_on(&breaker, admission.is_probe());
                    skipped.push(entry.seq);
                    saturated.push(entry);
                }
                None if !saturated.is_empty() => {
                    // Every usable agent is at its bulkhead limit. Wait for a slot on the
                    // one the strategy chose first (so waiters spread as the strategy
                    // spreads tasks): one waiter registration and one timer, the acquire's
                    // deadline; the semaphore's FIFO queue serves waiters in order.
                    // (Waiting on several agents at once cost a registration, a wake-up
                    // and a cancellation on each, per waiting task: the slow path that
                    // made many callers slower than few.)
                    let entry = saturated.swap_remove(0);
                    let until = self.parts.clock.instant_of(deadline.max(now));
                    let got_slot = match tokio::time::timeout_at(until, entry.bulkhead.acquire()).await {
                        Ok(Ok(permit)) => {
                            permit.forget();
                            true
                        }
                        Ok(Err(_)) | Err(_) => false,
                    };
                    if !got_slot {
                        tracing::warn!(task = %task.id, agent = %entry.id, "no bulkhead slot within the routing timeout");
                        return Acquisition::Unavailable {
                            detail: format!(
                                "all {} usable agents stayed at their bulkhead limit for {:?}",
                                saturated.len() + 1,
                                self.settings.routing_timeout
                            ),
                            trial_in_ns: None,
                        };
                    }
                    now = self.parts.clock.now_ns();
                    let breaker = self.parts.breakers.cell(&entry.id);
                    let mut lease = Lease { entry, breaker, probe: false, granted_ns: now };
                    let admission = self.parts.breakers.admit_on(&lease.entry.id, &lease.breaker, now);
                    if admission.is_allowed() && lease.entry.is_alive() {
                        lease.probe = admission.is_probe();
                        return Acquisition::Leased(lease);
                    }
                    // Lost its breaker or died while we waited: give the slot back and
                    // look at every candidate afresh (a dead one is back in microseconds;
                    // the others' slots may have freed meanwhile).
                    self.parts.breakers.abandon_on(&lease.breaker, admission.is_probe());
                    drop(lease);
                    skipped.clear();
                    saturated.clear();
                    breaker_refusals = 0;
                    trial_in_ns = u64::MAX;
                }
                // Every usable agent has been tried once: the plan decides on second tries.
                None if !tried.is_empty() => return Acquisition::AllTried,
                None => {
                    let down = candidates.iter().filter(|e| !e.is_alive()).count();
                    // One that was down when the strategy looked may be back already.
                    let revived =
                        candidates.iter().any(|e| e.is_alive() && !tried.contains(&e.seq) && !skipped.contains(&e.seq));
                    if (down > 0 || revived) && now < deadline {
                        // Agents restart in microseconds; wait for one rather than spend
                        // an attempt on a crash storm. The first waits only yield: a
                        // restart is a few mailbox hops on this runtime, and the timer's
                        // 1 ms granularity would otherwise be the whole recovery time.
                        if yields < RESTART_YIELDS {
                            yields += 1;
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(10));
                        }
                        now = self.parts.clock.now_ns();
                        continue;
                    }
                    return Acquisition::Unavailable {
                        detail: format!(
                            "of {} capable agents, {down} down, {breaker_refusals} refused by circuit breakers",
                            candidates.len(),
                        ),
                        // Only breakers stand in the way: say when the first lets a trial through.
                        trial_in_ns: (breaker_refusals > 0 && down == 0).then_some(trial_in_ns),
                    };
                }
            }
        }
    }

    /// Steps 6–11 for one delivery: deliver, wait, and feed the verdict back to the
    /// breaker, the load figures and the strategy (one table: [`AttemptVerdict::health`]).
    async fn attempt(
        &self,
        task: &Arc<Task>,
        lease: Lease,
        attempt: u32,
        candidates: &Candidates,
        strategy: &dyn Strategy,
        rng: &mut SmallRng,
    ) -> AttemptVerdict {
        let entry = lease.entry.clone();
        let breaker = lease.breaker.clone();
        let probe = lease.probe;
        RouterMetrics::inc(&self.metrics.attempts);
        let span = task.trace.child(rng);
        self.parts.tasks.assign(&task.id, &entry.id, attempt, span);
        let mut delivery = Task::clone(task);
        delivery.attempt = attempt;
        delivery.trace = span;
        let timeout = task.timeout.unwrap_or(self.settings.execution_timeout);

        let started_ns = lease.granted_ns;
        let decay = self.settings.strategy_params.ewma_decay_ns;
        let dispatch = LoadFigures::read(&entry.load, started_ns, decay);
        entry.load.begin();
        let deadline = self.parts.clock.instant_of(started_ns) + timeout;
        let mut local_target = None;
        let delivered = match entry.target() {
            AgentTarget::Local(target) => {
                let d = deliver_local(&target, Arc::new(delivery), deadline).await;
                local_target = Some(target);
                d
            }
            AgentTarget::Remote(link) => link.deliver(Arc::new(delivery), timeout).await,
        };
        if let DeliveryVerdict::Refused(why) = &delivered {
            tracing::debug!(agent = %entry.id, %why, "the agent's node refused the delivery");
        }
        let verdict = verdict_of(delivered, timeout);
        let now = self.parts.clock.now_ns();
        let rtt_ns = now.saturating_sub(started_ns);
        entry.load.end();
        drop(lease);

        match &verdict {
            AttemptVerdict::Panicked(_) => RouterMetrics::inc(&self.metrics.agent_panics),
            AttemptVerdict::TimedOut { .. } => {
                RouterMetrics::inc(&self.metrics.timeouts);
                tracing::warn!(task = %task.id, agent = %entry.id, alive = entry.is_alive(), incarnation = entry.incarnation(), busy = ?entry.load.busy_since_ns(), in_flight = entry.load.in_flight(), "attempt timed out");
            }
            _ => {}
        }
        let breakers = &self.parts.breakers;
        let healthy = match verdict.health() {
            Health::Healthy => {
                breakers.success_on(&entry.id, &breaker, probe);
                true
            }
            Health::Unhealthy => {
                breakers.failure_on(&entry.id, &breaker, now, probe);
                false
            }
            Health::Unknown => {
                breakers.abandon_on(&breaker, probe);
                // We saw it dead (a kill skips the agent's own cleanup, and the registry
                // may not have processed the death yet): keep others from trying it.
                if let Some(target) = local_target
                    && target.get_status() >= ractor::ActorStatus::Stopping
                {
                    entry.mark_down(target.get_id());
                }
                return verdict;
            }
        };
        entry.load.observe(now, rtt_ns, healthy, decay);
        strategy.observe(&AttemptFeedback {
            agent: &entry,
            candidates,
            latency_ns: rtt_ns,
            success: healthy,
            now_ns: now,
            dispatch,
        });
        verdict
    }

    fn check_lifecycle(&self) -> Result<(), SubmitError> {
        match self.lifecycle.load(Ordering::Acquire) {
            ACCEPTING => Ok(()),
            DRAINING => Err(SubmitError::Draining),
            _ => Err(SubmitError::NodeStopped),
        }
    }

    /// Stops accepting new tasks ([`SubmitError::Draining`]), discards the submitters
    /// waiting for admission ([`DiscardReason::Draining`](erlmcp_flow_core::DiscardReason)),
    /// and waits up to `timeout` for the accepted tasks to finish. Nothing is
    /// dead-lettered: what is still open keeps running. A drained node stays drained;
    /// [`shutdown`](Self::shutdown) is the same drain followed by dead-lettering the rest.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let _ = self.lifecycle.compare_exchange(ACCEPTING, DRAINING, Ordering::AcqRel, Ordering::Acquire);
        self.finish_draining(timeout).await
    }

    async fn finish_draining(&self, timeout: Duration) -> DrainReport {
        let open_before = self.parts.tasks.open_count();
        let discarded_waiters = self.admission.close() as u64;
        self.parts.tasks.wait_idle(timeout).await;
        let still_open = self.parts.tasks.open_count();
        DrainReport { finished: open_before.saturating_sub(still_open), still_open, discarded_waiters }
    }

    /// Stops accepting; discards the submitters waiting for admission; waits up to
    /// `grace` for open tasks, then dead-letters the rest as `NodeStopped` so every
    /// accepted task still ends in a terminal state.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.lifecycle.store(STOPPED, Ordering::Release);
        if self.finish_draining(grace).await.still_open == 0 {
            return 0;
        }
        let mut n = 0;
        for id in self.parts.tasks.open_ids() {
            if let Some(task) = self.parts.tasks.task(&id) {
                self.finish(&task, TaskOutcome::DeadLettered { reason: DeadLetterReason::NodeStopped, attempts: 0 });
                n += 1;
            }
        }
        n
    }

    /// True while submissions are accepted (not draining, not stopped).
    pub fn is_accepting(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) == ACCEPTING
    }

    /// True once [`drain`](Self::drain) was called (and the node did not stop since).
    pub fn is_draining(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) == DRAINING
    }

    /// Counter snapshot.
    pub fn stats(&self) -> FlowStats {
        let c = self.parts.tasks.counts();
        let mut s = FlowStats {
            accepted: c.accepted,
            completed: c.completed,
            failed: c.failed,
            dead_lettered: c.dead_lettered,
            in_flight: c.open(),
            breaker_opens: self.parts.breakers.opens(),
            dead_letters_queued: self.parts.dead_letters.len() as u64,
            ..FlowStats::default()
        };
        self.metrics.fill(&mut s);
        s
    }

    pub(crate) fn metrics(&self) -> &RouterMetrics {
        &self.metrics
    }
}
