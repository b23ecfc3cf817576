//! In-process Raft clusters on the `InProcessTransport`: elections, write forwarding,
//! leader failure under load, partitions, durable restart, membership changes, bad input.
//!
//! No test sleeps and hopes: every wait is on Raft metrics or a predicate with a deadline,
//! and no test asserts on timing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use erlmcp_flow_consensus::wire::{self, MembershipChange, RaftWire, RaftWireReply};
use erlmcp_flow_consensus::{
    ConsensusError, ConsensusNode, InProcessTransport, LedgerCommand, LedgerResponse, NodeRole, RaftConfig, node_id_for,
};
use erlmcp_flow_core::{CapabilitySet, Task, TaskId, TerminalKind};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};

const WAIT: Duration = Duration::from_secs(10);

fn cfg() -> RaftConfig {
    RaftConfig { client_timeout_ms: 1_500, ..RaftConfig::default() }
}

fn task() -> Task {
    Task::new(CapabilitySet::parse(["raft"]).unwrap())
}

fn submit_cmd(task: Task, owner: &str) -> LedgerCommand {
    LedgerCommand::Submit { task, owner: owner.into() }
}

struct Cluster {
    net: InProcessTransport,
    nodes: BTreeMap<String, ConsensusNode>,
    names: Vec<String>,
}

impl Cluster {
    async fn start(n: usize, cfg: &RaftConfig) -> Self {
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        Self::start_named(&names, &names, |_| cfg.clone()).await
    }

    /// Starts `names`, initializing the cluster with `voters`.
    async fn start_named(names: &[String], voters: &[String], cfg: impl Fn(&str) -> RaftConfig) -> Self {
        let net = InProcessTransport::new();
        let mut nodes = BTreeMap::new();
        for name in names {
            let node = ConsensusNode::start(name, &cfg(name), net.endpoint(name)).await.unwrap();
            net.register(&node);
            nodes.insert(name.clone(), node);
        }
        for v in voters {
            nodes[v].initialize(voters).await.unwrap();
        }
        let c = Self { net, nodes, names: names.to_vec() };
        for v in voters {
            c.nodes[v].wait_for_leader(WAIT).await.unwrap();
        }
        c
    }

    fn node(&self, name: &str) -> &ConsensusNode {
        &self.nodes[name]
    }

    fn leader_name(&self) -> String {
        let live: Vec<&ConsensusNode> = self.nodes.values().collect();
        live.iter()
            .find(|n| n.status().state == NodeRole::Leader)
            .map(|n| n.name().to_owned())
            .unwrap_or_else(|| live[0].leader().expect("a leader").1)
    }

    async fn kill(&mut self, name: &str) -> ConsensusNode {
        let node = self.nodes.remove(name).unwrap();
        self.net.unregister(node.id());
        node.shutdown().await;
        node
    }

    /// Waits until every listed node has applied everything the most advanced of them has
    /// in its log, then returns their ledger digests.
    async fn converge(&self, names: &[&str]) -> Vec<u64> {
        // The leader's log end is the target: wait on each node's applied index.
        let leader = self.nodes[names[0]].wait_for_leader(WAIT).await.unwrap();
        let target = self
            .nodes
            .get(&leader.1)
            .map(|l| l.status().last_log_index)
            .unwrap_or_else(|| names.iter().map(|n| self.nodes[*n].status().last_log_index).max().unwrap());
        let mut digests = Vec::new();
        for n in names {
            let node = &self.nodes[*n];
            node.raft().wait(Some(WAIT)).applied_index_at_least(target, "converge").await.unwrap();
            digests.push(node.read_local(|l| l.digest()));
        }
        digests
    }
}

/// Submits with the same task id until it is committed (`Accepted` or `Duplicate`), for
/// at most `budget` attempts; a retry after a lost ack answers `Duplicate`.
async fn submit_until_ok(node: &ConsensusNode, task: &Task, budget: usize) -> Result<LedgerResponse, ConsensusError> {
    let mut last = None;
    for _ in 0..budget {
        match node.submit(submit_cmd(task.clone(), node.name())).await {
            Ok(r) => return Ok(r.response),
            Err(e) if e.is_retryable() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap())
}

/// Three nodes elect one leader; a submit on any node commits (followers forward to the
/// leader, which the forwarded-writes counter shows); all three state machines end
/// identical and the read paths (linearizable on a follower, KV) see the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_followers_forward_writes() {
    let c = Cluster::start(3, &cfg()).await;
    let leader = c.leader_name();
    let leaders: BTreeSet<String> = c.nodes.values().map(|n| n.leader().unwrap().1).collect();
    assert_eq!(leaders.len(), 1, "one leader everywhere: {leaders:?}");
    let mut ids = Vec::new();
    for name in &c.names {
        for _ in 0..10 {
            let t = task();
            ids.push(t.id);
            let r = c.node(name).submit(submit_cmd(t, name)).await.unwrap();
            assert_eq!(r.response, LedgerResponse::Accepted);
            assert!(r.log_index > 0);
        }
    }
    let follower = c.names.iter().find(|n| **n != leader).unwrap();
    assert!(c.node(follower).status().forwarded_writes >= 10);
    let put = LedgerCommand::KvPut { key: "swarm/a/leader".into(), value: follower.clone() };
    c.node(follower).submit(put).await.unwrap();
    let seen = c
        .node(follower)
        .linearizable_read(|l| (l.counts().accepted, l.kv_get("swarm/a/leader").map(String::from)))
        .await
        .unwrap();
    assert_eq!(seen, (30, Some(follower.clone())));
    let names: Vec<&str> = c.names.iter().map(String::as_str).collect();
    let digests = c.converge(&names).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas differ: {digests:?}");
    for n in c.nodes.values() {
        assert!(n.read_local(|l| ids.iter().all(|id| l.contains(id))));
        let s = n.status();
        assert_eq!(s.voters.len(), 3);
        assert_eq!(s.leader.as_ref().map(|l| l.1.clone()), Some(leader.clone()));
    }
}

/// While 2 000 submits run concurrently from clients on the two followers, the leader is
/// shut down: a new leader emerges, every submit that returned Ok is in every survivor's
/// ledger exactly once (clients retry with the same task id, so a lost ack answers
/// Duplicate rather than creating a second task), and the survivors are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_under_load_loses_no_acknowledged_submit() {
    const TOTAL: usize = 2_000;
    const CLIENTS: usize = 32;
    let mut c = Cluster::start(3, &cfg()).await;
    let old_leader = c.leader_name();
    let survivors: Vec<String> = c.names.iter().filter(|n| **n != old_leader).cloned().collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let kill_at = Arc::new(tokio::sync::Notify::new());
    let mut clients = Vec::new();
    for k in 0..CLIENTS {
        let node = c.node(&survivors[k % 2]).clone();
        let acked = acked.clone();
        let kill_at = kill_at.clone();
        clients.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for _ in 0..TOTAL / CLIENTS + usize::from(k < TOTAL % CLIENTS) {
                let t = task();
                // Bounded: 20 client timeouts per task at most.
                match submit_until_ok(&node, &t, 20).await {
                    Ok(LedgerResponse::Accepted | LedgerResponse::Duplicate) => {
                        ok.push(t.id);
                        if acked.fetch_add(1, Ordering::Relaxed) + 1 == TOTAL / 4 {
                            kill_at.notify_one();
                        }
                    }
                    other => panic!("submit failed for good: {other:?}"),
                }
            }
            ok
        }));
    }
    tokio::time::timeout(WAIT, kill_at.notified()).await.expect("a quarter of the submits commit");
    c.kill(&old_leader).await;
    let mut ok_ids = Vec::new();
    for h in clients {
        ok_ids.extend(tokio::time::timeout(Duration::from_secs(60), h).await.expect("clients finish").unwrap());
    }
    assert_eq!(ok_ids.len(), TOTAL);
    let new_leader = c.node(&survivors[0]).wait_for_leader(WAIT).await.unwrap();
    assert_ne!(new_leader.1, old_leader);
    let names: Vec<&str> = survivors.iter().map(String::as_str).collect();
    let digests = c.converge(&names).await;
    assert_eq!(digests[0], digests[1], "survivors differ");
    let unique: BTreeSet<TaskId> = ok_ids.iter().copied().collect();
    assert_eq!(unique.len(), TOTAL);
    for name in &survivors {
        c.node(name).read_local(|l| {
            assert!(unique.iter().all(|id| l.get(id).is_some()), "{name} misses an acknowledged task");
            assert_eq!(l.counts().accepted, TOTAL as u64, "{name}: each task exactly once");
            assert_eq!(l.open_len(), TOTAL);
        });
    }
}

/// Five nodes cut 3–2 (the old leader on the minority side): the minority commits
/// nothing; its submits answer NotLeader/Unavailable within the client timeout, or
/// Indeterminate when they reached the old leader (the write sits uncommitted in its
/// log and is truncated after the heal), the
/// majority elects a leader and keeps committing; after healing, all five logs and
/// ledgers agree and hold exactly the majority's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_side_of_a_partition_commits_nothing_and_heals() {
    let c = Cluster::start(5, &cfg()).await;
    let leader = c.leader_name();
    let mut minority = vec![leader.clone()];
    minority.push(c.names.iter().find(|n| **n != leader).unwrap().clone());
    let majority: Vec<String> = c.names.iter().filter(|n| !minority.contains(n)).cloned().collect();
    let before = c.node(&leader).submit(submit_cmd(task(), &leader)).await.unwrap();
    let ids = |v: &[String]| v.iter().map(|n| node_id_for(n)).collect::<Vec<_>>();
    c.net.partition(&ids(&minority), &ids(&majority));

    for name in &minority {
        let t = task();
        let err = c.node(name).submit(submit_cmd(t.clone(), name)).await.unwrap_err();
        let refused = matches!(err, ConsensusError::NotLeader { .. } | ConsensusError::Unavailable(_));
        let unconfirmed = matches!(err, ConsensusError::Indeterminate(_));
        assert!(refused || unconfirmed, "{name}: {err:?}");
        for m in &majority {
            assert!(!c.node(m).read_local(|l| l.contains(&t.id)));
        }
    }
    let mut majority_ids = Vec::new();
    for (i, name) in majority.iter().cycle().take(9).enumerate() {
        let t = task();
        let r = submit_until_ok(c.node(name), &t, 10).await.unwrap();
        assert_eq!(r, LedgerResponse::Accepted, "write {i}");
        majority_ids.push(t.id);
    }
    let new_leader = c.node(&majority[0]).leader().unwrap().1;
    assert!(majority.contains(&new_leader));

    c.net.heal_all();
    let t = task();
    submit_until_ok(c.node(&minority[1]), &t, 10).await.unwrap();
    majority_ids.push(t.id);
    let names: Vec<&str> = c.names.iter().map(String::as_str).collect();
    let digests = c.converge(&names).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas differ after heal: {digests:?}");
    for n in c.nodes.values() {
        n.read_local(|l| {
            assert_eq!(l.counts().accepted, 1 + majority_ids.len() as u64, "{}: only committed writes", n.name());
            assert!(majority_ids.iter().all(|id| l.contains(id)));
        });
        assert!(n.status().applied_index > Some(before.log_index));
    }
}

/// Three nodes on redb files: commit, shut one down, commit more, restart it on its file.
/// Right after the restart it already has its old log (recovered from the file, not
/// from the leader), and it catches up to a ledger identical to the others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_node_restarts_from_its_file_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let path_of = |name: &str| dir.path().join(format!("{name}.redb"));
    let redb_cfg = |name: &str| RaftConfig { storage: "redb".into(), path: Some(path_of(name)), ..cfg() };
    let names: Vec<String> = ["n1", "n2", "n3"].map(String::from).into();
    let mut c = Cluster::start_named(&names, &names, redb_cfg).await;
    let leader = c.leader_name();
    let victim = names.iter().find(|n| **n != leader).unwrap().clone();
    for _ in 0..20 {
        submit_until_ok(c.node(&leader), &task(), 5).await.unwrap();
    }
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    c.converge(&all).await;
    let log_before = c.node(&victim).status().last_log_index.unwrap();
    let old = c.kill(&victim).await;
    drop(old);
    let finish_one = c.node(&leader).read_local(|l| *l.open_tasks().next().unwrap().0);
    c.node(&leader).submit(LedgerCommand::Finish { id: finish_one, kind: TerminalKind::Completed }).await.unwrap();
    for _ in 0..20 {
        submit_until_ok(c.node(&leader), &task(), 5).await.unwrap();
    }

    let node = ConsensusNode::start(&victim, &redb_cfg(&victim), c.net.endpoint(&victim)).await.unwrap();
    // Not registered yet: the leader cannot reach it, so this log can only come from the file.
    node.raft().wait(Some(WAIT)).log_index_at_least(Some(log_before), "log recovered from file").await.unwrap();
    let recovered = node.status().last_log_index;
    assert!(recovered >= Some(log_before) && log_before > 0, "log recovered from file: {recovered:?}");
    c.net.register(&node);
    c.nodes.insert(victim.clone(), node);
    let digests = c.converge(&all).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "restarted node differs: {digests:?}");
    let counts = c.node(&victim).read_local(|l| l.counts());
    assert_eq!((counts.accepted, counts.completed), (40, 1));
}

/// Membership changes at runtime: a fourth node joins as a voter (learner first, then
/// joint consensus), receives the log, and is removed again: 3 → 4 → 3 voters, with
/// writes committing throughout. Both changes are asked of a follower, which forwards
/// them to the leader; asking for a change again is harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_remove_voter_at_runtime() {
    let names: Vec<String> = ["n1", "n2", "n3", "n4"].map(String::from).into();
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let c = Cluster::start_named(&names, &names[..3], |_| cfg()).await;
    let leader = c.leader_name();
    let follower = names[..3].iter().find(|n| **n != leader).unwrap().clone();
    submit_until_ok(c.node(&leader), &task(), 5).await.unwrap();
    assert_eq!(c.node("n4").status().state, NodeRole::Learner);

    let voters = c.node(&follower).add_voter("n4").await.unwrap();
    assert_eq!(set(&voters), set(&names), "the committed membership is answered");
    assert_eq!(set(&c.node(&leader).status().voters), set(&names));
    let again = c.node(&leader).add_voter("n4").await.unwrap();
    assert_eq!(set(&again), set(&names), "adding a voter twice changes nothing");
    submit_until_ok(c.node("n4"), &task(), 5).await.unwrap();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let digests = c.converge(&all).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(c.node("n4").read_local(|l| l.counts().accepted), 2);
    let n4 = c.node("n4").raft().wait(Some(WAIT));
    n4.metrics(|m| m.membership_config.membership().voter_ids().count() == 4, "n4 sees 4 voters").await.unwrap();

    let voters = c.node(&follower).remove_voter("n4").await.unwrap();
    assert_eq!(set(&voters), set(&names[..3]));
    assert_eq!(set(&c.node(&leader).status().voters), set(&names[..3]));
    submit_until_ok(c.node(&leader), &task(), 5).await.unwrap();
    let three: Vec<&str> = names[..3].iter().map(String::as_str).collect();
    let digests = c.converge(&three).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert!(matches!(c.node(&follower).add_voter("not a name").await, Err(ConsensusError::Config(_))));
}

/// Removing the only voter would leave no one to commit: it is refused with `Config`
/// (not retried until the timeout), and the node keeps committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_last_voter_is_refused() {
    let c = Cluster::start(1, &cfg()).await;
    let leader = c.leader_name();
    let err = c.node(&leader).remove_voter(&leader).await.unwrap_err();
    assert!(matches!(err, ConsensusError::Config(_)), "{err:?}");
    submit_until_ok(c.node(&leader), &task(), 5).await.unwrap();
}

/// Bad input to `handle_rpc`: garbage, a truncated encoding and an oversized body each
/// answer `Decode` and are counted, without a panic; an AppendEntries from a stale term
/// is refused with the higher vote; and the node still commits afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rpc_input_is_refused_counted_and_harmless() {
    let c = Cluster::start(3, &cfg()).await;
    let leader = c.leader_name();
    let follower = c.names.iter().find(|n| **n != leader).unwrap().clone();
    let node = c.node(&follower);

    let good = wire::encode(&RaftWire::ClientWrite(submit_cmd(task(), &follower))).unwrap();
    let truncated = &good[..good.len() / 2];
    let oversized = vec![0u8; wire::MAX_RPC_BYTES + 1];
    let inputs: [&[u8]; 4] = [b"\xff\xff\xff\xff garbage", truncated, &oversized, &[]];
    for (i, bad) in inputs.iter().enumerate() {
        let err = node.handle_rpc(bad).await.unwrap_err();
        assert!(matches!(err, ConsensusError::Decode(_)), "input {i}: {err:?}");
    }
    assert_eq!(node.status().decode_errors, inputs.len() as u64);

    let term = node.status().current_term;
    assert!(term >= 1);
    let stale = AppendEntriesRequest {
        vote: openraft::Vote::new_committed(term - 1, node_id_for("intruder")),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    let reply = node.handle_rpc(&wire::encode(&RaftWire::AppendEntries(stale)).unwrap()).await.unwrap();
    match wire::decode::<RaftWireReply>(&reply).unwrap() {
        RaftWireReply::AppendEntries(Ok(AppendEntriesResponse::HigherVote(v))) => assert!(v.leader_id().term >= term),
        other => panic!("stale AppendEntries accepted: {other:?}"),
    }
    assert_eq!(node.status().current_term, term);
    assert_eq!(node.leader().unwrap().1, leader);

    // A membership change off the wire naming an invalid node is refused by the leader,
    // which checks the name itself instead of trusting the forwarding node.
    let bad_change = wire::encode(&RaftWire::Membership(MembershipChange::AddVoter("no such/name".into()))).unwrap();
    let reply = c.node(&leader).handle_rpc(&bad_change).await.unwrap();
    match wire::decode::<RaftWireReply>(&reply).unwrap() {
        RaftWireReply::Membership(Err(ConsensusError::Config(_))) => {}
        other => panic!("bad membership change not refused: {other:?}"),
    }
    assert_eq!(c.node(&leader).status().voters.len(), 3);
    assert!(c.node(&leader).status().learners.is_empty());

    let r = node.submit(submit_cmd(task(), &follower)).await.unwrap();
    assert_eq!(r.response, LedgerResponse::Accepted);
    let names: Vec<&str> = c.names.iter().map(String::as_str).collect();
    let digests = c.converge(&names).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

/// The leader's openraft core quits on a fatal storage error (injected: its next log
/// write fails) on the in-memory store. The node reports the core down, its supervisor
/// restarts openraft on the same store, the node comes back with everything it had (the
/// log and ledger live in the node-owned store), the cluster keeps committing, and the
/// restarted node applies the same state as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_core_error_restarts_the_core_on_the_same_store() {
    let c = Cluster::start(3, &cfg()).await;
    let leader = c.leader_name();
    let node = c.node(&leader);
    for _ in 0..20 {
        submit_until_ok(node, &task(), 10).await.unwrap();
    }
    let applied_before = node.status().applied_index.unwrap();
    node.inject_storage_fault();
    // The next write fails inside openraft; the node answers a retryable error, never Fatal.
    let t = task();
    let first = node.submit(submit_cmd(t.clone(), &leader)).await;
    assert!(first.as_ref().is_ok() || first.as_ref().is_err_and(|e| e.is_retryable()), "{first:?}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.status().core_restarts == 0 {
        assert!(tokio::time::Instant::now() < deadline, "core not restarted: {:?}", node.core_health());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(node.is_ready(), "{:?}", node.core_health());
    assert!(node.status().applied_index.unwrap() >= applied_before, "the restarted core kept the store");
    let retried = submit_until_ok(node, &t, 20).await.unwrap();
    assert!(matches!(retried, LedgerResponse::Accepted | LedgerResponse::Duplicate), "{retried:?}");
    for _ in 0..20 {
        submit_until_ok(c.node(&leader), &task(), 20).await.unwrap();
    }
    let names: Vec<&str> = c.names.iter().map(String::as_str).collect();
    let digests = c.converge(&names).await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let accepted = c.node(&leader).linearizable_read(|l| l.counts().accepted).await.unwrap();
    assert_eq!(accepted, 41, "each submitted task once");
}

/// Pre-vote: a follower cut off from everyone for many election timeouts never raises
/// its term (its pre-votes are refused or unanswered), and when the cut heals it follows
/// the same leader in the same term: nobody was unseated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_follower_does_not_raise_its_term_or_unseat_the_leader() {
    let c = Cluster::start(3, &cfg()).await;
    let leader = c.leader_name();
    let term = c.node(&leader).status().current_term;
    let follower = c.names.iter().find(|n| **n != leader).unwrap().clone();
    c.net.isolate(node_id_for(&follower));
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.node(&follower).status().pre_votes_refused < 5 {
        assert!(tokio::time::Instant::now() < deadline, "no pre-vote rounds: {:?}", c.node(&follower).status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.node(&follower).status().current_term, term, "an isolated follower kept its term");
    assert_eq!(c.node(&follower).status().elections_started, 0);
    c.net.heal_all();
    submit_until_ok(c.node(&leader), &task(), 10).await.unwrap();
    let names: Vec<&str> = c.names.iter().map(String::as_str).collect();
    c.converge(&names).await;
    for n in &c.names {
        let s = c.node(n).status();
        assert_eq!((s.current_term, s.leader.clone().map(|l| l.1)), (term, Some(leader.clone())), "{n}: {s:?}");
    }
}

/// A forwarded compare-and-set whose reply is lost after the leader committed it answers
/// `Indeterminate` and is not sent again: the CAS is applied exactly once (a resend would
/// apply it a second time, see its expected value gone and answer "not swapped", a lie
/// the nemesis's linearizability check caught). A forwarded `Submit` in the same
/// situation is retried (it is keyed by task id) and answers `Duplicate`, committed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_a_forwarded_kv_write_is_indeterminate_not_resent() {
    let c = Cluster::start(3, &cfg()).await;
    let leader = c.leader_name();
    let follower = c.names.iter().find(|n| **n != leader).unwrap().clone();
    let f = c.node(&follower);
    f.submit(LedgerCommand::KvPut { key: "k".into(), value: "1".into() }).await.unwrap();

    c.net.lose_next_reply(node_id_for(&follower), node_id_for(&leader));
    let cas = LedgerCommand::KvCas { key: "k".into(), expected: Some("1".into()), new: Some("2".into()) };
    let r = f.submit(cas).await;
    assert!(matches!(r, Err(ConsensusError::Indeterminate(_))), "{r:?}");
    let value = f.linearizable_read(|l| l.kv_get("k").map(str::to_owned)).await.unwrap();
    assert_eq!(value.as_deref(), Some("2"), "the CAS committed once");

    let t = task();
    c.net.lose_next_reply(node_id_for(&follower), node_id_for(&leader));
    let r = f.submit(submit_cmd(t.clone(), &follower)).await.unwrap();
    assert!(matches!(r.response, LedgerResponse::Duplicate), "{:?}", r.response);
    assert!(f.linearizable_read(|l| l.get(&t.id).is_some()).await.unwrap());
}

/// A forwarded submit that reached the leader, after which the link broke (every later
/// attempt "unreachable" until the deadline), answers `Indeterminate`, never a refusal:
/// the entry did commit. Before, the last error ("node is unreachable") was reported as
/// `Unavailable` and the nemesis saw refused tasks complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_lost_after_it_reached_the_leader_is_indeterminate() {
    let c = Cluster::start(3, &cfg()).await;
    let leader = c.leader_name();
    let follower = c.names.iter().find(|n| **n != leader).unwrap().clone();
    let f = c.node(&follower);
    let t = task();
    c.net.cut_after_next_request(node_id_for(&follower), node_id_for(&leader));
    let r = f.submit(submit_cmd(t.clone(), &follower)).await;
    assert!(matches!(r, Err(ConsensusError::Indeterminate(_))), "{r:?}");
    c.net.heal_all();
    assert!(f.linearizable_read(|l| l.get(&t.id).is_some()).await.unwrap(), "it committed");
}
