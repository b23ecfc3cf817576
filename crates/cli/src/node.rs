//! `flow node`: run one cluster node, optionally driven by commands on stdin.
//!
//! On start it prints `READY {"node":..,"listen":..}` on stdout. With `--control` it then
//! reads one command per line and answers with one line each:
//!
//! | command | answer |
//! |---|---|
//! | `spawn <n> <prefix> <caps,…> <swarm or -> <crash_rate> <work_us>` | `OK spawned <n>` |
//! | `wait-agents <total> <timeout_ms>` | `OK agents <seen>` or `ERR …` |
//! | `run <tasks> <caps,…> <concurrency> <seed>` | `PROGRESS <done>` lines every 20 ms, then `RESULT {json}` |
//! | `status` | `STATUS {json}` (membership, reachability, phi per peer) |
//! | `block <node>…` / `unblock <node>…` | `OK` (partition fault injection) |
//! | `leader <swarm>` | `LEADER <agent@node>` or `LEADER none` |
//! | `raft` | `RAFT {json}` (the status report's Raft view: role, term, leader, indexes, members, ledger counts, digest; plus `backlog` and `adopted`) |
//! | `raft-elect` | `OK` once this node has started an election |
//! | `raft-add <node>` / `raft-remove <node>` | `OK voters …` once the membership change committed (on any node: forwarded to the leader) |
//! | `raft-bench <commits> <concurrency>` | `RAFTBENCH {json}` (commit latency percentiles and throughput of KV puts) |
//! | `vote <round> <value>` | `VOTE {json}` (Byzantine round: proposed here if this node leads it; the decision or a time-out) |
//! | `byz-stats` | `BYZ {json}` (decided / timed-out rounds, rejections by reason, per-peer scores, blacklist) |
//! | `ledger` | `LEDGER {json}` (replicated ledger counts, read linearizably through the leader) |
//! | `kv-put <k> <v>` / `kv-get <k>` / `kv-del <k>` / `kv-cas <k> <expected or -> <new or ->` | `KV {json}` (`error` and `retryable` when not committed) |
//! | `crash <child>` | `OK restarted …` once the FlowSupervisor restarted that child (`gateway`, `cluster`, `gossip`, `router`, …) |
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
use erlmcp_flow::core::NodeName;
use erlmcp_flow::prelude::*;
use erlmcp_flow::registry::splitmix64;
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
}

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
    config.validate()?;
    let node = FlowNode::start(config.clone()).await?;
    let listen = node.listen_addr().context("cluster listener")?;
    let mcp = crate::mcp_stdio::start_for_node(&node).await?;
    if args.agents > 0 {
        let name = config.node.name.clone();
        let spawn = format!("spawn {} {name}-agent {} - 0 {}", args.agents, args.capabilities, args.work_us);
        let words: Vec<&str> = spawn.split_whitespace().collect();
        command(&node, &name, &words, &Arc::new(AtomicU64::new(0))).await?;
    }
    let echo = if args.echo { Some(erlmcp_flow::cluster::spawn_echo().await?) } else { None };
    let mcp_url = mcp.as_ref().and_then(|(_, url)| url.clone());
    println!("READY {}", serde_json::json!({ "node": config.node.name, "listen": listen.to_string(), "mcp": mcp_url }));

    if args.control {
        control_loop(&node, &config.node.name, mcp.as_ref().map(|(m, _)| m)).await?;
    } else {
        wait_for_signal().await;
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

async fn control_loop(node: &FlowNode, name: &str, mcp: Option<&erlmcp_flow_mcp::McpService>) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let incarnations = Arc::new(AtomicU64::new(0));
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"mcp") {
            // `mcp`: the MCP layer's counters and listed tools.
            let answer = match mcp {
                Some(m) => format!("MCP {}", crate::mcp_stdio::report(m)),
                None => "ERR no MCP layer on this node".into(),
            };
            out.write_all(format!("{answer}\n").as_bytes()).await?;
            out.flush().await?;
            continue;
        }
        let answer = match command(node, name, &words, &incarnations).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                out.write_all(b"OK bye\n").await?;
                out.flush().await?;
                return Ok(());
            }
            Err(e) => format!("ERR {e:#}"),
        };
        out.write_all(answer.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

async fn command(
    node: &FlowNode,
    name: &str,
    words: &[&str],
    incarnations: &Arc<AtomicU64>,
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
            let progress = node.clone();
            let base = node.stats().flow;
            let ticker = tokio::spawn(async move {
                let mut out = tokio::io::stdout();
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let s = progress.stats().flow;
                    let done = (s.completed + s.failed + s.dead_lettered)
                        - (base.completed + base.failed + base.dead_lettered);
                    let _ = out.write_all(format!("PROGRESS {done}\n").as_bytes()).await;
                    let _ = out.flush().await;
                }
            });
            let report = run_workload(node, name, tasks, caps, concurrency, seed).await;
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
            let child = *words.get(1).context("missing child name")?;
            let before = node.child_actor(child).with_context(|| format!("no running child {child:?}"))?;
            if !node.inject_panic(child) {
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
            format!("RAFT {v}")
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
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let before = node.stats();
    let per_node = Arc::new(parking_lot::Mutex::new(BTreeMap::<String, u64>::new()));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (node, caps, per_node, next, name) =
            (node.clone(), caps.clone(), per_node.clone(), next.clone(), name.to_string());
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
                let retry_until = Instant::now() + Duration::from_secs(30);
                let outcome = loop {
                    match node.route(task.clone()).await {
                        Ok(o) => break Some(o),
                        Err(SubmitError::NotLeader { .. } | SubmitError::Unavailable(_))
                            if Instant::now() < retry_until =>
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "task refused");
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
    Ok(RunReport { node: name.to_string(), run, per_node })
}
