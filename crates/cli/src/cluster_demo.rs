//! `flow demo --nodes N`: a real multi-process cluster on 127.0.0.1.
//!
//! Starts N `flow node --control` processes (the same binary), node-1 first and the others
//! joining it; spawns agents on each; has node-1 route the tasks to agents anywhere in the
//! cluster; SIGKILLs a victim mid-run; then prints node-1's report (`lost` from its ledger),
//! per-node completion counts and the membership node-1 sees afterwards.

use std::process::ExitCode;
use std::time::Duration;

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
    let victim = match args.kill.as_deref() {
        None | Some("default") => Some(names[nodes - 1].clone()),
        Some("none") => None,
        Some("random") => Some(names[rng.random_range(1..nodes)].clone()),
        Some(n) if names.iter().any(|x| x == n) && n != names[0] => Some(n.to_string()),
        Some(n) => {
            bail!("--kill {n}: expected none, random or a node name other than node-1 ({})", names[1..].join(", "))
        }
    };

    // Crashes are injected on purpose: size each node's agent restart intensity for them,
    // as the single-node demo does.
    let restarts = ((tasks as f64 * args.crash_rate * 1.5) as u32).saturating_add(100);
    // Each task sleeps this long on its agent, so the run lasts long enough to kill a node
    // in the middle of it.
    let work_us = if args.work_us == 0 { 5_000 } else { args.work_us };
    let restart_args = ["--agent-restarts".to_string(), restarts.to_string()];
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
    if !args.json {
        eprintln!("{nodes} nodes up, {total_agents} agents visible from node-1; routing {tasks} tasks from node-1");
    }
    procs[0].send(&format!("run {tasks} compute 256 {}", args.seed))?;

    let mut killed = None;
    let result = loop {
        let line = procs[0].expect("", Duration::from_secs(300))?;
        if let Some(done) = line.strip_prefix("PROGRESS ") {
            let done: u64 = done.trim().parse().unwrap_or(0);
            if let Some(v) = &victim
                && killed.is_none()
                && done >= tasks * 3 / 10
            {
                let p = procs.iter_mut().find(|p| &p.name == v).expect("victim is a node");
                p.child.kill().context("SIGKILL")?;
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
    let status = procs[0].ask("status", "STATUS", Duration::from_secs(10))?;
    let status: serde_json::Value = serde_json::from_str(status.trim_start_matches("STATUS").trim())?;
    let report = ClusterDemoReport {
        run: result.clone(),
        nodes,
        killed: killed.clone(),
        agents: total_agents,
        strategy: "round_robin".into(),
        membership_after: status["peers"].clone(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &result);
    }
    drop(procs);
    let lost = result["lost"].as_u64().unwrap_or(u64::MAX);
    Ok(if lost == 0 {
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
    println!("accepted (on node-1)             {}", n("accepted"));
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
    println!("membership seen by node-1 afterwards:");
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
