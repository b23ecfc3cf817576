//! Helpers for process tests of the Raft-replicated ledger: voters started with
//! `--raft-voters`, their Raft view, and the waits every Raft test needs.

use super::*;

/// `flow node` arguments making `names` the Raft voters (plus `extra`).
pub fn raft_args(names: &[&str]) -> Vec<String> {
    vec!["--raft-voters".into(), names.join(","), "--agents".into(), "3".into(), "--work-us".into(), "500".into()]
}

/// Starts `names` as Raft voters, the first node seeding, each with 3 agents.
pub fn raft_cluster(names: &[&str], extra: impl Fn(&str) -> Vec<String>) -> Vec<Node> {
    let args = |n: &str| {
        let mut a = raft_args(names);
        a.extend(extra(n));
        a
    };
    let first = args(names[0]);
    let mut nodes = vec![Node::start(names[0], None, &first.iter().map(String::as_str).collect::<Vec<_>>())];
    let seed = nodes[0].listen.clone();
    for n in &names[1..] {
        let a = args(n);
        nodes.push(Node::start(n, Some(&seed), &a.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    for node in nodes.iter_mut() {
        node.ask(&format!("wait-agents {} 20000", 3 * names.len()), "OK");
    }
    nodes
}

pub fn raft(node: &mut Node) -> serde_json::Value {
    node.ask_json("raft", "RAFT")
}

/// Waits until `node` knows a leader (other than `not`) and returns its name.
pub fn leader_seen_by(node: &mut Node, not: Option<&str>) -> String {
    let mut leader = None;
    eventually("a leader is elected", || {
        leader = raft(node)["leader"].as_str().filter(|l| Some(*l) != not).map(str::to_string);
        leader.is_some()
    });
    leader.unwrap()
}

/// Waits until every node in `nodes` has applied the same index, then asserts their
/// state machines have the same digest.
pub fn assert_replicas_identical(nodes: &mut [Node]) {
    let mut last = Vec::new();
    eventually("replicas apply the same log", || {
        last = nodes.iter_mut().map(raft).collect::<Vec<_>>();
        last.windows(2).all(|w| w[0]["last_applied"] == w[1]["last_applied"] && w[0]["last_applied"].as_u64() > Some(0))
    });
    for w in last.windows(2) {
        assert_eq!(w[0]["digest"], w[1]["digest"], "same log, same state: {last:?}");
    }
}

/// Waits until the replicated ledger (read linearizably through `node`) has no open task.
pub fn ledger_quiescent(node: &mut Node) -> serde_json::Value {
    let mut l = serde_json::Value::Null;
    eventually("every acknowledged task has its terminal entry", || {
        l = node.ask_json("ledger", "LEDGER");
        l["open"] == 0
    });
    l
}

/// A fresh scratch directory for redb files.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("flow-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
