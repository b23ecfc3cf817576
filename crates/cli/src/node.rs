//! `flow node`: run one cluster node, optionally driven by commands on stdin.
//!
//! On start it prints `READY {"node":..,"listen":..,"mcp":..,"http":..}` (`http`: the bound `--http-listen` address) on stdout. With `--control` it then
//! reads one command per line and answers with one line each. Queries (`status`, `raft`,
//! `ledger`, `task`, `leader`, `byz-stats`) are answered at once, even while an action
//! (say a `run`) is in progress; actions run in order, one at a time. Every command
//! answers within a bound (15 s for queries, 2 min for actions, 1 h for `run` and
//! `raft-bench`) with `ERR …` if it runs out, and `quit` answers at once.
//!
//! | command | answer |
//! |---|---|
//! | `spawn <n> <prefix> <caps,…> <swarm or -> <crash_rate> <work_us>` | `OK spawned <n>` |
//! | `wait-agents <total> <timeout_ms>` | `OK agents <seen>` or `ERR …` |
//! | `run <tasks> <caps,…> <concurrency> <seed> [retry_ms]` | `PROGRESS <done>` lines every 20 ms, then `RESULT {json}` (clients retry a refused or indeterminate submit with the same id for `retry_ms`, default 30 000; `refused`/`indeterminate` count and list the rest) |
//! | `status` | `STATUS {json}` (membership, reachability, phi per peer) |
//! | `block <node>…` / `unblock <node>…` | `OK` (partition fault injection) |
//! | `leader <swarm>` | `LEADER <agent@node>` or `LEADER none` |
//! | `raft` | `RAFT {json}` (the status report's Raft view: role, term, leader, indexes, members, ledger counts, digest, `core_up`, `core_restarts`; plus `backlog`, `adopted`, `reclaimed`, `elections_started`, `pre_votes_refused`) |
//! | `task <id>` | `TASK {json}` (the task's ledger entry, read linearizably: `{"state":"open","owner":..}`, `{"state":"finished","kind":..}` or `{"state":"unknown"}`) |
//! | `raft-fault core` | `OK` (fault injection: the next Raft log write fails, so openraft's core quits on a fatal error and the node restarts it) |
//! | `raft-elect` | `OK` once this node has started an election |
//! | `raft-add <node>` / `raft-remove <node>` | `OK voters …` once the membership change committed (on any node: forwarded to the leader) |
//! | `raft-bench <commits> <concurrency>` | `RAFTBENCH {json}` (commit latency percentiles and throughput of KV puts) |
//! | `vote <round> <value>` | `VOTE {json}` (Byzantine round: proposed here if this node leads it; the decision or a time-out) |
//! | `byz-stats` | `BYZ {json}` (decided / timed-out rounds, rejections by reason, per-peer scores, blacklist) |
//! | `ledger` | `LEDGER {json}` (replicated ledger counts, read linearizably through the leader) |
//! | `kv-put <k> <v>` / `kv-get <k>` / `kv-del <k>` / `kv-cas <k> <expected or -> <new or ->` | `KV {json}` (`error` and `retryable` when not committed) |
//! | `crash <child>` | kills the child's actor; `OK restarted …` once the FlowSupervisor restarted it (`gateway`, `cluster`, `gossip`, `router`, …; `ERR unknown child …` lists the valid names) |
//! | `chaos-client …` / `chaos-stop <ms>` / `chaos-ledger <ids> <out>` | the workload clients of `flow chaos` (see `chaos/client.rs`) |
//! | `mcp` | `MCP {json}` (the MCP layer's counters and the tools it lists; `ERR` without one) |
//! | `quit` | `OK bye`, then the node shuts down |
//!
//! Without `--control` the node runs until SIGINT or SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use erlmcp_flow::core::{NodeName, TaskId};
use erlmcp_flow::prelude::*;
use erlmcp_flow::registry::splitmix64;
use erlmcp_flow::tree::Child;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::demo::DemoAgent;
use crate::report::RunCounts;

/// Arguments of `flow node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Config file (TOML); `[cluster] enabled` is forced on.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Node name (overrides `node.name`).
    #[arg(long)]
    pub name: Option<String>,
    /// Listen address (overrides `cluster.listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// A node to join (repeatable; adds to `cluster.seeds`).
    #[arg(long = "join")]
    pub join: Vec<String>,
    /// Cluster cookie (overrides `cluster.cookie`).
    #[arg(long)]
    pub cookie: Option<String>,
    /// Read commands on stdin (see the module docs).
    #[arg(long)]
    pub control: bool,
    /// Agent restarts tolerated per minute (overrides `supervision.agents.max_restarts`;
    /// raise it when agents are made to crash on purpose).
    #[arg(long)]
    pub agent_restarts: Option<u32>,
    /// Spawn this many demo agents at start (named `<node>-agent-NNN`; each echoes a
    /// digest of its payload after `--work-us`).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub agents: u64,
    /// Capabilities of the `--agents` agents, comma-separated.
    #[arg(long, default_value = "compute")]
    pub capabilities: String,
    /// Work per task of the `--agents` agents, µs (a sleep).
    #[arg(long, default_value_t = 0)]
    pub work_us: u64,
    /// Also start a bare echo actor (the raw ractor_cluster round trip that
    /// `flow bench cluster` compares routed tasks against).
    #[arg(long)]
    pub echo: bool,
    /// Replicate the task ledger through Raft with these voters (node names,
    /// comma-separated; overrides `raft.voters` and sets `raft.enabled`).
    #[arg(long, value_delimiter = ',')]
    pub raft_voters: Vec<String>,
    /// Keep the Raft log, vote and snapshots in this redb file (sets `raft.storage =
    /// "redb"`); without it they live in memory.
    #[arg(long)]
    pub raft_path: Option<PathBuf>,
    /// Run Byzantine quorum voting with this node's pairwise keys from this file (sets
    /// `byzantine.enabled` and `byzantine.keys_file`).
    #[arg(long)]
    pub byzantine_keys: Option<PathBuf>,
    /// Run Byzantine quorum voting among these members (comma-separated) with keys derived
    /// from `--insecure-byzantine-seed` (anyone with the seed can forge votes: tests only).
    #[arg(long, value_delimiter = ',', requires = "insecure_byzantine_seed")]
    pub byzantine_members: Vec<String>,
    /// See `--byzantine-members`.
    #[arg(long)]
    pub insecure_byzantine_seed: Option<u64>,
    /// Serve MCP (Streamable HTTP at `/mcp`) on this address (overrides `mcp.listen`).
    #[arg(long)]
    pub mcp_listen: Option<String>,
    /// Serve `/metrics`, `/healthz`, `/readyz`, `/status.json` and the dashboard at `/`
    /// on this address (`IP:PORT`, or a port for loopback; overrides `http.listen`).
    #[arg(long)]
    pub http_listen: Option<String>,
    /// Run an upstream MCP server as agents: `NAME=COMMAND [ARGS...]` (repeatable; adds to
    /// `[[mcp.upstream]]`, one replica of four lanes).
    #[arg(long)]
    pub mcp_upstream: Vec<String>,
}

/// What `run` reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunReport {
    pub(crate) node: String,
    #[serde(flatten)]
    pub(crate) run: RunCounts,
    /// Completed tasks by the node whose agent ran them.
    pub(crate) per_node: BTreeMap<String, u64>,
    /// Tasks the node refused (never accepted: not in the ledger), after the client's
    /// retries.
    pub(crate) refused: u64,
    /// Tasks whose submission may or may not have been accepted (a Raft commit not
    /// confirmed before its deadline): each ends in the ledger, terminal, or not at all.
    pub(crate) indeterminate: u64,
    /// Ids of the refused tasks (at most [`MAX_LISTED_IDS`]).
    pub(crate) refused_ids: Vec<String>,
    /// Ids of the indeterminate tasks (at most [`MAX_LISTED_IDS`]), to look up with `task <id>`.
    pub(crate) indeterminate_ids: Vec<String>,
}

/// Most task ids a run report lists per kind of client outcome.
pub(crate) const MAX_LISTED_IDS: usize = 10_000;

pub(crate) fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    erlmcp_flow::quiet_agent_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(node_main(args))
}

async fn node_main(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(p) => FlowConfig::from_file(p)?,
        None => FlowConfig::default(),
    };
    config.cluster.enabled = true;
    if let Some(n) = &args.name {
        config.node.name = n.clone();
    }
    if let Some(l) = &args.listen {
        config.cluster.listen = l.clone();
    }
    if let Some(c) = &args.cookie {
        config.cluster.cookie = c.clone();
    }
    config.cluster.seeds.extend(args.join.iter().cloned());
    if let Some(r) = args.agent_restarts {
        config.supervision.agents.max_restarts = r;
    }
    if !args.raft_voters.is_empty() {
        config.raft.enabled = true;
        config.raft.voters = args.raft_voters.clone();
    }
    if let Some(k) = &args.byzantine_keys {
        config.byzantine.enabled = true;
        config.byzantine.keys_file = Some(k.clone());
    }
    if let Some(seed) = args.insecure_byzantine_seed {
        config.byzantine.enabled = true;
        config.byzantine.insecure_test_keys_seed = Some(seed);
        config.byzantine.members = args.byzantine_members.clone();
    }
    if let Some(p) = &args.raft_path {
        config.raft.storage = "redb".into();
        config.raft.path = Some(p.clone());
    }
    crate::mcp_stdio::apply_node_flags(&mut config, args.mcp_listen.as_deref(), &args.mcp_upstream)?;
    if let Some(h) = &args.http_listen {
        config.http.listen = Some(h.clone());
    }
    config.validate()?;
    let node = FlowNode::start(config.clone()).await?;
    let out = Output::spawn();
    let listen = node.listen_addr().context("cluster listener")?;
    let mcp = crate::mcp_stdio::start_for_node(&node).await?.map(|(m, url)| (Arc::new(m), url));
    let http = match config.http.listen_addr()? {
        Some(addr) => {
            Some(crate::http::HttpServer::start(addr, node.clone(), mcp.as_ref().map(|(m, _)| m.clone())).await?)
        }
        None => None,
    };
    if args.agents > 0 {
        let name = config.node.name.clone();
        let spawn = format!("spawn {} {name}-agent {} - 0 {}", args.agents, args.capabilities, args.work_us);
        let words: Vec<&str> = spawn.split_whitespace().collect();
        command(&node, &name, &words, &Arc::new(AtomicU64::new(0)), &out).await?;
    }
    let echo = if args.echo { Some(erlmcp_flow::cluster::spawn_echo().await?) } else { None };
    let mcp_url = mcp.as_ref().and_then(|(_, url)| url.clone());
    let http_addr = http.as_ref().map(|h| h.addr.to_string());
    println!(
        "READY {}",
        serde_json::json!({ "node": config.node.name, "listen": listen.to_string(), "mcp": mcp_url, "http": http_addr })
    );

    if args.control {
        control_loop(&node, &config.node.name, &out, mcp.as_ref().map(|(m, _)| &**m)).await?;
    } else {
        wait_for_signal().await;
    }
    if let Some(h) = http {
        h.shutdown().await;
    }
    if let Some((m, _)) = &mcp {
        m.shutdown().await;
    }
    if let Some(e) = echo {
        e.stop(None);
    }
    node.shutdown(Duration::from_secs(2)).await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Commands answered at once, even while an action (a workload, say) is running: they
/// only read. Everything else is an action and runs in order, one at a time.
const QUERIES: [&str; 6] = ["status", "raft", "ledger", "task", "leader", "byz-stats"];

/// How long a query may take before it answers an error.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an action other than a workload may take before it answers an error.
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a workload (`run`, `raft-bench`) may take before it answers an error.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(3_600);
/// Actions waiting for their turn; a full queue makes the reader wait.
const ACTION_QUEUE: usize = 64;

/// What the output's writer task is asked to do.
enum OutputMsg {
    Line(Vec<u8>),
    /// Answer once every line sent before has been written and flushed.
    Sync(tokio::sync::oneshot::Sender<()>),
}

/// The control protocol's output: whole lines, from any task. One writer task owns
/// stdout and writes each line in one piece, so a task cancelled mid-answer (the progress
/// ticker of a finished `run`, a timed-out command) cannot leave half a line behind.
#[derive(Clone)]
pub(crate) struct Output(tokio::sync::mpsc::Sender<OutputMsg>);

impl Output {
    /// Starts the writer task.
    fn spawn() -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputMsg>(1024);
        tokio::spawn(async move {
            let mut out = tokio::io::stdout();
            while let Some(msg) = rx.recv().await {
                match msg {
                    OutputMsg::Line(bytes) => {
                        let _ = out.write_all(&bytes).await;
                        let _ = out.flush().await;
                    }
                    OutputMsg::Sync(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self(tx)
    }

    /// Queues one line (a newline is added).
    pub(crate) async fn line(&self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        let _ = self.0.send(OutputMsg::Line(bytes)).await;
    }

    /// Waits until every line queued so far is written.
    async fn sync(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.0.send(OutputMsg::Sync(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Runs one command within its bound and answers it (`ERR …` on failure or time-out).
async fn answer(node: &FlowNode, name: &str, line: &str, incarnations: &Arc<AtomicU64>, out: &Output) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let bound = match words.first().copied() {
        Some(q) if QUERIES.contains(&q) => QUERY_TIMEOUT,
        Some("run" | "raft-bench") => WORKLOAD_TIMEOUT,
        _ => ACTION_TIMEOUT,
    };
    let text = match tokio::time::timeout(bound, command(node, name, &words, incarnations, out)).await {
        Ok(Ok(Some(a))) => a,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => format!("ERR {e:#}"),
        Err(_) => format!("ERR {:?} not answered within {bound:?}", words.first().copied().unwrap_or("")),
    };
    out.line(&text).await;
}

/// Reads commands from stdin until `quit` or end of input. Queries are answered at once
/// (concurrently with a running action); actions run in order, one at a time; every
/// command answers within its bound, so the loop never hangs on a stuck subsystem.
async fn control_loop(
    node: &FlowNode,
    name: &str,
    out: &Output,
    mcp: Option<&erlmcp_flow_mcp::McpService>,
) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let out = out.clone();
    let incarnations = Arc::new(AtomicU64::new(0));
    let (actions, mut queue) = tokio::sync::mpsc::channel::<String>(ACTION_QUEUE);
    let runner = {
        let (node, name, out, incarnations) = (node.clone(), name.to_string(), out.clone(), incarnations.clone());
        tokio::spawn(async move {
            while let Some(line) = queue.recv().await {
                answer(&node, &name, &line, &incarnations, &out).await;
            }
        })
    };
    while let Some(line) = lines.next_line().await? {
        match line.split_whitespace().next() {
            // `mcp`: the MCP layer's counters and listed tools (read at once).
            Some("mcp") => {
                let text = match mcp {
                    Some(m) => format!("MCP {}", crate::mcp_stdio::report(m)),
                    None => "ERR no MCP layer on this node".into(),
                };
                out.line(&text).await;
            }
            Some("quit") => {
                runner.abort();
                out.line("OK bye").await;
                out.sync().await;
                return Ok(());
            }
            Some(q) if QUERIES.contains(&q) => {
                let (node, name, out, incarnations) =
                    (node.clone(), name.to_string(), out.clone(), incarnations.clone());
                tokio::spawn(async move { answer(&node, &name, &line, &incarnations, &out).await });
            }
            _ => {
                if actions.send(line).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(actions);
    let _ = runner.await;
    out.sync().await;
    Ok(())
}

async fn command(
    node: &FlowNode,
    name: &str,
    words: &[&str],
    incarnations: &Arc<AtomicU64>,
    out: &Output,
) -> anyhow::Result<Option<String>> {
    let num = |i: usize| -> anyhow::Result<u64> {
        words.get(i).context("missing argument")?.parse::<u64>().with_context(|| format!("argument {i}"))
    };
    let float = |i: usize| -> anyhow::Result<f64> {
        words.get(i).context("missing argument")?.parse::<f64>().with_context(|| format!("argument {i}"))
    };
    Ok(Some(match words.first().copied() {
        None => "ERR empty command".into(),
        Some("quit") => return Ok(None),
        Some("spawn") => {
            let n = num(1)?;
            let prefix = *words.get(2).context("missing prefix")?;
            let caps: Vec<&str> = words.get(3).context("missing capabilities")?.split(',').collect();
            let swarm = words.get(4).filter(|s| **s != "-").map(SwarmName::new).transpose()?;
            let crash_rate = float(5)?;
            let work = Duration::from_micros(num(6)?);
            for i in 0..n {
                let mut spec = AgentSpec::parse(&format!("{prefix}-{i:03}"), &caps)?;
                if let Some(s) = &swarm {
                    spec = spec.in_swarm(s.clone());
                }
                let inc = incarnations.clone();
                let seed = splitmix64(i ^ erlmcp_flow::registry::stable_hash(name.as_bytes()));
                node.spawn_agent(spec, move || DemoAgent {
                    rng: SmallRng::seed_from_u64(splitmix64(seed ^ inc.fetch_add(1, Ordering::Relaxed))),
                    crash_rate,
                    fail_rate: 0.0,
                    flaky: false,
                    work,
                })
                .await?;
            }
            format!("OK spawned {n}")
        }
        Some("wait-agents") => {
            let want = num(1)? as usize;
            let deadline = Instant::now() + Duration::from_millis(num(2)?);
            loop {
                let seen = node.registry().view().len();
                if seen >= want {
                    break format!("OK agents {seen}");
                }
                if Instant::now() >= deadline {
                    bail!("only {seen} of {want} agents visible");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Some("run") => {
            let tasks = num(1)?;
            let caps = CapabilitySet::parse(words.get(2).context("missing capabilities")?.split(','))?;
            let concurrency = num(3)?.max(1) as usize;
            let seed = num(4)?;
            // How long a client retries a refused submission (same task id); default 30 s.
            let retry = Duration::from_millis(if words.len() > 5 { num(5)? } else { 30_000 });
            let progress = node.clone();
            let base = node.stats().flow;
            let out = out.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let s = progress.stats().flow;
                    let done = (s.completed + s.failed + s.dead_lettered)
                        - (base.completed + base.failed + base.dead_lettered);
                    out.line(&format!("PROGRESS {done}")).await;
                }
            });
            let report = run_workload(node, name, tasks, caps, concurrency, seed, retry).await;
            ticker.abort();
            let _ = ticker.await;
            format!("RESULT {}", serde_json::to_string(&report?)?)
        }
        Some("status") => {
            let report = node.cluster_report().await.context("no cluster report")?;
            format!("STATUS {}", serde_json::to_string(&report)?)
        }
        Some(cmd @ ("block" | "unblock")) => {
            let peers = words[1..].iter().map(NodeName::new).collect::<Result<Vec<_>, _>>()?;
            if !node.partition(peers, cmd == "block").await {
                bail!("cluster actor unavailable");
            }
            "OK".into()
        }
        Some("crash") => {
            // Supervision fault injection: the child dies abnormally and its supervisor
            // restarts it. Answers with the child's actor id before and after.
            let child: Child = words.get(1).context("missing child name")?.parse()?;
            let before = node.child_actor(child).with_context(|| format!("no running child {child}"))?;
            if !node.kill_child(child) {
                bail!("cannot crash {child}");
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match node.child_actor(child) {
                    Some(now) if now != before => break format!("OK restarted {child} {before} -> {now}"),
                    _ if Instant::now() >= deadline => bail!("{child} not restarted within 10 s"),
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
        Some("raft") => {
            // The same view `flow status` shows, plus this node's writer backlog and adoptions.
            let report = node.raft_report().context("raft is not enabled on this node")?;
            let mut v = serde_json::to_value(report)?;
            v["backlog"] = node.ledger_backlog().into();
            v["adopted"] = node.adopted_tasks().into();
            v["reclaimed"] = node.reclaimed_tasks().into();
            if let Some(s) = node.raft_status() {
                v["elections_started"] = s.elections_started.into();
                v["pre_votes_refused"] = s.pre_votes_refused.into();
            }
            format!("RAFT {v}")
        }
        Some("raft-fault") => {
            // Fault injection: `raft-fault core` makes this node's next Raft log write fail,
            // so openraft's core quits on a fatal storage error (as a failing disk would).
            let c = node.consensus().context("raft is not enabled on this node")?;
            match words.get(1).copied() {
                Some("core") => c.inject_storage_fault(),
                other => bail!("unknown raft fault {other:?} (known: core)"),
            }
            "OK".into()
        }
        Some("task") => {
            // A task's entry in the replicated ledger, read linearizably: how a client learns
            // what became of a task whose submission was indeterminate.
            let id: TaskId = words.get(1).context("missing task id")?.parse().context("task id")?;
            let entry = node.task_entry(id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            format!("TASK {}", serde_json::to_string(&entry)?)
        }
        Some("raft-elect") => {
            // Campaign now. A campaign against a live leader fails (its followers refuse
            // to vote while they hear its heartbeats); useful once the leader is gone.
            let c = node.consensus().context("raft is not enabled on this node")?;
            c.raft().trigger().elect().await.map_err(|e| anyhow::anyhow!("elect: {e}"))?;
            "OK".into()
        }
        Some("ledger") => {
            // The replicated ledger's counts, read linearizably through the leader.
            let c = node.consensus().context("raft is not enabled on this node")?;
            let (counts, open, digest) = c
                .linearizable_read(|l| (l.counts(), l.open_len(), l.digest()))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            format!(
                "LEDGER {}",
                serde_json::json!({ "accepted": counts.accepted, "completed": counts.completed, "failed": counts.failed,
                                    "dead_lettered": counts.dead_lettered, "open": open, "digest": digest })
            )
        }
        Some(op @ ("kv-put" | "kv-get" | "kv-cas" | "kv-del")) => {
            let c = node.consensus().context("raft is not enabled on this node")?;
            let key = words.get(1).context("missing key")?.to_string();
            let opt = |i: usize| words.get(i).filter(|w| **w != "-").map(|w| w.to_string());
            let answer = match op {
                "kv-get" => {
                    let v = c.linearizable_read(move |l| l.kv_get(&key).map(str::to_string)).await;
                    v.map(|v| serde_json::json!({ "value": v }))
                }
                _ => {
                    let cmd = match op {
                        "kv-put" => erlmcp_flow::consensus::LedgerCommand::KvPut {
                            key,
                            value: words.get(2).context("missing value")?.to_string(),
                        },
                        "kv-del" => erlmcp_flow::consensus::LedgerCommand::KvDelete { key },
                        _ => erlmcp_flow::consensus::LedgerCommand::KvCas { key, expected: opt(2), new: opt(3) },
                    };
                    c.submit(cmd).await.map(|r| match r.response {
                        erlmcp_flow::consensus::LedgerResponse::KvCas { swapped, current } => {
                            serde_json::json!({ "swapped": swapped, "current": current })
                        }
                        _ => serde_json::json!({ "done": true }),
                    })
                }
            };
            // Errors are answers here (the linearizability test records them), not ERR lines.
            match answer {
                Ok(v) => format!("KV {v}"),
                Err(e) => {
                    format!("KV {}", serde_json::json!({ "error": e.to_string(), "retryable": e.is_retryable() }))
                }
            }
        }
        Some(cmd @ ("raft-add" | "raft-remove")) => {
            // Membership change at runtime, on any node: it is forwarded to the leader.
            let c = node.consensus().context("raft is not enabled on this node")?;
            let who = *words.get(1).context("missing node name")?;
            let r = if cmd == "raft-add" { c.add_voter(who).await } else { c.remove_voter(who).await };
            let voters = r.map_err(|e| anyhow::anyhow!("{e}"))?;
            format!("OK voters {}", voters.join(","))
        }
        Some("raft-bench") => {
            // Commit latency and throughput of the replicated log from this node:
            // `<commits> <concurrency>` KV puts through the leader (forwarded when this node
            // follows). Used for the cross-process figures in docs/benchmarks.md.
            let c = node.consensus().context("raft is not enabled on this node")?.clone();
            let commits = num(1)?;
            let concurrency = num(2)?.clamp(1, 1024);
            let started = Instant::now();
            let mut workers = Vec::new();
            for w in 0..concurrency {
                let c = c.clone();
                let share = commits / concurrency + u64::from(w < commits % concurrency);
                workers.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(share as usize);
                    for i in 0..share {
                        let t = Instant::now();
                        let cmd = erlmcp_flow::consensus::LedgerCommand::KvPut {
                            key: format!("bench-{w}"),
                            value: i.to_string(),
                        };
                        c.submit(cmd).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    anyhow::Ok(lat)
                }));
            }
            let mut lat = Vec::new();
            for w in workers {
                lat.extend(w.await??);
            }
            let secs = started.elapsed().as_secs_f64();
            lat.sort_unstable();
            let q = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied();
            format!(
                "RAFTBENCH {}",
                serde_json::json!({ "commits": lat.len(), "concurrency": concurrency, "secs": secs,
                    "per_s": lat.len() as f64 / secs, "p50_us": q(0.5), "p99_us": q(0.99), "max_us": q(1.0) })
            )
        }
        Some("vote") => {
            // One Byzantine round: `vote <round> <value>` proposes on the round's leader and
            // waits (every node) for the round's outcome here.
            let h = node.byzantine().context("byzantine voting is not enabled on this node")?;
            let round = num(1)?;
            let value = words.get(2).context("missing value")?.to_string();
            let members = {
                let mut m = node.config().byzantine.members.clone();
                m.sort();
                m
            };
            if !members.is_empty() && members[(round % members.len() as u64) as usize] == name {
                h.propose(round, value.into_bytes()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let outcome = h.await_round(round, Duration::from_secs(5)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let v = match outcome {
                erlmcp_flow::byzantine::RoundOutcome::Decided(d) => serde_json::json!({
                    "round": round,
                    "decided": d.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    "voters": d.voters.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                }),
                erlmcp_flow::byzantine::RoundOutcome::TimedOut => {
                    serde_json::json!({ "round": round, "timed_out": true })
                }
                erlmcp_flow::byzantine::RoundOutcome::Forgotten => {
                    serde_json::json!({ "round": round, "forgotten": true })
                }
            };
            format!("VOTE {v}")
        }
        Some("byz-stats") => {
            let h = node.byzantine().context("byzantine voting is not enabled on this node")?;
            let stats = h.stats().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            format!("BYZ {}", serde_json::to_string(&stats)?)
        }
        Some("leader") => {
            let swarm = SwarmName::new(words.get(1).context("missing swarm")?)?;
            match node.registry().leader(&swarm) {
                Some(id) => {
                    let e = node.registry().find(&id);
                    let full = match e.and_then(|e| e.node.clone()) {
                        Some(_) => id.to_string(),
                        None => format!("{id}@{name}"),
                    };
                    format!("LEADER {full}")
                }
                None => "LEADER none".into(),
            }
        }
        // The workload clients of `flow chaos` (see `crate::chaos::client`).
        Some(w) if w.starts_with("chaos-") => crate::chaos::node_command(node, name, words).await?,
        Some(other) => format!("ERR unknown command {other:?}"),
    }))
}

/// Submits `tasks` tasks with at most `concurrency` in flight and reports the outcome.
pub(crate) async fn run_workload(
    node: &FlowNode,
    name: &str,
    tasks: u64,
    caps: CapabilitySet,
    concurrency: usize,
    seed: u64,
    retry: Duration,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let before = node.stats();
    let per_node = Arc::new(parking_lot::Mutex::new(BTreeMap::<String, u64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(parking_lot::Mutex::new(ClientOutcomes::default()));
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (node, caps, per_node, next, name, outcomes) =
            (node.clone(), caps.clone(), per_node.clone(), next.clone(), name.to_string(), outcomes.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(splitmix64(splitmix64(seed) ^ w as u64));
            let mut submitted = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < tasks {
                let mut payload = [0u8; 16];
                rand::Rng::fill(&mut rng, &mut payload[..]);
                // Fresh ids (from the OS), seeded payloads: a second run with the same seed
                // must not collide with the first in the ledger's duplicate window.
                let task = Task::new(caps.clone()).with_payload(Bytes::copy_from_slice(&payload));
                // With the replicated ledger a submit is refused while no leader can commit
                // it (an election after the leader died): the client retries the same task
                // (same id, so a commit whose answer was lost is not entered twice).
                // A refused or indeterminate submission is retried with the same id until
                // the retry window closes (the ledger takes an id once, so a retry of an
                // indeterminate submission that did commit is acknowledged, not doubled).
                let retry_until = Instant::now() + retry;
                let mut maybe_accepted = None;
                let outcome = loop {
                    match node.route(task.clone()).await {
                        Ok(o) => break Some(o),
                        Err(
                            e @ (SubmitError::NotLeader { .. }
                            | SubmitError::Unavailable(_)
                            | SubmitError::Indeterminate { .. }),
                        ) if Instant::now() < retry_until => {
                            if e.may_have_been_accepted() {
                                maybe_accepted = Some(e);
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => {
                            // After an indeterminate attempt, a later refusal (or "already
                            // submitted": the earlier attempt committed and this node drives
                            // it) still leaves the task possibly accepted.
                            let reported =
                                if e.may_have_been_accepted() { &e } else { maybe_accepted.as_ref().unwrap_or(&e) };
                            outcomes.lock().record(task.id, reported);
                            break None;
                        }
                    }
                };
                let Some(outcome) = outcome else { continue };
                submitted += 1;
                if let TaskOutcome::Completed { agent, .. } = outcome {
                    let owner = agent.as_str().split_once('@').map(|(_, n)| n.to_string()).unwrap_or(name.clone());
                    *per_node.lock().entry(owner).or_default() += 1;
                }
            }
            submitted
        }));
    }
    let mut submitted = 0;
    for w in workers {
        submitted += w.await?;
    }
    node.wait_idle(Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    let hist = node.router().parts().tasks.latency_histogram();
    let run = RunCounts::measure(Some(&before), &node.stats(), submitted, elapsed, &hist);
    let per_node = per_node.lock().clone();
    let outcomes = std::mem::take(&mut *outcomes.lock());
    Ok(RunReport {
        node: name.to_string(),
        run,
        per_node,
        refused: outcomes.refused,
        indeterminate: outcomes.indeterminate,
        refused_ids: outcomes.refused_ids,
        indeterminate_ids: outcomes.indeterminate_ids,
    })
}

/// What the clients of a run were told about the tasks that did not run for them.
#[derive(Debug, Default)]
struct ClientOutcomes {
    refused: u64,
    indeterminate: u64,
    refused_ids: Vec<String>,
    indeterminate_ids: Vec<String>,
}

impl ClientOutcomes {
    fn record(&mut self, id: TaskId, e: &SubmitError) {
        let (count, ids) = if e.may_have_been_accepted() {
            (&mut self.indeterminate, &mut self.indeterminate_ids)
        } else {
            (&mut self.refused, &mut self.refused_ids)
        };
        *count += 1;
        if ids.len() < MAX_LISTED_IDS {
            ids.push(id.to_string());
        }
        tracing::warn!(task = %id, error = %e, "task not accepted");
    }
}
