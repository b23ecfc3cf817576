//! Tool-call latency and throughput through a node's MCP front door (client → front door →
//! router → lane → upstream) against calling the same upstream directly, in one run, with
//! a third path as the floor any MCP gateway on this SDK pays: a pass-through proxy (an
//! rmcp server whose `tools/call` forwards to the upstream over the same client transport
//! the lanes use, with no routing, schema check, retry or ledger).
//!
//! ```text
//! cargo bench -p erlmcp-flow-mcp --bench front_door            # ~2 min
//! cargo bench -p erlmcp-flow-mcp --bench front_door -- --json  # one JSON object
//! ```
//!
//! The upstream is the Rust `mcp-demo-upstream` serving Streamable HTTP on 127.0.0.1; the
//! client is rmcp's Streamable HTTP client; the tool is `echo`. Latency: one session, one
//! call at a time (p50/p99 over 3 000 calls after 300 warm-up calls). Throughput:
//! `--sessions` sessions (32 by default), each calling in a closed loop for 5 s. Direct and
//! routed phases alternate, three rounds each; the table gives the median round. The node
//! runs with the default config; the upstream entry asks for 4 replicas (sessions to the
//! URL) of 8 lanes, so the routed path has as many call slots as the direct clients; the
//! proxy also holds 4 sessions. A last throughput row calls `sleep {"ms": 20}` (a tool that
//! works for 20 ms) instead of `echo`, where the machine's CPU is not the bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use erlmcp_flow::core::McpUpstreamConfig;
use erlmcp_flow::{FlowConfig, FlowNode};
use erlmcp_flow_mcp::McpService;
use hdrhistogram::Histogram;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};

type Client = RunningService<RoleClient, ()>;

async fn client(url: &str) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await.expect("client connects")
}

fn echo() -> CallToolRequestParams {
    let args = serde_json::json!({"text": "hello"}).as_object().unwrap().clone();
    CallToolRequestParams::new("echo").with_arguments(args)
}

fn sleep_20ms() -> CallToolRequestParams {
    let args = serde_json::json!({"ms": 20}).as_object().unwrap().clone();
    CallToolRequestParams::new("sleep").with_arguments(args)
}

/// The pass-through proxy: the least an MCP gateway on rmcp does per call (one server
/// hop and one client hop), round robin over its upstream sessions.
#[derive(Clone)]
struct Proxy {
    upstreams: Arc<Vec<Client>>,
    next: Arc<AtomicUsize>,
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.upstreams[0].peer().list_tools(None).await.map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        self.upstreams[i]
            .peer()
            .call_tool(request)
            .await
            .map(CallToolResponse::Complete)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

/// Starts the proxy in front of `upstream` with `sessions` sessions; its URL.
async fn start_proxy(upstream: &str, sessions: usize) -> String {
    let mut upstreams = Vec::new();
    for _ in 0..sessions {
        upstreams.push(client(upstream).await);
    }
    let proxy = Proxy { upstreams: Arc::new(upstreams), next: Arc::new(AtomicUsize::new(0)) };
    let service = StreamableHttpService::new(
        move || Ok(proxy.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

/// p50 and p99 of one-at-a-time calls, µs.
async fn latency(url: &str, warmup: usize, calls: usize) -> (u64, u64) {
    let c = client(url).await;
    for _ in 0..warmup {
        c.peer().call_tool(echo()).await.expect("call");
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    for _ in 0..calls {
        let t = Instant::now();
        c.peer().call_tool(echo()).await.expect("call");
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    let _ = c.cancel().await;
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
}

/// Calls per second over `for_` with `sessions` closed-loop sessions calling `call()`.
async fn throughput(url: &str, sessions: usize, for_: Duration, call: fn() -> CallToolRequestParams) -> f64 {
    let mut clients = Vec::new();
    for _ in 0..sessions {
        clients.push(client(url).await);
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in &clients {
        let peer = c.peer().clone();
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peer.call_tool(call()).await.expect("call");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Warm up, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_count = done.load(Ordering::Relaxed);
    let t = Instant::now();
    tokio::time::sleep(for_).await;
    let n = done.load(Ordering::Relaxed) - start_count;
    let rate = n as f64 / t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    for c in clients {
        let _ = c.cancel().await;
    }
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let sessions: usize = args
        .iter()
        .position(|a| a == "--sessions")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        // The upstream.
        let mut upstream = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-demo-upstream"))
            .args(["--http", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("upstream starts");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(upstream.stdout.take().unwrap()), &mut line).unwrap();
        let addr = line.trim().strip_prefix("LISTENING ").expect("LISTENING line").to_owned();
        let direct = format!("http://{addr}/mcp");

        // The node, default config, with the upstream by URL.
        let mut config = FlowConfig::default();
        config.mcp.upstream.push(McpUpstreamConfig {
            name: "demo".into(),
            url: Some(direct.clone()),
            replicas: 4,
            max_concurrency: 8,
            ..Default::default()
        });
        let node = FlowNode::start(config).await.unwrap();
        let mcp = McpService::start(node.clone()).await.unwrap();
        let front = mcp.serve_http(Some("127.0.0.1:0".parse().unwrap())).await.unwrap().unwrap();
        let routed = format!("http://{front}/mcp");
        assert!(mcp.wait_for_tools(7, Duration::from_secs(30)).await, "tools listed");

        let proxy = start_proxy(&direct, 4).await;

        // Per path: latency rounds, echo throughput rounds, sleep-20-ms throughput rounds.
        let paths = [("direct to the upstream", &direct), ("pass-through rmcp proxy", &proxy), ("through the front door", &routed)];
        let mut lat: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 3];
        let mut tput: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut work: Vec<Vec<f64>> = vec![Vec::new(); 3];
        for _ in 0..3 {
            for (i, (_, url)) in paths.iter().enumerate() {
                lat[i].push(latency(url, 300, 3_000).await);
            }
            for (i, (_, url)) in paths.iter().enumerate() {
                tput[i].push(throughput(url, sessions, Duration::from_secs(5), echo).await);
            }
            for (i, (_, url)) in paths.iter().enumerate() {
                work[i].push(throughput(url, sessions, Duration::from_secs(3), sleep_20ms).await);
            }
        }
        let med =
            |v: &Vec<(u64, u64)>, f: fn(&(u64, u64)) -> u64| median(v.iter().map(|x| f(x) as f64).collect()) as u64;
        let p50: Vec<u64> = lat.iter().map(|v| med(v, |x| x.0)).collect();
        let p99: Vec<u64> = lat.iter().map(|v| med(v, |x| x.1)).collect();
        let tp: Vec<f64> = tput.iter().map(|v| median(v.clone())).collect();
        let wk: Vec<f64> = work.iter().map(|v| median(v.clone())).collect();
        let ratio = |a: f64, b: f64| (a / b * 100.0).round() / 100.0;
        let stats = node.stats();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "direct_p50_us": p50[0], "direct_p99_us": p99[0],
                    "proxy_p50_us": p50[1], "proxy_p99_us": p99[1],
                    "routed_p50_us": p50[2], "routed_p99_us": p99[2],
                    "p50_overhead_us": p50[2] as i64 - p50[0] as i64,
                    "p50_overhead_over_proxy_us": p50[2] as i64 - p50[1] as i64,
                    "direct_calls_per_s": tp[0].round(), "proxy_calls_per_s": tp[1].round(), "routed_calls_per_s": tp[2].round(),
                    "throughput_ratio": ratio(tp[2], tp[0]), "throughput_ratio_to_proxy": ratio(tp[2], tp[1]),
                    "sleep20_direct_calls_per_s": wk[0].round(), "sleep20_proxy_calls_per_s": wk[1].round(),
                    "sleep20_routed_calls_per_s": wk[2].round(), "sleep20_throughput_ratio": ratio(wk[2], wk[0]),
                    "sessions": sessions, "routed_tasks": stats.flow.completed, "failed": stats.flow.failed,
                })
            );
        } else {
            println!("MCP tool calls, Rust upstream over Streamable HTTP on loopback (median of 3 rounds, {sessions} sessions)");
            println!("{:<28} {:>10} {:>10} {:>14} {:>18}", "", "p50 µs", "p99 µs", "echo calls/s", "sleep-20ms calls/s");
            for (i, (name, _)) in paths.iter().enumerate() {
                println!("{:<28} {:>10} {:>10} {:>14.0} {:>18.0}", name, p50[i], p99[i], tp[i], wk[i]);
            }
            println!(
                "front door vs direct: p50 overhead {} µs, echo throughput {:.2}x, sleep-20ms throughput {:.2}x",
                p50[2] as i64 - p50[0] as i64,
                tp[2] / tp[0],
                wk[2] / wk[0]
            );
            println!(
                "front door vs proxy:  p50 overhead {} µs, echo throughput {:.2}x; routed tasks {} failed {}",
                p50[2] as i64 - p50[1] as i64,
                tp[2] / tp[1],
                stats.flow.completed,
                stats.flow.failed
            );
            println!("rounds: latency {lat:?}; echo calls/s {tput:.0?}; sleep-20ms calls/s {work:.0?}");
        }
        mcp.shutdown().await;
        node.shutdown(Duration::from_secs(2)).await;
        let _ = upstream.kill();
        let _ = upstream.wait();
    });
}
