//! The Raft state machine: applies committed entries to the [`LedgerState`] and builds /
//! installs snapshots of it.
//!
//! Both storage backends use this one state machine. It lives in memory; with redb the
//! latest snapshot is also written to the redb file, and on restart the machine starts
//! from that snapshot while openraft re-applies the committed log after it (the log,
//! vote and committed id are durable in the same file), so the rebuilt state is the one
//! the node had. A snapshot is the bincode encoding of the whole `LedgerState`; its
//! metadata (last log id, membership) travels in openraft's `SnapshotMeta`.

// openraft's `StorageError` (large) is the error type its storage traits require; the
// helpers here return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerResponse, LedgerState};
use crate::store_redb::RedbSnapshotStore;
use crate::types::{Entry, LogId, NamedNode, RaftNodeId, StorageError, StoredMembership, TypeConfig};
use crate::wire;

/// A snapshot as kept by the state machine and the redb store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// openraft's metadata.
    pub meta: SnapshotMeta<RaftNodeId, NamedNode>,
    /// Encoded `LedgerState`.
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Applied {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    ledger: LedgerState,
}

#[derive(Debug)]
struct Inner {
    applied: RwLock<Applied>,
    current: Mutex<Option<StoredSnapshot>>,
    snapshot_seq: AtomicU64,
    persist: Mutex<Option<RedbSnapshotStore>>,
}

/// The state machine (a cheap clone handle; clones share the state).
#[derive(Debug, Clone)]
pub struct LedgerStateMachine {
    inner: Arc<Inner>,
}

impl Default for LedgerStateMachine {
    fn default() -> Self {
        Self::new()
    }
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_state_machine(openraft::AnyError::error(e.to_string())).into()
}

impl LedgerStateMachine {
    /// An empty in-memory state machine.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                applied: RwLock::new(Applied::default()),
                current: Mutex::new(None),
                snapshot_seq: AtomicU64::new(0),
                persist: Mutex::new(None),
            }),
        }
    }

    /// A state machine whose snapshots are kept in `store`, starting from the snapshot
    /// found there (if any).
    pub fn with_snapshot_store(store: RedbSnapshotStore) -> Result<Self, StorageError> {
        let sm = Self::new();
        if let Some(snap) = store.load()? {
            sm.restore(&snap)?;
            *sm.inner.current.lock() = Some(snap);
        }
        *sm.inner.persist.lock() = Some(store);
        Ok(sm)
    }

    /// Drops the handle on the redb file (after shutdown), so the file can be reopened.
    pub fn release_storage(&self) {
        self.inner.persist.lock().take();
    }

    /// Runs `f` on the applied ledger.
    pub fn read<T>(&self, f: impl FnOnce(&LedgerState) -> T) -> T {
        f(&self.inner.applied.read().ledger)
    }

    /// Index of the last applied entry.
    pub fn last_applied_index(&self) -> Option<u64> {
        self.inner.applied.read().last_applied.map(|l| l.index)
    }

    fn restore(&self, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let ledger: LedgerState = wire::decode_unbounded(&snap.data).map_err(sm_err)?;
        let mut a = self.inner.applied.write();
        a.ledger = ledger;
        a.last_applied = snap.meta.last_log_id;
        a.last_membership = snap.meta.last_membership.clone();
        Ok(())
    }

    fn keep(&self, snap: StoredSnapshot) -> Result<(), StorageError> {
        if let Some(store) = self.inner.persist.lock().as_ref() {
            store.save(&snap)?;
        }
        *self.inner.current.lock() = Some(snap);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for LedgerStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_log_id, last_membership) = {
            let a = self.inner.applied.read();
            (wire::encode_unbounded(&a.ledger).map_err(sm_err)?, a.last_applied, a.last_membership.clone())
        };
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let snap = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        self.keep(snap)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for LedgerStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.inner.applied.read();
        Ok((a.last_applied, a.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<LedgerResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut a = self.inner.applied.write();
        let mut out = Vec::new();
        for entry in entries {
            a.last_applied = Some(entry.log_id);
            let resp = match entry.payload {
                EntryPayload::Blank => LedgerResponse::Empty,
                EntryPayload::Normal(cmd) => a.ledger.apply(&cmd),
                EntryPayload::Membership(m) => {
                    a.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    LedgerResponse::Empty
                }
            };
            out.push(resp);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<RaftNodeId, NamedNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let snap = StoredSnapshot { meta: meta.clone(), data: snapshot.into_inner() };
        self.restore(&snap)?;
        self.keep(snap)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .inner
            .current
            .lock()
            .as_ref()
            .map(|s| Snapshot { meta: s.meta.clone(), snapshot: Box::new(Cursor::new(s.data.clone())) }))
    }
}
