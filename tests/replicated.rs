//! The replicated task ledger through the facade, on a one-voter cluster node (the voter
//! is its own majority, so this runs in one process): every routed task gets exactly one
//! terminal entry, the control KV and the Raft status answer, and without Raft the same
//! calls fail with typed errors.

mod common;

use std::time::Duration;

use common::*;
use erlmcp_flow::consensus::{ConsensusError, LedgerCommand, LedgerResponse};
use erlmcp_flow::prelude::*;

async fn one_voter(name: &str) -> FlowNode {
    node(|c| {
        c.node.name = name.into();
        c.cluster.enabled = true;
        c.cluster.listen = "127.0.0.1:0".into();
        c.raft.enabled = true;
        c.raft.voters = vec![name.into()];
    })
    .await
}

/// Tasks routed on a node with the replicated ledger are acknowledged after their
/// Submit commits and each ends with one terminal entry; the ledger's counts match the
/// node's own. Failing and panicking tasks included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routed_task_gets_one_terminal_entry() {
    let node = one_voter("solo").await;
    let c = node.consensus().expect("raft is on").clone();
    c.wait_for_leader(DEADLINE).await.unwrap();
    assert_eq!(node.get_leader().as_deref(), Some("solo"));
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    spawn(&node, "b", &["x"], None, Mode::Payload).await;
    for payload in ["ok", "ok", "perm", "panic", "ok", "fail"] {
        node.route(task(&["x"], payload)).await.unwrap();
    }
    let stats = assert_no_loss(&node).await;
    eventually("terminal entries committed", || node.ledger_backlog() == 0).await;
    let (counts, open) = c.linearizable_read(|l| (l.counts(), l.open_len())).await.unwrap();
    assert_eq!(open, 0);
    assert_eq!(counts.accepted, stats.flow.accepted);
    assert_eq!(counts.completed, stats.flow.completed);
    assert_eq!(counts.failed, stats.flow.failed);
    assert_eq!(counts.dead_lettered, stats.flow.dead_lettered);
    node.shutdown(Duration::from_secs(1)).await;
}

/// The control KV and the status through the facade; `try_submit` refuses (it cannot wait
/// for a commit) with a typed error and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_kv_status_and_try_submit() {
    let node = one_voter("kv").await;
    node.consensus().unwrap().wait_for_leader(DEADLINE).await.unwrap();
    let put = node.submit_command(LedgerCommand::KvPut { key: "k".into(), value: "1".into() }).await.unwrap();
    assert_eq!(put.response, LedgerResponse::KvDone { previous: None });
    let cas = LedgerCommand::KvCas { key: "k".into(), expected: Some("0".into()), new: Some("2".into()) };
    let r = node.submit_command(cas).await.unwrap();
    assert_eq!(r.response, LedgerResponse::KvCas { swapped: false, current: Some("1".into()) });
    let status = node.raft_status().unwrap();
    assert!(status.current_term >= 1 && status.voters == vec!["kv".to_string()], "{status:?}");
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    assert!(matches!(node.try_submit(task(&["x"], "ok")), Err(SubmitError::Unavailable(_))));
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    node.shutdown(Duration::from_secs(1)).await;
}

/// Without Raft the consensus calls answer typed errors, not panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_raft_the_calls_are_refused() {
    let node = node(|_| {}).await;
    assert!(node.consensus().is_none() && node.get_leader().is_none() && node.raft_status().is_none());
    let r = node.submit_command(LedgerCommand::KvDelete { key: "k".into() }).await;
    assert!(matches!(r, Err(ConsensusError::Unavailable(_))), "{r:?}");
    node.shutdown(Duration::from_secs(1)).await;
}

/// A dead letter replayed on a node with the replicated ledger is committed as a new task
/// before it runs: the ledger counts the dead-lettered original and the completed replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_dead_letters_are_replicated() {
    let node = one_voter("replay").await;
    let c = node.consensus().unwrap().clone();
    c.wait_for_leader(DEADLINE).await.unwrap();
    // No agent has the capability yet: the task is dead-lettered.
    let outcome = node.route(task(&["late"], "ok")).await.unwrap();
    assert!(matches!(outcome, TaskOutcome::DeadLettered { .. }), "{outcome:?}");
    spawn(&node, "late-1", &["late"], None, Mode::Payload).await;
    assert_eq!(node.replay_dead_letters().await.unwrap(), 1);
    assert_no_loss(&node).await;
    eventually("terminal entries committed", || node.ledger_backlog() == 0).await;
    let (counts, open) = c.linearizable_read(|l| (l.counts(), l.open_len())).await.unwrap();
    assert_eq!((counts.accepted, counts.dead_lettered, counts.completed, open), (2, 1, 1, 0), "{counts:?}");
    node.shutdown(Duration::from_secs(1)).await;
}

/// Shutdown with terminal entries still to commit: `shutdown` waits (within its grace
/// period) for the ledger writer to commit them before it stops Raft, so the replicated
/// ledger holds a terminal entry for every task the node accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_queued_terminal_entries_first() {
    let node = one_voter("closing").await;
    let c = node.consensus().expect("raft is on").clone();
    c.wait_for_leader(DEADLINE).await.unwrap();
    spawn(&node, "a", &["x"], None, Mode::Slow(20)).await;
    spawn(&node, "b", &["x"], None, Mode::Slow(20)).await;
    for _ in 0..100 {
        node.submit(task(&["x"], "ok")).await.unwrap();
    }
    // The tasks are still running: shutdown lets them finish within the grace period,
    // and their terminal entries are queued only then.
    let cut = node.shutdown(Duration::from_secs(10)).await;
    assert_eq!(cut, 0, "the grace period was enough for every task");
    assert_eq!(node.ledger_backlog(), 0, "nothing left uncommitted");
    let counts = c.read_local(|l| l.counts());
    assert_eq!((counts.accepted, counts.completed), (100, 100), "{counts:?}");
}
