//! openraft's own storage test suite (`openraft::testing::Suite`) against both log stores,
//! each paired with the ledger state machine.

use erlmcp_flow_consensus::state_machine::LedgerStateMachine;
use erlmcp_flow_consensus::store_mem::MemLogStore;
use erlmcp_flow_consensus::store_redb::{RedbLogStore, RedbSnapshotStore, open_database};
use erlmcp_flow_consensus::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

struct MemBuilder;

impl StoreBuilder<TypeConfig, MemLogStore, LedgerStateMachine, ()> for MemBuilder {
    async fn build(&self) -> Result<((), MemLogStore, LedgerStateMachine), StorageError> {
        Ok(((), MemLogStore::new(), LedgerStateMachine::new()))
    }
}

struct RedbBuilder;

impl StoreBuilder<TypeConfig, RedbLogStore, LedgerStateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, RedbLogStore, LedgerStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_database(&dir.path().join("raft.redb")).expect("open redb");
        let sm = LedgerStateMachine::with_snapshot_store(RedbSnapshotStore::new(db.clone()))?;
        Ok((dir, RedbLogStore::new(db), sm))
    }
}

/// The in-memory log store + ledger state machine pass openraft's storage suite (log
/// reads/appends/truncation/purge, vote, membership recovery, apply, snapshot transfer).
#[test]
fn mem_store_passes_openraft_suite() {
    Suite::test_all(MemBuilder).unwrap()
}

/// The redb log store + ledger state machine (snapshots in the same file) pass
/// openraft's storage suite.
#[test]
fn redb_store_passes_openraft_suite() {
    Suite::test_all(RedbBuilder).unwrap()
}
