//! The MCP side of the `flow` command.
//!
//! * `flow mcp-stdio --join ADDR`: a light cluster node (no agents of its own) that serves
//!   MCP on stdin/stdout, so a desktop MCP host can spawn it; every tool of the cluster is
//!   listed and every call is routed like any task. Logs go to stderr only.
//! * `flow node --mcp-listen ADDR` / `--mcp-upstream NAME=COMMAND...` (and the `[mcp]`
//!   config section): [`start_for_node`] runs the node's upstreams and its HTTP front door.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use erlmcp_flow::core::McpUpstreamConfig;
use erlmcp_flow::prelude::*;
use erlmcp_flow_mcp::McpService;

/// Arguments of `flow mcp-stdio`.
#[derive(Debug, Clone, Args)]
pub struct McpStdioArgs {
    /// A cluster node to join (repeatable).
    #[arg(long = "join", required = true)]
    pub join: Vec<String>,
    /// Cluster cookie (overrides `cluster.cookie`).
    #[arg(long)]
    pub cookie: Option<String>,
    /// Node name (default `mcp-stdio-<pid>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Config file (TOML): `[cluster]`, `[raft]`, `[mcp]`, ...
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Longest wait for the cluster's tools before answering the first request, ms.
    #[arg(long, default_value_t = 5_000)]
    pub wait_ms: u64,
}

/// Parses `NAME=COMMAND ARG...` into an upstream entry.
pub(crate) fn parse_upstream(spec: &str) -> anyhow::Result<McpUpstreamConfig> {
    let (name, command) = spec.split_once('=').context("expected NAME=COMMAND [ARGS...]")?;
    let mut words = command.split_whitespace();
    let program = words.next().context("empty command")?;
    Ok(McpUpstreamConfig {
        name: name.to_owned(),
        command: Some(program.to_owned()),
        args: words.map(str::to_owned).collect(),
        ..Default::default()
    })
}

/// Applies `flow node`'s MCP flags to `config`.
pub(crate) fn apply_node_flags(
    config: &mut FlowConfig,
    listen: Option<&str>,
    upstreams: &[String],
) -> anyhow::Result<()> {
    if let Some(l) = listen {
        config.mcp.listen = Some(l.to_owned());
    }
    for u in upstreams {
        config.mcp.upstream.push(parse_upstream(u)?);
    }
    Ok(())
}

/// Starts the node's MCP layer when its config asks for one (a listener or upstreams);
/// returns it and the front door's URL.
pub(crate) async fn start_for_node(node: &FlowNode) -> anyhow::Result<Option<(McpService, Option<String>)>> {
    let mcp = &node.config().mcp;
    if mcp.listen.is_none() && mcp.upstream.is_empty() {
        return Ok(None);
    }
    let service = McpService::start(node.clone()).await?;
    let url = service.serve_http(None).await?.map(|a| format!("http://{a}{}", node.config().mcp.path));
    Ok(Some((service, url)))
}

pub(crate) fn run(args: McpStdioArgs) -> anyhow::Result<ExitCode> {
    erlmcp_flow::quiet_agent_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(stdio_main(args))
}

async fn stdio_main(args: McpStdioArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(p) => FlowConfig::from_file(p)?,
        None => FlowConfig::default(),
    };
    config.cluster.enabled = true;
    config.node.name = args.name.clone().unwrap_or_else(|| format!("mcp-stdio-{}", std::process::id()));
    if let Some(c) = &args.cookie {
        config.cluster.cookie = c.clone();
    }
    config.cluster.seeds.extend(args.join.iter().cloned());
    // The front door is stdio; an HTTP listener from the config file is not started here.
    config.mcp.listen = None;
    config.validate()?;
    let node = FlowNode::start(config).await?;
    let mcp = McpService::start(node.clone()).await?;
    // Give the directory a moment so the host's first tools/list is complete; tools that
    // appear later are announced with notifications/tools/list_changed.
    if !mcp.wait_for_tools(1, Duration::from_millis(args.wait_ms)).await {
        tracing::warn!(wait_ms = args.wait_ms, "no tool in the cluster yet; serving anyway");
    }
    let served = mcp.serve_stdio().await;
    mcp.shutdown().await;
    node.shutdown(Duration::from_secs(2)).await;
    match served {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => bail!(e),
    }
}

/// The `mcp` control command's answer: counters and listed tools.
pub(crate) fn report(m: &McpService) -> serde_json::Value {
    let tools: Vec<String> = m.catalog().tools().map(|t| t.name.clone()).collect();
    serde_json::json!({ "stats": m.stats(), "tools": tools })
}
