//! The durable Raft log store on redb: log entries, vote, committed id, last purged id
//! and the latest snapshot, all in one redb file (`raft.path`).
//!
//! Two tables: `raft_log` (index → bincode `Entry`) and `raft_meta` (`vote`, `committed`,
//! `last_purged`, `snapshot` → bincode values). Every write is its own redb transaction
//! committed with redb's default durability (fsync), and the append callback fires only
//! after the commit, so openraft never counts an entry as persisted before it is. redb
//! calls are synchronous; they are short and run on the Raft storage task.
//!
//! A node restarted on the same file reads back its vote, log and committed id; the state
//! machine restarts from the stored snapshot and openraft re-applies the committed log
//! after it, then the leader catches the node up.

// openraft's `StorageError` (large) is the error type its storage traits require; the
// helpers here return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ConsensusError;
use crate::state_machine::StoredSnapshot;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::wire;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_SNAPSHOT: &str = "snapshot";

/// How long [`open_database`] waits for a previous holder of the file (a node being shut
/// down in the same process) to let go of it.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(5);

/// Opens (or creates) the redb file and its tables. Retries for a bounded time while the
/// file is still held by a node of this process that is shutting down.
pub fn open_database(path: &Path) -> Result<Arc<Database>, ConsensusError> {
    let deadline = Instant::now() + OPEN_RETRY_FOR;
    let db = loop {
        match Database::create(path) {
            Ok(db) => break db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(ConsensusError::Storage(format!("cannot open {}: {e}", path.display()))),
        }
    };
    let txn = db.begin_write().map_err(|e| ConsensusError::Storage(e.to_string()))?;
    {
        txn.open_table(LOGS).map_err(|e| ConsensusError::Storage(e.to_string()))?;
        txn.open_table(META).map_err(|e| ConsensusError::Storage(e.to_string()))?;
    }
    txn.commit().map_err(|e| ConsensusError::Storage(e.to_string()))?;
    Ok(Arc::new(db))
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(openraft::AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into()
}

fn get_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, StorageError> {
    let txn = db.begin_read().map_err(read_err)?;
    let table = txn.open_table(META).map_err(read_err)?;
    match table.get(key).map_err(read_err)? {
        Some(v) => Ok(Some(wire::decode_unbounded(v.value()).map_err(read_err)?)),
        None => Ok(None),
    }
}

fn put_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), StorageError> {
    let bytes = wire::encode_unbounded(value).map_err(write_err)?;
    let txn = db.begin_write().map_err(write_err)?;
    {
        let mut table = txn.open_table(META).map_err(write_err)?;
        table.insert(key, bytes.as_slice()).map_err(write_err)?;
    }
    txn.commit().map_err(write_err)
}

/// The redb log store; clones share the file (the clone is the log reader).
#[derive(Debug, Clone)]
pub struct RedbLogStore {
    db: Arc<Database>,
}

impl RedbLogStore {
    /// A log store on an open database (see [`open_database`]).
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }
}

impl RaftLogReader<TypeConfig> for RedbLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOGS).map_err(read_err)?;
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for item in table.range(start..).map_err(read_err)? {
            let (k, v) = item.map_err(read_err)?;
            if !range.contains(&k.value()) {
                break;
            }
            out.push(wire::decode_unbounded::<Entry>(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for RedbLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = get_meta(&self.db, KEY_LAST_PURGED)?;
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOGS).map_err(read_err)?;
        let last = match table.last().map_err(read_err)? {
            Some((_, v)) => Some(wire::decode_unbounded::<Entry>(v.value()).map_err(read_err)?.log_id),
            None => None,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last.or(last_purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        put_meta(&self.db, KEY_VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        get_meta(&self.db, KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        put_meta(&self.db, KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(get_meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            for e in entries {
                let bytes = wire::encode_unbounded(&e).map_err(write_err)?;
                table.insert(e.log_id.index, bytes.as_slice()).map_err(write_err)?;
            }
        }
        let res = txn.commit().map_err(|e| std::io::Error::other(e.to_string()));
        let failed = res.as_ref().err().map(write_err);
        callback.log_io_completed(res);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            table.retain_in(log_id.index.., |_, _| false).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = wire::encode_unbounded(&log_id).map_err(write_err)?;
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            meta.insert(KEY_LAST_PURGED, bytes.as_slice()).map_err(write_err)?;
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            table.retain_in(..=log_id.index, |_, _| false).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}

/// Where the state machine keeps its latest snapshot in the redb file.
#[derive(Debug, Clone)]
pub struct RedbSnapshotStore {
    db: Arc<Database>,
}

impl RedbSnapshotStore {
    /// A snapshot store on an open database.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// The stored snapshot, if any.
    pub fn load(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        get_meta(&self.db, KEY_SNAPSHOT)
    }

    /// Replaces the stored snapshot.
    pub fn save(&self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        put_meta(&self.db, KEY_SNAPSHOT, snap)
    }
}
