//! Store handles fenced by core incarnation, so a restarted openraft core can reuse the
//! node's log store and state machine while anything the dead core left running cannot
//! write to them any more.
//!
//! openraft runs its storage I/O on tasks of its own (the state-machine worker, the
//! replication streams' log readers). When its core quits on a fatal error those tasks
//! may still hold store handles and finish queued work a moment later. The node owns
//! the stores (an in-memory log must outlive the core; a redb file stays open) and hands
//! each openraft instance *fenced* handles: every handle carries the incarnation it was
//! made for, and the moment [`Fence::advance`] starts a new incarnation, every call
//! through an older handle fails with a storage error instead of touching the store.
//! This is the same idea as a fencing token on a lease (Kleppmann, "How to do
//! distributed locking", 2016), applied to two tasks in one process.
//!
//! The fence also carries the storage fault injection used by tests: after
//! [`Fence::fail_next_write`] the next log write fails, which makes openraft's core quit
//! with a fatal storage error, the way a real disk error would.

// openraft's `StorageError` (large) is the error type its storage traits require.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, RaftLogReader, RaftSnapshotBuilder, StorageIOError};

use crate::ledger::LedgerResponse;
use crate::state_machine::LedgerStateMachine;
use crate::types::{Entry, LogId, NamedNode, RaftNodeId, StorageError, StoredMembership, TypeConfig, Vote};

/// The current core incarnation and the storage fault switch (shared by every handle).
#[derive(Debug, Default)]
pub(crate) struct Fence {
    current: AtomicU64,
    fail_next_write: AtomicBool,
}

impl Fence {
    /// The incarnation handles are made for now.
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    /// Starts a new incarnation: every handle of an older one refuses from now on.
    pub(crate) fn advance(&self) -> u64 {
        self.current.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Fault injection: the next log write fails with a storage error.
    pub(crate) fn fail_next_write(&self) {
        self.fail_next_write.store(true, Ordering::Release);
    }

    fn check(&self, generation: u64, what: &str) -> Result<(), StorageError> {
        if self.current() == generation {
            Ok(())
        } else {
            Err(StorageIOError::write(AnyError::error(format!(
                "{what} through a handle of raft core incarnation {generation}, now {}",
                self.current()
            )))
            .into())
        }
    }

    fn injected_write_fault(&self) -> Result<(), StorageError> {
        if self.fail_next_write.swap(false, Ordering::AcqRel) {
            return Err(StorageIOError::write_logs(AnyError::error("injected storage fault")).into());
        }
        Ok(())
    }
}

/// A log store (or log reader) handle for one core incarnation.
#[derive(Debug, Clone)]
pub(crate) struct FencedLog<L> {
    inner: L,
    fence: Arc<Fence>,
    generation: u64,
}

impl<L> FencedLog<L> {
    /// A handle on `inner` for the fence's current incarnation.
    pub(crate) fn new(inner: L, fence: Arc<Fence>) -> Self {
        let generation = fence.current();
        Self { inner, fence, generation }
    }
}

impl<L: RaftLogReader<TypeConfig>> RaftLogReader<TypeConfig> for FencedLog<L> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.fence.check(self.generation, "log read")?;
        self.inner.try_get_log_entries(range).await
    }
}

impl<L: RaftLogStorage<TypeConfig>> RaftLogStorage<TypeConfig> for FencedLog<L> {
    type LogReader = FencedLog<L::LogReader>;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.fence.check(self.generation, "log state read")?;
        self.inner.get_log_state().await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        FencedLog { inner: self.inner.get_log_reader().await, fence: self.fence.clone(), generation: self.generation }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.fence.check(self.generation, "vote write")?;
        self.inner.save_vote(vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.fence.check(self.generation, "vote read")?;
        self.inner.read_vote().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.fence.check(self.generation, "committed write")?;
        self.inner.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.fence.check(self.generation, "committed read")?;
        self.inner.read_committed().await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.fence.check(self.generation, "log append")?;
        self.fence.injected_write_fault()?;
        self.inner.append(entries, callback).await
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.fence.check(self.generation, "log truncate")?;
        self.inner.truncate(log_id).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.fence.check(self.generation, "log purge")?;
        self.inner.purge(log_id).await
    }
}

/// A state-machine handle for one core incarnation.
#[derive(Debug, Clone)]
pub(crate) struct FencedStateMachine {
    inner: LedgerStateMachine,
    fence: Arc<Fence>,
    generation: u64,
}

impl FencedStateMachine {
    /// A handle on `inner` for the fence's current incarnation.
    pub(crate) fn new(inner: LedgerStateMachine, fence: Arc<Fence>) -> Self {
        let generation = fence.current();
        Self { inner, fence, generation }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for FencedStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.fence.check(self.generation, "snapshot build")?;
        self.inner.build_snapshot().await
    }
}

impl RaftStateMachine<TypeConfig> for FencedStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.fence.check(self.generation, "applied state read")?;
        self.inner.applied_state().await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<LedgerResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.fence.check(self.generation, "apply")?;
        self.inner.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        self.fence.check(self.generation, "snapshot receive")?;
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<RaftNodeId, NamedNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        self.fence.check(self.generation, "snapshot install")?;
        self.inner.install_snapshot(meta, snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.fence.check(self.generation, "snapshot read")?;
        self.inner.get_current_snapshot().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store_mem::MemLogStore;

    /// A handle of an older incarnation refuses every call once the fence advances; a
    /// handle of the new one works on the same store; the injected fault fails exactly one
    /// write.
    #[tokio::test]
    async fn old_handles_are_fenced_off_and_the_fault_fires_once() {
        let fence = Arc::new(Fence::default());
        let store = MemLogStore::new();
        let mut old = FencedLog::new(store.clone(), fence.clone());
        old.save_vote(&Vote::new(1, 7)).await.unwrap();
        fence.advance();
        assert!(old.read_vote().await.is_err(), "the old incarnation is fenced off");
        assert!(old.save_vote(&Vote::new(2, 7)).await.is_err());
        let mut new = FencedLog::new(store, fence.clone());
        assert_eq!(new.read_vote().await.unwrap(), Some(Vote::new(1, 7)), "same store, old write kept");
        let mut sm = FencedStateMachine::new(LedgerStateMachine::new(), fence.clone());
        assert!(sm.applied_state().await.is_ok());
        fence.advance();
        assert!(sm.applied_state().await.is_err());
        fence.fail_next_write();
        assert!(fence.injected_write_fault().is_err());
        assert!(fence.injected_write_fault().is_ok(), "one fault per injection");
    }
}
