//! Raft faults with real `flow node` processes (the findings of a nemesis run): a dead
//! openraft core, the majority lost for longer than a client's deadline, start-up
//! reconciliation racing live submits, and leader stability (terms, log volume) when
//! followers pause, restart or drop out. Every node is killed when a test ends; waits poll
//! with a deadline, and no test asserts on timing.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::raft::*;
use support::*;

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn index_of(names: &[&str], name: &str) -> usize {
    names.iter().position(|n| *n == name).unwrap()
}

/// Sends `run …` and then each of `during`, and collects the run's RESULT and one answer
/// line (by prefix) per command, in whatever order they come: answers to other commands
/// must not wait for a running workload.
fn run_while_asking(node: &mut Node, run: &str, during: &[(&str, &str)]) -> (serde_json::Value, Vec<String>) {
    node.send(run);
    // Let the workload start (and hit its fault) before the questions.
    loop {
        let line = node.next_line();
        assert!(!line.starts_with("ERR"), "{}: {line}", node.name);
        if line.starts_with("PROGRESS") {
            break;
        }
    }
    for (cmd, _) in during {
        node.send(cmd);
    }
    let mut answers: Vec<Option<String>> = vec![None; during.len()];
    let mut result = None;
    let asked = std::time::Instant::now();
    while result.is_none() || answers.iter().any(Option::is_none) {
        assert!(
            answers.iter().all(Option::is_some) || asked.elapsed() < DEADLINE,
            "{}: commands not answered within {DEADLINE:?} while a workload runs: {answers:?}",
            node.name
        );
        let line = node.next_line();
        assert!(!line.starts_with("ERR"), "{}: {line}", node.name);
        if let Some(r) = line.strip_prefix("RESULT ") {
            assert!(answers.iter().all(Option::is_some), "a command waited for the workload: {answers:?}");
            result = Some(serde_json::from_str(r).unwrap());
        } else if let Some(i) =
            during.iter().zip(&answers).position(|((_, prefix), a)| a.is_none() && line.starts_with(prefix))
        {
            answers[i] = Some(line);
        }
    }
    (result.unwrap(), answers.into_iter().map(Option::unwrap).collect())
}

/// What the ledger says about task `id` (through `task <id>` on `node`).
fn task_state(node: &mut Node, id: &str) -> serde_json::Value {
    node.ask_json(&format!("task {id}"), "TASK")
}

/// The Raft leader's openraft core quits on a fatal storage error while it serves a
/// workload (on redb). The node restarts the core on the same file, reports it, answers
/// every control command meanwhile (even while the workload runs), drops no terminal
/// entry, and the ledger ends with every task finished exactly once.
#[test]
fn a_dead_raft_core_is_restarted_and_drops_no_terminal_entry() {
    let dir = scratch_dir("core");
    let path = |n: &str| dir.join(format!("{n}.redb")).to_string_lossy().into_owned();
    let names = ["c1", "c2", "c3"];
    let mut nodes = raft_cluster(&names, |n| vec!["--raft-path".into(), path(n)]);
    let leader = leader_seen_by(&mut nodes[0], None);
    let li = index_of(&names, &leader);
    nodes[li].ask("raft-fault core", "OK");
    let (r, answers) = run_while_asking(
        &mut nodes[li],
        "run 2000 compute 64 7",
        &[("raft", "RAFT"), ("status", "STATUS"), ("ledger", "LEDGER")],
    );
    assert!(answers[0].contains("core_restarts"), "the raft view reports the core: {}", answers[0]);
    assert_no_loss(&r, 2000);
    assert_eq!(r["refused"], 0, "{r}");
    let view = raft(&mut nodes[li]);
    assert!(view["core_restarts"].as_u64().unwrap() >= 1, "the core was restarted: {view}");
    assert_eq!(view["core_up"], true, "{view}");
    eventually("every terminal entry committed", || raft(&mut nodes[li])["backlog"] == 0);
    let l = ledger_quiescent(&mut nodes[li]);
    let n = |k: &str| l[k].as_u64().unwrap();
    assert_eq!(n("accepted"), 2000, "{l}");
    assert_eq!(n("completed") + n("failed") + n("dead_lettered"), 2000, "exactly one terminal entry each: {l}");
    assert_replicas_identical(&mut nodes);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The leader loses its majority (both followers SIGSTOPped) for longer than
/// `raft.client_timeout_ms` while its clients submit without retrying. A client is told
/// "refused" only for tasks that never enter the ledger; a task whose commit was not
/// confirmed is *indeterminate*, and after the heal every one of those that committed is
/// driven to exactly one terminal entry by its owner: the ledger's `open` returns to 0.
#[test]
fn unconfirmed_submits_are_indeterminate_and_all_finish_after_the_heal() {
    let names = ["q1", "q2", "q3"];
    let mut nodes = raft_cluster(&names, |_| vec![]);
    let leader = leader_seen_by(&mut nodes[0], None);
    let li = index_of(&names, &leader);
    let followers: Vec<usize> = (0..names.len()).filter(|i| *i != li).collect();
    // `run <tasks> <caps> <concurrency> <seed> <retry_ms>`: no client retry.
    nodes[li].send("run 600 compute 32 7 0");
    loop {
        let line = nodes[li].expect("PROGRESS");
        if line.trim_start_matches("PROGRESS").trim().parse::<u64>().unwrap() >= 100 {
            break;
        }
    }
    for &f in &followers {
        nodes[f].signal("-STOP");
    }
    // The fault's length (the schedule, not a synchronisation): longer than the 2 s
    // client timeout.
    std::thread::sleep(Duration::from_secs(4));
    for &f in &followers {
        nodes[f].signal("-CONT");
    }
    let r = loop {
        let line = nodes[li].expect("");
        if let Some(r) = line.strip_prefix("RESULT ") {
            break serde_json::from_str::<serde_json::Value>(r).unwrap();
        }
    };
    let listed =
        |k: &str| -> Vec<String> { r[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect() };
    let (refused, indeterminate) = (listed("refused_ids"), listed("indeterminate_ids"));
    eprintln!("acknowledged {} refused {} indeterminate {}", r["submitted"], refused.len(), indeterminate.len());
    assert!(!refused.is_empty() || !indeterminate.is_empty(), "the fault made some submits fail: {r}");
    let l = ledger_quiescent(&mut nodes[li]);
    for id in &refused {
        let entry = task_state(&mut nodes[li], id);
        assert_eq!(entry["state"], "unknown", "a task reported refused entered the ledger: {id} {entry}");
    }
    let mut finished = BTreeSet::new();
    for id in &indeterminate {
        let entry = task_state(&mut nodes[li], id);
        assert!(entry["state"] == "finished" || entry["state"] == "unknown", "{id}: {entry}");
        if entry["state"] == "finished" {
            finished.insert(id.clone());
        }
    }
    let n = |k: &str| l[k].as_u64().unwrap();
    assert_eq!(n("completed") + n("failed") + n("dead_lettered"), n("accepted"), "{l}");
    // `submitted`: the tasks the clients saw acknowledged.
    assert_eq!(
        n("accepted"),
        r["submitted"].as_u64().unwrap() + finished.len() as u64,
        "the ledger took each acknowledged task and each indeterminate one that committed, once: {l} {r}"
    );
}

/// A node that was never restarted runs a workload from the moment it starts: its
/// reconciliation of open ledger entries never claims a task that a live submit holds,
/// so nothing is adopted and no client is told "already submitted".
#[test]
fn reconciliation_never_claims_a_live_submit() {
    let names = ["r1", "r2", "r3"];
    let voters = raft_args(&names);
    let mut first = Node::start("r1", None, &args(&voters));
    let seed = first.listen.clone();
    let _second = Node::start("r2", Some(&seed), &args(&voters));
    // The third node starts and submits at once, while it learns the leader.
    let mut third = Node::start("r3", Some(&seed), &args(&voters));
    third.ask("wait-agents 3 20000", "OK");
    let r = run_tasks(&mut third, 3000, |_| {});
    assert_eq!(r["refused"], 0, "{r}");
    assert_eq!(r["indeterminate"], 0, "{r}");
    assert_no_loss(&r, 3000);
    let view = raft(&mut third);
    assert_eq!(view["adopted"], 0, "a live node claimed its own live tasks: {view}");
    ledger_quiescent(&mut first);
}

/// A follower is paused (SIGSTOP) past the election timeout and resumed, and another is
/// SIGKILLed and restarted on its redb file: neither campaigns against the healthy
/// leader (pre-vote), so the leader and its term stay as they were.
#[test]
fn paused_or_restarted_followers_do_not_unseat_a_healthy_leader() {
    let dir = scratch_dir("prevote");
    let path = |n: &str| dir.join(format!("{n}.redb")).to_string_lossy().into_owned();
    let names = ["v1", "v2", "v3"];
    let mut nodes = raft_cluster(&names, |n| vec!["--raft-path".into(), path(n)]);
    let leader = leader_seen_by(&mut nodes[0], None);
    let li = index_of(&names, &leader);
    let term = raft(&mut nodes[li])["term"].as_u64().unwrap();
    let (a, b) = ((li + 1) % 3, (li + 2) % 3);
    for _ in 0..3 {
        nodes[a].signal("-STOP");
        std::thread::sleep(Duration::from_millis(1_500));
        nodes[a].signal("-CONT");
        eventually("the resumed follower follows the leader", || {
            raft(&mut nodes[a])["leader"].as_str() == Some(leader.as_str())
        });
    }
    for _ in 0..2 {
        nodes[b].kill();
        let seed = nodes[li].listen.clone();
        let mut a = raft_args(&names);
        a.extend(["--raft-path".into(), path(names[b])]);
        nodes[b] = Node::start(names[b], Some(&seed), &args(&a));
        eventually("the restarted follower follows the leader", || {
            raft(&mut nodes[b])["leader"].as_str() == Some(leader.as_str())
        });
    }
    let view = raft(&mut nodes[li]);
    assert_eq!(view["state"], "Leader", "{view}");
    assert_eq!(view["term"].as_u64().unwrap(), term, "no election: {view}");
    let r = run_tasks(&mut nodes[li], 300, |_| {});
    assert_no_loss(&r, 300);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A follower dies and stays down while the leader serves: the leader's log says so a
/// few times (one line per peer per interval, with a count), not once per failed RPC.
#[test]
fn an_unreachable_peer_is_logged_once_per_interval_not_per_rpc() {
    let dir = scratch_dir("logs");
    let names = ["w1", "w2", "w3"];
    let voters = raft_args(&names);
    let logs: Vec<std::path::PathBuf> = names.iter().map(|n| dir.join(format!("{n}.log"))).collect();
    let mut nodes = vec![Node::start_logging("w1", None, &args(&voters), Some(&logs[0]))];
    let seed = nodes[0].listen.clone();
    for (i, n) in names.iter().enumerate().skip(1) {
        nodes.push(Node::start_logging(n, Some(&seed), &args(&voters), Some(&logs[i])));
    }
    for node in nodes.iter_mut() {
        node.ask("wait-agents 9 20000", "OK");
    }
    let leader = leader_seen_by(&mut nodes[0], None);
    let li = index_of(&names, &leader);
    let victim = (li + 1) % 3;
    let victim_name = names[victim];
    nodes[victim].kill();
    let before = std::fs::read_to_string(&logs[li]).unwrap().lines().count();
    // Keep the leader replicating for a while with one peer gone.
    for _ in 0..4 {
        let r = run_tasks(&mut nodes[li], 500, |_| {});
        assert_no_loss(&r, 500);
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = std::fs::read_to_string(&logs[li]).unwrap();
    let about_victim: Vec<&str> = log
        .lines()
        .skip(before)
        .filter(|l| l.contains(victim_name) || l.to_lowercase().contains("unreachable"))
        .collect();
    assert!(
        about_victim.len() <= 12,
        "{} lines about the unreachable peer, e.g.:\n{}",
        about_victim.len(),
        about_victim.iter().take(10).copied().collect::<Vec<_>>().join("\n")
    );
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A measurement, not a check (`--ignored`; see `docs/benchmarks.md`): five voters on
/// redb, one of them submitting batches of 5 000 tasks (`FLOW_CHURN_CLIENTS` concurrent
/// clients, default 64) for `FLOW_CHURN_SECS` (default 60) while a seeded nemesis faults
/// a follower that is neither the leader nor the submitter every 3 s (2 s of fault, 1 s
/// of watching), in turn: SIGSTOP, SIGKILL and restart on its redb file, cut off with
/// `block`. Prints one JSON line: terms gained, leaderships seen (a (term, leader) pair
/// seen by a follower; 1 means no election), elections started after a granted pre-vote,
/// throughput, client outcomes and the most ERROR/WARN log lines of any node.
/// `FLOW_BIN` measures another build; `FLOW_PRE_VOTE=0` turns pre-vote off;
/// `FLOW_CHURN_NO_FAULTS=1` runs the same workload without faults (the baseline).
#[test]
#[ignore]
fn churn_under_a_nemesis_schedule() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let secs: u64 = std::env::var("FLOW_CHURN_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let pre_vote = std::env::var("FLOW_PRE_VOTE").map(|v| v != "0").unwrap_or(true);
    let clients: u64 = std::env::var("FLOW_CHURN_CLIENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let dir = scratch_dir("churn");
    let config = dir.join("flow.toml");
    std::fs::write(&config, "[raft]\npre_vote = false\n").unwrap();
    let names = ["n1", "n2", "n3", "n4", "n5"];
    let path = |n: &str| dir.join(format!("{n}.redb")).to_string_lossy().into_owned();
    let log = |n: &str| dir.join(format!("{n}.log"));
    let node_args = |n: &str| {
        let mut a = raft_args(&names);
        a.extend(["--raft-path".into(), path(n), "--agent-restarts".into(), "1000".into()]);
        if !pre_vote {
            a.extend(["--config".into(), config.to_string_lossy().into_owned()]);
        }
        a
    };
    let first = Node::start_logging(names[0], None, &args(&node_args(names[0])), Some(&log(names[0])));
    let seed = first.listen.clone();
    let nodes: Vec<Arc<Mutex<Node>>> = std::iter::once(first)
        .chain(names[1..].iter().map(|n| Node::start_logging(n, Some(&seed), &args(&node_args(n)), Some(&log(n)))))
        .map(|n| Arc::new(Mutex::new(n)))
        .collect();
    for n in &nodes {
        n.lock().unwrap().ask("wait-agents 15 20000", "OK");
    }
    leader_seen_by(&mut nodes[1].lock().unwrap(), None);
    let stop = Arc::new(AtomicBool::new(false));
    let (completed, refused, indeterminate) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let submitter = {
        let (node, stop, completed, refused, indeterminate) =
            (nodes[0].clone(), stop.clone(), completed.clone(), refused.clone(), indeterminate.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut node = node.lock().unwrap();
                node.send(&format!("run 5000 compute {clients} 7"));
                let r: serde_json::Value = loop {
                    if let Some(r) = node.expect("").strip_prefix("RESULT ") {
                        break serde_json::from_str(r).unwrap();
                    }
                };
                completed.fetch_add(r["completed"].as_u64().unwrap(), Ordering::Relaxed);
                refused.fetch_add(r["refused"].as_u64().unwrap_or(0), Ordering::Relaxed);
                indeterminate.fetch_add(r["indeterminate"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        })
    };
    let started = Instant::now();
    let view = |i: usize| -> Option<(u64, Option<String>)> {
        let v = raft(&mut nodes[i].lock().unwrap());
        Some((v["term"].as_u64()?, v["leader"].as_str().map(str::to_string)))
    };
    let mut seen: Vec<(u64, Option<String>)> = Vec::new();
    let observe = |i: usize, seen: &mut Vec<(u64, Option<String>)>| {
        if let Some(v) = view(i)
            && v.1.is_some()
            && seen.last() != Some(&v)
        {
            seen.push(v);
        }
    };
    let mut faults = 0u64;
    let mut rng = 7u64;
    let quiet = std::env::var_os("FLOW_CHURN_NO_FAULTS").is_some();
    while started.elapsed() < Duration::from_secs(secs) {
        // A follower that is neither the leader (as a follower sees it now) nor the submitter.
        observe(1, &mut seen);
        observe(2, &mut seen);
        let leader = seen.last().and_then(|v| v.1.clone());
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let candidates: Vec<usize> = (1..names.len()).filter(|i| Some(names[*i]) != leader.as_deref()).collect();
        let victim = candidates[(rng >> 33) as usize % candidates.len()];
        let watcher = (1..names.len()).find(|i| *i != victim).unwrap();
        match faults % 3 {
            _ if quiet => std::thread::sleep(Duration::from_secs(2)),
            0 => {
                nodes[victim].lock().unwrap().signal("-STOP");
                std::thread::sleep(Duration::from_secs(2));
                nodes[victim].lock().unwrap().signal("-CONT");
            }
            1 => {
                let mut n = nodes[victim].lock().unwrap();
                n.kill();
                *n = Node::start_logging(
                    names[victim],
                    Some(&seed),
                    &args(&node_args(names[victim])),
                    Some(&log(names[victim])),
                );
            }
            _ => {
                let others: Vec<&str> = names.iter().copied().filter(|n| *n != names[victim]).collect();
                nodes[victim].lock().unwrap().ask(&format!("block {}", others.join(" ")), "OK");
                for (i, n) in nodes.iter().enumerate().skip(1) {
                    if i != victim {
                        n.lock().unwrap().ask(&format!("block {}", names[victim]), "OK");
                    }
                }
                std::thread::sleep(Duration::from_secs(2));
                nodes[victim].lock().unwrap().ask(&format!("unblock {}", others.join(" ")), "OK");
                for (i, n) in nodes.iter().enumerate().skip(1) {
                    if i != victim {
                        n.lock().unwrap().ask(&format!("unblock {}", names[victim]), "OK");
                    }
                }
            }
        }
        faults += u64::from(!quiet);
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            observe(watcher, &mut seen);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    stop.store(true, Ordering::Relaxed);
    submitter.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    observe(1, &mut seen);
    let lines = |level: &str| {
        names
            .iter()
            .map(|n| std::fs::read_to_string(log(n)).unwrap_or_default().lines().filter(|l| l.contains(level)).count())
            .max()
            .unwrap()
    };
    let terms: Vec<u64> = seen.iter().map(|v| v.0).collect();
    // Elections started and pre-votes refused (builds with pre-vote report them).
    let count = |k: &str| -> u64 { nodes.iter().map(|n| raft(&mut n.lock().unwrap())[k].as_u64().unwrap_or(0)).sum() };
    let (elections, refused_pre_votes) = (count("elections_started"), count("pre_votes_refused"));
    let report = serde_json::json!({
        "binary": std::env::var("FLOW_BIN").unwrap_or_else(|_| "this build".into()),
        "pre_vote": pre_vote,
        "clients": clients,
        "secs": elapsed,
        "faults": faults,
        "term_first": terms.first(),
        "term_last": terms.last(),
        "term_gain": terms.last().zip(terms.first()).map(|(l, f)| l - f),
        "leaderships_seen": seen.len(),
        "elections_started": elections,
        "pre_votes_refused": refused_pre_votes,
        "completed": completed.load(Ordering::Relaxed),
        "throughput_per_s": completed.load(Ordering::Relaxed) as f64 / elapsed,
        "refused": refused.load(Ordering::Relaxed),
        "indeterminate": indeterminate.load(Ordering::Relaxed),
        "max_error_lines_per_node": lines("ERROR"),
        "max_warn_lines_per_node": lines("WARN"),
    });
    println!("CHURN {report}");
    drop(nodes);
    if std::env::var_os("FLOW_CHURN_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("logs in {}", dir.display());
    }
}
