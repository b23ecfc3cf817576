//! The Raft-replicated task ledger with real `flow node` processes on 127.0.0.1: the
//! leader killed under load, a node restarted on its redb file, a 3–2 partition of five
//! voters, and a linearizability check of the control KV under a partition and a leader
//! kill. Every node is killed when a test ends.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_flow::cluster::wire::{Envelope, GatewayMsg, Request, Response, decode, encode};
use erlmcp_flow::core::{Codec, NodeName};
use erlmcp_flow_lincheck::{CheckResult, Op, OpResult, Outcome, Recorder, check};
use support::raft::*;
use support::*;

/// The Raft leader's process is SIGKILLed while node-1 submits 10 000 tasks (the
/// `flow demo --nodes 3 --kill leader` scenario): a new leader takes over, every
/// acknowledged task ends in exactly one terminal state in the replicated ledger, and the
/// survivors' state machines are identical.
#[test]
fn leader_killed_under_load_loses_no_acknowledged_task() {
    let out = Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["demo", "--nodes", "3", "--kill", "leader", "--tasks", "10000", "--crash-rate", "0.05", "--json"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("flow demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["raft"], true, "{r}");
    assert_eq!(r["killed"], r["leader_before"], "the leader was the victim: {r}");
    assert!(r["leader_after"].is_string() && r["leader_after"] != r["killed"], "a new leader: {r}");
    assert_eq!(r["lost"], 0, "{r}");
    let l = &r["ledger"];
    let n = |k: &str| l[k].as_u64().unwrap();
    assert_eq!(n("accepted"), 10_000, "every submitted task was acknowledged once: {r}");
    assert_eq!(n("open"), 0, "{r}");
    assert_eq!(n("completed") + n("failed") + n("dead_lettered"), 10_000, "exactly one terminal state each: {r}");
    assert_eq!(r["replicas_agree"], true, "{r}");
}

/// A voter on redb is SIGKILLed, the others commit more, and it restarts on the same file:
/// it comes back with its log (before it can reach anyone: its peers cut it off at first),
/// then catches up to the same state as the others once the cut is healed.
#[test]
fn redb_node_recovers_its_log_and_catches_up() {
    let dir = scratch_dir("redb");
    let path = |n: &str| dir.join(format!("{n}.redb")).to_string_lossy().into_owned();
    let names = ["d1", "d2", "d3"];
    let mut nodes = raft_cluster(&names, |n| vec!["--raft-path".into(), path(n)]);
    leader_seen_by(&mut nodes[0], None);
    let r = run_tasks(&mut nodes[0], 300, |_| {});
    assert_no_loss(&r, 300);
    ledger_quiescent(&mut nodes[0]);
    assert_replicas_identical(&mut nodes);
    let before = raft(&mut nodes[2])["last_log_index"].as_u64().unwrap();
    assert!(before > 300, "d3 holds the log of 300 submits: {before}");
    nodes[2].signal("-KILL");
    nodes[2].kill();
    eventually("d3 is down for d1", || nodes[0].sees("d3") == Some(false));
    let r = run_tasks(&mut nodes[0], 200, |_| {});
    assert_no_loss(&r, 200);
    ledger_quiescent(&mut nodes[0]);

    // Restart d3 on its file while d1 and d2 refuse it: what it has is what redb kept.
    nodes[0].ask("block d3", "OK");
    nodes[1].ask("block d3", "OK");
    let seed = nodes[0].listen.clone();
    let mut args = raft_args(&names);
    args.extend(["--raft-path".into(), path("d3")]);
    let restarted = Node::start("d3", Some(&seed), &args.iter().map(String::as_str).collect::<Vec<_>>());
    nodes[2] = restarted;
    let recovered = raft(&mut nodes[2]);
    assert!(
        recovered["last_log_index"].as_u64().unwrap() >= before,
        "the log survived the restart: had {before}, now {recovered}"
    );
    nodes[0].ask("unblock d3", "OK");
    nodes[1].ask("unblock d3", "OK");
    assert_replicas_identical(&mut nodes);
    let caught_up = raft(&mut nodes[2]);
    assert!(caught_up["last_log_index"].as_u64().unwrap() > before, "d3 caught up past its old log: {caught_up}");
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Five voters split 3–2: the minority commits nothing and its clients get a clear
/// NotLeader/Unavailable error, the majority keeps committing; after the heal every log
/// and state machine agrees and the minority reads the majority's write.
#[test]
fn minority_commits_nothing_and_logs_agree_after_heal() {
    let names = ["s1", "s2", "s3", "s4", "s5"];
    let mut nodes = raft_cluster(&names, |_| vec![]);
    leader_seen_by(&mut nodes[0], None);
    for (i, others) in [(0, "s4 s5"), (1, "s4 s5"), (2, "s4 s5"), (3, "s1 s2 s3"), (4, "s1 s2 s3")] {
        nodes[i].ask(&format!("block {others}"), "OK");
    }
    // The majority side has (or elects) a leader among s1..s3.
    eventually("majority commits", || {
        let v = nodes[0].ask_json("kv-put owner majority", "KV");
        v["done"] == true
    });
    let minority_before = raft(&mut nodes[3])["last_applied"].clone();
    let v = nodes[3].ask_json("kv-put owner minority", "KV");
    let err = v["error"].as_str().unwrap_or_else(|| panic!("the minority's write was refused: {v}"));
    assert!(err.contains("not the leader") || err.contains("unavailable"), "clear error: {v}");
    assert_eq!(v["retryable"], true, "{v}");
    let v = nodes[4].ask_json("kv-put other minority", "KV");
    assert!(v["error"].is_string(), "{v}");
    assert_eq!(raft(&mut nodes[3])["last_applied"], minority_before, "the minority applied nothing new");
    let r = run_tasks(&mut nodes[1], 200, |_| {});
    assert_no_loss(&r, 200);

    for (i, others) in [(0, "s4 s5"), (1, "s4 s5"), (2, "s4 s5"), (3, "s1 s2 s3"), (4, "s1 s2 s3")] {
        nodes[i].ask(&format!("unblock {others}"), "OK");
    }
    assert_replicas_identical(&mut nodes);
    eventually("the minority reads the majority's write", || {
        nodes[4].ask_json("kv-get owner", "KV")["value"] == "majority"
    });
    assert_eq!(nodes[3].ask_json("kv-get other", "KV")["value"], serde_json::Value::Null, "{:?}", "no minority write");
}

/// One client per node issues puts, gets and compare-and-sets on two keys while the
/// leader is frozen (SIGSTOP: cut off from everyone, then back) and later the new leader
/// is SIGKILLed; the recorded history (operations answered with an error count as
/// unknown: a forwarded write may have committed) is checked per key with the WGL checker.
#[test]
fn kv_history_under_partition_and_leader_kill_is_linearizable() {
    let names = ["k1", "k2", "k3"];
    let nodes: Vec<Arc<Mutex<Node>>> =
        raft_cluster(&names, |_| vec![]).into_iter().map(|n| Arc::new(Mutex::new(n))).collect();
    let pids: Vec<u32> = nodes.iter().map(|n| n.lock().unwrap().pid()).collect();
    let index = |name: &str| names.iter().position(|n| *n == name).unwrap();
    let first_leader = leader_seen_by(&mut nodes[0].lock().unwrap(), None);

    let recorder = Recorder::new();
    let stop: Arc<Vec<AtomicBool>> = Arc::new(names.iter().map(|_| AtomicBool::new(false)).collect());
    let mut clients = Vec::new();
    for (c, node) in nodes.iter().enumerate() {
        let (recorder, stop, node) = (recorder.clone(), stop.clone(), node.clone());
        clients.push(Some(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop[c].load(Ordering::Relaxed) {
                i += 1;
                let key = if (i + c as u64).is_multiple_of(2) { "x" } else { "y" };
                let value = format!("c{c}-{i}");
                let prev = format!("c{c}-{}", i - 1);
                let (op, cmd) = match (i * 7 + c as u64) % 4 {
                    0 => (Op::get(key), format!("kv-get {key}")),
                    1 => (Op::cas(key, None, Some(&value)), format!("kv-cas {key} - {value}")),
                    2 => (Op::cas(key, Some(&prev), Some(&value)), format!("kv-cas {key} {prev} {value}")),
                    _ => (Op::put(key, &value), format!("kv-put {key} {value}")),
                };
                let handle = recorder.invoke(c as u64, op);
                let v = node.lock().unwrap().ask_json(&cmd, "KV");
                if v["error"].is_string() {
                    handle.unknown();
                    std::thread::sleep(Duration::from_millis(20));
                } else if let Some(swapped) = v["swapped"].as_bool() {
                    handle.ok(OpResult::Swapped(swapped));
                } else if v["done"] == true {
                    handle.ok(OpResult::Done);
                } else {
                    handle.ok(OpResult::value(v["value"].as_str()));
                }
            }
        })));
    }
    let grow = |by: usize| {
        let mark = recorder.history().len();
        let deadline = Instant::now() + DEADLINE;
        while recorder.history().len() < mark + by && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    grow(200);
    // The leader is cut off from both others (frozen), the others elect a new one and go
    // on, then it comes back as a follower.
    let frozen = index(&first_leader);
    Command::new("kill").args(["-STOP", &pids[frozen].to_string()]).status().unwrap();
    grow(150);
    Command::new("kill").args(["-CONT", &pids[frozen].to_string()]).status().unwrap();
    grow(150);
    // Now crash the current leader (its client stops first, so it is not left waiting).
    let observer = (frozen + 1) % names.len();
    let leader = leader_seen_by(&mut nodes[observer].lock().unwrap(), None);
    let victim = index(&leader);
    stop[victim].store(true, Ordering::Relaxed);
    clients[victim].take().unwrap().join().unwrap();
    nodes[victim].lock().unwrap().signal("-KILL");
    grow(200);
    for s in stop.iter() {
        s.store(true, Ordering::Relaxed);
    }
    for c in clients.into_iter().flatten() {
        c.join().unwrap();
    }
    let history = recorder.history();
    let ops = history.operations();
    let ok = |name: &str| ops.iter().filter(|o| o.op.name() == name && matches!(o.outcome, Outcome::Ok(_))).count();
    eprintln!("{} operations: {} puts, {} gets, {} cas answered", ops.len(), ok("put"), ok("get"), ok("cas"));
    // The check means something only if reads and writes were answered on every side.
    assert!(ok("get") >= 50 && ok("put") >= 50 && ok("cas") >= 100, "too few answered operations");
    match check(&history) {
        CheckResult::Linearizable => {}
        other => panic!("{other}\nhistory: {}", history.to_json()),
    }
}

/// Bad Raft input at a node's gateway: a garbage and a truncated Raft RPC are answered
/// with an error and counted (`decode_errors`), never a panic; then the `raft` child is
/// crashed and restarted by its supervisor. The ledger keeps committing throughout:
/// tasks routed afterwards are acknowledged and finished, and the replicas agree.
#[test]
fn bad_raft_rpcs_and_a_raft_child_crash_leave_the_ledger_serving() {
    let names = ["b1", "b2", "b3"];
    let mut nodes = raft_cluster(&names, |_| vec![]);
    leader_seen_by(&mut nodes[0], None);
    let b2 = nodes[1].listen.clone();
    with_raw_gateway(&b2, "prober", |gateway| async move {
        let codec = Codec::default();
        for body in [vec![0xde, 0xad, 0xbe, 0xef], vec![1u8; 3]] {
            let frame = encode(&codec, &Envelope { from: NodeName::new("prober").unwrap(), body: Request::Raft(body) })
                .unwrap();
            let answer = gateway.call(|r| GatewayMsg::Call(frame, r), Some(Duration::from_secs(5))).await;
            let Ok(ractor::rpc::CallResult::Success(bytes)) = answer else { panic!("no answer: {answer:?}") };
            let response: Response = decode(&codec, &bytes).unwrap();
            assert!(matches!(response, Response::Error(ref e) if e.contains("decode")), "{response:?}");
        }
    });
    assert!(raft(&mut nodes[1])["decode_errors"].as_u64().unwrap() >= 2, "counted");
    let line = nodes[1].ask("crash raft", "OK");
    assert!(line.contains("restarted"), "{line}");
    let r = run_tasks(&mut nodes[1], 300, |_| {});
    assert_no_loss(&r, 300);
    let l = ledger_quiescent(&mut nodes[0]);
    assert_eq!(l["accepted"], 300, "{l}");
    assert_replicas_identical(&mut nodes);
}

/// Voters change at runtime: a fourth node started outside the voter list is added (as a
/// learner that catches up, then a voter), a voter is removed, and the ledger keeps
/// committing with the new membership, whose replicas all agree. The changes are asked of
/// a follower, which forwards them to whichever node leads at the time (an election under
/// load in between must not fail them). `flow status` shows the Raft view.
#[test]
fn voters_are_added_and_removed_at_runtime() {
    let names = ["m1", "m2", "m3"];
    let mut nodes = raft_cluster(&names, |_| vec![]);
    let leader = leader_seen_by(&mut nodes[0], None);
    let r = run_tasks(&mut nodes[0], 100, |_| {});
    assert_no_loss(&r, 100);
    let seed = nodes[0].listen.clone();
    let args = raft_args(&names);
    nodes.push(Node::start("m4", Some(&seed), &args.iter().map(String::as_str).collect::<Vec<_>>()));
    eventually("m4 is connected", || nodes[0].sees("m4") == Some(true));
    // Ask a follower (of the leader seen a moment ago; it is only a hint).
    let asked = names.iter().position(|n| *n != leader).unwrap();
    let added = nodes[asked].ask("raft-add m4", "OK");
    assert!(added.contains("m4"), "{added}");
    eventually("m4 knows it is a voter", || {
        raft(&mut nodes[3])["voters"].as_array().unwrap().iter().any(|v| v == "m4")
    });
    // Remove a voter other than the one asked (it may be the leader: then it steps down).
    let gi = (asked + 1) % names.len();
    let gone = names[gi];
    let removed = nodes[asked].ask(&format!("raft-remove {gone}"), "OK");
    assert!(!removed.contains(gone), "{removed}");
    let r = run_tasks(&mut nodes[asked], 100, |_| {});
    assert_no_loss(&r, 100);
    ledger_quiescent(&mut nodes[asked]);
    let mut members: Vec<Node> = nodes.into_iter().enumerate().filter(|(i, _)| *i != gi).map(|(_, n)| n).collect();
    assert_replicas_identical(&mut members);
    let out = Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["status", "--connect", &members[0].listen, "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let raft = &status["raft"];
    assert!(raft["leader"].is_string() && raft["term"].as_u64().unwrap() >= 1, "{status}");
    let voters: Vec<&str> = raft["voters"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(voters.len(), 3, "{status}");
    assert!(voters.contains(&"m4") && !voters.contains(&gone), "{status}");
}

/// The submitting node is SIGKILLed with tasks in flight: the Raft leader adopts its open
/// tasks (after the grace period) and drives them, so every task the dead node had
/// acknowledged still reaches exactly one terminal entry in the replicated ledger.
#[test]
fn leader_adopts_the_tasks_of_a_dead_submitter() {
    let names = ["o1", "o2", "o3"];
    let mut nodes = raft_cluster(&names, |_| vec![]);
    let leader = leader_seen_by(&mut nodes[0], None);
    let li = names.iter().position(|n| *n == leader).unwrap();
    let si = (li + 1) % names.len();
    let mut killed = false;
    nodes[si].send("run 3000 compute 256 7");
    while !killed {
        let line = nodes[si].expect("PROGRESS");
        let done: u64 = line.trim_start_matches("PROGRESS").trim().parse().unwrap();
        if done >= 600 {
            nodes[si].signal("-KILL");
            killed = true;
        }
    }
    let before = nodes[li].ask_json("ledger", "LEDGER");
    assert!(before["accepted"].as_u64().unwrap() >= 600, "{before}");
    let l = ledger_quiescent(&mut nodes[li]);
    let n = |k: &str| l[k].as_u64().unwrap();
    assert_eq!(n("accepted"), n("completed") + n("failed") + n("dead_lettered"), "{l}");
    // Whichever survivor led when the grace period ended adopted the tasks (leadership
    // may have moved under load since `li` was observed).
    let adopted: u64 =
        nodes.iter_mut().enumerate().filter(|(i, _)| *i != si).map(|(_, n)| raft(n)["adopted"].as_u64().unwrap()).sum();
    assert!(adopted > 0, "a leader drove the dead node's tasks");
}
