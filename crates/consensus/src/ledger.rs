//! The replicated task ledger and control-plane KV: the Raft state machine's contents.
//!
//! Pure and deterministic: [`LedgerState::apply`] takes a [`LedgerCommand`] and returns a
//! [`LedgerResponse`], with no I/O, no clock and no randomness, so every replica that
//! applies the same log reaches the same state. All maps are `BTreeMap`s, so two replicas
//! can be compared with `==` or [`LedgerState::digest`], and a snapshot (the bincode
//! encoding of the whole state) is byte-for-byte the same on every replica.
//!
//! ```text
//!             Submit              Assign(agent, node)
//!  (none) ──────────► Submitted ───────────────────────► Assigned ──┐ (re-assign allowed)
//!                        ▲   RequeueNode(node, new_owner)    │      │
//!                        └───────────────────────────────────┘      │ Finish(kind)
//!                        └──────────────── Finish(kind) ────────────┴──► terminal
//! ```
//!
//! Counters keep the no-loss invariant `accepted = completed + failed + dead_lettered + open`
//! (checked with `debug_assert!` after every command). Finished task ids are remembered in
//! a bounded FIFO window ([`FINISHED_WINDOW`] ids) so that a retried `Submit` of a finished
//! task answers `Duplicate` and a second `Finish` answers `AlreadyFinished`; both change
//! nothing, which makes client retries safe.
//!
//! Why not `erlmcp_flow_core::TaskLedger`: that ledger is the single node's hot-path
//! bookkeeping, keyed by a `HashMap` (iteration order differs between replicas and after
//! a snapshot install), generic over a local payload (reply channels that cannot be
//! replicated), and it forgets *which* terminal state a finished id reached. The
//! replicated ledger needs ordered maps, an owner per task and the terminal kind of
//! recent ids; it reuses core's [`OpenState`], [`LedgerCounts`] and [`TerminalKind`]
//! so both ledgers speak the same vocabulary.

use std::collections::{BTreeMap, VecDeque};

use erlmcp_flow_core::{AgentId, LedgerCounts, NodeName, OpenState, Task, TaskId, TerminalKind};
use serde::{Deserialize, Serialize};

/// How many finished task ids the ledger remembers for duplicate detection.
pub const FINISHED_WINDOW: usize = 1_000_000;

/// A command in the replicated log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LedgerCommand {
    /// Accept a task. Idempotent: an id already known answers `Duplicate`.
    Submit {
        /// The task (its id is the dedup key).
        task: Task,
        /// Name of the node driving it.
        owner: String,
    },
    /// Record that an agent on `node` took the task (re-assign allowed).
    Assign {
        /// The task.
        id: TaskId,
        /// The agent.
        agent: AgentId,
        /// The agent's node.
        node: String,
    },
    /// Close a task in a terminal state, exactly once.
    Finish {
        /// The task.
        id: TaskId,
        /// How it ended.
        kind: TerminalKind,
    },
    /// Hand every open task owned by or assigned to `node` back to `Submitted`, owned by
    /// `new_owner` (the leader issues it when a node dies).
    RequeueNode {
        /// The dead node.
        node: String,
        /// Who drives the tasks now.
        new_owner: String,
    },
    /// Set a key.
    KvPut {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Remove a key.
    KvDelete {
        /// Key.
        key: String,
    },
    /// Compare-and-set: when the current value equals `expected` (`None` = absent), set it
    /// to `new` (`None` = delete).
    KvCas {
        /// Key.
        key: String,
        /// Required current value.
        expected: Option<String>,
        /// Value to install.
        new: Option<String>,
    },
}

impl LedgerCommand {
    /// Whether committing the command twice has the effect of committing it once, so a
    /// write whose first attempt may have committed can be sent again: the task
    /// commands are keyed by task id (a second `Submit` answers `Duplicate`, a second
    /// `Finish` is refused, `Assign` and `RequeueNode` set what they set). The key-value
    /// commands are not: a `KvCas` applied twice reports failure after succeeding, and a
    /// `KvPut` sent again may overwrite a later write.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            LedgerCommand::Submit { .. }
            | LedgerCommand::Assign { .. }
            | LedgerCommand::Finish { .. }
            | LedgerCommand::RequeueNode { .. } => true,
            LedgerCommand::KvPut { .. } | LedgerCommand::KvDelete { .. } | LedgerCommand::KvCas { .. } => false,
        }
    }

    /// The task this command is about, if any.
    pub fn task_id(&self) -> Option<TaskId> {
        match self {
            LedgerCommand::Submit { task, .. } => Some(task.id),
            LedgerCommand::Assign { id, .. } | LedgerCommand::Finish { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerResponse {
    /// A log entry without a command (leader blank entry, membership change).
    Empty,
    /// `Submit`: the task is now open.
    Accepted,
    /// `Submit`: the id was already accepted (open or recently finished); nothing changed.
    Duplicate,
    /// `Assign`: recorded.
    Assigned,
    /// `Finish`: the task is now terminal.
    Finished,
    /// `Assign`/`Finish` on a task that already ended in `kind`; nothing changed.
    AlreadyFinished(TerminalKind),
    /// `Assign`/`Finish` on an id the ledger does not know.
    UnknownTask,
    /// `Assign` with an invalid node name; nothing changed.
    Invalid(String),
    /// `RequeueNode`: the task ids handed back, in id order.
    Requeued(Vec<TaskId>),
    /// `KvPut`/`KvDelete`: done; the previous value.
    KvDone {
        /// Value before the command.
        previous: Option<String>,
    },
    /// `KvCas`: whether it swapped, and the value before the command.
    KvCas {
        /// Whether the value matched and was replaced.
        swapped: bool,
        /// Value before the command.
        current: Option<String>,
    },
}

/// One open task in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenTask {
    /// The task as submitted.
    pub task: Task,
    /// Node driving it.
    pub owner: String,
    /// Submitted or assigned.
    pub state: OpenState,
    /// Assignments so far.
    pub deliveries: u32,
}

/// What the ledger says about one task id ([`LedgerState::entry`]): how a client learns
/// what became of a task whose submission was indeterminate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskEntry {
    /// Accepted and not finished yet: `owner` drives it.
    Open {
        /// The node driving it.
        owner: String,
        /// Assignments recorded so far.
        deliveries: u32,
    },
    /// Finished with this terminal state (remembered for the last
    /// [`FINISHED_WINDOW`] finished ids).
    Finished {
        /// How it ended.
        kind: TerminalKind,
    },
    /// Never accepted, or finished longer ago than the window remembers.
    Unknown,
}

/// The replicated state. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerState {
    open: BTreeMap<TaskId, OpenTask>,
    finished: BTreeMap<TaskId, TerminalKind>,
    finished_order: VecDeque<TaskId>,
    finished_window: usize,
    counts: LedgerCounts,
    kv: BTreeMap<String, String>,
}

impl Default for LedgerState {
    fn default() -> Self {
        Self::new(FINISHED_WINDOW)
    }
}

impl LedgerState {
    /// An empty ledger remembering up to `finished_window` finished ids.
    pub fn new(finished_window: usize) -> Self {
        Self {
            open: BTreeMap::new(),
            finished: BTreeMap::new(),
            finished_order: VecDeque::new(),
            finished_window: finished_window.max(1),
            counts: LedgerCounts::default(),
            kv: BTreeMap::new(),
        }
    }

    /// Applies one command. Deterministic; never panics on any input.
    pub fn apply(&mut self, cmd: &LedgerCommand) -> LedgerResponse {
        let resp = match cmd {
            LedgerCommand::Submit { task, owner } => self.submit(task, owner),
            LedgerCommand::Assign { id, agent, node } => self.assign(*id, agent, node),
            LedgerCommand::Finish { id, kind } => self.finish(*id, *kind),
            LedgerCommand::RequeueNode { node, new_owner } => self.requeue_node(node, new_owner),
            LedgerCommand::KvPut { key, value } => {
                LedgerResponse::KvDone { previous: self.kv.insert(key.clone(), value.clone()) }
            }
            LedgerCommand::KvDelete { key } => LedgerResponse::KvDone { previous: self.kv.remove(key) },
            LedgerCommand::KvCas { key, expected, new } => {
                let current = self.kv.get(key).cloned();
                let swapped = current == *expected;
                if swapped {
                    match new {
                        Some(v) => self.kv.insert(key.clone(), v.clone()),
                        None => self.kv.remove(key),
                    };
                }
                LedgerResponse::KvCas { swapped, current }
            }
        };
        self.check();
        resp
    }

    fn submit(&mut self, task: &Task, owner: &str) -> LedgerResponse {
        if self.open.contains_key(&task.id) || self.finished.contains_key(&task.id) {
            return LedgerResponse::Duplicate;
        }
        self.open.insert(
            task.id,
            OpenTask { task: task.clone(), owner: owner.to_owned(), state: OpenState::Submitted, deliveries: 0 },
        );
        self.counts.accepted += 1;
        LedgerResponse::Accepted
    }

    fn assign(&mut self, id: TaskId, agent: &AgentId, node: &str) -> LedgerResponse {
        let node = match NodeName::new(node) {
            Ok(n) => n,
            Err(e) => return LedgerResponse::Invalid(format!("node {node:?}: {e}")),
        };
        match self.open.get_mut(&id) {
            Some(entry) => {
                entry.deliveries = entry.deliveries.saturating_add(1);
                entry.state = OpenState::Assigned { agent: agent.clone(), node: Some(node), attempt: entry.deliveries };
                LedgerResponse::Assigned
            }
            None => self.not_open(id),
        }
    }

    fn finish(&mut self, id: TaskId, kind: TerminalKind) -> LedgerResponse {
        if self.open.remove(&id).is_none() {
            return self.not_open(id);
        }
        match kind {
            TerminalKind::Completed => self.counts.completed += 1,
            TerminalKind::Failed => self.counts.failed += 1,
            TerminalKind::DeadLettered => self.counts.dead_lettered += 1,
        }
        if self.finished_order.len() >= self.finished_window
            && let Some(old) = self.finished_order.pop_front()
        {
            self.finished.remove(&old);
        }
        self.finished_order.push_back(id);
        self.finished.insert(id, kind);
        LedgerResponse::Finished
    }

    fn not_open(&self, id: TaskId) -> LedgerResponse {
        match self.finished.get(&id) {
            Some(kind) => LedgerResponse::AlreadyFinished(*kind),
            None => LedgerResponse::UnknownTask,
        }
    }

    fn requeue_node(&mut self, node: &str, new_owner: &str) -> LedgerResponse {
        let mut ids = Vec::new();
        for (id, entry) in self.open.iter_mut() {
            let assigned_there =
                matches!(&entry.state, OpenState::Assigned { node: Some(n), .. } if n.as_str() == node);
            if entry.owner == node || assigned_there {
                entry.state = OpenState::Submitted;
                entry.owner = new_owner.to_owned();
                ids.push(*id);
            }
        }
        LedgerResponse::Requeued(ids)
    }

    fn check(&self) {
        debug_assert_eq!(
            self.counts.accepted,
            self.counts.terminal() + self.open.len() as u64,
            "ledger invariant: accepted = completed + failed + dead_lettered + open"
        );
        debug_assert!(self.finished.len() <= self.finished_window);
    }

    /// Running totals.
    pub fn counts(&self) -> LedgerCounts {
        self.counts
    }

    /// Open tasks.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// The open entry for `id`.
    pub fn get(&self, id: &TaskId) -> Option<&OpenTask> {
        self.open.get(id)
    }

    /// Open tasks in id order.
    pub fn open_tasks(&self) -> impl Iterator<Item = (&TaskId, &OpenTask)> {
        self.open.iter()
    }

    /// How `id` ended, when it is among the remembered finished ids.
    pub fn finished_kind(&self, id: &TaskId) -> Option<TerminalKind> {
        self.finished.get(id).copied()
    }

    /// What the ledger says about `id`.
    pub fn entry(&self, id: &TaskId) -> TaskEntry {
        if let Some(open) = self.open.get(id) {
            return TaskEntry::Open { owner: open.owner.clone(), deliveries: open.deliveries };
        }
        match self.finished.get(id) {
            Some(kind) => TaskEntry::Finished { kind: *kind },
            None => TaskEntry::Unknown,
        }
    }

    /// Whether the ledger knows `id` (open or recently finished).
    pub fn contains(&self, id: &TaskId) -> bool {
        self.open.contains_key(id) || self.finished.contains_key(id)
    }

    /// Reads a KV key.
    pub fn kv_get(&self, key: &str) -> Option<&str> {
        self.kv.get(key).map(String::as_str)
    }

    /// The whole KV map, in key order.
    pub fn kv(&self) -> &BTreeMap<String, String> {
        &self.kv
    }

    /// A 64-bit FNV-1a digest of the canonical encoding: equal states have equal digests,
    /// so replicas can be compared cheaply.
    pub fn digest(&self) -> u64 {
        match crate::wire::encode_unbounded(self) {
            Ok(bytes) => erlmcp_flow_core::hash::fnv1a64(&bytes),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::CapabilitySet;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn task() -> Task {
        Task::new(CapabilitySet::parse(["x"]).unwrap())
    }

    fn agent() -> AgentId {
        AgentId::new("agent-1").unwrap()
    }

    /// Submit → Assign → Finish moves the counters, and a retried Submit or a second
    /// Finish answers without changing anything.
    #[test]
    fn lifecycle_and_idempotent_retries() {
        let mut l = LedgerState::default();
        let t = task();
        let id = t.id;
        assert_eq!(l.apply(&LedgerCommand::Submit { task: t.clone(), owner: "n1".into() }), LedgerResponse::Accepted);
        assert_eq!(l.apply(&LedgerCommand::Submit { task: t.clone(), owner: "n1".into() }), LedgerResponse::Duplicate);
        let assign = LedgerCommand::Assign { id, agent: agent(), node: "n2".into() };
        assert_eq!(l.apply(&assign), LedgerResponse::Assigned);
        assert_eq!(l.apply(&assign), LedgerResponse::Assigned, "re-assign allowed");
        assert_eq!(l.get(&id).unwrap().deliveries, 2);
        let fin = LedgerCommand::Finish { id, kind: TerminalKind::Completed };
        assert_eq!(l.apply(&fin), LedgerResponse::Finished);
        let before = l.clone();
        assert_eq!(l.apply(&fin), LedgerResponse::AlreadyFinished(TerminalKind::Completed));
        assert_eq!(
            l.apply(&LedgerCommand::Finish { id, kind: TerminalKind::Failed }),
            LedgerResponse::AlreadyFinished(TerminalKind::Completed)
        );
        assert_eq!(l.apply(&LedgerCommand::Submit { task: t, owner: "n1".into() }), LedgerResponse::Duplicate);
        assert_eq!(l, before, "retries change nothing");
        let c = l.counts();
        assert_eq!((c.accepted, c.completed, c.open()), (1, 1, 0));
        assert_eq!(
            l.apply(&LedgerCommand::Finish { id: TaskId::new_v4(), kind: TerminalKind::Failed }),
            LedgerResponse::UnknownTask
        );
        let bad = LedgerCommand::Assign { id: TaskId::new_v4(), agent: agent(), node: String::new() };
        assert!(matches!(l.apply(&bad), LedgerResponse::Invalid(_)));
    }

    /// RequeueNode hands back exactly the open tasks owned by or assigned to the node.
    #[test]
    fn requeue_node_takes_owned_and_assigned_tasks() {
        let mut l = LedgerState::default();
        let ts: Vec<Task> = (0..4).map(|_| task()).collect();
        l.apply(&LedgerCommand::Submit { task: ts[0].clone(), owner: "dead".into() });
        l.apply(&LedgerCommand::Submit { task: ts[1].clone(), owner: "alive".into() });
        l.apply(&LedgerCommand::Assign { id: ts[1].id, agent: agent(), node: "dead".into() });
        l.apply(&LedgerCommand::Submit { task: ts[2].clone(), owner: "alive".into() });
        l.apply(&LedgerCommand::Assign { id: ts[2].id, agent: agent(), node: "alive".into() });
        l.apply(&LedgerCommand::Submit { task: ts[3].clone(), owner: "dead".into() });
        l.apply(&LedgerCommand::Finish { id: ts[3].id, kind: TerminalKind::Failed });
        let resp = l.apply(&LedgerCommand::RequeueNode { node: "dead".into(), new_owner: "alive".into() });
        let mut expect = vec![ts[0].id, ts[1].id];
        expect.sort();
        assert_eq!(resp, LedgerResponse::Requeued(expect));
        for id in [ts[0].id, ts[1].id] {
            let e = l.get(&id).unwrap();
            assert_eq!((e.owner.as_str(), &e.state), ("alive", &OpenState::Submitted));
        }
        assert!(matches!(l.get(&ts[2].id).unwrap().state, OpenState::Assigned { .. }));
        assert_eq!(l.counts().failed, 1);
    }

    /// The KV answers put/delete/cas with the previous value; a failed CAS changes nothing.
    #[test]
    fn kv_put_delete_cas() {
        let mut l = LedgerState::default();
        let put = |k: &str, v: &str| LedgerCommand::KvPut { key: k.into(), value: v.into() };
        assert_eq!(l.apply(&put("a", "1")), LedgerResponse::KvDone { previous: None });
        assert_eq!(l.apply(&put("a", "2")), LedgerResponse::KvDone { previous: Some("1".into()) });
        let cas = LedgerCommand::KvCas { key: "a".into(), expected: Some("1".into()), new: Some("3".into()) };
        assert_eq!(l.apply(&cas), LedgerResponse::KvCas { swapped: false, current: Some("2".into()) });
        assert_eq!(l.kv_get("a"), Some("2"));
        let cas = LedgerCommand::KvCas { key: "a".into(), expected: Some("2".into()), new: None };
        assert_eq!(l.apply(&cas), LedgerResponse::KvCas { swapped: true, current: Some("2".into()) });
        assert_eq!(l.kv_get("a"), None);
        let cas = LedgerCommand::KvCas { key: "b".into(), expected: None, new: Some("x".into()) };
        assert_eq!(l.apply(&cas), LedgerResponse::KvCas { swapped: true, current: None });
        assert_eq!(
            l.apply(&LedgerCommand::KvDelete { key: "b".into() }),
            LedgerResponse::KvDone { previous: Some("x".into()) }
        );
        assert!(l.kv().is_empty());
    }

    /// The finished window is bounded; an id that fell out of it is unknown again.
    #[test]
    fn finished_window_is_bounded() {
        let mut l = LedgerState::new(2);
        let ts: Vec<Task> = (0..3).map(|_| task()).collect();
        for t in &ts {
            l.apply(&LedgerCommand::Submit { task: t.clone(), owner: "n".into() });
            l.apply(&LedgerCommand::Finish { id: t.id, kind: TerminalKind::Completed });
        }
        assert_eq!(l.finished_kind(&ts[0].id), None);
        assert_eq!(l.finished_kind(&ts[2].id), Some(TerminalKind::Completed));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Submit(usize),
        Assign(usize, u8),
        Finish(usize, u8),
        Requeue(u8, u8),
        Put(u8, u8),
        Cas(u8, Option<u8>, Option<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..24).prop_map(Op::Submit),
            (0usize..24, 0u8..3).prop_map(|(i, n)| Op::Assign(i, n)),
            (0usize..24, 0u8..3).prop_map(|(i, k)| Op::Finish(i, k)),
            (0u8..3, 0u8..3).prop_map(|(a, b)| Op::Requeue(a, b)),
            (0u8..4, 0u8..4).prop_map(|(k, v)| Op::Put(k, v)),
            (0u8..4, proptest::option::of(0u8..4), proptest::option::of(0u8..4)).prop_map(|(k, e, n)| Op::Cas(k, e, n)),
        ]
    }

    proptest! {
        /// Any command sequence keeps accepted = completed + failed + dead_lettered + open,
        /// every id finishes at most once, and replaying the same commands on a second
        /// replica (or on a snapshot-restored copy) gives an identical state.
        #[test]
        fn invariant_and_exactly_once_under_any_sequence(ops in proptest::collection::vec(op(), 0..200)) {
            let tasks: Vec<Task> = (0..24).map(|_| task()).collect();
            let mut l = LedgerState::default();
            let mut log = Vec::new();
            let mut finished = HashSet::new();
            for op in ops {
                let cmd = match op {
                    Op::Submit(i) => LedgerCommand::Submit { task: tasks[i].clone(), owner: "n0".into() },
                    Op::Assign(i, n) => LedgerCommand::Assign { id: tasks[i].id, agent: agent(), node: format!("n{n}") },
                    Op::Finish(i, k) => LedgerCommand::Finish {
                        id: tasks[i].id,
                        kind: [TerminalKind::Completed, TerminalKind::Failed, TerminalKind::DeadLettered][k as usize],
                    },
                    Op::Requeue(a, b) => LedgerCommand::RequeueNode { node: format!("n{a}"), new_owner: format!("n{b}") },
                    Op::Put(k, v) => LedgerCommand::KvPut { key: format!("k{k}"), value: format!("v{v}") },
                    Op::Cas(k, e, n) => LedgerCommand::KvCas {
                        key: format!("k{k}"),
                        expected: e.map(|v| format!("v{v}")),
                        new: n.map(|v| format!("v{v}")),
                    },
                };
                let was_open = cmd.task_id().is_some_and(|id| l.get(&id).is_some());
                let resp = l.apply(&cmd);
                match &cmd {
                    LedgerCommand::Finish { id, .. } => {
                        prop_assert_eq!(resp == LedgerResponse::Finished, was_open);
                        if was_open {
                            prop_assert!(finished.insert(*id), "a task finished twice");
                        }
                    }
                    LedgerCommand::Submit { task, .. } if finished.contains(&task.id) => {
                        prop_assert_eq!(resp, LedgerResponse::Duplicate);
                    }
                    _ => {}
                }
                log.push(cmd);
                let c = l.counts();
                prop_assert_eq!(c.accepted, c.completed + c.failed + c.dead_lettered + l.open_len() as u64);
            }
            prop_assert_eq!(l.counts().terminal(), finished.len() as u64);
            let mut replica = LedgerState::default();
            for cmd in &log { replica.apply(cmd); }
            prop_assert_eq!(replica.digest(), l.digest());
            let restored: LedgerState = crate::wire::decode_unbounded(&crate::wire::encode_unbounded(&l).unwrap()).unwrap();
            prop_assert!(restored == l);
        }
    }
}
