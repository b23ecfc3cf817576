//! The correlation tracker: task id ↔ trace context, agent and attempt, for tracing and
//! inspection.
//!
//! Records live `correlation.ttl_ms` (1 h by default, the seeds' ETS TTL) and at most
//! `correlation.max_entries` are kept (100 000 by default); past the limit the oldest
//! record is evicted on insert. The table is sharded by task id with one mutex per shard,
//! so recording on the hot path never crosses a global lock. The
//! [`CorrelationTrackerActor`] sweeps expired records on a timer; it is supervised, and a
//! restarted incarnation simply resumes sweeping the shared table.

use std::collections::{HashMap, VecDeque};
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
    /// Terminal state, once reached.
    pub terminal: Option<TerminalKind>,
    /// Created at (node clock, ns).
    pub created_ns: u64,
}

#[derive(Debug, Default)]
struct Shard {
    records: HashMap<TaskId, CorrelationRecord>,
    /// Insertion order; every record has exactly one entry here.
    order: VecDeque<(u64, TaskId)>,
}

/// The sharded table. See the module docs.
#[derive(Debug)]
pub struct CorrelationTable {
    shards: Box<[Mutex<Shard>]>,
    ttl_ns: u64,
    max_per_shard: usize,
    evicted: std::sync::atomic::AtomicU64,
}

impl CorrelationTable {
    /// A table keeping records `ttl`, at most about `max_entries` of them.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            ttl_ns: ttl.as_nanos() as u64,
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
            evicted: Default::default(),
        }
    }

    fn shard(&self, id: &TaskId) -> &Mutex<Shard> {
        &self.shards[(id.shard_hash() as usize) % SHARDS]
    }

    /// Records a new task.
    pub fn record(&self, task_id: TaskId, trace: TraceContext, now_ns: u64) {
        let mut s = self.shard(&task_id).lock();
        if s.records.len() >= self.max_per_shard
            && let Some((_, old)) = s.order.pop_front()
        {
            s.records.remove(&old);
            self.evicted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if s.records
            .insert(
                task_id,
                CorrelationRecord {
                    task_id,
                    trace,
                    attempt_span: None,
                    agent: None,
                    attempt: 0,
                    terminal: None,
                    created_ns: now_ns,
                },
            )
            .is_none()
        {
            s.order.push_back((now_ns, task_id));
        }
    }

    /// Notes an attempt.
    pub fn attempt(&self, task_id: &TaskId, agent: &AgentId, attempt: u32, span: TraceContext) {
        if let Some(r) = self.shard(task_id).lock().records.get_mut(task_id) {
            r.agent = Some(agent.clone());
            r.attempt = attempt;
            r.attempt_span = Some(span);
        }
    }

    /// Notes the terminal state (the first one noted wins).
    pub fn finish(&self, task_id: &TaskId, kind: TerminalKind) {
        if let Some(r) = self.shard(task_id).lock().records.get_mut(task_id) {
            r.terminal.get_or_insert(kind);
        }
    }

    /// The record of a task.
    pub fn get(&self, task_id: &TaskId) -> Option<CorrelationRecord> {
        self.shard(task_id).lock().records.get(task_id).cloned()
    }

    /// Records of every task in a trace.
    pub fn by_trace(&self, trace_id: &[u8; 16]) -> Vec<CorrelationRecord> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .records
                    .values()
                    .filter(|r| &r.trace.trace_id == trace_id)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Drops records older than the TTL; returns how many.
    pub fn sweep(&self, now_ns: u64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            while let Some(&(created, id)) = s.order.front() {
                if now_ns.saturating_sub(created) < self.ttl_ns {
                    break;
                }
                s.order.pop_front();
                s.records.remove(&id);
                dropped += 1;
            }
        }
        dropped
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().records.len()).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records evicted because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Messages of the correlation tracker actor.
#[derive(Debug)]
pub enum CorrelationMsg {
    /// Sweep expired records now.
    Sweep,
    /// Fault injection for supervision tests.
    #[doc(hidden)]
    InjectPanic,
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
            CorrelationMsg::InjectPanic => panic!("correlation tracker: injected panic"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ctx() -> TraceContext {
        TraceContext::new_root(&mut rand::rngs::SmallRng::seed_from_u64(1))
    }

    /// Records expire after the TTL and are evicted oldest-first past the size bound.
    #[test]
    fn ttl_and_max_entries() {
        let t = CorrelationTable::new(Duration::from_nanos(100), 16);
        let ids: Vec<TaskId> = (0..40).map(|_| TaskId::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            t.record(*id, ctx(), i as u64);
        }
        assert!(t.len() <= 16 + SHARDS, "bounded: {}", t.len());
        assert!(t.evicted() > 0);
        assert!(t.get(&ids[39]).is_some(), "newest kept");
        let before = t.len();
        let dropped = t.sweep(120);
        assert_eq!(t.len(), before - dropped);
        for id in &ids {
            if let Some(r) = t.get(id) {
                assert!(r.created_ns > 20, "expired record kept: {}", r.created_ns);
            }
        }
        t.sweep(10_000);
        assert!(t.is_empty());
    }

    /// Attempts and terminal states are recorded and found by trace id.
    #[test]
    fn attempts_and_trace_lookup() {
        let t = CorrelationTable::new(Duration::from_secs(60), 100);
        let id = TaskId::new_v4();
        let c = ctx();
        t.record(id, c, 1);
        let a = AgentId::new("a").unwrap();
        t.attempt(&id, &a, 2, c);
        t.finish(&id, TerminalKind::Completed);
        let r = t.get(&id).unwrap();
        assert_eq!(
            (r.agent, r.attempt, r.terminal),
            (Some(a), 2, Some(TerminalKind::Completed))
        );
        assert_eq!(t.by_trace(&c.trace_id).len(), 1);
    }
}
