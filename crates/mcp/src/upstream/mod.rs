//! Upstream MCP servers run as agents.
//!
//! Each `[[mcp.upstream]]` entry runs `replicas` replicas: a child process speaking MCP on
//! stdio (`command`), or a session with a Streamable HTTP server (`url`). A replica is
//! driven by a [`ReplicaManager`](manager::ReplicaManager) actor (supervised, one per
//! replica) around the pure [`ReplicaCore`](replica::ReplicaCore): it starts the
//! replica, lists its tools, publishes `max_concurrency` *lanes* (agents, see [`lane`])
//! whose capabilities are the tool names, pings it every `ping_interval_ms`, and when the
//! replica exits, stops answering pings or loses its connection, withdraws the lanes
//! (out of routing at once, then stopped once they have answered what they hold) and
//! restarts it with exponential backoff. While a replica is down it has no lanes: the
//! router sees no agent for it on any node.
//!
//! # Layout
//!
//! * [`replica`]: the replica's lifecycle as a pure state machine.
//! * [`connection`]: opening the MCP client session (process or URL), ping, tools/list.
//! * [`lane`]: [`LaneAgent`](lane::LaneAgent), the agent that sends one call at a time.
//! * [`manager`]: the actor that executes the state machine's commands.

pub mod connection;
pub mod lane;
pub mod manager;
pub mod replica;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use erlmcp_flow::core::McpUpstreamConfig;

/// One upstream server, as the node runs it (from `[[mcp.upstream]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    /// Server name.
    pub name: String,
    /// Program to run (stdio).
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its extra environment.
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint.
    pub url: Option<String>,
    /// Replicas to run.
    pub replicas: u32,
    /// Lanes (concurrent calls) per replica.
    pub max_concurrency: u32,
    /// Only these tools (empty: all).
    pub allow_tools: Vec<String>,
    /// Not these tools.
    pub deny_tools: Vec<String>,
    /// Retried although not annotated idempotent.
    pub idempotent_tools: Vec<String>,
    /// Per-call timeout.
    pub call_timeout: Duration,
    /// Start-up budget (process start, initialize, tools/list).
    pub startup_timeout: Duration,
}

impl UpstreamSpec {
    /// Whether the allow and deny lists let `tool` through.
    pub fn serves(&self, tool: &str) -> bool {
        (self.allow_tools.is_empty() || self.allow_tools.iter().any(|t| t == tool))
            && !self.deny_tools.iter().any(|t| t == tool)
    }
}

impl From<&McpUpstreamConfig> for UpstreamSpec {
    fn from(c: &McpUpstreamConfig) -> Self {
        Self {
            name: c.name.clone(),
            command: c.command.clone(),
            args: c.args.clone(),
            env: c.env.clone(),
            cwd: c.cwd.clone(),
            url: c.url.clone(),
            replicas: c.replicas,
            max_concurrency: c.max_concurrency,
            allow_tools: c.allow_tools.clone(),
            deny_tools: c.deny_tools.clone(),
            idempotent_tools: c.idempotent_tools.clone(),
            call_timeout: Duration::from_millis(c.call_timeout_ms),
            startup_timeout: Duration::from_millis(c.startup_timeout_ms),
        }
    }
}
