//! `flow demo --nodes N`: a real multi-process cluster on 127.0.0.1.
//!
//! Starts N `flow node --control` processes (the same binary), node-1 first and the others
//! joining it, all Raft voters of the replicated task ledger (unless `--no-raft`); spawns
//! agents on each; has node-1 route the tasks to agents anywhere in the cluster (each task
//! acknowledged once its `Submit` entry commits; node-2 submits instead when `--kill
//! leader` picks node-1); SIGKILLs a victim mid-run; then prints the submitter's report,
//! the replicated ledger's counts once every task has its terminal entry (`lost` counts
//! acknowledged tasks without one), the new leader and the failover time, per-node
//! completion counts and the membership the submitter sees afterwards.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::demo::DemoArgs;
use crate::node_proc::NodeProc;

#[derive(Debug, Serialize)]
struct ClusterDemoReport {
    #[serde(flatten)]
    run: serde_json::Value,
    nodes: usize,
    killed: Option<String>,
    agents: usize,
    strategy: String,
    membership_after: serde_json::Value,
    /// Whether the task ledger was replicated through Raft.
    raft: bool,
    /// The Raft leader before the kill.
    leader_before: Option<String>,
    /// The Raft leader after the run (the new one if the old one was killed).
    leader_after: Option<String>,
    /// Milliseconds from the SIGKILL of the leader to a survivor seeing a new leader.
    failover_ms: Option<u64>,
    /// The replicated ledger after quiescence (read linearizably on the submitter).
    ledger: Option<serde_json::Value>,
    /// Whether every survivor's state machine has the same digest at the same index.
    replicas_agree: Option<bool>,
}

pub(crate) fn run(args: &DemoArgs, nodes: usize) -> anyhow::Result<ExitCode> {
    if !(2..=16).contains(&nodes) {
        bail!("--nodes must be between 2 and 16");
    }
    let exe = std::env::current_exe().context("cannot locate the flow binary")?;
    let per_node = args.agents.div_ceil(nodes).max(1);
    let tasks = if args.tasks == 100_000 { 20_000 } else { args.tasks };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(args.seed);
    let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
    let raft = !args.no_raft;
    if args.kill.as_deref() == Some("leader") && !raft {
        bail!("--kill leader needs the Raft ledger (drop --no-raft)");
    }
    let mut victim = match args.kill.as_deref() {
        None | Some("default") => Some(names[nodes - 1].clone()),
        Some("none") => None,
        Some("leader") => None, // chosen once a leader is elected
        Some("random") => Some(names[rng.random_range(1..nodes)].clone()),
        Some(n) if names.iter().any(|x| x == n) && n != names[0] => Some(n.to_string()),
        Some(n) => {
            bail!(
                "--kill {n}: expected none, random, leader or a node name other than node-1 ({})",
                names[1..].join(", ")
            )
        }
    };

    // Crashes are injected on purpose: size each node's agent restart intensity for them,
    // as the single-node demo does.
    let restarts = ((tasks as f64 * args.crash_rate * 1.5) as u32).saturating_add(100);
    // Each task sleeps this long on its agent, so the run lasts long enough to kill a node
    // in the middle of it.
    let work_us = if args.work_us == 0 { 5_000 } else { args.work_us };
    let mut restart_args = vec!["--agent-restarts".to_string(), restarts.to_string()];
    if raft {
        restart_args.extend(["--raft-voters".to_string(), names.join(",")]);
    }
    let mut procs: Vec<NodeProc> = Vec::new();
    procs.push(NodeProc::start(&exe, &names[0], None, &restart_args, args.verbose)?);
    let seed_addr = procs[0].listen.clone();
    for name in &names[1..] {
        procs.push(NodeProc::start(&exe, name, Some(&seed_addr), &restart_args, args.verbose)?);
    }
    for p in procs.iter_mut() {
        let cmd = format!("spawn {per_node} {}-agent compute - {} {work_us}", p.name, args.crash_rate);
        p.ask(&cmd, "OK", Duration::from_secs(30))?;
    }
    let total_agents = per_node * nodes;
    procs[0].ask(&format!("wait-agents {total_agents} 20000"), "OK", Duration::from_secs(25))?;
    let mut leader_before = None;
    // The node that routes the tasks and reports (node-1 unless node-1 is the victim).
    let mut submitter = 0;
    if raft {
        let leader = wait_leader(&mut procs[0], None, Duration::from_secs(20))?;
        if args.kill.as_deref() == Some("leader") && leader == names[0] {
            // The submitter must survive to report: node-2 submits instead. (openraft 0.9
            // has no leadership transfer, and a campaign against a live leader fails: its
            // followers refuse to vote while they hear its heartbeats.)
            submitter = 1;
            procs[1].ask(&format!("wait-agents {total_agents} 20000"), "OK", Duration::from_secs(25))?;
        }
        if args.kill.as_deref() == Some("leader") {
            victim = Some(leader.clone());
        }
        if !args.json {
            eprintln!("Raft leader: {leader}");
        }
        leader_before = Some(leader);
    }
    if !args.json {
        eprintln!("{nodes} nodes up, {total_agents} agents visible; routing {tasks} tasks from {}", names[submitter]);
    }
    procs[submitter].send(&format!("run {tasks} compute 256 {}", args.seed))?;

    let mut killed = None;
    let mut killed_at: Option<Instant> = None;
    let mut failover_ms = None;
    let mut leader_after = leader_before.clone();
    let result = loop {
        let line = procs[submitter].expect("", Duration::from_secs(300))?;
        if let (Some(at), Some(v), None) = (killed_at, killed.as_ref(), failover_ms)
            && leader_before.as_ref() == Some(v)
        {
            // Watch for the new leader from a survivor that is not busy routing.
            let observer = procs.iter().position(|p| &p.name != v && p.name != names[submitter]).unwrap_or(0);
            if let Ok(l) = wait_leader(&mut procs[observer], Some(v), Duration::ZERO) {
                failover_ms = Some(at.elapsed().as_millis() as u64);
                leader_after = Some(l);
            }
        }
        if let Some(done) = line.strip_prefix("PROGRESS ") {
            let done: u64 = done.trim().parse().unwrap_or(0);
            if let Some(v) = &victim
                && killed.is_none()
                && done >= tasks * 3 / 10
            {
                let p = procs.iter_mut().find(|p| &p.name == v).expect("victim is a node");
                p.child.kill().context("SIGKILL")?;
                killed_at = Some(Instant::now());
                killed = Some(v.clone());
                if !args.json {
                    eprintln!("SIGKILL {v} after {done} tasks");
                }
            }
            continue;
        }
        if let Some(json) = line.strip_prefix("RESULT ") {
            break serde_json::from_str::<serde_json::Value>(json)?;
        }
    };
    // Failover: measured from the kill to the first answer of a survivor other than node-1
    // (busy routing) naming another leader, polled with every progress line (20 ms), so
    // it is an upper bound. Finished here if the run ended first.
    let mut ledger = None;
    let mut replicas_agree = None;
    if raft {
        if let (Some(at), Some(v), None) = (killed_at, killed.as_ref(), failover_ms)
            && leader_before.as_ref() == Some(v)
        {
            let observer = procs.iter().position(|p| &p.name != v && p.name != names[submitter]).unwrap_or(0);
            let new = wait_leader(&mut procs[observer], Some(v), Duration::from_secs(20))?;
            failover_ms = Some(at.elapsed().as_millis() as u64);
            leader_after = Some(new);
        }
        // Quiescence: every acknowledged task has its terminal entry once node-1's backlog
        // of terminal entries has committed.
        let deadline = Instant::now() + Duration::from_secs(60);
        let l = loop {
            let line = procs[submitter].ask("ledger", "LEDGER", Duration::from_secs(10));
            if let Ok(line) = line {
                let l: serde_json::Value = serde_json::from_str(line.trim_start_matches("LEDGER").trim())?;
                if l["open"].as_u64() == Some(0) || Instant::now() >= deadline {
                    break l;
                }
            } else if Instant::now() >= deadline {
                bail!("the replicated ledger did not answer");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        leader_after =
            wait_leader(&mut procs[submitter], killed.as_deref(), Duration::from_secs(10)).ok().or(leader_after);
        replicas_agree = Some(replicas_converge(&mut procs, killed.as_deref(), Duration::from_secs(20))?);
        ledger = Some(l);
    }
    let status = procs[submitter].ask("status", "STATUS", Duration::from_secs(10))?;
    let status: serde_json::Value = serde_json::from_str(status.trim_start_matches("STATUS").trim())?;
    let mut run = result.clone();
    if let Some(l) = &ledger {
        // With Raft, `lost` is what the replicated ledger says: acknowledged tasks still
        // without a terminal entry after quiescence, plus what node-1 itself counted.
        let open = l["open"].as_u64().unwrap_or(u64::MAX);
        run["lost"] = serde_json::json!(result["lost"].as_u64().unwrap_or(0).saturating_add(open));
    }
    let report = ClusterDemoReport {
        run,
        nodes,
        killed: killed.clone(),
        agents: total_agents,
        strategy: "round_robin".into(),
        membership_after: status["peers"].clone(),
        raft,
        leader_before,
        leader_after,
        failover_ms,
        ledger,
        replicas_agree,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &report.run);
    }
    drop(procs);
    let lost = report.run["lost"].as_u64().unwrap_or(u64::MAX);
    Ok(if lost == 0 && report.replicas_agree != Some(false) {
        ExitCode::SUCCESS
    } else {
        eprintln!("LOST {lost} TASKS");
        ExitCode::from(1)
    })
}

fn print_table(report: &ClusterDemoReport, r: &serde_json::Value) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    println!("erlmcp-flow cluster demo");
    println!("{}", "─".repeat(60));
    println!("nodes / agents                   {} / {}", report.nodes, report.agents);
    println!("killed                           {}", report.killed.as_deref().unwrap_or("none"));
    println!("{:<33}{}", format!("accepted (on {})", r["node"].as_str().unwrap_or("?")), n("accepted"));
    println!("  completed                      {}", n("completed"));
    println!("  failed                         {}", n("failed"));
    println!("  dead-lettered                  {}", n("dead_lettered"));
    println!("  LOST                           {}", n("lost"));
    println!("redeliveries (node or agent lost){:>7}", n("redeliveries"));
    println!("retries                          {}", n("retries"));
    println!("elapsed                          {:.2} s", n("elapsed_ms") as f64 / 1000.0);
    println!("throughput                       {:.0} tasks/s", r["throughput_per_s"].as_f64().unwrap_or(0.0));
    println!("latency p50 / p99                {} / {} µs", n("p50_us"), n("p99_us"));
    println!("{}", "─".repeat(60));
    println!("completed per node (where the agent ran):");
    if let Some(per) = r["per_node"].as_object() {
        for (node, c) in per {
            println!("  {node:<12} {c}");
        }
    }
    if report.raft {
        println!(
            "raft leader before / after       {} / {}",
            report.leader_before.as_deref().unwrap_or("?"),
            report.leader_after.as_deref().unwrap_or("?")
        );
        if let Some(ms) = report.failover_ms {
            println!("leader failover                  {ms} ms");
        }
        if let Some(l) = &report.ledger {
            let n = |k: &str| l[k].as_u64().unwrap_or(0);
            println!(
                "replicated ledger                accepted {} completed {} failed {} dead-lettered {} open {}",
                n("accepted"),
                n("completed"),
                n("failed"),
                n("dead_lettered"),
                n("open")
            );
        }
        println!("survivors' state machines agree  {}", report.replicas_agree.unwrap_or(false));
    }
    println!("membership seen by {} afterwards:", r["node"].as_str().unwrap_or("?"));
    if let Some(peers) = report.membership_after.as_array() {
        for p in peers {
            println!(
                "  {:<12} reachable {:<5} phi {:>6.2} agents {}",
                p["node"].as_str().unwrap_or("?"),
                p["reachable"].as_bool().unwrap_or(false),
                p["phi"].as_f64().unwrap_or(0.0),
                p["agents"].as_u64().unwrap_or(0)
            );
        }
    }
}

/// Polls `p`'s Raft status until it names a leader other than `not`.
fn wait_leader(p: &mut NodeProc, not: Option<&str>, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let line = p.ask("raft", "RAFT", Duration::from_secs(5))?;
        let v: serde_json::Value = serde_json::from_str(line.trim_start_matches("RAFT").trim())?;
        if let Some(l) = v["leader"].as_str()
            && Some(l) != not
        {
            return Ok(l.to_string());
        }
        if Instant::now() >= deadline {
            bail!("no Raft leader (other than {not:?}) seen by {} within {timeout:?}", p.name);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until every live node has applied the same log index, then compares their state
/// machine digests. False if they never line up or differ.
pub(crate) fn replicas_converge(procs: &mut [NodeProc], dead: Option<&str>, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut seen = Vec::new();
        for p in procs.iter_mut().filter(|p| Some(p.name.as_str()) != dead) {
            let line = p.ask("raft", "RAFT", Duration::from_secs(5))?;
            let v: serde_json::Value = serde_json::from_str(line.trim_start_matches("RAFT").trim())?;
            seen.push((v["last_applied"].as_u64(), v["digest"].as_u64()));
        }
        if seen.windows(2).all(|w| w[0].0 == w[1].0) {
            return Ok(seen.windows(2).all(|w| w[0].1 == w[1].1));
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
