//! `flow bench routing`: every strategy on the same workloads, side by side
//! (`flow bench cluster` lives in [`crate::bench_cluster`]).
//!
//! For each workload (homogeneous, heterogeneous with a 4× speed spread, degrading agent,
//! bursty; see `erlmcp_flow_workload::Workload::presets`) and each strategy, one run of
//! `--tasks` tasks with the same seed (so the same arrivals and the same per-agent
//! service-time draws), then a table of mean, p50 and p99 latency, success rate,
//! throughput and the mean's ratio to round-robin's, and the Q-learning targets' verdicts.
//!
//! * `--mode sim` (default): the discrete-event simulation, virtual time, deterministic;
//!   100 000 tasks per run by default (the whole default run takes well under a minute on
//!   2 cores).
//! * `--mode actors`: a real node with sleep-based agents; 2 000 tasks per run by default
//!   (about 1–2 s of real time per run).
//!
//! `--json` prints the reports as one JSON array instead.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use erlmcp_flow::StrategyKind;
use erlmcp_flow_workload::{
    ActorSettings, RunReport, SimSettings, Workload, bench_config, fill_ratios, run_actors, simulate,
};

/// `flow bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Compare the routing strategies on heterogeneous workloads.
    Routing(RoutingArgs),
    /// Cross-node latency and throughput against a raw ractor_cluster call, and how fast
    /// a killed or frozen node is noticed (real processes on 127.0.0.1).
    Cluster(crate::bench_cluster::ClusterBenchArgs),
}

/// How the workloads are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Discrete-event simulation over the real strategies (virtual time, deterministic).
    Sim,
    /// A real node with sleep-based agents (real time).
    Actors,
}

/// Arguments of `flow bench routing`.
#[derive(Debug, Clone, Args)]
pub struct RoutingArgs {
    /// How to run the workloads.
    #[arg(long, value_enum, default_value_t = Mode::Sim)]
    pub mode: Mode,
    /// Tasks per run (default: 100000 in sim mode, 2000 in actors mode).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub tasks: Option<u64>,
    /// Seed of the arrivals, the agents' draws and the routing choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only these workloads (repeatable): homogeneous, heterogeneous, degrading, bursty.
    #[arg(long = "workload", value_parser = workload_name)]
    pub workloads: Vec<String>,
    /// Only these strategies (repeatable; round-robin is always run, for the ratios).
    #[arg(long = "strategy")]
    pub strategies: Vec<StrategyKind>,
    /// Print a JSON array of the run reports instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Actors mode: multiply every duration of the workloads by this (tokio sleeps have a
    /// 1 ms resolution; see `erlmcp_flow_workload::actors`).
    #[arg(long, default_value_t = 2.0, value_parser = time_scale)]
    pub time_scale: f64,
}

fn time_scale(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.5..=100.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not a time scale in [0.5, 100]")) }
}

fn workload_name(s: &str) -> Result<String, String> {
    let names = Workload::preset_names();
    if names.iter().any(|n| n == s) {
        Ok(s.to_owned())
    } else {
        Err(format!("unknown workload {s:?}; expected one of {}", names.join(", ")))
    }
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Routing(args) => routing(args),
        BenchCommand::Cluster(args) => crate::bench_cluster::run(args),
    }
}

fn routing(args: RoutingArgs) -> anyhow::Result<ExitCode> {
    erlmcp_flow::quiet_agent_panics();
    let workloads: Vec<Workload> = if args.workloads.is_empty() {
        Workload::presets()
    } else {
        args.workloads.iter().filter_map(|n| Workload::preset(n)).collect()
    };
    let mut strategies: Vec<StrategyKind> =
        if args.strategies.is_empty() { StrategyKind::ALL.to_vec() } else { args.strategies.clone() };
    if !strategies.contains(&StrategyKind::RoundRobin) {
        strategies.insert(0, StrategyKind::RoundRobin);
    }
    let tasks = args.tasks.unwrap_or(match args.mode {
        Mode::Sim => 100_000,
        Mode::Actors => 2_000,
    });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")?;
    if !args.json {
        println!(
            "flow bench routing: mode {}, {tasks} tasks per run, seed {}",
            match args.mode {
                Mode::Sim => "sim (discrete-event, virtual time)",
                Mode::Actors => "actors (real node, sleep-based agents)",
            },
            args.seed
        );
        for w in &workloads {
            println!("  {:<14} {}", w.name, w.description);
        }
        println!();
    }
    let overshoot = match args.mode {
        Mode::Sim => None,
        Mode::Actors => Some(runtime.block_on(erlmcp_flow_workload::actors::timer_overshoot())),
    };
    if let (Some(o), false) = (overshoot, args.json) {
        println!(
            "actors mode: durations x{}, service sleeps shortened by the measured timer overshoot of {} us\n",
            args.time_scale,
            o.as_micros()
        );
    }
    let mut reports: Vec<RunReport> = Vec::new();
    let model_dir = std::env::temp_dir().join(format!("flow-bench-routing-{}", std::process::id()));
    for w in &workloads {
        for &kind in &strategies {
            let report = match args.mode {
                Mode::Sim => {
                    let settings = SimSettings { tasks, seed: args.seed, config: bench_config() };
                    runtime.block_on(async {
                        let actor = erlmcp_flow_workload::idle_actor().await;
                        let r = simulate(w, kind, &settings, &actor);
                        actor.stop(None);
                        r
                    })
                }
                Mode::Actors => {
                    let settings = ActorSettings {
                        tasks,
                        seed: args.seed,
                        config: bench_config(),
                        model_dir: model_dir.clone(),
                        time_scale: args.time_scale,
                        sleep_overshoot: overshoot,
                    };
                    runtime.block_on(run_actors(w, kind, &settings)).with_context(|| format!("{} / {kind}", w.name))?
                }
            };
            if !args.json {
                eprintln!("  done: {:<14} {:<18} ({} ms)", report.workload, report.strategy, report.wall_ms);
            }
            reports.push(report);
        }
    }
    let _ = std::fs::remove_dir_all(&model_dir);
    fill_ratios(&mut reports);
    if args.json {
        println!("{}", serde_json::to_string(&reports)?);
    } else {
        println!("\n{}", erlmcp_flow_workload::table(&reports));
        for line in verdicts(&reports) {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Q-learning targets: ≥ 25 % below round-robin's mean on the heterogeneous and
/// degrading workloads, ≤ 5 % above it on the homogeneous one; plus who beat Q-learning.
fn verdicts(reports: &[RunReport]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports.iter().filter(|r| r.strategy == StrategyKind::QLearning.as_str()) {
        let Some(ratio) = r.mean_vs_round_robin else { continue };
        let change = (ratio - 1.0) * 100.0;
        let target = match r.workload.as_str() {
            "heterogeneous" | "degrading" => Some((ratio <= 0.75, "target ≤ -25 %")),
            "homogeneous" => Some((ratio <= 1.05, "target ≤ +5 %")),
            _ => None,
        };
        let verdict = match target {
            Some((true, t)) => format!(" ({t}: met)"),
            Some((false, t)) => format!(" ({t}: MISSED)"),
            None => String::new(),
        };
        let better: Vec<String> = reports
            .iter()
            .filter(|o| o.workload == r.workload && o.strategy != r.strategy && o.mean_us < r.mean_us)
            .map(|o| format!("{} ({:.2} ms)", o.strategy, o.mean_us / 1e3))
            .collect();
        let beaten = if better.is_empty() {
            "lowest mean of all strategies".to_owned()
        } else {
            format!("lower mean: {}", better.join(", "))
        };
        out.push(format!("q_learning vs round_robin, {:<14} mean {:+.1} %{verdict}; {beaten}", r.workload, change));
    }
    out
}
