//! Admission control: at most `router.max_in_flight` accepted-but-unfinished tasks per
//! node, granted by priority, with a bounded wait queue, a queue TTL per task and an
//! optional rate limit.
//!
//! A submitter at the limit waits in the [`WaitQueue`] (backpressure), or gets
//! `Overloaded` from `try_submit`. When a slot frees up it goes to the oldest waiter of the
//! highest priority. tokio's `Semaphore` is strictly FIFO, hence this small gate. The
//! permit is a guard: dropping it (task finished, or a waiter gave up) returns the slot.
//!
//! A waiter is *discarded* ([`DiscardReason`]) when the queue is full (by
//! `router.queue.discard`), when its queue TTL passes, when the rate limit has no token
//! on its arrival, or when the gate closes (drain, shutdown). Each discard is counted and
//! reported to the [`DiscardHandler`] exactly once, where it happens; the submitter gets
//! the reason. The queue logic itself is the synchronous [`crate::queue`]; this is its
//! async shell.
//!
//! While nobody waits and no rate limit is set, taking and returning a slot is a single
//! atomic operation; the mutex is only touched once the node is at its limit, and nothing
//! is counted on that path (accepted tasks are counted by the ledger).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use erlmcp_flow_core::config::{QueueConfig, RateLimitConfig};
use erlmcp_flow_core::{DiscardReason, MonoClock, Task};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::queue::{Pushed, Ticket, TokenBucket, WaitQueue};

/// Told about every discarded task, once, with the reason. It runs on the task that
/// discarded it (a submitter, or whoever released a slot): it must be quick and must not
/// block or submit. Any `Fn(&Task, DiscardReason)` closure is one.
pub trait DiscardHandler: Send + Sync + 'static {
    /// `task` was discarded for `reason`; its submitter gets
    /// `SubmitError::Discarded { reason }`.
    fn on_discard(&self, task: &Task, reason: DiscardReason);
}

impl<F: Fn(&Task, DiscardReason) + Send + Sync + 'static> DiscardHandler for F {
    fn on_discard(&self, task: &Task, reason: DiscardReason) {
        self(task, reason)
    }
}

/// Discards per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiscardCounts {
    /// [`DiscardReason::QueueFull`].
    pub queue_full: u64,
    /// [`DiscardReason::EvictedOldest`].
    pub evicted_oldest: u64,
    /// [`DiscardReason::EvictedNewest`].
    pub evicted_newest: u64,
    /// [`DiscardReason::Ttl`].
    pub ttl: u64,
    /// [`DiscardReason::RateLimited`].
    pub rate_limited: u64,
    /// [`DiscardReason::Draining`].
    pub draining: u64,
}

impl DiscardCounts {
    /// The count for `reason`.
    pub fn get(&self, reason: DiscardReason) -> u64 {
        match reason {
            DiscardReason::QueueFull => self.queue_full,
            DiscardReason::EvictedOldest => self.evicted_oldest,
            DiscardReason::EvictedNewest => self.evicted_newest,
            DiscardReason::Ttl => self.ttl,
            DiscardReason::RateLimited => self.rate_limited,
            DiscardReason::Draining => self.draining,
        }
    }

    /// All discards.
    pub fn total(&self) -> u64 {
        DiscardReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// The admission figures of a node.
///
/// Every task that passes the door checks (capabilities, payload size, node accepting)
/// ends up, once, in exactly one of: accepted (the ledger's `accepted`), discarded here
/// (per reason), cancelled here (its submitter stopped waiting), or still waiting
/// (`waiting`). A submission refused after admission (a duplicate id, the node stopping
/// at that instant, a Raft commit that failed) gets its own `SubmitError` and is counted
/// nowhere, like any refusal; so is `try_submit`'s `Overloaded`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AdmissionStats {
    /// The in-flight limit (`router.max_in_flight`).
    pub limit: u32,
    /// Free slots now.
    pub available: u32,
    /// Submitters waiting for a slot now.
    pub waiting: u64,
    /// Waiters whose submitter stopped waiting (dropped the future) before admission.
    pub cancelled: u64,
    /// Discards, per reason.
    pub discarded: DiscardCounts,
}

/// The waiter as the queue holds it: where to send the verdict, and the task (for the
/// discard handler).
type Waiter = (oneshot::Sender<Result<AdmissionPermit, DiscardReason>>, Arc<Task>);

struct GateState {
    queue: WaitQueue<Waiter>,
    closed: bool,
}

/// The gate. Clone the `Arc` to share it.
pub struct AdmissionGate {
    available: AtomicU32,
    /// Waiters queued (mirrors the queue's length; read without the lock).
    waiting: AtomicU32,
    state: Mutex<GateState>,
    limit: u32,
    rate: Option<Mutex<TokenBucket>>,
    default_ttl: Option<Duration>,
    clock: MonoClock,
    closed: AtomicBool,
    discarded: [AtomicU64; 6],
    cancelled: AtomicU64,
    handler: OnceLock<Arc<dyn DiscardHandler>>,
}

impl fmt::Debug for AdmissionGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionGate")
            .field("limit", &self.limit)
            .field("available", &self.available())
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One admitted task's slot; returned on drop.
#[derive(Debug)]
pub struct AdmissionPermit {
    gate: Option<Arc<AdmissionGate>>,
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

/// Why [`AdmissionGate::try_admit`] did not admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAdmitError {
    /// No free slot (nothing counted: the task never waited).
    Overloaded,
    /// Discarded (counted and reported).
    Discarded(DiscardReason),
}

/// Takes the waiter back out of the queue if its submitter stops waiting.
struct CancelGuard<'a> {
    gate: &'a Arc<AdmissionGate>,
    ticket: Ticket,
    rx: Option<oneshot::Receiver<Result<AdmissionPermit, DiscardReason>>>,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let removed = self.gate.state.lock().queue.remove(self.ticket);
        if removed.is_some() {
            self.gate.waiting.fetch_sub(1, Ordering::AcqRel);
            self.gate.cancelled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // It left the queue already. A discard was counted where it happened; a permit
        // granted to a submitter that is gone goes back (dropping it releases the slot).
        if let Ok(Ok(permit)) = rx.try_recv() {
            self.gate.cancelled.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        }
    }
}

impl AdmissionGate {
    /// A gate with `limit` slots, the default queue and no rate limit.
    pub fn new(limit: u32) -> Arc<Self> {
        Self::with_queue(limit, &QueueConfig::default(), None, MonoClock::new())
    }

    /// A gate with `limit` slots, waiters queued as `queue` says, admissions limited by
    /// `rate` (if set), time read from `clock`.
    pub fn with_queue(limit: u32, queue: &QueueConfig, rate: Option<&RateLimitConfig>, clock: MonoClock) -> Arc<Self> {
        Arc::new(Self {
            available: AtomicU32::new(limit),
            waiting: AtomicU32::new(0),
            state: Mutex::new(GateState {
                queue: WaitQueue::new(queue.capacity as usize, queue.discard),
                closed: false,
            }),
            limit,
            rate: rate.map(|r| Mutex::new(TokenBucket::new(r.per_second, r.burst, clock.now_ns()))),
            default_ttl: queue.ttl_ms.map(Duration::from_millis),
            clock,
            closed: AtomicBool::new(false),
            discarded: Default::default(),
            cancelled: AtomicU64::new(0),
            handler: OnceLock::new(),
        })
    }

    /// Installs the discard handler; only the first call takes effect (false after that).
    pub fn set_handler(&self, handler: Arc<dyn DiscardHandler>) -> bool {
        self.handler.set(handler).is_ok()
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Slots free now.
    pub fn available(&self) -> u32 {
        self.available.load(Ordering::Acquire)
    }

    /// Submitters waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Acquire)
    }

    /// Counters.
    pub fn stats(&self) -> AdmissionStats {
        let d = |r: DiscardReason| self.discarded[r.index()].load(Ordering::Relaxed);
        AdmissionStats {
            limit: self.limit,
            available: self.available(),
            waiting: u64::from(self.waiting()),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            discarded: DiscardCounts {
                queue_full: d(DiscardReason::QueueFull),
                evicted_oldest: d(DiscardReason::EvictedOldest),
                evicted_newest: d(DiscardReason::EvictedNewest),
                ttl: d(DiscardReason::Ttl),
                rate_limited: d(DiscardReason::RateLimited),
                draining: d(DiscardReason::Draining),
            },
        }
    }

    fn take_free(&self) -> bool {
        self.available.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(1)).is_ok()
    }

    fn permit(self: &Arc<Self>) -> AdmissionPermit {
        AdmissionPermit { gate: Some(self.clone()) }
    }

    /// Counts a discard and tells the handler.
    fn discard(&self, task: &Task, reason: DiscardReason) {
        self.discarded[reason.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(h) = self.handler.get() {
            h.on_discard(task, reason);
        }
    }

    /// Sends a discard to a waiter that has left the queue, counting and reporting it.
    fn discard_waiter(&self, (tx, task): Waiter, reason: DiscardReason) {
        self.discard(&task, reason);
        let _ = tx.send(Err(reason));
    }

    fn rate_limited(&self) -> bool {
        self.rate.as_ref().is_some_and(|r| !r.lock().try_take(self.clock.now_ns()))
    }

    /// Takes a slot if one is free and nobody is queued ahead (no rate limit, no counting).
    pub fn try_acquire(self: &Arc<Self>) -> Option<AdmissionPermit> {
        if self.waiting.load(Ordering::SeqCst) == 0 && self.take_free() { Some(self.permit()) } else { None }
    }

    /// Admits `task` if a slot is free now, nobody waits ahead and the rate limit allows.
    pub fn try_admit(self: &Arc<Self>, task: &Task) -> Result<AdmissionPermit, TryAdmitError> {
        if self.rate_limited() {
            self.discard(task, DiscardReason::RateLimited);
            return Err(TryAdmitError::Discarded(DiscardReason::RateLimited));
        }
        self.try_acquire().ok_or(TryAdmitError::Overloaded)
    }

    /// Admits `task`, waiting for a slot (higher priorities first) in the bounded queue
    /// up to its queue TTL; or says why it was discarded (counted and reported).
    pub async fn admit(self: &Arc<Self>, task: &Arc<Task>) -> Result<AdmissionPermit, DiscardReason> {
        if self.rate_limited() {
            self.discard(task, DiscardReason::RateLimited);
            return Err(DiscardReason::RateLimited);
        }
        if let Some(p) = self.try_acquire() {
            return Ok(p);
        }
        let ttl = task.queue_ttl.or(self.default_ttl);
        let deadline_ns = ttl.map(|t| self.clock.now_ns().saturating_add(t.as_nanos() as u64));
        let (tx, rx) = oneshot::channel();
        let mut evicted = None;
        let ticket = {
            let mut state = self.state.lock();
            if state.closed {
                drop(state);
                self.discard(task, DiscardReason::Draining);
                return Err(DiscardReason::Draining);
            }
            // Announce ourselves before the final check, so a concurrent release either
            // left its slot in `available` (seen below) or sees us waiting.
            self.waiting.fetch_add(1, Ordering::SeqCst);
            if self.take_free() {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return Ok(self.permit());
            }
            match state.queue.push(task.priority, deadline_ns, (tx, task.clone())) {
                Pushed::Queued(ticket) => ticket,
                Pushed::Evicted { ticket, victim, reason } => {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    evicted = Some((victim, reason));
                    ticket
                }
                Pushed::Refused(_) => {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    drop(state);
                    self.discard(task, DiscardReason::QueueFull);
                    return Err(DiscardReason::QueueFull);
                }
            }
        };
        if let Some((victim, reason)) = evicted {
            self.discard_waiter(victim, reason);
        }
        let mut guard = CancelGuard { gate: self, ticket, rx: Some(rx) };
        let rx = guard.rx.as_mut().expect("set above");
        let verdict = match deadline_ns {
            None => rx.await,
            Some(d) => match tokio::time::timeout_at(self.clock.instant_of(d), &mut *rx).await {
                Ok(v) => v,
                Err(_elapsed) => {
                    let removed = self.state.lock().queue.remove(ticket);
                    if let Some(w) = removed {
                        self.waiting.fetch_sub(1, Ordering::AcqRel);
                        guard.rx = None;
                        self.discard(&w.1, DiscardReason::Ttl);
                        return Err(DiscardReason::Ttl);
                    }
                    // It left the queue meanwhile: its verdict is on the way.
                    rx.await
                }
            },
        };
        guard.rx = None;
        // The sender is only dropped after a send, so a closed channel means the gate is
        // gone: the node is stopping.
        verdict.unwrap_or(Err(DiscardReason::Draining))
    }

    /// Closes the gate: every queued waiter is discarded ([`DiscardReason::Draining`])
    /// and so is every later arrival that would have to wait. Returns how many waiters
    /// were discarded now.
    pub fn close(&self) -> usize {
        self.closed.store(true, Ordering::Release);
        let drained = {
            let mut state = self.state.lock();
            state.closed = true;
            let drained = state.queue.drain();
            self.waiting.fetch_sub(drained.len() as u32, Ordering::AcqRel);
            drained
        };
        let n = drained.len();
        for w in drained {
            self.discard_waiter(w, DiscardReason::Draining);
        }
        n
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn release(self: Arc<Self>) {
        // SeqCst on both sides (here and in `admit`): each side writes its counter, then
        // reads the other's; at least one must see the other's write (Dekker).
        if self.waiting.load(Ordering::SeqCst) == 0 {
            self.available.fetch_add(1, Ordering::SeqCst);
            if self.waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            // A waiter queued meanwhile: hand it the slot we just returned.
            if !self.take_free() {
                return;
            }
        }
        let mut expired = Vec::new();
        {
            let mut state = self.state.lock();
            let now = self.clock.now_ns();
            let mut granted = false;
            while let Some((tx, _task)) = state.queue.pop(now, &mut expired) {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match tx.send(Ok(AdmissionPermit { gate: Some(self.clone()) })) {
                    Ok(()) => {
                        granted = true;
                        break;
                    }
                    // The waiter is gone: take the permit back without recursing.
                    Err(permit) => {
                        if let Ok(mut permit) = permit {
                            permit.gate = None;
                        }
                    }
                }
            }
            self.waiting.fetch_sub(expired.len() as u32, Ordering::AcqRel);
            if !granted {
                self.available.fetch_add(1, Ordering::AcqRel);
                debug_assert!(self.available.load(Ordering::Acquire) <= self.limit);
            }
        }
        for w in expired {
            self.discard_waiter(w, DiscardReason::Ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::config::DiscardPolicy;
    use erlmcp_flow_core::{CapabilitySet, Priority};

    fn task(p: Priority) -> Arc<Task> {
        Arc::new(Task::new(CapabilitySet::parse(["x"]).unwrap()).with_priority(p))
    }

    fn queued(gate: &AdmissionGate) -> usize {
        gate.state.lock().queue.len()
    }

    async fn until_queued(gate: &AdmissionGate, n: usize) {
        // Queuing happens on the first poll of a spawned task: yield until it has.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while queued(gate) < n {
            assert!(tokio::time::Instant::now() < deadline, "{n} waiters not queued");
            tokio::task::yield_now().await;
        }
    }

    fn gate(limit: u32, capacity: u32, discard: DiscardPolicy, ttl_ms: Option<u64>) -> Arc<AdmissionGate> {
        AdmissionGate::with_queue(limit, &QueueConfig { capacity, discard, ttl_ms }, None, MonoClock::new())
    }

    /// Slots run out at the limit, come back on drop, and go to higher priorities first.
    #[tokio::test]
    async fn limit_and_priority_order() {
        let gate = AdmissionGate::new(1);
        let held = gate.try_acquire().unwrap();
        assert!(gate.try_acquire().is_none());
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for p in [Priority::Low, Priority::Critical, Priority::Normal] {
            let g = gate.clone();
            let tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let permit = g.admit(&task(p)).await.unwrap();
                tx.send(p).unwrap();
                drop(permit);
            }));
            // Make sure each waiter is queued before the next one.
            until_queued(&gate, tasks.len()).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order: Vec<_> = std::iter::from_fn(|| order_rx.try_recv().ok()).collect();
        assert_eq!(order, [Priority::Critical, Priority::Normal, Priority::Low]);
        assert_eq!(gate.available(), 1);
    }

    /// A waiter that gives up does not leak its slot nor its place in the queue, and is
    /// counted as cancelled, not discarded.
    #[tokio::test]
    async fn abandoned_waiter_returns_slot() {
        let gate = AdmissionGate::new(1);
        let held = gate.try_acquire().unwrap();
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.admit(&task(Priority::Normal)).await.map(drop) });
        until_queued(&gate, 1).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(queued(&gate), 0);
        drop(held);
        assert_eq!(gate.available(), 1);
        let s = gate.stats();
        assert_eq!((s.cancelled, s.waiting, s.discarded.total()), (1, 0, 0));
    }

    /// A full `reject` queue turns the newcomer away with `QueueFull`, counted and told to
    /// the handler; the waiters keep their places.
    #[tokio::test]
    async fn full_queue_rejects_newcomer() {
        let gate = gate(1, 1, DiscardPolicy::Reject, None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        gate.set_handler(Arc::new(move |t: &Task, r| s2.lock().push((t.id, r))));
        let held = gate.try_acquire().unwrap();
        let g = gate.clone();
        let first = tokio::spawn(async move { g.admit(&task(Priority::Normal)).await.map(drop) });
        until_queued(&gate, 1).await;
        let late = task(Priority::Critical);
        assert_eq!(gate.admit(&late).await.unwrap_err(), DiscardReason::QueueFull);
        assert_eq!(*seen.lock(), [(late.id, DiscardReason::QueueFull)]);
        drop(held);
        first.await.unwrap().unwrap();
        assert_eq!(gate.stats().discarded.queue_full, 1);
    }

    /// `oldest`: a newcomer at a full queue pushes out the oldest waiter, whose submitter
    /// gets `EvictedOldest`; the newcomer is admitted when a slot frees.
    #[tokio::test]
    async fn oldest_policy_evicts_first_waiter() {
        let gate = gate(1, 1, DiscardPolicy::Oldest, None);
        let held = gate.try_acquire().unwrap();
        let g = gate.clone();
        let first = tokio::spawn(async move { g.admit(&task(Priority::Normal)).await.map(drop) });
        until_queued(&gate, 1).await;
        let g = gate.clone();
        let second = tokio::spawn(async move { g.admit(&task(Priority::Normal)).await.map(drop) });
        assert_eq!(first.await.unwrap().unwrap_err(), DiscardReason::EvictedOldest);
        until_queued(&gate, 1).await;
        drop(held);
        second.await.unwrap().unwrap();
        assert_eq!(gate.stats().discarded.evicted_oldest, 1);
    }

    /// A waiter past its queue TTL is discarded (`Ttl`) at its deadline, on paused time,
    /// and its place goes to nobody: the slot that frees later stays free.
    #[tokio::test(start_paused = true)]
    async fn queue_ttl_discards_waiter() {
        let gate = gate(1, 10, DiscardPolicy::Reject, Some(1_000));
        let held = gate.try_acquire().unwrap();
        let t = Arc::new(Task::new(CapabilitySet::parse(["x"]).unwrap()).with_queue_ttl(Duration::from_millis(50)));
        let started = tokio::time::Instant::now();
        assert_eq!(gate.admit(&t).await.unwrap_err(), DiscardReason::Ttl);
        // Paused time only moves to the next timer: which TTL fired is which deadline.
        let own = started.elapsed();
        assert!(own >= Duration::from_millis(50) && own < Duration::from_millis(1_000), "its own TTL: {own:?}");
        // The config default applies to a task without its own.
        assert_eq!(gate.admit(&task(Priority::Normal)).await.unwrap_err(), DiscardReason::Ttl);
        let default = started.elapsed() - own;
        assert!(default >= Duration::from_millis(1_000), "the default TTL: {default:?}");
        drop(held);
        let s = gate.stats();
        assert_eq!((s.discarded.ttl, s.waiting, s.available), (2, 0, 1));
    }

    /// The rate limit admits the burst at once, then one task per period; on paused time.
    #[tokio::test(start_paused = true)]
    async fn rate_limit_admits_burst_then_rate() {
        let rate = RateLimitConfig { per_second: 10.0, burst: 2 };
        let gate = AdmissionGate::with_queue(100, &QueueConfig::default(), Some(&rate), MonoClock::new());
        let t = task(Priority::Normal);
        let a = gate.admit(&t).await.unwrap();
        let b = gate.admit(&t).await.unwrap();
        assert_eq!(gate.admit(&t).await.unwrap_err(), DiscardReason::RateLimited);
        assert_eq!(gate.try_admit(&t).unwrap_err(), TryAdmitError::Discarded(DiscardReason::RateLimited));
        tokio::time::advance(Duration::from_millis(100)).await;
        let c = gate.admit(&t).await.unwrap();
        assert_eq!(gate.admit(&t).await.unwrap_err(), DiscardReason::RateLimited);
        drop((a, b, c));
        assert_eq!(gate.stats().discarded.rate_limited, 3);
    }

    /// Closing the gate discards every waiter (`Draining`) and every later arrival that
    /// would wait; free slots are still handed out by the fast path (the router's door
    /// check refuses new tasks before they reach the gate).
    #[tokio::test]
    async fn close_discards_waiters() {
        let gate = AdmissionGate::new(1);
        let held = gate.try_acquire().unwrap();
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let g = gate.clone();
            waiters.push(tokio::spawn(async move { g.admit(&task(Priority::Normal)).await.map(drop) }));
        }
        until_queued(&gate, 3).await;
        assert_eq!(gate.close(), 3);
        for w in waiters {
            assert_eq!(w.await.unwrap().unwrap_err(), DiscardReason::Draining);
        }
        assert_eq!(gate.admit(&task(Priority::Normal)).await.unwrap_err(), DiscardReason::Draining);
        drop(held);
        let s = gate.stats();
        assert_eq!((s.discarded.draining, s.waiting, s.available), (4, 0, 1));
    }

    /// Many concurrent takers and releasers never exceed the limit nor lose a slot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_use_conserves_slots() {
        let gate = AdmissionGate::new(4);
        let live = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (g, live) = (gate.clone(), live.clone());
            tasks.push(tokio::spawn(async move {
                let t = task(Priority::ALL[i % 4]);
                for _ in 0..200 {
                    let p = g.admit(&t).await.unwrap();
                    assert!(live.fetch_add(1, Ordering::SeqCst) < 4);
                    tokio::task::yield_now().await;
                    live.fetch_sub(1, Ordering::SeqCst);
                    drop(p);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(gate.available(), 4);
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
    }

    /// Concurrent waiters with short TTLs, a small queue and `oldest` eviction: every
    /// waiter ends exactly once (admitted, or discarded with a reason), the counts add up,
    /// and no slot is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_discards_add_up() {
        let gate = gate(2, 4, DiscardPolicy::Oldest, None);
        let admitted = Arc::new(AtomicU64::new(0));
        let discarded = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..32u64 {
            let (g, a, d) = (gate.clone(), admitted.clone(), discarded.clone());
            tasks.push(tokio::spawn(async move {
                for j in 0..50u64 {
                    let mut t = Task::new(CapabilitySet::parse(["x"]).unwrap());
                    if (i + j).is_multiple_of(3) {
                        t = t.with_queue_ttl(Duration::from_micros(50));
                    }
                    match g.admit(&Arc::new(t)).await {
                        Ok(p) => {
                            a.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            drop(p);
                        }
                        Err(_) => {
                            d.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = gate.stats();
        assert_eq!(admitted.load(Ordering::SeqCst) + discarded.load(Ordering::SeqCst), 32 * 50);
        assert_eq!(s.discarded.total(), discarded.load(Ordering::SeqCst));
        assert_eq!((s.available, s.waiting, s.cancelled), (2, 0, 0));
    }
}
