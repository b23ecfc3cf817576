//! `flow demo`: a single node under injected faults, ending with a no-loss check.
//!
//! The workload: `--agents` agents in `--swarms` swarms. Every agent can `compute`; the
//! agents of swarm *k* also have `skill-k`; every third agent has `gpu`. Tasks ask for
//! `compute` (50 %), `compute + skill-k` (25 %), `compute + gpu` (10 %), or `compute`
//! inside swarm *k* with swarm *k+1* as fallback (15 %). Each execution crashes its agent
//! with probability `--crash-rate` (a panic: the agent is restarted by its supervisor and
//! the task goes to another agent), fails with probability `--fail-rate` (retried
//! elsewhere after backoff), and `--flaky-agents` agents fail 60 % of the time (their
//! circuit breakers open). A share `--poison-rate` of tasks is rejected permanently by
//! every agent (they end `Failed` without retries).
//!
//! With `--strategy q-learning` and no `--config`, the Q-learning model lives in memory
//! (the default `q_learning.model_path` is absent), so every demo learns from scratch and
//! no file is written; with a config file that sets `q_learning.model_path`, that file is
//! used (loaded at start, saved at the end).
//!
//! `lost` is computed from the node's task ledger after it reports quiescence:
//! `accepted − (completed + failed + dead_lettered)`; it is also checked against the
//! number of submissions the demo saw accepted. The process exits with status 1 if any
//! task was lost.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use erlmcp_flow::prelude::*;
use erlmcp_flow::registry::splitmix64;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::report::{DemoReport, RunCounts};

/// Payload marking a task every agent rejects permanently.
pub(crate) const POISON: &[u8] = b"poison";

fn probability(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not a probability in [0, 1]")) }
}

/// Arguments of `flow demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of agents.
    #[arg(long, default_value_t = 60)]
    pub agents: usize,
    /// Number of swarms the agents are spread over.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub swarms: u32,
    /// Number of tasks to submit.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: u64,
    /// Probability that an execution crashes (panics) its agent.
    #[arg(long, default_value_t = 0.1, value_parser = probability)]
    pub crash_rate: f64,
    /// Probability that an execution fails with a retryable error.
    #[arg(long, default_value_t = 0.01, value_parser = probability)]
    pub fail_rate: f64,
    /// Share of tasks every agent rejects permanently.
    #[arg(long, default_value_t = 0.002, value_parser = probability)]
    pub poison_rate: f64,
    /// Agents that fail 60 % of executions (their breakers open).
    #[arg(long, default_value_t = 2)]
    pub flaky_agents: usize,
    /// Routing strategy (round-robin, least-connections, load-aware, weighted,
    /// consistent-hash, p2c-ewma, q-learning). Default: the config's.
    #[arg(long)]
    pub strategy: Option<StrategyKind>,
    /// Seed for the workload and every routing choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Config file (TOML); defaults are used for what it leaves out.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Simulated work per task, µs (sleep).
    #[arg(long, default_value_t = 0)]
    pub work_us: u64,
    /// Accepted-but-unfinished tasks allowed at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_in_flight: u32,
    /// Keep the config's agent restart intensity even when crash injection will exceed
    /// it (the AgentSupervisor then escalates, as OTP would).
    #[arg(long)]
    pub keep_intensity: bool,
    /// Run a multi-process cluster of this many nodes on 127.0.0.1 instead of one node
    /// (default tasks then 20 000).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// With `--nodes`: which node to SIGKILL mid-run: `none`, `random`, `leader` (the
    /// Raft leader's process; leadership is first moved off node-1), or a node name
    /// (default: the last node; never the submitting node-1).
    #[arg(long)]
    pub kill: Option<String>,
    /// With `--nodes`: run without the Raft-replicated task ledger (tasks are then
    /// acknowledged by node-1 alone).
    #[arg(long)]
    pub no_raft: bool,
    /// With `--nodes`: show the nodes' logs.
    #[arg(long)]
    pub verbose: bool,
    /// Print the run's timeline to stderr, one line per this many ms (tasks finished,
    /// throughput over the interval, dead letters, breaker openings so far), then the
    /// spread of the interval throughputs. For long runs (docs/benchmarks.md).
    #[arg(long)]
    pub timeline_ms: Option<u64>,
}

/// The demo's agent: crashes, fails and works as configured.
pub(crate) struct DemoAgent {
    pub(crate) rng: SmallRng,
    pub(crate) crash_rate: f64,
    pub(crate) fail_rate: f64,
    pub(crate) flaky: bool,
    pub(crate) work: Duration,
}

impl Agent for DemoAgent {
    async fn handle(&mut self, task: &Task) -> Result<Bytes, AgentError> {
        if &task.payload[..] == POISON {
            return Err(AgentError::Permanent("poison payload".into()));
        }
        if self.rng.random::<f64>() < self.crash_rate {
            panic!("injected crash");
        }
        let r = self.rng.random::<f64>();
        if (self.flaky && r < 0.6) || r < self.fail_rate {
            return Err(AgentError::Retryable("injected failure".into()));
        }
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        let sum = task.payload.iter().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(*b));
        Ok(Bytes::copy_from_slice(&sum.to_le_bytes()))
    }
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if let Some(nodes) = args.nodes {
        return crate::cluster_demo::run(&args, nodes);
    }
    erlmcp_flow::quiet_agent_panics();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")?;
    let report = runtime.block_on(demo(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print_table();
    }
    Ok(if report.run.lost == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("LOST {} TASKS", report.run.lost);
        ExitCode::from(1)
    })
}

async fn demo(args: &DemoArgs) -> anyhow::Result<DemoReport> {
    let mut config = match &args.config {
        Some(path) => FlowConfig::from_file(path)?,
        None => FlowConfig::default(),
    };
    config.node.seed = Some(args.seed);
    config.router.max_in_flight = args.max_in_flight;
    if let Some(kind) = args.strategy {
        config.load_balancer.strategy = kind;
    }
    // A crash per `1/crash_rate` executions is the point of the demo; size the agent
    // supervisor's intensity for it unless told not to (see the README).
    let expected_crashes = (args.tasks as f64 * args.crash_rate * 1.5).ceil() as u32;
    if !args.keep_intensity && expected_crashes > config.supervision.agents.max_restarts {
        config.supervision.agents.max_restarts = expected_crashes.saturating_add(100);
    }
    let intensity = config.supervision.agents;
    let node = FlowNode::start(config).await?;

    let swarms: Vec<SwarmName> =
        (0..args.swarms).map(|k| SwarmName::new(format!("swarm-{k}"))).collect::<Result<_, _>>()?;
    let incarnations = Arc::new(AtomicU64::new(0));
    for i in 0..args.agents {
        let k = i % swarms.len();
        let mut caps = vec!["compute".to_string(), format!("skill-{k}")];
        if i % 3 == 0 {
            caps.push("gpu".into());
        }
        let spec = AgentSpec::parse(&format!("agent-{i:03}"), &caps)?.in_swarm(swarms[k].clone());
        let (seed, crash_rate, fail_rate, work) =
            (args.seed, args.crash_rate, args.fail_rate, Duration::from_micros(args.work_us));
        // Flaky agents: indices 7, 33, 59, … (spread over the swarms).
        let flaky = i % 26 == 7 && i / 26 < args.flaky_agents;
        let incarnations = incarnations.clone();
        node.spawn_agent(spec, move || DemoAgent {
            rng: SmallRng::seed_from_u64(splitmix64(
                seed ^ (i as u64) << 32 ^ incarnations.fetch_add(1, Ordering::Relaxed),
            )),
            crash_rate,
            fail_rate,
            flaky,
            work,
        })
        .await?;
    }

    let compute = CapabilitySet::parse(["compute"])?;
    let gpu = CapabilitySet::parse(["compute", "gpu"])?;
    let skills: Vec<CapabilitySet> = (0..swarms.len())
        .map(|k| CapabilitySet::parse(["compute".to_string(), format!("skill-{k}")]))
        .collect::<Result<_, _>>()?;

    let progress = progress_bar(args);
    let started = Instant::now();
    let ticker = progress.clone().map(|bar| {
        let node = node.clone();
        tokio::spawn(async move {
            loop {
                let s = node.stats().flow;
                bar.set_position(s.completed + s.failed + s.dead_lettered);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    let timeline = args.timeline_ms.map(|ms| {
        let node = node.clone();
        tokio::spawn(timeline(node, Duration::from_millis(ms.max(1)), started))
    });

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut submitted = 0u64;
    for n in 0..args.tasks {
        let roll: f64 = rng.random();
        let k = rng.random_range(0..swarms.len());
        let caps = if roll < 0.5 {
            compute.clone()
        } else if roll < 0.75 {
            skills[k].clone()
        } else if roll < 0.85 {
            gpu.clone()
        } else {
            compute.clone()
        };
        let mut task = Task::new_with_rng(caps, &mut rng).with_affinity_key(format!("session-{}", n % 1000));
        if roll >= 0.85 {
            task = task.in_swarm(swarms[k].clone()).with_fallback_swarm(swarms[(k + 1) % swarms.len()].clone());
        }
        task = if rng.random::<f64>() < args.poison_rate {
            task.with_payload(Bytes::from_static(POISON))
        } else {
            let mut payload = [0u8; 32];
            rng.fill(&mut payload);
            task.with_payload(Bytes::copy_from_slice(&payload))
        };
        // Outcomes are read from the ledger; the handles themselves are not needed.
        node.submit(task).await.context("submission refused")?;
        submitted += 1;
    }
    let idle = node.wait_idle(Duration::from_secs(300)).await;
    let elapsed = started.elapsed();
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(t) = timeline {
        t.abort();
        let _ = t.await;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if !idle {
        eprintln!("warning: tasks still open after 300 s; they count as lost");
    }

    let stats = node.stats();
    let mut reasons = std::collections::BTreeMap::<String, u64>::new();
    for l in node.dead_letters() {
        *reasons.entry(l.reason.to_string()).or_default() += 1;
    }
    let hist = node.router().parts().tasks.latency_histogram();
    let run = RunCounts::measure(None, &stats, submitted, elapsed, &hist);
    node.shutdown(Duration::from_secs(5)).await;
    Ok(DemoReport {
        run,
        agent_restarts: stats.agent_restarts,
        service_restarts: stats.service_restarts,
        agent_panics: stats.flow.agent_panics,
        timeouts: stats.flow.timeouts,
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        strategy: stats.strategy.to_string(),
        agents: args.agents,
        swarms: args.swarms,
        tasks: args.tasks,
        crash_rate: args.crash_rate,
        seed: args.seed,
        dead_letter_reasons: reasons,
        agent_restart_intensity: format!("{} in {} ms", intensity.max_restarts, intensity.window_ms),
    })
}

/// Prints one line per `every` to stderr until aborted; on abort (drop), the spread of
/// the interval throughputs.
async fn timeline(node: FlowNode, every: Duration, started: Instant) {
    struct Summary(Vec<f64>);
    impl Drop for Summary {
        fn drop(&mut self) {
            let mut v = self.0.clone();
            // The last, partial interval is not counted.
            v.pop();
            if v.is_empty() {
                return;
            }
            v.sort_by(f64::total_cmp);
            eprintln!(
                "timeline intervals={} per_s min={:.0} median={:.0} max={:.0}",
                v.len(),
                v[0],
                v[v.len() / 2],
                v[v.len() - 1]
            );
        }
    }
    let mut summary = Summary(Vec::new());
    let (mut last_done, mut last_at) = (0u64, Instant::now());
    loop {
        tokio::time::sleep(every).await;
        let s = node.stats().flow;
        let done = s.completed + s.failed + s.dead_lettered;
        let now = Instant::now();
        let per_s = (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64();
        if done > last_done {
            summary.0.push(per_s);
        }
        eprintln!(
            "timeline t_s={:.1} done={done} per_s={per_s:.0} dead_lettered={} failed={} breaker_opens={}",
            started.elapsed().as_secs_f64(),
            s.dead_lettered,
            s.failed,
            s.breaker_opens
        );
        (last_done, last_at) = (done, now);
    }
}

fn progress_bar(args: &DemoArgs) -> Option<indicatif::ProgressBar> {
    if args.json {
        return None;
    }
    let bar = indicatif::ProgressBar::new(args.tasks);
    if bar.is_hidden() {
        return None;
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tasks ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}
