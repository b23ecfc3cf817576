//! `flow`: the erlmcp-flow command line.
//!
//! * `flow demo`: one node, 60 agents in 5 swarms, 100 000 tasks under injected agent
//!   crashes and failures; prints a summary (or `--json`) and exits non-zero if a task
//!   was lost.
//! * `flow bench routing`: every routing strategy on the same workloads (homogeneous,
//!   heterogeneous, degrading agent, bursty); a table or `--json`.
//! * `flow chaos`: a seeded nemesis against a multi-process Raft cluster under load, then
//!   a Jepsen-style check of what the clients saw against the replicated ledger.
//! * `flow config check <file>` / `flow config defaults`: validate or print a config.
//! * `flow node --mcp-listen ADDR` / `flow mcp-stdio --join ADDR`: the MCP front door over
//!   HTTP on a node, or over stdio as a light node of a cluster.
//! * `flow node --http-listen ADDR`: Prometheus `/metrics`, `/healthz`, `/readyz` and a
//!   live dashboard at `/` (see `http`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_cluster;
mod chaos;
mod cluster_demo;
mod demo;
mod http;
mod log_filter;
mod mcp_stdio;
mod node;
mod node_proc;
mod report;

#[derive(Debug, Parser)]
#[command(name = "flow", version, about = "erlmcp-flow: distributed agent routing on ractor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a single-node demo: agents, swarms, crashes, retries, and a no-loss check.
    Demo(demo::DemoArgs),
    /// Run one cluster node (see `flow node --help`).
    Node(node::NodeArgs),
    /// Serve MCP on stdin/stdout as a light node of a cluster (for desktop MCP hosts).
    McpStdio(mcp_stdio::McpStdioArgs),
    /// Show a running node's view of the cluster: membership, reachability, phi per peer.
    Status {
        /// The node's listen address.
        #[arg(long)]
        connect: std::net::SocketAddr,
        /// The cluster cookie.
        #[arg(long, default_value = "erlmcp-flow")]
        cookie: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks: `flow bench routing` compares the routing strategies.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Run a seeded nemesis (kills, pauses, partitions) against a multi-process Raft
    /// cluster under load and check the invariants afterwards (see `flow chaos --help`).
    Chaos(chaos::ChaosArgs),
    /// Validate a config file or print the defaults.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate a TOML config file.
    Check {
        /// The file.
        path: PathBuf,
    },
    /// Print the default config as TOML.
    Defaults,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Benchmarks kill nodes on purpose; their expected warnings would bury the results.
    // ractor_cluster's own warnings repeat ours ("session lost") in its Debug formatting.
    // openraft logs every failed replication RPC (twice, and once more for the progress
    // update); the consensus layer reports those once per peer per interval instead.
    let default_filter = if matches!(cli.command, Command::Bench { .. }) {
        "error"
    } else {
        "warn,ractor_cluster=error,rmcp=error,openraft::replication=off,openraft::engine::handler::replication_handler=error"
    };
    // Dependencies' repeated lines (openraft's per-read, per-RPC errors under faults) are
    // written once per callsite per interval, with a count (`log_filter`).
    let repeats = log_filter::RepeatLimit::default();
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::try_from_env("FLOW_LOG").unwrap_or_else(|_| default_filter.into()))
            .with(repeats.clone())
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init();
    }
    log_filter::spawn_reporter(repeats, erlmcp_flow::core::log_limit::DEFAULT_LOG_INTERVAL);
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Node(args) => node::run(args),
        Command::McpStdio(args) => mcp_stdio::run(args),
        Command::Status { connect, cookie, json } => status(connect, &cookie, json),
        Command::Bench { what } => bench::run(what),
        Command::Chaos(args) => chaos::run(args),
        Command::Config { action } => config(action),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn status(addr: std::net::SocketAddr, cookie: &str, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report =
        runtime.block_on(erlmcp_flow::cluster::query_status(addr, cookie, std::time::Duration::from_secs(5)))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("node {} (incarnation {:x}) listening on {}", report.node, report.incarnation, report.listen);
    println!(
        "agents: {} local, {} remote; ledger: accepted {} completed {} failed {} dead-lettered {}",
        report.local_agents,
        report.remote_agents,
        report.ledger[0],
        report.ledger[1],
        report.ledger[2],
        report.ledger[3]
    );
    match &report.raft {
        Some(r) => {
            if !r.core_up {
                println!("raft: CORE DOWN (restarting after a fatal error; {} restarts so far)", r.core_restarts);
            } else if r.core_restarts > 0 {
                println!("raft: core restarted {} times after fatal errors", r.core_restarts);
            }
            println!(
                "raft: {} term {} leader {} commit index {} (applied {}, last log {}); voters [{}]{}",
                r.state,
                r.term,
                r.leader.as_deref().unwrap_or("none"),
                r.commit_index,
                r.last_applied,
                r.last_log_index,
                r.voters.join(", "),
                if r.learners.is_empty() { String::new() } else { format!(" learners [{}]", r.learners.join(", ")) }
            );
            println!(
                "replicated ledger: accepted {} completed {} failed {} dead-lettered {} open {} (digest {:016x})",
                r.ledger[0], r.ledger[1], r.ledger[2], r.ledger[3], r.ledger[4], r.digest
            );
        }
        None => println!("raft: off"),
    }
    println!("{:<16} {:<12} {:>8} {:>10} {:>7} {:<21}", "peer", "reachable", "phi", "silent_ms", "agents", "listen");
    for p in &report.peers {
        let reach = if p.blocked {
            "cut off"
        } else if p.reachable {
            "yes"
        } else {
            "NO"
        };
        println!(
            "{:<16} {:<12} {:>8.2} {:>10} {:>7} {:<21}",
            p.node,
            reach,
            p.phi,
            p.silent_ms.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            p.agents,
            p.listen
        );
    }
    for (k, v) in &report.counters {
        println!("{k}: {v}");
    }
    Ok(ExitCode::SUCCESS)
}

fn config(action: ConfigAction) -> anyhow::Result<ExitCode> {
    match action {
        ConfigAction::Check { path } => {
            erlmcp_flow::FlowConfig::from_file(&path)?;
            println!("{}: ok", path.display());
        }
        ConfigAction::Defaults => print!("{}", erlmcp_flow::FlowConfig::default().to_toml_string()),
    }
    Ok(ExitCode::SUCCESS)
}
