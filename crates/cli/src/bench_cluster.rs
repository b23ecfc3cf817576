//! `flow bench cluster`: cross-node figures measured on real processes over loopback.
//!
//! This process runs a cluster node (`bench`, no agents of its own) and starts a second
//! `flow node` process (`peer`, with agents and a bare [`EchoActor`]) that joins it. Then:
//!
//! 1. **Latency.** Sequential round trips, alternating blocks of 500 so both paths see the
//!    same machine noise: a *raw* ractor_cluster call to the peer's echo actor carrying
//!    the very bytes a routed task puts on the wire, and a *routed* task (`FlowNode::route`:
//!    admission, strategy, breaker, bulkhead, ledger, the remote-agent link, the peer's
//!    gateway, its agent actor, and the outcome back). p50, p99, mean of each, and the
//!    ratio of the p50s (target ≤ 1.3).
//! 2. **Throughput.** The same two paths with `--concurrency` requests in flight.
//! 3. **Killed node.** `--kills` times: a fresh `victim-k` process joins, is seen
//!    reachable, gets SIGKILL; the time until this node's peer table says unreachable
//!    (polled every 100 µs; target ≤ 10 ms).
//! 4. **Frozen node.** `--freezes` times the same with SIGSTOP (target ≤ 2 s at the
//!    default 100 ms heartbeats and φ threshold 8).
//!
//! [`EchoActor`]: erlmcp_flow::cluster::EchoActor

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use erlmcp_flow::cluster::ECHO_GROUP;
use erlmcp_flow::cluster::wire::{Envelope, GatewayMsg, Request, encode};
use erlmcp_flow::core::{Codec, NodeName};
use erlmcp_flow::prelude::*;
use ractor::ActorRef;
use ractor::rpc::CallResult;
use serde::Serialize;

use crate::node_proc::NodeProc;

/// Arguments of `flow bench cluster`.
#[derive(Debug, Clone, Args)]
pub struct ClusterBenchArgs {
    /// Sequential round trips measured per path (after 1 000 warm-up ones).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(500..=10_000_000))]
    pub calls: u64,
    /// Requests per path in the throughput runs.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub tasks: u64,
    /// Requests in flight in the throughput runs.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// Task payload, bytes.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub payload_bytes: u64,
    /// Agents on the peer.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub agents: u64,
    /// Killed-node detection runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub kills: u32,
    /// Frozen-node detection runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub freezes: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Let the node processes log to stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// Latency of one path.
#[derive(Debug, Clone, Serialize)]
struct Latency {
    samples: usize,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

impl Latency {
    fn of(mut ns: Vec<u64>) -> Self {
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
        let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0;
        Self { samples: ns.len(), p50_us: at(0.50), p99_us: at(0.99), mean_us: mean }
    }
}

/// Detection times of one kind of failure.
#[derive(Debug, Clone, Serialize)]
struct Detection {
    runs_ms: Vec<f64>,
    max_ms: Option<f64>,
    target_ms: f64,
    met: bool,
}

impl Detection {
    fn of(runs_ms: Vec<f64>, target_ms: f64) -> Self {
        let max_ms = runs_ms.iter().copied().reduce(f64::max);
        let met = max_ms.is_some_and(|m| m <= target_ms);
        Self { runs_ms, max_ms, target_ms, met }
    }
}

#[derive(Debug, Clone, Serialize)]
struct ClusterBenchReport {
    payload_bytes: u64,
    wire_request_bytes: usize,
    agents: u64,
    raw: Latency,
    routed: Latency,
    p50_ratio: f64,
    p50_ratio_target: f64,
    p50_ratio_met: bool,
    concurrency: u64,
    raw_calls_per_s: f64,
    routed_tasks_per_s: f64,
    routed_lost: u64,
    killed: Detection,
    frozen: Detection,
}

pub(crate) fn run(args: ClusterBenchArgs) -> anyhow::Result<ExitCode> {
    erlmcp_flow::quiet_agent_panics();
    let exe = std::env::current_exe().context("cannot locate the flow binary")?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")?;
    let mut config = FlowConfig::default();
    config.node.name = "bench".into();
    config.cluster.enabled = true;
    config.cluster.listen = "127.0.0.1:0".into();
    let node = runtime.block_on(FlowNode::start(config))?;
    let addr = node.listen_addr().context("cluster listener")?.to_string();
    let say = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    let mut peer = NodeProc::start(&exe, "peer", Some(&addr), &["--echo".to_string()], args.verbose)?;
    peer.ask(&format!("spawn {} peer-agent remote - 0 0", args.agents), "OK", Duration::from_secs(30))?;
    let echo = runtime.block_on(wait_ready(&node, args.agents as usize))?;
    say(format!("bench node + peer process up; {} remote agents and the echo actor visible", args.agents));

    let task = || {
        Task::new(CapabilitySet::parse(["remote"]).expect("valid capability")).with_payload(vec![
            0x5a;
            args.payload_bytes
                as usize
        ])
    };
    // The bytes a routed task puts on the wire, sent raw to the echo actor.
    let request = Envelope {
        from: NodeName::new("bench")?,
        body: Request::Execute { agent: AgentId::new("peer-agent-000")?, task: task(), timeout_ms: 30_000 },
    };
    let wire = encode(&Codec::default(), &request)?;

    say(format!("latency: {} sequential round trips per path, alternating blocks of 500", args.calls));
    let (raw, routed) = runtime.block_on(latency(&node, &echo, &wire, &task, args.calls))?;
    say(format!("throughput: {} requests per path, {} in flight", args.tasks, args.concurrency));
    let raw_rate = runtime.block_on(raw_throughput(&echo, &wire, args.tasks, args.concurrency))?;
    let before = node.stats().flow;
    let routed_rate = runtime.block_on(routed_throughput(&node, &task, args.tasks, args.concurrency))?;
    let after = node.stats().flow;
    let accepted = after.accepted - before.accepted;
    let closed = (after.completed + after.failed + after.dead_lettered)
        - (before.completed + before.failed + before.dead_lettered);
    let routed_lost = accepted.saturating_sub(closed);

    let mut killed = Vec::new();
    for k in 1..=args.kills {
        let ms = detect(&node, &exe, &addr, &format!("victim-{k}"), Fault::Kill, args.verbose)?;
        say(format!("SIGKILL victim-{k}: unreachable after {ms:.2} ms"));
        killed.push(ms);
    }
    let mut frozen = Vec::new();
    for k in 1..=args.freezes {
        let ms = detect(&node, &exe, &addr, &format!("frozen-{k}"), Fault::Freeze, args.verbose)?;
        say(format!("SIGSTOP frozen-{k}: unreachable after {ms:.0} ms"));
        frozen.push(ms);
    }
    drop(peer);
    runtime.block_on(node.shutdown(Duration::from_secs(2)));

    let p50_ratio = routed.p50_us / raw.p50_us;
    let report = ClusterBenchReport {
        payload_bytes: args.payload_bytes,
        wire_request_bytes: wire.len(),
        agents: args.agents,
        raw,
        routed,
        p50_ratio,
        p50_ratio_target: 1.3,
        p50_ratio_met: p50_ratio <= 1.3,
        concurrency: args.concurrency,
        raw_calls_per_s: raw_rate,
        routed_tasks_per_s: routed_rate,
        routed_lost,
        killed: Detection::of(killed, 10.0),
        frozen: Detection::of(frozen, 2_000.0),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if routed_lost == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Waits until `agents` remote agents are in the registry and the peer's echo actor is
/// in its pg group.
async fn wait_ready(node: &FlowNode, agents: usize) -> anyhow::Result<ActorRef<GatewayMsg>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let echo = ractor::pg::get_members(&ECHO_GROUP.to_string()).into_iter().find(|c| !c.get_id().is_local());
        let seen = node.registry().view().len();
        if let Some(e) = echo.filter(|_| seen >= agents) {
            return Ok(e.into());
        }
        if Instant::now() >= deadline {
            bail!("only {seen} of {agents} agents visible (or no echo actor) after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn echo_once(echo: &ActorRef<GatewayMsg>, wire: &[u8]) -> anyhow::Result<()> {
    let bytes = wire.to_vec();
    match echo.call(|r| GatewayMsg::Call(bytes, r), Some(Duration::from_secs(10))).await? {
        CallResult::Success(b) if b.len() == wire.len() => Ok(()),
        other => bail!("echo call failed: {other:?}"),
    }
}

async fn route_once(node: &FlowNode, task: Task) -> anyhow::Result<()> {
    match node.route(task).await? {
        TaskOutcome::Completed { .. } => Ok(()),
        other => bail!("routed task did not complete: {other:?}"),
    }
}

async fn latency(
    node: &FlowNode,
    echo: &ActorRef<GatewayMsg>,
    wire: &[u8],
    task: &impl Fn() -> Task,
    calls: u64,
) -> anyhow::Result<(Latency, Latency)> {
    for _ in 0..1_000 {
        echo_once(echo, wire).await?;
        route_once(node, task()).await?;
    }
    let (mut raw, mut routed) = (Vec::with_capacity(calls as usize), Vec::with_capacity(calls as usize));
    const BLOCK: u64 = 500;
    while (raw.len() as u64) < calls {
        let n = BLOCK.min(calls - raw.len() as u64);
        for _ in 0..n {
            let t = Instant::now();
            echo_once(echo, wire).await?;
            raw.push(t.elapsed().as_nanos() as u64);
        }
        for _ in 0..n {
            let next = task();
            let t = Instant::now();
            route_once(node, next).await?;
            routed.push(t.elapsed().as_nanos() as u64);
        }
    }
    Ok((Latency::of(raw), Latency::of(routed)))
}

async fn raw_throughput(echo: &ActorRef<GatewayMsg>, wire: &[u8], n: u64, concurrency: u64) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let wire: Arc<[u8]> = wire.into();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, echo, wire) = (next.clone(), echo.clone(), wire.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                echo_once(&echo, &wire).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn routed_throughput(node: &FlowNode, task: &impl Fn() -> Task, n: u64, concurrency: u64) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<Task> = (0..n).map(|_| task()).collect();
    let tasks = Arc::new(parking_lot::Mutex::new(tasks));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, node, tasks) = (next.clone(), node.clone(), tasks.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let Some(t) = tasks.lock().pop() else { break };
                route_once(&node, t).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Freeze,
}

/// Starts node `name`, waits until it is reachable and has a heartbeat history, injects
/// `fault` and returns the milliseconds until this node's peer table marks it
/// unreachable. The victim is killed afterwards in both cases.
fn detect(
    node: &FlowNode,
    exe: &std::path::Path,
    addr: &str,
    name: &str,
    fault: Fault,
    verbose: bool,
) -> anyhow::Result<f64> {
    let mut victim = NodeProc::start(exe, name, Some(addr), &[], verbose)?;
    let peer = NodeName::new(name)?;
    let reachable = || node.peer(&peer).is_some_and(|p| p.reachable);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reachable() {
        if Instant::now() >= deadline {
            bail!("{name} never became reachable");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the failure detector see a steady heartbeat history first (20 heartbeats at the
    // default 100 ms), as it would for any node that has been up for a while.
    std::thread::sleep(Duration::from_secs(2));
    if !reachable() {
        bail!("{name} became unreachable before the fault");
    }
    let pid = victim.child.id();
    let start = match fault {
        Fault::Kill => {
            let t = Instant::now();
            victim.child.kill().context("SIGKILL")?;
            t
        }
        Fault::Freeze => {
            // `kill(1)` returns after the signal is sent; time from then.
            let ok = Command::new("kill").args(["-STOP", &pid.to_string()]).status()?.success();
            if !ok {
                bail!("kill -STOP {pid} failed");
            }
            Instant::now()
        }
    };
    let deadline = start + Duration::from_secs(30);
    while reachable() {
        if Instant::now() >= deadline {
            bail!("{name} still reachable 30 s after the fault");
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let _ = victim.child.kill();
    let _ = victim.child.wait();
    Ok(ms)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn print_table(r: &ClusterBenchReport) {
    println!(
        "flow bench cluster: 2 processes on 127.0.0.1, {} agents on the peer, payload {} B ({} B on the wire)",
        r.agents, r.payload_bytes, r.wire_request_bytes
    );
    println!("{}", "─".repeat(86));
    println!("{:<44} {:>10} {:>10} {:>10}", "round trip", "p50", "p99", "mean");
    let row = |what: &str, l: &Latency| {
        println!("{what:<44} {:>7.1} µs {:>7.1} µs {:>7.1} µs", l.p50_us, l.p99_us, l.mean_us);
    };
    row("raw ractor_cluster call (echo actor)", &r.raw);
    row("routed task (router → peer gateway → agent)", &r.routed);
    println!(
        "{:<44} {:>10.2}   target ≤ {:.1}: {}",
        "routed p50 / raw p50",
        r.p50_ratio,
        r.p50_ratio_target,
        verdict(r.p50_ratio_met)
    );
    println!("{}", "─".repeat(86));
    println!("throughput, {} in flight", r.concurrency);
    println!("  {:<42} {:>10.0} /s", "raw calls", r.raw_calls_per_s);
    println!("  {:<42} {:>10.0} /s   lost {}", "routed tasks", r.routed_tasks_per_s, r.routed_lost);
    println!("{}", "─".repeat(86));
    let det = |what: &str, d: &Detection| {
        let runs: Vec<String> = d.runs_ms.iter().map(|m| format!("{m:.1}")).collect();
        println!(
            "{what:<44} max {:>8} ms   target ≤ {} ms: {}   runs [{}]",
            d.max_ms.map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into()),
            d.target_ms,
            if d.runs_ms.is_empty() { "not run" } else { verdict(d.met) },
            runs.join(", ")
        );
    };
    det("killed node (SIGKILL) noticed", &r.killed);
    det("frozen node (SIGSTOP) noticed", &r.frozen);
}
