//! Shared harness of the MCP tests: a node with demo upstreams (real child processes of
//! the `mcp-demo-upstream` binary), its HTTP front door on an ephemeral port, and an rmcp
//! client that records the notifications it gets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use erlmcp_flow::core::McpUpstreamConfig;
use erlmcp_flow::{FlowConfig, FlowNode};
use erlmcp_flow_mcp::McpService;
use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value};

/// Generous bound for anything a test waits for; tests poll and go on as soon as it holds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The demo upstream binary.
pub const DEMO: &str = env!("CARGO_BIN_EXE_mcp-demo-upstream");

/// An upstream running the demo binary with `args`.
pub fn demo(name: &str, replicas: u32, lanes: u32, args: &[&str]) -> McpUpstreamConfig {
    McpUpstreamConfig {
        name: name.into(),
        command: Some(DEMO.into()),
        args: args.iter().map(|s| s.to_string()).collect(),
        replicas,
        max_concurrency: lanes,
        call_timeout_ms: 10_000,
        startup_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// A test config: fast retries, fast pings and restarts.
pub fn config(upstreams: Vec<McpUpstreamConfig>) -> FlowConfig {
    let mut c = FlowConfig::for_test();
    c.timeouts.execution_ms = 20_000;
    c.mcp.upstream = upstreams;
    c.mcp.ping_interval_ms = 200;
    c.mcp.ping_timeout_ms = 500;
    c.mcp.restart_backoff_base_ms = 50;
    c.mcp.restart_backoff_max_ms = 500;
    c.mcp.catalog_refresh_ms = 50;
    c
}

/// A running node with its MCP layer and front door.
pub struct TestNode {
    pub node: FlowNode,
    pub mcp: McpService,
    pub addr: SocketAddr,
}

impl TestNode {
    pub async fn start(config: FlowConfig) -> TestNode {
        let node = FlowNode::start(config).await.expect("node starts");
        let mcp = McpService::start(node.clone()).await.expect("mcp starts");
        let addr = mcp.serve_http(Some("127.0.0.1:0".parse().unwrap())).await.expect("listens").unwrap();
        TestNode { node, mcp, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Waits until `n` upstream tools are listed.
    pub async fn wait_tools(&self, n: usize) {
        assert!(self.mcp.wait_for_tools(n, DEADLINE).await, "{n} tools not listed within {DEADLINE:?}");
    }

    pub async fn stop(self) {
        self.mcp.shutdown().await;
        self.node.shutdown(Duration::from_secs(2)).await;
    }
}

/// A client that counts progress and list-changed notifications.
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<AtomicU64>,
    pub list_changed: Arc<AtomicU64>,
}

impl ClientHandler for Recorder {
    async fn on_progress(&self, _: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::Relaxed);
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

/// An MCP client session with the node's front door.
pub async fn client(url: &str) -> Client {
    Recorder::default().serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await.expect("client connects")
}

pub fn args(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

/// Calls `tool` with `arguments`.
pub async fn call(c: &Client, tool: &str, arguments: Value) -> Result<CallToolResult, ServiceError> {
    c.peer().call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args(arguments))).await
}

/// The JSON-RPC error code of a failed call.
pub fn code(e: &ServiceError) -> i32 {
    match e {
        ServiceError::McpError(d) => d.code.0,
        other => panic!("not a JSON-RPC error: {other:?}"),
    }
}

/// The first text content of a result.
pub fn text(r: &CallToolResult) -> String {
    r.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default()
}

/// Polls `cond` until it holds; panics with `what` after [`DEADLINE`].
pub async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond().await {
        assert!(Instant::now() < deadline, "not reached within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
