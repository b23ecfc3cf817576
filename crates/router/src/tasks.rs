//! [`TaskTable`]: the node's task ledger, sharded, plus the submitters' reply channels,
//! latency histograms and the orphan queue.
//!
//! Each shard is a [`TaskLedger`] behind a mutex (16 shards by task id, so drivers on
//! different cores rarely meet). An open task carries its body, the channel its
//! submitter waits on and its admission permit; finishing it sends the outcome, releases
//! the permit and records the latency, all under one shard lock.
//!
//! The ledger entry also carries the task's correlation data (latest agent, attempt and
//! span) while it is open; [`TaskTable::finish`] hands it back for the correlation log.
//!
//! A task's *driver* (the future routing it) holds a guard; if the driver is dropped
//! before the task is terminal (a panic in routing code, an abort), the guard pushes the
//! task on the orphan queue, where the failure detector picks it up and starts a new
//! driver. Nothing accepted is ever left without a driver.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use erlmcp_flow_core::ledger::LedgerEntry;
use erlmcp_flow_core::{
    AgentId, LedgerCounts, LedgerError, OpenState, Task, TaskId, TaskLedger, TaskOutcome, TerminalKind, TraceContext,
};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

use crate::admission::AdmissionPermit;
use crate::correlation::CorrelationRecord;

const SHARDS: usize = 16;
/// Highest latency the histograms resolve: one hour, in µs.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What the table keeps per open task.
#[derive(Debug)]
pub struct OpenTask {
    /// The task as submitted.
    pub task: Arc<Task>,
    waiter: Option<oneshot::Sender<TaskOutcome>>,
    /// Submission time (node clock, ns).
    pub submitted_ns: u64,
    /// Times this task lost its driver.
    pub orphan_count: u32,
    /// Span of the latest attempt.
    pub attempt_span: Option<TraceContext>,
    _permit: Option<AdmissionPermit>,
}

/// What [`TaskTable::finish`] hands back about a task that just ended.
#[derive(Debug)]
pub struct FinishedTask {
    /// The task as submitted.
    pub task: Arc<Task>,
    /// Its correlation record (terminal state and end time filled in).
    pub record: CorrelationRecord,
    /// Where the submitter waits for the outcome.
    pub answer: Answer,
}

/// The submitter's end of a finished task.
#[derive(Debug)]
pub struct Answer(Option<oneshot::Sender<TaskOutcome>>);

impl Answer {
    /// Sends the outcome to the submitter (who may have stopped waiting; the task is
    /// terminal either way).
    pub fn send(mut self, outcome: TaskOutcome) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(outcome);
        }
    }
}

fn record_of(id: TaskId, entry: &LedgerEntry<OpenTask>) -> CorrelationRecord {
    let (agent, attempt) = match &entry.state {
        OpenState::Assigned { agent, attempt, .. } => (Some(agent.clone()), *attempt),
        OpenState::Submitted => (None, 0),
    };
    CorrelationRecord {
        task_id: id,
        trace: entry.payload.task.trace,
        attempt_span: entry.payload.attempt_span,
        agent,
        attempt,
        terminal: None,
        created_ns: entry.payload.submitted_ns,
        finished_ns: None,
    }
}

#[derive(Debug)]
struct Shard {
    ledger: TaskLedger<OpenTask>,
    latency_us: Histogram<u64>,
}

/// A shard and its open count, on its own cache lines (counts are read lock-free by
/// `open_count` and written under the shard lock).
#[derive(Debug)]
#[repr(align(128))]
struct PaddedShard {
    shard: Mutex<Shard>,
    open: AtomicU64,
}

/// An orphaned task ready for a new driver.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The task.
    pub task: Arc<Task>,
    /// How many times it has been orphaned, this time included.
    pub orphan_count: u32,
}

/// See the module docs.
#[derive(Debug)]
pub struct TaskTable {
    shards: Box<[PaddedShard]>,
    orphans: Mutex<VecDeque<TaskId>>,
    orphan_signal: Notify,
    idle: Notify,
}

impl TaskTable {
    /// An empty table remembering `dedup_window` finished ids (across all shards).
    pub fn new(dedup_window: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| PaddedShard {
                    shard: Mutex::new(Shard {
                        ledger: TaskLedger::new(dedup_window.div_ceil(SHARDS)),
                        latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds"),
                    }),
                    open: AtomicU64::new(0),
                })
                .collect(),
            orphans: Mutex::new(VecDeque::new()),
            orphan_signal: Notify::new(),
            idle: Notify::new(),
        }
    }

    fn padded(&self, id: &TaskId) -> &PaddedShard {
        &self.shards[(id.shard_hash() as usize) % SHARDS]
    }

    fn shard(&self, id: &TaskId) -> &Mutex<Shard> {
        &self.padded(id).shard
    }

    fn all(&self) -> impl Iterator<Item = &Mutex<Shard>> {
        self.shards.iter().map(|p| &p.shard)
    }

    /// Accepts a task; the receiver gets its outcome.
    pub fn accept(
        &self,
        task: Arc<Task>,
        permit: Option<AdmissionPermit>,
        now_ns: u64,
    ) -> Result<oneshot::Receiver<TaskOutcome>, LedgerError> {
        let (tx, rx) = oneshot::channel();
        let id = task.id;
        let p = self.padded(&id);
        let mut shard = p.shard.lock();
        shard.ledger.accept(
            id,
            OpenTask {
                task,
                waiter: Some(tx),
                submitted_ns: now_ns,
                orphan_count: 0,
                attempt_span: None,
                _permit: permit,
            },
        )?;
        p.open.store(shard.ledger.open_len() as u64, Ordering::Release);
        Ok(rx)
    }

    /// Records a delivery of `id` to `agent` as attempt `attempt` with trace span `span`.
    pub fn assign(&self, id: &TaskId, agent: &AgentId, attempt: u32, span: TraceContext) -> bool {
        let mut shard = self.shard(id).lock();
        if shard.ledger.assign(*id, agent.clone(), None, attempt).is_err() {
            return false;
        }
        if let Some(open) = shard.ledger.payload_mut(id) {
            open.attempt_span = Some(span);
        }
        true
    }

    /// Hands `id` back to `Submitted`.
    pub fn requeue(&self, id: &TaskId) -> bool {
        self.shard(id).lock().ledger.requeue(*id).is_ok()
    }

    /// Closes `id` in terminal state `kind` and returns the task, its final correlation
    /// record and the channel to answer its submitter on ([`FinishedTask::answer`]).
    /// `None` if it was not open (a shutdown raced with its driver: every task has one
    /// driver at a time).
    pub fn finish(&self, id: &TaskId, kind: TerminalKind, now_ns: u64) -> Option<FinishedTask> {
        self.finish_then(id, kind, now_ns, |_| {})
    }

    /// [`finish`](Self::finish), running `on_terminal` exactly once, only for the call that
    /// ends the task, *before* the task stops counting as open: whoever waits for idle
    /// ([`wait_idle`](Self::wait_idle), a shutdown) then sees its effect. It runs under
    /// the shard's lock, so it must be quick and must not touch this table.
    pub fn finish_then(
        &self,
        id: &TaskId,
        kind: TerminalKind,
        now_ns: u64,
        on_terminal: impl FnOnce(&Task),
    ) -> Option<FinishedTask> {
        let p = self.padded(id);
        let entry: LedgerEntry<OpenTask> = {
            let mut shard = p.shard.lock();
            let entry = shard.ledger.finish(*id, kind).ok()?;
            on_terminal(&entry.payload.task);
            let us = now_ns.saturating_sub(entry.payload.submitted_ns) / 1_000;
            let _ = shard.latency_us.record(us.clamp(1, MAX_LATENCY_US));
            let open = shard.ledger.open_len() as u64;
            p.open.store(open, Ordering::Release);
            if open == 0 {
                self.idle.notify_waiters();
            }
            entry
        };
        let mut record = record_of(*id, &entry);
        record.terminal = Some(kind);
        record.finished_ns = Some(now_ns);
        let mut open = entry.payload;
        Some(FinishedTask { task: open.task.clone(), record, answer: Answer(open.waiter.take()) })
    }

    /// The live correlation record of an open task.
    pub fn correlation(&self, id: &TaskId) -> Option<CorrelationRecord> {
        let shard = self.shard(id).lock();
        shard.ledger.get(id).map(|e| record_of(*id, e))
    }

    /// Live correlation records of open tasks in a trace.
    pub fn correlation_by_trace(&self, trace_id: &[u8; 16]) -> Vec<CorrelationRecord> {
        self.all()
            .flat_map(|s| {
                s.lock()
                    .ledger
                    .open_entries()
                    .filter(|(_, e)| &e.payload.task.trace.trace_id == trace_id)
                    .map(|(id, e)| record_of(*id, e))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Body of an open task.
    pub fn task(&self, id: &TaskId) -> Option<Arc<Task>> {
        self.shard(id).lock().ledger.get(id).map(|e| e.payload.task.clone())
    }

    /// Where an open task stands.
    pub fn state(&self, id: &TaskId) -> Option<OpenState> {
        self.shard(id).lock().ledger.get(id).map(|e| e.state.clone())
    }

    /// Open tasks assigned to `agent`.
    pub fn assigned_to(&self, agent: &AgentId) -> Vec<TaskId> {
        self.all().flat_map(|s| s.lock().ledger.assigned_to(agent).collect::<Vec<_>>()).collect()
    }

    /// Ids of all open tasks.
    pub fn open_ids(&self) -> Vec<TaskId> {
        self.all().flat_map(|s| s.lock().ledger.open_entries().map(|(id, _)| *id).collect::<Vec<_>>()).collect()
    }

    /// Reports that `id` lost its driver.
    pub fn mark_orphan(&self, id: TaskId) {
        self.orphans.lock().push_back(id);
        self.orphan_signal.notify_one();
    }

    /// Takes the orphans that are still open, counting this orphaning.
    pub fn take_orphans(&self) -> Vec<Orphan> {
        let ids: Vec<TaskId> = self.orphans.lock().drain(..).collect();
        ids.into_iter()
            .filter_map(|id| {
                let mut shard = self.shard(&id).lock();
                shard.ledger.requeue(id).ok()?;
                let open = shard.ledger.payload_mut(&id)?;
                open.orphan_count += 1;
                Some(Orphan { task: open.task.clone(), orphan_count: open.orphan_count })
            })
            .collect()
    }

    /// Waits until an orphan is reported.
    pub async fn orphan_reported(&self) {
        self.orphan_signal.notified().await;
    }

    /// Orphans waiting for a driver.
    pub fn orphans_pending(&self) -> usize {
        self.orphans.lock().len()
    }

    /// Ledger totals across shards.
    pub fn counts(&self) -> LedgerCounts {
        let mut total = LedgerCounts::default();
        for s in self.all() {
            total.add(&s.lock().ledger.counts());
        }
        total
    }

    /// Accepted tasks not yet terminal.
    pub fn open_count(&self) -> u64 {
        self.shards.iter().map(|p| p.open.load(Ordering::Acquire)).sum()
    }

    /// Submission-to-terminal latency of finished tasks, µs.
    pub fn latency_histogram(&self) -> Histogram<u64> {
        let mut merged = Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds");
        for s in self.all() {
            let _ = merged.add(&s.lock().latency_us);
        }
        merged
    }

    /// Waits until no task is open, up to `timeout`; true when idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            if self.open_count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open_count() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::{CapabilitySet, DeadLetterReason};

    fn task() -> Arc<Task> {
        Arc::new(Task::new(CapabilitySet::parse(["x"]).unwrap()))
    }

    /// Finishing answers the submitter once, updates counts, and refuses a second finish.
    #[tokio::test]
    async fn finish_answers_submitter_once() {
        let t = TaskTable::new(100);
        let task = task();
        let rx = t.accept(task.clone(), None, 1_000).unwrap();
        assert!(t.accept(task.clone(), None, 1_000).is_err(), "duplicate");
        let outcome = TaskOutcome::DeadLettered { reason: DeadLetterReason::NoCapableAgent, attempts: 0 };
        t.finish(&task.id, outcome.kind(), 5_000_000).unwrap().answer.send(outcome.clone());
        assert!(t.finish(&task.id, outcome.kind(), 5_000_000).is_none());
        assert_eq!(rx.await.unwrap(), outcome);
        let c = t.counts();
        assert_eq!((c.accepted, c.dead_lettered, c.open()), (1, 1, 0));
        assert_eq!(t.latency_histogram().len(), 1);
        assert!(t.wait_idle(Duration::from_millis(1)).await);
    }

    /// Orphans are handed back once, counted, and only while still open.
    #[tokio::test]
    async fn orphans_are_counted_and_filtered() {
        let t = TaskTable::new(100);
        let a = task();
        let b = task();
        let _ra = t.accept(a.clone(), None, 1).unwrap();
        let _rb = t.accept(b.clone(), None, 1).unwrap();
        t.assign(&a.id, &AgentId::new("x").unwrap(), 1, a.trace);
        t.mark_orphan(a.id);
        t.mark_orphan(b.id);
        t.finish(&b.id, TerminalKind::DeadLettered, 2);
        let orphans = t.take_orphans();
        assert_eq!(orphans.len(), 1);
        assert_eq!((orphans[0].task.id, orphans[0].orphan_count), (a.id, 1));
        assert_eq!(t.state(&a.id), Some(OpenState::Submitted));
        assert!(t.take_orphans().is_empty());
        assert!(!t.wait_idle(Duration::from_millis(1)).await);
    }
}
