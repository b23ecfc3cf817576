//! The correlation tracker: task id ↔ trace context, agent and attempt, for tracing and
//! inspection.
//!
//! While a task is open its correlation data rides along with its ledger entry in the
//! [`TaskTable`](crate::TaskTable) (the routing path updates that entry anyway, so the
//! attempt's agent and span cost nothing extra). When it ends, a [`CorrelationRecord`]
//! is appended to this table: a log sharded by task id, each shard a bounded ring in
//! finishing order. Appending is sequential and cache-friendly, which matters at hundreds
//! of thousands of tasks per second; lookups (an inspection API) scan one shard.
//!
//! Records live `correlation.ttl_ms` after the task ended (1 h by default, the seeds'
//! ETS TTL) and at most `correlation.max_entries` are kept (100 000 by default); past the
//! limit the oldest record is evicted on append. The [`CorrelationTrackerActor`] sweeps
//! expired records on a timer; it is supervised, and a restarted incarnation resumes
//! sweeping the shared table.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{AgentId, MonoClock, TaskId, TerminalKind, TraceContext};
use erlmcp_flow_supervision::ActorSlot;
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef};

const SHARDS: usize = 16;

/// What is known about one task's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationRecord {
    /// The task.
    pub task_id: TaskId,
    /// Its trace context (the task span).
    pub trace: TraceContext,
    /// Span of the latest attempt.
    pub attempt_span: Option<TraceContext>,
    /// Agent of the latest attempt.
    pub agent: Option<AgentId>,
    /// Latest attempt number.
    pub attempt: u32,
    /// Terminal state, once reached (`None` while the task is open).
    pub terminal: Option<TerminalKind>,
    /// Submitted at (node clock, ns).
    pub created_ns: u64,
    /// Ended at (node clock, ns), once ended.
    pub finished_ns: Option<u64>,
}

/// The log of finished tasks' records. See the module docs.
#[derive(Debug)]
pub struct CorrelationTable {
    shards: Box<[Mutex<VecDeque<CorrelationRecord>>]>,
    ttl_ns: u64,
    max_per_shard: usize,
    evicted: std::sync::atomic::AtomicU64,
}

impl CorrelationTable {
    /// A log keeping records `ttl` after their task ended, at most about `max_entries`.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(VecDeque::new())).collect(),
            ttl_ns: ttl.as_nanos() as u64,
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
            evicted: Default::default(),
        }
    }

    fn shard(&self, id: &TaskId) -> &Mutex<VecDeque<CorrelationRecord>> {
        &self.shards[(id.shard_hash() as usize) % SHARDS]
    }

    /// Appends a finished task's record.
    pub fn push(&self, record: CorrelationRecord) {
        let mut s = self.shard(&record.task_id).lock();
        if s.len() >= self.max_per_shard {
            s.pop_front();
            self.evicted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        s.push_back(record);
    }

    /// The record of a finished task (newest first if a task id was reused).
    pub fn get(&self, task_id: &TaskId) -> Option<CorrelationRecord> {
        self.shard(task_id).lock().iter().rev().find(|r| r.task_id == *task_id).cloned()
    }

    /// Records of finished tasks in a trace.
    pub fn by_trace(&self, trace_id: &[u8; 16]) -> Vec<CorrelationRecord> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().iter().filter(|r| &r.trace.trace_id == trace_id).cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Drops records whose task ended more than the TTL ago; returns how many.
    pub fn sweep(&self, now_ns: u64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            while let Some(r) = s.front() {
                if now_ns.saturating_sub(r.finished_ns.unwrap_or(r.created_ns)) < self.ttl_ns {
                    break;
                }
                s.pop_front();
                dropped += 1;
            }
        }
        dropped
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records evicted because the log was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Messages of the correlation tracker actor.
#[derive(Debug)]
pub enum CorrelationMsg {
    /// Sweep expired records now.
    Sweep,
}
impl ractor::Message for CorrelationMsg {}

/// Arguments of the correlation tracker actor.
#[derive(Debug, Clone)]
pub struct CorrelationArgs {
    /// The table.
    pub table: Arc<CorrelationTable>,
    /// Node clock.
    pub clock: MonoClock,
    /// Sweep period.
    pub sweep_interval: Duration,
    /// Where the incarnation is published.
    pub slot: ActorSlot<CorrelationMsg>,
}

/// The supervised sweeper of the correlation table.
#[derive(Debug, Clone, Copy, Default)]
pub struct CorrelationTrackerActor;

/// Its state.
#[derive(Debug)]
pub struct CorrelationState {
    args: CorrelationArgs,
    timer: tokio::task::JoinHandle<()>,
}

impl Actor for CorrelationTrackerActor {
    type Msg = CorrelationMsg;
    type State = CorrelationState;
    type Arguments = CorrelationArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CorrelationMsg>,
        args: CorrelationArgs,
    ) -> Result<CorrelationState, ActorProcessingErr> {
        let timer = myself.send_interval(args.sweep_interval, || CorrelationMsg::Sweep);
        args.slot.set(myself);
        Ok(CorrelationState { args, timer })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<CorrelationMsg>,
        state: &mut CorrelationState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<CorrelationMsg>,
        msg: CorrelationMsg,
        state: &mut CorrelationState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CorrelationMsg::Sweep => {
                let n = state.args.table.sweep(state.args.clock.now_ns());
                if n > 0 {
                    tracing::trace!(expired = n, "correlation records expired");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn record(id: TaskId, finished: u64) -> CorrelationRecord {
        CorrelationRecord {
            task_id: id,
            trace: TraceContext::new_root(&mut rand::rngs::SmallRng::seed_from_u64(finished)),
            attempt_span: None,
            agent: Some(AgentId::new("a").unwrap()),
            attempt: 1,
            terminal: Some(TerminalKind::Completed),
            created_ns: 0,
            finished_ns: Some(finished),
        }
    }

    /// Records expire after the TTL and are evicted oldest-first past the size bound.
    #[test]
    fn ttl_and_max_entries() {
        let t = CorrelationTable::new(Duration::from_nanos(100), 16);
        let ids: Vec<TaskId> = (0..40).map(|_| TaskId::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            t.push(record(*id, i as u64));
        }
        assert!(t.len() <= 16 + SHARDS, "bounded: {}", t.len());
        assert!(t.evicted() > 0);
        assert!(t.get(&ids[39]).is_some(), "newest kept");
        let before = t.len();
        let dropped = t.sweep(120);
        assert_eq!(t.len(), before - dropped);
        for id in &ids {
            if let Some(r) = t.get(id) {
                assert!(r.finished_ns.unwrap() > 20, "expired record kept");
            }
        }
        t.sweep(10_000);
        assert!(t.is_empty());
    }

    /// Records are found by task id and by trace id.
    #[test]
    fn lookups() {
        let t = CorrelationTable::new(Duration::from_secs(60), 100);
        let id = TaskId::new_v4();
        let r = record(id, 5);
        t.push(r.clone());
        assert_eq!(t.get(&id), Some(r.clone()));
        assert_eq!(t.by_trace(&r.trace.trace_id), vec![r]);
        assert!(t.get(&TaskId::new_v4()).is_none());
    }
}
