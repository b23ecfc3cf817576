//! `mcp-demo-upstream`: a small MCP server for the demo, the tests and the benchmark.
//!
//! ```text
//! mcp-demo-upstream [--http 127.0.0.1:PORT] [--variant alt] [--count-file PATH] [--mode MODE]
//! ```
//!
//! Speaks MCP on stdin/stdout (default) or Streamable HTTP at `/mcp` (`--http`). Tools:
//!
//! | tool | annotations | does |
//! |---|---|---|
//! | `echo {text}` | read-only | returns `text` |
//! | `add {a, b}` | read-only | returns `a + b` (`--variant alt`: integers, a different schema) |
//! | `sleep {ms}` | idempotent | sleeps, sending a progress notification every 10 ms of it |
//! | `record {id}` | - | appends `id` to `--count-file` (one line per execution), returns it |
//! | `pid {}` | read-only | returns the process id |
//! | `fail {message}` | read-only | returns a tool error (`isError`) |
//! | `crash {}` | - | exits the process mid-call |
//!
//! `--mode` makes a broken server for the bad-input tests: `exit` (exits at start),
//! `garbage` (answers every line with text that is not JSON-RPC), `hang` (reads and never
//! answers), `bad-result` (a hand-written stdio server that lists `echo` and `garbage`:
//! `echo` answers a result that is not a `CallToolResult`, `garbage` answers a line that is
//! not JSON).

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

#[derive(Debug, Parser)]
#[command(name = "mcp-demo-upstream", about = "A small MCP server for erlmcp-flow's demo, tests and bench")]
struct Args {
    /// Serve Streamable HTTP at /mcp on this address instead of stdio.
    #[arg(long)]
    http: Option<String>,
    /// `alt`: `add` takes integers (a different input schema than the default server).
    #[arg(long, default_value = "default")]
    variant: String,
    /// Where `record` appends one line per execution.
    #[arg(long)]
    count_file: Option<std::path::PathBuf>,
    /// `normal`, `exit`, `garbage`, `hang` or `bad-result` (see the module docs).
    #[arg(long, default_value = "normal")]
    mode: String,
}

#[derive(Clone)]
struct Demo {
    tools: Arc<Vec<Tool>>,
    count_file: Option<Arc<std::path::PathBuf>>,
}

fn tool(name: &'static str, description: &'static str, schema: Value, annotations: ToolAnnotations) -> Tool {
    let Value::Object(schema) = schema else { unreachable!() };
    Tool::new(name, description, Arc::new(schema)).with_annotations(annotations)
}

fn tools(variant: &str) -> Vec<Tool> {
    let ro = || ToolAnnotations::new().read_only(true);
    let number = if variant == "alt" { "integer" } else { "number" };
    vec![
        tool(
            "echo",
            "Returns its text.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ro(),
        ),
        tool(
            "add",
            "Adds two numbers.",
            json!({"type": "object", "properties": {"a": {"type": number}, "b": {"type": number}}, "required": ["a", "b"]}),
            ro(),
        ),
        tool(
            "sleep",
            "Sleeps, reporting progress.",
            json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": 600000}}, "required": ["ms"]}),
            ToolAnnotations::new().idempotent(true).read_only(false),
        ),
        tool(
            "record",
            "Appends its id to the count file (not idempotent).",
            json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
            ToolAnnotations::new().read_only(false).idempotent(false).destructive(false),
        ),
        tool("pid", "The server's process id.", json!({"type": "object", "properties": {}}), ro()),
        tool(
            "fail",
            "Returns a tool error.",
            json!({"type": "object", "properties": {"message": {"type": "string"}}}),
            ro(),
        ),
        tool(
            "crash",
            "Exits the process mid-call.",
            json!({"type": "object", "properties": {}}),
            ToolAnnotations::new().read_only(false),
        ),
    ]
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

impl Demo {
    async fn run(
        &self,
        name: &str,
        args: &Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let s = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        match name {
            "echo" => Ok(text(s("text"))),
            "add" => {
                let a = args.get("a").and_then(Value::as_f64).unwrap_or_default();
                let b = args.get("b").and_then(Value::as_f64).unwrap_or_default();
                Ok(CallToolResult::structured(json!({"sum": a + b})))
            }
            "sleep" => {
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or_default();
                let token = ctx.meta.get_progress_token();
                let mut slept = 0;
                while slept < ms {
                    let step = (ms - slept).min(10);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(step)) => {}
                        _ = ctx.ct.cancelled() => return Err(ErrorData::internal_error("cancelled", None)),
                    }
                    slept += step;
                    if let Some(t) = &token {
                        let mut p = ProgressNotificationParam::new(t.clone(), slept as f64);
                        p.total = Some(ms as f64);
                        let _ = ctx.peer.notify_progress(p).await;
                    }
                }
                Ok(text(format!("slept {ms} ms")))
            }
            "record" => {
                let id = s("id");
                if let Some(path) = &self.count_file {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path.as_ref())
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                    // One write of the whole line: O_APPEND keeps it whole next to the
                    // other replicas' lines (`writeln!` may split it in two writes).
                    f.write_all(format!("{id}\n").as_bytes())
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                }
                Ok(text(id))
            }
            "pid" => Ok(CallToolResult::structured(json!({"pid": std::process::id()}))),
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text(s("message"))])),
            "crash" => std::process::exit(3),
            _ => Err(ErrorData::invalid_params(format!("unknown tool {name}"), None)),
        }
    }
}

impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-demo-upstream", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name: Cow<'_, str> = request.name.clone();
        let args = request.arguments.unwrap_or_default();
        self.run(&name, &args, &context).await.map(CallToolResponse::Complete)
    }
}

fn broken(mode: &str) -> anyhow::Result<()> {
    use std::io::BufRead;
    match mode {
        "exit" => std::process::exit(1),
        "garbage" => {
            let stdin = std::io::stdin();
            let mut out = std::io::stdout();
            for line in stdin.lock().lines() {
                let _ = line?;
                writeln!(out, "this is not JSON-RPC {{{{")?;
                out.flush()?;
            }
            Ok(())
        }
        "hang" => {
            for line in std::io::stdin().lock().lines() {
                let _ = line?;
            }
            Ok(())
        }
        "bad-result" => {
            let mut out = std::io::stdout();
            let schema = json!({"type": "object", "properties": {}});
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                let Some(id) = msg.get("id").cloned() else { continue }; // a notification
                let result = match msg["method"].as_str().unwrap_or_default() {
                    "initialize" => json!({
                        "protocolVersion": msg["params"]["protocolVersion"],
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "bad-result", "version": "0"}
                    }),
                    "tools/list" => json!({"tools": [
                        {"name": "echo", "inputSchema": schema, "annotations": {"readOnlyHint": true}},
                        {"name": "garbage", "inputSchema": schema}
                    ]}),
                    "tools/call" if msg["params"]["name"] == "garbage" => {
                        writeln!(out, "}}}} not JSON")?;
                        out.flush()?;
                        continue;
                    }
                    "tools/call" => json!({"unexpected": [1, 2, 3]}),
                    _ => json!({}),
                };
                writeln!(out, "{}", json!({"jsonrpc": "2.0", "id": id, "result": result}))?;
                out.flush()?;
            }
            Ok(())
        }
        other => anyhow::bail!("unknown mode {other:?}"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode != "normal" {
        return broken(&args.mode);
    }
    let demo = Demo { tools: Arc::new(tools(&args.variant)), count_file: args.count_file.map(Arc::new) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match args.http {
            None => {
                let running = demo.serve(rmcp::transport::stdio()).await.context("serve stdio")?;
                running.waiting().await?;
            }
            Some(addr) => {
                use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
                use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
                let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("bind {addr}"))?;
                let service = StreamableHttpService::new(
                    move || Ok(demo.clone()),
                    Arc::new(LocalSessionManager::default()),
                    StreamableHttpServerConfig::default(),
                );
                println!("LISTENING {}", listener.local_addr()?);
                let app = axum::Router::new().route_service("/mcp", service);
                axum::serve(listener, app).await?;
            }
        }
        Ok(())
    })
}
