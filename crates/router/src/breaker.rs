//! Per-agent circuit breakers.
//!
//! [`CircuitBreaker`] is a pure state machine (time is an input, transitions are
//! returned), following the seeds and Nygard's *Release It!*:
//!
//! ```text
//!            failure rate ≥ threshold over ≥ min_requests,
//!            or failure_threshold consecutive failures
//!   Closed ───────────────────────────────────────────────► Open
//!     ▲                                                   │   ▲
//!     │ half_open_successes successes         timeout_ms  │   │ any failure
//!     │                                                   ▼   │
//!     └──────────────────────────────────────────────── HalfOpen
//!                    (at most half_open_max_probes trial requests at a time)
//! ```
//!
//! The rate is judged over a rolling window of the last `window_size` results.
//! [`CircuitBreakers`] holds one breaker per agent id (so a crash-looping agent's breaker
//! survives its restarts) behind a per-agent mutex: half-open probe admission must be
//! exact, and a per-key lock keeps the serialisation point per agent, never global.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use dashmap::DashMap;
use erlmcp_flow_core::AgentId;
use erlmcp_flow_core::config::CircuitBreakerConfig;
use erlmcp_flow_core::hash::FoldBuildHasher;
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// The three states, without their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerStatus {
    /// Requests flow.
    Closed,
    /// Requests are refused until the timeout passes.
    Open,
    /// A few trial requests decide.
    HalfOpen,
}

/// A state change, reported so metrics and subscribers can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → Open, or HalfOpen → Open.
    Opened,
    /// Open → HalfOpen.
    HalfOpened,
    /// HalfOpen → Closed.
    Closed,
}

/// Answer to "may I send a request?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes (closed).
    Allowed,
    /// Yes, as a half-open trial; report its result with `probe = true`.
    Probe,
    /// No; open (or half-open with all trial slots taken) for about this long.
    Rejected {
        /// Nanoseconds until the breaker may let a trial through (at most
        /// [`TRIAL_POLL_NS`] while a trial is out: its verdict may free the slot at once).
        retry_in_ns: u64,
    },
}

impl Admission {
    /// True unless rejected.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Admission::Rejected { .. })
    }
    /// True for a half-open trial.
    pub fn is_probe(&self) -> bool {
        matches!(self, Admission::Probe)
    }
}

/// How soon to ask again a half-open breaker whose trial slots are all taken: a trial's
/// verdict (microseconds away for a local agent) frees its slot, so "soon", not the
/// stale-trial timeout.
pub const TRIAL_POLL_NS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open {
        until_ns: u64,
    },
    /// `probed_ns`: when the last trial was let through. A trial whose result never
    /// arrives must not wedge the breaker, so after `timeout_ms` without a verdict
    /// another trial is allowed.
    HalfOpen {
        probes: u32,
        successes: u32,
        probed_ns: u64,
    },
}

/// One agent's breaker. See the module docs.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    cfg: CircuitBreakerConfig,
    state: State,
    window: VecDeque<bool>,
    window_failures: u32,
    consecutive_failures: u32,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: CircuitBreakerConfig) -> Self {
        Self {
            window: VecDeque::with_capacity(cfg.window_size as usize),
            cfg,
            state: State::Closed,
            window_failures: 0,
            consecutive_failures: 0,
        }
    }

    /// Current status (an open breaker past its timeout still reads `Open` until the
    /// next admission moves it to half-open).
    pub fn status(&self) -> BreakerStatus {
        match self.state {
            State::Closed => BreakerStatus::Closed,
            State::Open { .. } => BreakerStatus::Open,
            State::HalfOpen { .. } => BreakerStatus::HalfOpen,
        }
    }

    /// True when closed with no failure on record: a success then changes nothing but the
    /// window's contents, which lets [`BreakerCell`] count successes without the lock.
    pub fn is_clean(&self) -> bool {
        matches!(self.state, State::Closed) && self.window_failures == 0 && self.consecutive_failures == 0
    }

    /// Records `n` successes that happened while the breaker was clean.
    pub fn record_successes(&mut self, n: u32) {
        if n == 0 || !matches!(self.state, State::Closed) {
            return;
        }
        self.consecutive_failures = 0;
        for _ in 0..n.min(self.cfg.window_size) {
            self.push(false);
        }
    }

    /// Asks to send one request at `now_ns`.
    pub fn admit(&mut self, now_ns: u64) -> (Admission, Option<Transition>) {
        match self.state {
            State::Closed => (Admission::Allowed, None),
            State::Open { until_ns } if now_ns < until_ns => {
                (Admission::Rejected { retry_in_ns: until_ns - now_ns }, None)
            }
            State::Open { .. } => {
                self.state = State::HalfOpen { probes: 1, successes: 0, probed_ns: now_ns };
                (Admission::Probe, Some(Transition::HalfOpened))
            }
            State::HalfOpen { probes, successes, probed_ns } => {
                let stale = now_ns >= probed_ns.saturating_add(self.timeout_ns());
                if probes < self.cfg.half_open_max_probes || stale {
                    self.state = State::HalfOpen {
                        probes: (probes + 1).min(self.cfg.half_open_max_probes),
                        successes,
                        probed_ns: now_ns,
                    };
                    (Admission::Probe, None)
                } else {
                    let stale_in_ns = probed_ns.saturating_add(self.timeout_ns()) - now_ns;
                    (Admission::Rejected { retry_in_ns: stale_in_ns.min(TRIAL_POLL_NS) }, None)
                }
            }
        }
    }

    /// Reports a success.
    pub fn on_success(&mut self, probe: bool) -> Option<Transition> {
        match self.state {
            State::Closed => {
                self.consecutive_failures = 0;
                self.push(false);
                None
            }
            State::HalfOpen { probes, successes, probed_ns } => {
                let successes = successes + 1;
                if successes >= self.cfg.half_open_successes {
                    self.reset();
                    Some(Transition::Closed)
                } else {
                    self.state = State::HalfOpen {
                        probes: if probe { probes.saturating_sub(1) } else { probes },
                        successes,
                        probed_ns,
                    };
                    None
                }
            }
            // A late answer to a request admitted before the breaker opened.
            State::Open { .. } => None,
        }
    }

    /// Reports a failure at `now_ns`.
    pub fn on_failure(&mut self, now_ns: u64, _probe: bool) -> Option<Transition> {
        match self.state {
            State::Closed => {
                self.consecutive_failures += 1;
                self.push(true);
                let judged = self.window.len() as u32 >= self.cfg.min_requests;
                let rate = f64::from(self.window_failures) / self.window.len() as f64;
                if self.consecutive_failures >= self.cfg.failure_threshold
                    || (judged && rate >= self.cfg.failure_rate_threshold)
                {
                    self.open(now_ns);
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            State::HalfOpen { .. } => {
                self.open(now_ns);
                Some(Transition::Opened)
            }
            State::Open { .. } => None,
        }
    }

    /// Reports that an admitted request produced no verdict (the agent was gone before
    /// it ran the task): frees its trial slot.
    pub fn on_abandon(&mut self, probe: bool) {
        if let (true, State::HalfOpen { probes, successes, probed_ns }) = (probe, self.state) {
            self.state = State::HalfOpen { probes: probes.saturating_sub(1), successes, probed_ns };
        }
    }

    fn timeout_ns(&self) -> u64 {
        self.cfg.timeout_ms.saturating_mul(1_000_000)
    }

    fn open(&mut self, now_ns: u64) {
        self.state = State::Open { until_ns: now_ns.saturating_add(self.timeout_ns()) };
        self.window.clear();
        self.window_failures = 0;
        self.consecutive_failures = 0;
    }

    fn reset(&mut self) {
        self.state = State::Closed;
        self.window.clear();
        self.window_failures = 0;
        self.consecutive_failures = 0;
    }

    fn push(&mut self, failed: bool) {
        if self.window.len() == self.cfg.window_size as usize
            && let Some(old) = self.window.pop_front()
            && old
        {
            self.window_failures -= 1;
        }
        self.window.push_back(failed);
        if failed {
            self.window_failures += 1;
        }
    }
}

/// A breaker change, as published to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerEvent {
    /// The agent.
    pub agent: AgentId,
    /// What happened.
    pub transition: Transition,
}

/// One agent's breaker as shared by concurrent routes.
///
/// While the breaker is *clean* (closed, no failure on record), admission is one atomic
/// load and a success one atomic add; successes counted that way are folded into the
/// window the next time the lock is taken, before anything else is recorded, which gives
/// the same window as recording them one by one (a success cannot change the state of a
/// clean breaker). Everything else takes the breaker's mutex.
#[derive(Debug)]
pub struct BreakerCell {
    clean: AtomicBool,
    pending_successes: AtomicU32,
    inner: Mutex<CircuitBreaker>,
}

impl BreakerCell {
    fn new(cfg: CircuitBreakerConfig) -> Self {
        Self {
            clean: AtomicBool::new(true),
            pending_successes: AtomicU32::new(0),
            inner: Mutex::new(CircuitBreaker::new(cfg)),
        }
    }

    fn locked<R>(&self, f: impl FnOnce(&mut CircuitBreaker) -> R) -> R {
        let mut b = self.inner.lock();
        let pending = self.pending_successes.swap(0, Ordering::AcqRel);
        b.record_successes(pending);
        let r = f(&mut b);
        self.clean.store(b.is_clean(), Ordering::Release);
        r
    }

    fn admit(&self, now_ns: u64) -> (Admission, Option<Transition>) {
        if self.clean.load(Ordering::Acquire) {
            return (Admission::Allowed, None);
        }
        self.locked(|b| b.admit(now_ns))
    }

    fn on_success(&self, probe: bool) -> Option<Transition> {
        if !probe && self.clean.load(Ordering::Acquire) {
            self.pending_successes.fetch_add(1, Ordering::AcqRel);
            return None;
        }
        self.locked(|b| b.on_success(probe))
    }

    fn on_failure(&self, now_ns: u64, probe: bool) -> Option<Transition> {
        self.locked(|b| b.on_failure(now_ns, probe))
    }

    fn on_abandon(&self, probe: bool) {
        if probe {
            self.locked(|b| b.on_abandon(probe));
        }
    }

    /// Current status.
    pub fn status(&self) -> BreakerStatus {
        if self.clean.load(Ordering::Acquire) { BreakerStatus::Closed } else { self.inner.lock().status() }
    }
}

/// All breakers of a node, keyed by agent id.
#[derive(Debug)]
pub struct CircuitBreakers {
    cfg: CircuitBreakerConfig,
    table: DashMap<AgentId, Arc<BreakerCell>, FoldBuildHasher>,
    events: broadcast::Sender<BreakerEvent>,
    opens: AtomicU64,
}

impl CircuitBreakers {
    /// An empty table; breakers are created closed on first use.
    pub fn new(cfg: CircuitBreakerConfig) -> Self {
        Self {
            cfg,
            table: DashMap::with_hasher(FoldBuildHasher),
            events: broadcast::channel(1024).0,
            opens: Default::default(),
        }
    }

    /// The breaker of `agent` (created closed on first use). Routes look it up once per
    /// attempt and report through it.
    pub fn cell(&self, agent: &AgentId) -> Arc<BreakerCell> {
        if let Some(b) = self.table.get(agent) {
            return b.clone();
        }
        self.table.entry(agent.clone()).or_insert_with(|| Arc::new(BreakerCell::new(self.cfg.clone()))).clone()
    }

    /// Asks `agent`'s breaker (`cell`) to send a request.
    pub fn admit_on(&self, agent: &AgentId, cell: &BreakerCell, now_ns: u64) -> Admission {
        let (a, t) = cell.admit(now_ns);
        self.publish(agent, t);
        a
    }

    /// Reports a success to `cell`.
    pub fn success_on(&self, agent: &AgentId, cell: &BreakerCell, probe: bool) {
        let t = cell.on_success(probe);
        self.publish(agent, t);
    }

    /// Reports a failure to `cell`.
    pub fn failure_on(&self, agent: &AgentId, cell: &BreakerCell, now_ns: u64, probe: bool) {
        let t = cell.on_failure(now_ns, probe);
        self.publish(agent, t);
    }

    /// Reports an admitted request that produced no verdict.
    pub fn abandon_on(&self, cell: &BreakerCell, probe: bool) {
        cell.on_abandon(probe);
    }

    /// Asks to send a request to `agent`.
    pub fn admit(&self, agent: &AgentId, now_ns: u64) -> Admission {
        self.admit_on(agent, &self.cell(agent), now_ns)
    }

    /// Reports a success.
    pub fn on_success(&self, agent: &AgentId, probe: bool) {
        self.success_on(agent, &self.cell(agent), probe)
    }

    /// Reports a failure.
    pub fn on_failure(&self, agent: &AgentId, now_ns: u64, probe: bool) {
        self.failure_on(agent, &self.cell(agent), now_ns, probe)
    }

    /// Reports an admitted request that produced no verdict.
    pub fn on_abandon(&self, agent: &AgentId, probe: bool) {
        if probe {
            self.abandon_on(&self.cell(agent), probe);
        }
    }

    /// Status of `agent`'s breaker (closed if it has none).
    pub fn status(&self, agent: &AgentId) -> BreakerStatus {
        self.table.get(agent).map(|b| b.status()).unwrap_or(BreakerStatus::Closed)
    }

    /// Times any breaker opened.
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// Breaker changes as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.events.subscribe()
    }

    /// Agents with a breaker.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no breaker exists.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Drops closed breakers of agents `keep` says are gone (bounds the table); open and
    /// half-open breakers stay so a returning agent does not get a clean slate.
    pub fn prune(&self, keep: impl Fn(&AgentId) -> bool) -> usize {
        let before = self.table.len();
        self.table.retain(|id, b| keep(id) || b.status() != BreakerStatus::Closed);
        before - self.table.len()
    }

    fn publish(&self, agent: &AgentId, t: Option<Transition>) {
        if let Some(transition) = t {
            if transition == Transition::Opened {
                self.opens.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%agent, "circuit breaker opened");
            }
            let _ = self.events.send(BreakerEvent { agent: agent.clone(), transition });
        }
    }
}

/// Messages of the circuit-breaker maintenance actor.
#[derive(Debug)]
pub enum BreakersMsg {
    /// Drop closed breakers of agents that are no longer registered.
    Prune,
}
impl ractor::Message for BreakersMsg {}

/// Arguments of the breaker actor.
#[derive(Debug, Clone)]
pub struct BreakersArgs {
    /// The shared table.
    pub table: Arc<CircuitBreakers>,
    /// Whether an agent id is still registered.
    pub registry: erlmcp_flow_registry::RegistryHandle,
    /// Prune period.
    pub prune_interval: std::time::Duration,
    /// Where the incarnation is published.
    pub slot: erlmcp_flow_supervision::ActorSlot<BreakersMsg>,
}

/// The supervised owner of breaker maintenance: it keeps the table bounded by pruning
/// breakers of departed agents. Admission and results go straight to the shared table
/// (see the module docs), so a crash of this actor never loses breaker state; the
/// restarted incarnation resumes pruning.
#[derive(Debug, Clone, Copy, Default)]
pub struct CircuitBreakersActor;

/// Its state.
#[derive(Debug)]
pub struct BreakersState {
    args: BreakersArgs,
    timer: tokio::task::JoinHandle<()>,
}

impl ractor::Actor for CircuitBreakersActor {
    type Msg = BreakersMsg;
    type State = BreakersState;
    type Arguments = BreakersArgs;

    async fn pre_start(
        &self,
        myself: ractor::ActorRef<BreakersMsg>,
        args: BreakersArgs,
    ) -> Result<BreakersState, ractor::ActorProcessingErr> {
        let timer = myself.send_interval(args.prune_interval, || BreakersMsg::Prune);
        args.slot.set(myself);
        Ok(BreakersState { args, timer })
    }

    async fn post_stop(
        &self,
        myself: ractor::ActorRef<BreakersMsg>,
        state: &mut BreakersState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        state.timer.abort();
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<BreakersMsg>,
        msg: BreakersMsg,
        state: &mut BreakersState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            BreakersMsg::Prune => {
                let registry = &state.args.registry;
                let n = state.args.table.prune(|id| registry.find(id).is_some());
                if n > 0 {
                    tracing::debug!(pruned = n, "breakers of departed agents dropped");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn cfg() -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_threshold: 5,
            failure_rate_threshold: 0.5,
            min_requests: 10,
            window_size: 20,
            timeout_ms: 100,
            half_open_successes: 3,
            half_open_max_probes: 1,
        }
    }

    /// The rate rule needs min_requests results: 4 failures in 4 requests do not open it
    /// (consecutive threshold is 5), 5 failures in 10 requests do.
    #[test]
    fn opens_on_failure_rate_after_min_requests() {
        let mut b = CircuitBreaker::new(cfg());
        for _ in 0..4 {
            assert_eq!(b.on_failure(0, false), None);
        }
        for _ in 0..5 {
            assert_eq!(b.on_success(false), None);
        }
        assert_eq!(b.status(), BreakerStatus::Closed);
        assert_eq!(b.on_failure(0, false), Some(Transition::Opened), "5 of 10 = 50%");
        assert_eq!(b.status(), BreakerStatus::Open);
    }

    /// failure_threshold consecutive failures open it even below min_requests.
    #[test]
    fn opens_on_consecutive_failures() {
        let mut b = CircuitBreaker::new(cfg());
        for i in 0..4 {
            assert_eq!(b.on_failure(0, false), None, "failure {i}");
        }
        assert_eq!(b.on_failure(0, false), Some(Transition::Opened));
    }

    /// Open rejects until the timeout, then admits one probe (half-open); 3 successes
    /// close it; a failure in half-open reopens it.
    #[test]
    fn half_open_cycle() {
        let mut b = CircuitBreaker::new(cfg());
        for _ in 0..5 {
            b.on_failure(0, false);
        }
        assert_eq!(b.admit(50 * MS).0, Admission::Rejected { retry_in_ns: 50 * MS });
        assert_eq!(b.admit(100 * MS), (Admission::Probe, Some(Transition::HalfOpened)));
        assert!(!b.admit(100 * MS).0.is_allowed(), "only one probe at a time");
        assert_eq!(b.on_failure(101 * MS, true), Some(Transition::Opened));
        assert!(!b.admit(150 * MS).0.is_allowed());
        let mut closed = None;
        for i in 0..3 {
            let (a, _) = b.admit(202 * MS + i);
            assert!(a.is_probe(), "probe {i}");
            closed = b.on_success(true);
        }
        assert_eq!(closed, Some(Transition::Closed));
        assert_eq!(b.admit(300 * MS).0, Admission::Allowed);
    }

    /// A trial whose verdict never arrives does not wedge the breaker: after the timeout
    /// another trial is let through.
    #[test]
    fn lost_probe_expires() {
        let mut b = CircuitBreaker::new(cfg());
        for _ in 0..5 {
            b.on_failure(0, false);
        }
        assert!(b.admit(100 * MS).0.is_probe());
        assert_eq!(b.admit(150 * MS).0, Admission::Rejected { retry_in_ns: TRIAL_POLL_NS }, "ask again soon");
        assert!(!b.admit(199 * MS).0.is_allowed());
        assert!(b.admit(200 * MS).0.is_probe());
    }

    /// An abandoned probe frees its slot.
    #[test]
    fn abandoned_probe_frees_slot() {
        let mut b = CircuitBreaker::new(cfg());
        for _ in 0..5 {
            b.on_failure(0, false);
        }
        assert!(b.admit(100 * MS).0.is_probe());
        assert!(!b.admit(100 * MS).0.is_allowed());
        b.on_abandon(true);
        assert!(b.admit(100 * MS).0.is_probe());
    }

    /// The window forgets old results: old failures stop counting toward the rate.
    #[test]
    fn rolling_window_forgets() {
        let mut b = CircuitBreaker::new(cfg());
        for _ in 0..4 {
            b.on_failure(0, false);
        }
        for _ in 0..20 {
            b.on_success(false);
        }
        for _ in 0..4 {
            assert_eq!(b.on_failure(0, false), None, "4 failures in 20 = 20%");
        }
    }

    /// Successes counted without the lock while clean are folded in before the next
    /// failure, so the rate rule sees the same window as with one-by-one recording.
    #[test]
    fn lock_free_successes_keep_the_window_exact() {
        let t = CircuitBreakers::new(cfg());
        let a = AgentId::new("a").unwrap();
        for _ in 0..16 {
            assert!(t.admit(&a, 0).is_allowed());
            t.on_success(&a, false);
        }
        // 4 failures among 20 results = 20 %: stays closed.
        for _ in 0..4 {
            t.on_failure(&a, 0, false);
        }
        assert_eq!(t.status(&a), BreakerStatus::Closed);
        assert_eq!(t.opens(), 0);
        // Failures first, then successes (taken under the lock), then failures.
        let b = AgentId::new("b").unwrap();
        for _ in 0..4 {
            t.on_failure(&b, 0, false);
        }
        for _ in 0..6 {
            t.on_success(&b, false);
        }
        t.on_failure(&b, 0, false);
        assert_eq!(t.status(&b), BreakerStatus::Closed, "5 failures in 11 results: 45 %");
        t.on_failure(&b, 0, false);
        assert_eq!(t.status(&b), BreakerStatus::Open, "6 failures in 12 results: 50 %");
    }

    /// Issue 9 finding 6, the breaker storm under a steady crash load: an agent that
    /// fails 11 % of its tasks (the demo's 10 % crashes plus 1 % errors, independent
    /// draws) is healthy, and the default breaker must not open on it by chance. With the
    /// former defaults (5 consecutive failures, a 20-result window) it opened about once
    /// per 60 000 results: more than once a second per agent at this node's throughput,
    /// and each opening kept it out for `timeout_ms` (30 s), so the open breakers piled up
    /// until every capable agent was refused. An agent failing 60 % of the time still
    /// opens it within its first window.
    #[test]
    fn default_breaker_does_not_open_on_a_steady_low_failure_rate() {
        use rand::{Rng, SeedableRng};
        let cfg = CircuitBreakerConfig::default();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(6);
        let mut b = CircuitBreaker::new(cfg.clone());
        let mut opens = 0;
        for i in 0..1_000_000u64 {
            // One result per 100 µs of node time: an open breaker refuses for a while.
            let now = i * 100_000;
            let (admission, _) = b.admit(now);
            if !admission.is_allowed() {
                continue;
            }
            let failed = rng.random::<f64>() < 0.109;
            let t = if failed { b.on_failure(now, admission.is_probe()) } else { b.on_success(admission.is_probe()) };
            if t == Some(Transition::Opened) {
                opens += 1;
            }
        }
        assert_eq!(opens, 0, "a healthy agent's breaker opened by chance");

        let mut flaky = CircuitBreaker::new(cfg.clone());
        let opened = (0..cfg.window_size).any(|_| {
            let failed = rng.random::<f64>() < 0.6;
            (if failed { flaky.on_failure(0, false) } else { flaky.on_success(false) }) == Some(Transition::Opened)
        });
        assert!(opened, "an agent failing 60 % of the time opens its breaker within one window");
        let mut dead = CircuitBreaker::new(cfg.clone());
        let to_open = (1..=cfg.window_size).find(|_| dead.on_failure(0, false) == Some(Transition::Opened));
        assert_eq!(to_open, Some(cfg.failure_threshold), "a dead agent opens it after failure_threshold failures");
    }

    /// The table counts opens, publishes events and prunes only closed breakers.
    #[test]
    fn table_counts_publishes_and_prunes() {
        let t = CircuitBreakers::new(cfg());
        let mut rx = t.subscribe();
        let a = AgentId::new("a").unwrap();
        let b = AgentId::new("b").unwrap();
        for _ in 0..5 {
            t.on_failure(&a, 0, false);
        }
        t.on_success(&b, false);
        assert_eq!(t.opens(), 1);
        assert_eq!(rx.try_recv().unwrap(), BreakerEvent { agent: a.clone(), transition: Transition::Opened });
        assert_eq!(t.status(&a), BreakerStatus::Open);
        assert_eq!(t.prune(|_| false), 1, "closed b pruned, open a kept");
        assert_eq!(t.status(&a), BreakerStatus::Open);
    }
}
