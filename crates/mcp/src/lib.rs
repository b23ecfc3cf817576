//! erlmcp-flow as an MCP tool router: any MCP client calls tools at any node, any MCP
//! server is an agent, every call is a task routed across the cluster.
//!
//! * **Upstreams** (`[[mcp.upstream]]`): each replica of an MCP server (a child process
//!   on stdio, or a Streamable HTTP session) is published as agents — one per concurrent
//!   call slot, a *lane* — whose capabilities are its tool names. Replicas are pinged,
//!   restarted with backoff when they exit or hang, and have no agent while down.
//! * **Catalog**: every node lists every tool of the cluster, learnt from the gossiped
//!   agent directory and fetched once per distinct tool list; names that servers disagree
//!   on are namespaced `server.tool`; `notifications/tools/list_changed` follows changes.
//! * **Calls are tasks**: a `tools/call` is checked against the tool's input schema and
//!   becomes a task needing the tool's capability, routed by the node's strategy through
//!   breakers, bulkheads and retries (and the replicated ledger with Raft). Only tools
//!   declaring `readOnlyHint` / `idempotentHint` (or listed `idempotent_tools`) are
//!   retried after a failure that may have run them; any other such call is answered
//!   "may have run" ([`front_door::errors::MAY_HAVE_RUN`]): never a silent duplicate.
//! * **Front door**: Streamable HTTP at `/mcp` (loopback, Host/Origin checks, optional
//!   bearer token, bounded sessions, calls and bodies) or stdio; management tools
//!   (`flow_*`) for orchestrators.
//!
//! # Quick start
//!
//! ```no_run
//! use erlmcp_flow::prelude::*;
//! use erlmcp_flow::core::McpUpstreamConfig;
//! use erlmcp_flow_mcp::McpService;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> anyhow::Result<()> {
//! let mut config = FlowConfig::default();
//! config.mcp.upstream.push(McpUpstreamConfig {
//!     name: "demo".into(),
//!     command: Some("mcp-demo-upstream".into()), // any MCP server speaking stdio
//!     replicas: 2,
//!     ..Default::default()
//! });
//! let node = FlowNode::start(config).await?;
//! let mcp = McpService::start(node.clone()).await?;
//! let addr = mcp.serve_http(Some("127.0.0.1:8808".parse()?)).await?;
//! println!("MCP clients connect to http://{}/mcp", addr.unwrap());
//! # mcp.shutdown().await;
//! # node.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(())
//! # }
//! ```
//!
//! The tests in `crates/mcp/tests` run this with the Rust demo upstream
//! (`mcp-demo-upstream`, a binary of this crate) and with Python MCP servers.
//!
//! # Layout
//!
//! * [`service`]: [`McpService`], the composition: upstream supervisor, catalog refresher,
//!   HTTP and stdio front doors.
//! * [`upstream`]: replicas (pure lifecycle state machine, manager actor, MCP client
//!   connection) and their lanes (the agents).
//! * [`catalog`]: merging live replica tool lists into one listing (pure);
//!   [`catalog_sync`]: keeping it current from the agent directory.
//! * [`front_door`]: the MCP server (`ServerHandler`), the HTTP guard, management tools,
//!   error codes.
//! * [`schema`]: checking arguments against a tool's input schema (a documented subset).
//! * [`payload`]: the task payload between front door and lanes.
//! * [`descriptor`], [`names`], [`calls`], [`stats`]: tool descriptors and digests,
//!   capability names, calls in progress, counters.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod calls;
pub mod catalog;
pub mod catalog_sync;
pub mod descriptor;
pub mod front_door;
pub mod names;
pub mod payload;
pub mod schema;
pub mod service;
pub mod stats;
pub mod upstream;

pub use catalog::{Catalog, ExposedTool};
pub use front_door::FrontDoor;
pub use service::{McpService, McpServiceError, TOKEN_ENV};
pub use stats::{McpStats, McpStatsSnapshot};
