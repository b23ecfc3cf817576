//! Fuzzing the Raft RPC decoders: `wire::decode::<RaftWire>` (every Raft request a node
//! receives through its gateway: AppendEntries, Vote, InstallSnapshot, forwarded client
//! writes, read-index and membership requests), `wire::decode::<RaftWireReply>` (every
//! answer), and `wire::decode_unbounded::<LedgerState>` (a snapshot received from the
//! leader, restored without the wire limit). Arbitrary bytes and mutations of valid
//! encodings never panic, never hold more than `MAX_DECODE_ALLOCATION` bytes, and bad
//! input is `ConsensusError::Decode`. `FUZZ_CASES=N` runs longer (see
//! erlmcp-flow-fuzzkit).

erlmcp_flow_fuzzkit::install_alloc_probe!();

use std::collections::{BTreeMap, BTreeSet};

use erlmcp_flow_consensus::wire::{self, CommitReceipt, MembershipChange, RaftWire, RaftWireReply};
use erlmcp_flow_consensus::{ConsensusError, LedgerCommand, LedgerResponse, LedgerState, NamedNode, TypeConfig};
use erlmcp_flow_core::{CapabilitySet, Task, TerminalKind};
use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, measure};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use proptest::prelude::*;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<u64, NamedNode> {
    let nodes: BTreeMap<u64, NamedNode> = (1..=3).map(|i| (i, NamedNode::new(format!("n{i}")))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn task() -> Task {
    Task::new(CapabilitySet::parse(["compute"]).unwrap()).with_payload(&b"abc"[..])
}

/// Valid requests of every kind, with entries of every payload kind.
fn requests() -> Vec<Vec<u8>> {
    let t = task();
    let entries: Vec<Entry<TypeConfig>> = vec![
        Entry { log_id: log_id(2, 5), payload: EntryPayload::Blank },
        Entry {
            log_id: log_id(2, 6),
            payload: EntryPayload::Normal(LedgerCommand::Submit { task: t.clone(), owner: "n1".into() }),
        },
        Entry {
            log_id: log_id(2, 7),
            payload: EntryPayload::Normal(LedgerCommand::Finish { id: t.id, kind: TerminalKind::Completed }),
        },
        Entry { log_id: log_id(2, 8), payload: EntryPayload::Membership(membership()) },
    ];
    let snapshot = LedgerState::default();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 8)),
        last_membership: StoredMembership::new(Some(log_id(2, 8)), membership()),
        snapshot_id: "2-8-1".into(),
    };
    let reqs = [
        RaftWire::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(2, 4)),
            entries,
            leader_commit: Some(log_id(2, 4)),
        }),
        RaftWire::Vote(VoteRequest { vote: Vote::new(3, 2), last_log_id: Some(log_id(2, 8)) }),
        RaftWire::InstallSnapshot(InstallSnapshotRequest {
            vote: Vote::new_committed(2, 1),
            meta,
            offset: 0,
            data: wire::encode_unbounded(&snapshot).unwrap(),
            done: true,
        }),
        RaftWire::ClientWrite(LedgerCommand::KvCas { key: "k".into(), expected: None, new: Some("v".into()) }),
        RaftWire::LinearizableRead,
        RaftWire::Membership(MembershipChange::AddVoter("n4".into())),
    ];
    reqs.iter().map(|r| wire::encode(r).unwrap()).collect()
}

/// Valid replies of the client kinds (openraft's own replies carry the same types as
/// the requests).
fn replies() -> Vec<Vec<u8>> {
    [
        RaftWireReply::ClientWrite(Ok(CommitReceipt { log_index: 9, response: LedgerResponse::Accepted })),
        RaftWireReply::ClientWrite(Err(ConsensusError::NotLeader { leader: Some("n2".into()) })),
        RaftWireReply::LinearizableRead(Ok(12)),
        RaftWireReply::Membership(Ok(vec!["n1".into(), "n2".into()])),
    ]
    .iter()
    .map(|r| wire::encode(r).unwrap())
    .collect()
}

/// A snapshot image: a ledger with open and finished tasks and KV entries.
fn snapshot() -> Vec<u8> {
    let mut l = LedgerState::default();
    for i in 0..6 {
        let t = task();
        l.apply(&LedgerCommand::Submit { task: t.clone(), owner: format!("n{i}") });
        if i % 2 == 0 {
            l.apply(&LedgerCommand::Finish { id: t.id, kind: TerminalKind::Failed });
        }
        l.apply(&LedgerCommand::KvPut { key: format!("k{i}"), value: "v".into() });
    }
    wire::encode_unbounded(&l).unwrap()
}

fn decode_checked(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (request, peak) = measure(|| wire::decode::<RaftWire>(bytes));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "request: {peak} bytes held for {} input bytes", bytes.len());
    if let Err(e) = &request {
        prop_assert!(matches!(e, ConsensusError::Decode(_)), "{e:?}");
    }
    let (reply, peak) = measure(|| wire::decode::<RaftWireReply>(bytes));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "reply: {peak} bytes held for {} input bytes", bytes.len());
    if let Err(e) = &reply {
        prop_assert!(matches!(e, ConsensusError::Decode(_)), "{e:?}");
    }
    let (ledger, peak) = measure(|| wire::decode_unbounded::<LedgerState>(bytes));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "snapshot: {peak} bytes held for {} input bytes", bytes.len());
    if let Ok(l) = ledger {
        // A snapshot that decodes is a ledger that re-encodes to itself.
        let again = wire::encode_unbounded(&l).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(wire::decode_unbounded::<LedgerState>(&again).ok() == Some(l));
    }
    Ok(())
}

/// The seeds decode; and the probe is live.
#[test]
fn seeds_decode_and_probe_is_installed() {
    assert!(erlmcp_flow_fuzzkit::probe_installed());
    for s in requests() {
        wire::decode::<RaftWire>(&s).unwrap();
    }
    for s in replies() {
        wire::decode::<RaftWireReply>(&s).unwrap();
    }
    wire::decode_unbounded::<LedgerState>(&snapshot()).unwrap();
}

/// Every valid encoding: requests, replies and a snapshot (the snapshot decoder has no
/// fixed bincode limit: its limit follows the input size).
fn seeds() -> Vec<Vec<u8>> {
    [requests(), replies(), vec![snapshot()]].concat()
}

erlmcp_flow_fuzzkit::decoder_fuzz_tests!(seeds: seeds(), check: decode_checked);
