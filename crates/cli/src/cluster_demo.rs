//! `flow demo --nodes N`: a real multi-process cluster on 127.0.0.1.
//!
//! Starts N `flow node --control` processes (the same binary), node-1 first and the others
//! joining it; spawns agents on each; has node-1 route the tasks to agents anywhere in the
//! cluster; SIGKILLs a victim mid-run; then prints node-1's report (`lost` from its ledger),
//! per-node completion counts and the membership node-1 sees afterwards.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::demo::DemoArgs;

struct NodeProc {
    name: String,
    listen: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl NodeProc {
    fn start(
        exe: &std::path::Path,
        name: &str,
        join: Option<&str>,
        agent_restarts: u32,
        verbose: bool,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(["node", "--name", name, "--listen", "127.0.0.1:0", "--control"]);
        cmd.args(["--agent-restarts", &agent_restarts.to_string()]);
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        cmd.env("RUST_BACKTRACE", "0").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(if verbose {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().with_context(|| format!("cannot start node {name}"))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = NodeProc { name: name.to_string(), listen: String::new(), child, stdin, lines };
        let ready = node.expect("READY", Duration::from_secs(30))?;
        let v: serde_json::Value = serde_json::from_str(ready.trim_start_matches("READY").trim())?;
        node.listen = v["listen"].as_str().context("listen address")?.to_string();
        Ok(node)
    }

    fn send(&mut self, command: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{command}").with_context(|| format!("node {} is gone", self.name))?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The next line starting with `prefix` (other lines are skipped), or an error.
    fn expect(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("node {} did not answer {prefix} in {timeout:?}", self.name))?;
            if line.starts_with("ERR") {
                bail!("node {}: {line}", self.name);
            }
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }

    fn ask(&mut self, command: &str, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        self.send(command)?;
        self.expect(prefix, timeout)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let mut procs: Vec<NodeProc> = Vec::new();
    procs.push(NodeProc::start(&exe, &names[0], None, restarts, args.verbose)?);
    let seed_addr = procs[0].listen.clone();
    for name in &names[1..] {
        procs.push(NodeProc::start(&exe, name, Some(&seed_addr), restarts, args.verbose)?);
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
