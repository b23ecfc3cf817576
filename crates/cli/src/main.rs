//! `flow`: the erlmcp-flow command line.
//!
//! * `flow demo`: one node, 60 agents in 5 swarms, 100 000 tasks under injected agent
//!   crashes and failures; prints a summary (or `--json`) and exits non-zero if a task
//!   was lost.
//! * `flow bench routing`: every routing strategy on the same workloads (homogeneous,
//!   heterogeneous, degrading agent, bursty); a table or `--json`.
//! * `flow config check <file>` / `flow config defaults`: validate or print a config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod demo;
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
    /// Benchmarks: `flow bench routing` compares the routing strategies.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FLOW_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Bench { what } => bench::run(what),
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
