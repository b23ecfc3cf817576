//! The task ledger: the bookkeeping behind the no-loss rule.
//!
//! A pure state machine (no I/O, no clock): every accepted task is *open* until exactly
//! one terminal transition (`Completed`, `Failed`, `DeadLettered`) closes it. The ledger
//! counts both, so at any time
//!
//! ```text
//! accepted = completed + failed + dead_lettered + open
//! ```
//!
//! and after quiescence (`open == 0`) that is the no-loss invariant. The invariant is
//! checked with `debug_assert!` after every transition.
//!
//! ```text
//!             accept            assign(agent, node)
//!  (none) ──────────► Submitted ───────────────────► Assigned ──┐
//!                        ▲   requeue (agent/node died)    │     │
//!                        └────────────────────────────────┘     │ finish(kind)
//!                        └───────────────── finish(kind) ───────┴──► terminal (removed,
//!                                                                     counted, id remembered)
//! ```
//!
//! Closed tasks leave the table (only their counts remain), but their ids are remembered
//! in a bounded window so a duplicate submission of a recently finished task is refused.
//! Each entry carries a caller-defined payload `P` (the node keeps the task body and the
//! submitter's reply channel there).

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::hash::TaskIdBuildHasher;
use crate::id::{AgentId, NodeName, TaskId};
use crate::outcome::TerminalKind;

/// Where an open task stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpenState {
    /// Accepted, not yet handed to an agent (or handed back after a failure).
    Submitted,
    /// Handed to an agent.
    Assigned {
        /// The agent.
        agent: AgentId,
        /// Its node, when not local.
        node: Option<NodeName>,
        /// Which delivery attempt.
        attempt: u32,
    },
}

/// One open task.
#[derive(Debug, Clone)]
pub struct LedgerEntry<P> {
    /// Where it stands.
    pub state: OpenState,
    /// Deliveries so far.
    pub deliveries: u32,
    /// Caller-defined data.
    pub payload: P,
}

/// Running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    /// Tasks accepted.
    pub accepted: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed.
    pub failed: u64,
    /// Tasks dead-lettered.
    pub dead_lettered: u64,
}

impl LedgerCounts {
    /// Tasks in a terminal state.
    pub fn terminal(&self) -> u64 {
        self.completed + self.failed + self.dead_lettered
    }

    /// Accepted tasks not yet terminal.
    pub fn open(&self) -> u64 {
        self.accepted - self.terminal()
    }

    /// Adds another ledger's totals (for sharded ledgers).
    pub fn add(&mut self, other: &LedgerCounts) {
        self.accepted += other.accepted;
        self.completed += other.completed;
        self.failed += other.failed;
        self.dead_lettered += other.dead_lettered;
    }
}

/// A refused transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The id is open, or finished recently.
    #[error("task {0} was already accepted")]
    Duplicate(TaskId),
    /// The id is not open (never accepted, or already terminal).
    #[error("task {0} is not open")]
    NotOpen(TaskId),
}

/// The ledger. See the module docs.
#[derive(Debug)]
pub struct TaskLedger<P = ()> {
    open: HashMap<TaskId, LedgerEntry<P>, TaskIdBuildHasher>,
    counts: LedgerCounts,
    recent: VecDeque<TaskId>,
    recent_set: HashSet<TaskId, TaskIdBuildHasher>,
    dedup_window: usize,
}

impl<P> TaskLedger<P> {
    /// An empty ledger remembering up to `dedup_window` finished ids.
    pub fn new(dedup_window: usize) -> Self {
        Self {
            open: HashMap::default(),
            counts: LedgerCounts::default(),
            recent: VecDeque::new(),
            recent_set: HashSet::default(),
            dedup_window,
        }
    }

    /// Opens a task.
    pub fn accept(&mut self, id: TaskId, payload: P) -> Result<(), LedgerError> {
        if self.open.contains_key(&id) || self.recent_set.contains(&id) {
            return Err(LedgerError::Duplicate(id));
        }
        self.open.insert(id, LedgerEntry { state: OpenState::Submitted, deliveries: 0, payload });
        self.counts.accepted += 1;
        self.check();
        Ok(())
    }

    /// Records a delivery to `agent`.
    pub fn assign(
        &mut self,
        id: TaskId,
        agent: AgentId,
        node: Option<NodeName>,
        attempt: u32,
    ) -> Result<(), LedgerError> {
        let entry = self.open.get_mut(&id).ok_or(LedgerError::NotOpen(id))?;
        entry.state = OpenState::Assigned { agent, node, attempt };
        entry.deliveries += 1;
        Ok(())
    }

    /// Hands a task back to `Submitted` (its agent or node died).
    pub fn requeue(&mut self, id: TaskId) -> Result<(), LedgerError> {
        let entry = self.open.get_mut(&id).ok_or(LedgerError::NotOpen(id))?;
        entry.state = OpenState::Submitted;
        Ok(())
    }

    /// Closes a task in a terminal state and returns its entry.
    pub fn finish(&mut self, id: TaskId, kind: TerminalKind) -> Result<LedgerEntry<P>, LedgerError> {
        let entry = self.open.remove(&id).ok_or(LedgerError::NotOpen(id))?;
        match kind {
            TerminalKind::Completed => self.counts.completed += 1,
            TerminalKind::Failed => self.counts.failed += 1,
            TerminalKind::DeadLettered => self.counts.dead_lettered += 1,
        }
        self.remember(id);
        self.check();
        Ok(entry)
    }

    /// The open entry for `id`.
    pub fn get(&self, id: &TaskId) -> Option<&LedgerEntry<P>> {
        self.open.get(id)
    }

    /// The open entry for `id`, mutably (the payload; state changes go through transitions).
    pub fn payload_mut(&mut self, id: &TaskId) -> Option<&mut P> {
        self.open.get_mut(id).map(|e| &mut e.payload)
    }

    /// Open tasks.
    pub fn open_entries(&self) -> impl Iterator<Item = (&TaskId, &LedgerEntry<P>)> {
        self.open.iter()
    }

    /// Ids of open tasks assigned to `agent`.
    pub fn assigned_to<'a>(&'a self, agent: &'a AgentId) -> impl Iterator<Item = TaskId> + 'a {
        self.open.iter().filter_map(move |(id, e)| match &e.state {
            OpenState::Assigned { agent: a, .. } if a == agent => Some(*id),
            _ => None,
        })
    }

    /// Number of open tasks.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// Running totals.
    pub fn counts(&self) -> LedgerCounts {
        self.counts
    }

    fn remember(&mut self, id: TaskId) {
        if self.dedup_window == 0 {
            return;
        }
        if self.recent.len() == self.dedup_window
            && let Some(old) = self.recent.pop_front()
        {
            self.recent_set.remove(&old);
        }
        self.recent.push_back(id);
        self.recent_set.insert(id);
    }

    fn check(&self) {
        debug_assert_eq!(
            self.counts.accepted,
            self.counts.terminal() + self.open.len() as u64,
            "ledger invariant: accepted = terminal + open"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent() -> AgentId {
        AgentId::new("a").unwrap()
    }

    /// A task moves Submitted → Assigned → terminal, and the counts follow.
    #[test]
    fn lifecycle_counts() {
        let mut l = TaskLedger::<u8>::new(10);
        let id = TaskId::new_v4();
        l.accept(id, 9).unwrap();
        assert_eq!(l.get(&id).unwrap().state, OpenState::Submitted);
        l.assign(id, agent(), None, 1).unwrap();
        assert!(matches!(l.get(&id).unwrap().state, OpenState::Assigned { attempt: 1, .. }));
        assert_eq!(l.assigned_to(&agent()).collect::<Vec<_>>(), vec![id]);
        l.requeue(id).unwrap();
        assert_eq!(l.get(&id).unwrap().state, OpenState::Submitted);
        let e = l.finish(id, TerminalKind::Completed).unwrap();
        assert_eq!(e.payload, 9);
        assert_eq!(e.deliveries, 1);
        let c = l.counts();
        assert_eq!((c.accepted, c.completed, c.open()), (1, 1, 0));
    }

    /// A second terminal transition and transitions on unknown ids are refused.
    #[test]
    fn terminal_is_final() {
        let mut l = TaskLedger::<()>::new(10);
        let id = TaskId::new_v4();
        l.accept(id, ()).unwrap();
        l.finish(id, TerminalKind::Failed).unwrap();
        assert_eq!(l.finish(id, TerminalKind::Completed).unwrap_err(), LedgerError::NotOpen(id));
        assert_eq!(l.assign(id, agent(), None, 2).unwrap_err(), LedgerError::NotOpen(id));
        assert_eq!(l.counts().failed, 1);
        assert_eq!(l.counts().completed, 0);
    }

    /// Duplicate ids are refused while open and within the dedup window after finishing,
    /// and accepted again once they have left the window.
    #[test]
    fn duplicates_are_refused_within_window() {
        let mut l = TaskLedger::<()>::new(2);
        let ids: Vec<_> = (0..3).map(|_| TaskId::new_v4()).collect();
        l.accept(ids[0], ()).unwrap();
        assert_eq!(l.accept(ids[0], ()), Err(LedgerError::Duplicate(ids[0])));
        l.finish(ids[0], TerminalKind::Completed).unwrap();
        assert_eq!(l.accept(ids[0], ()), Err(LedgerError::Duplicate(ids[0])));
        for id in &ids[1..] {
            l.accept(*id, ()).unwrap();
            l.finish(*id, TerminalKind::Completed).unwrap();
        }
        l.accept(ids[0], ()).unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Accept,
        Assign(usize),
        Requeue(usize),
        Finish(usize, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Accept),
            (0usize..32).prop_map(Op::Assign),
            (0usize..32).prop_map(Op::Requeue),
            (0usize..32, 0u8..3).prop_map(|(i, k)| Op::Finish(i, k)),
        ]
    }

    proptest! {
        /// Under any sequence of transitions, accepted = terminal + open, and every id
        /// reaches at most one terminal state.
        #[test]
        fn invariant_holds_under_any_sequence(ops in proptest::collection::vec(op(), 0..200)) {
            let mut l = TaskLedger::<()>::new(1000);
            let mut ids = Vec::new();
            let mut finished = HashSet::new();
            for op in ops {
                match op {
                    Op::Accept => { let id = TaskId::new_v4(); l.accept(id, ()).unwrap(); ids.push(id); }
                    Op::Assign(i) => if let Some(id) = ids.get(i) {
                        let _ = l.assign(*id, agent(), None, 1);
                    },
                    Op::Requeue(i) => if let Some(id) = ids.get(i) { let _ = l.requeue(*id); },
                    Op::Finish(i, k) => if let Some(id) = ids.get(i) {
                        let kind = [TerminalKind::Completed, TerminalKind::Failed, TerminalKind::DeadLettered][k as usize];
                        let r = l.finish(*id, kind);
                        prop_assert_eq!(r.is_ok(), finished.insert(*id));
                    },
                }
                let c = l.counts();
                prop_assert_eq!(c.accepted, c.terminal() + l.open_len() as u64);
            }
            prop_assert_eq!(l.counts().terminal(), finished.len() as u64);
        }
    }
}
