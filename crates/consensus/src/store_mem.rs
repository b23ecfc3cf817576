//! The in-memory Raft log store (the default): log entries, vote, committed id and last
//! purged id in a `BTreeMap` behind a mutex. Lost on restart; a node restarted on it
//! rejoins as an empty follower and is caught up by the leader (entries or snapshot).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::RaftLogReader;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use parking_lot::Mutex;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

#[derive(Debug, Default)]
struct MemLog {
    last_purged: Option<LogId>,
    log: BTreeMap<u64, Entry>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

/// In-memory log store; clones share the log (the clone is the log reader).
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    inner: Arc<Mutex<MemLog>>,
}

impl MemLogStore {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RaftLogReader<TypeConfig> for MemLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.inner.lock().log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let l = self.inner.lock();
        let last = l.log.last_key_value().map(|(_, e)| e.log_id).or(l.last_purged);
        Ok(LogState { last_purged_log_id: l.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        {
            let mut l = self.inner.lock();
            for e in entries {
                l.log.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut l = self.inner.lock();
        let _ = l.log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut l = self.inner.lock();
        debug_assert!(l.last_purged <= Some(log_id));
        l.last_purged = Some(log_id);
        l.log = l.log.split_off(&(log_id.index + 1));
        Ok(())
    }
}
