//! Tool-call latency and throughput through a node's MCP front door (client → front door →
//! router → lane → upstream) against calling the same upstream directly, in one run.
//!
//! ```text
//! cargo bench -p erlmcp-flow-mcp --bench front_door            # ~1 min
//! cargo bench -p erlmcp-flow-mcp --bench front_door -- --json  # one JSON object
//! ```
//!
//! The upstream is the Rust `mcp-demo-upstream` serving Streamable HTTP on 127.0.0.1; the
//! client is rmcp's Streamable HTTP client; the tool is `echo`. Latency: one session, one
//! call at a time (p50/p99 over 3 000 calls after 300 warm-up calls). Throughput:
//! `--sessions` sessions (32 by default), each calling in a closed loop for 5 s. Direct and
//! routed phases alternate, three rounds each; the table gives the median round. The node
//! runs with the default config; the upstream entry asks for 4 replicas (sessions to the
//! URL) of 8 lanes, so the routed path has as many call slots as the direct clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use erlmcp_flow::core::McpUpstreamConfig;
use erlmcp_flow::{FlowConfig, FlowNode};
use erlmcp_flow_mcp::McpService;
use hdrhistogram::Histogram;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};

type Client = RunningService<RoleClient, ()>;

async fn client(url: &str) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_owned())).await.expect("client connects")
}

fn echo() -> CallToolRequestParams {
    let args = serde_json::json!({"text": "hello"}).as_object().unwrap().clone();
    CallToolRequestParams::new("echo").with_arguments(args)
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

/// Calls per second over `for_` with `sessions` closed-loop sessions.
async fn throughput(url: &str, sessions: usize, for_: Duration) -> f64 {
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
                peer.call_tool(echo()).await.expect("call");
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

        let (mut dl, mut rl, mut dt, mut rt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            dl.push(latency(&direct, 300, 3_000).await);
            rl.push(latency(&routed, 300, 3_000).await);
            dt.push(throughput(&direct, sessions, Duration::from_secs(5)).await);
            rt.push(throughput(&routed, sessions, Duration::from_secs(5)).await);
        }
        let med =
            |v: &Vec<(u64, u64)>, f: fn(&(u64, u64)) -> u64| median(v.iter().map(|x| f(x) as f64).collect()) as u64;
        let (d50, d99) = (med(&dl, |x| x.0), med(&dl, |x| x.1));
        let (r50, r99) = (med(&rl, |x| x.0), med(&rl, |x| x.1));
        let (dtp, rtp) = (median(dt.clone()), median(rt.clone()));
        let stats = node.stats();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "direct_p50_us": d50, "direct_p99_us": d99, "routed_p50_us": r50, "routed_p99_us": r99,
                    "p50_overhead_us": r50 as i64 - d50 as i64,
                    "direct_calls_per_s": dtp.round(), "routed_calls_per_s": rtp.round(),
                    "throughput_ratio": (rtp / dtp * 100.0).round() / 100.0,
                    "sessions": sessions, "routed_tasks": stats.flow.completed, "failed": stats.flow.failed,
                })
            );
        } else {
            println!("MCP tool call `echo`, Rust upstream over Streamable HTTP on loopback (median of 3 rounds)");
            println!("{:<28} {:>10} {:>10} {:>14}", "", "p50 µs", "p99 µs", "calls/s");
            println!("{:<28} {:>10} {:>10} {:>14.0}", "direct to the upstream", d50, d99, dtp);
            println!("{:<28} {:>10} {:>10} {:>14.0}", "through the front door", r50, r99, rtp);
            println!(
                "p50 overhead {} µs; throughput ratio {:.2} ({sessions} sessions); routed tasks {} failed {}",
                r50 as i64 - d50 as i64,
                rtp / dtp,
                stats.flow.completed,
                stats.flow.failed
            );
            println!("rounds: direct latency {dl:?} routed {rl:?}; direct calls/s {dt:.0?} routed {rt:.0?}");
        }
        mcp.shutdown().await;
        node.shutdown(Duration::from_secs(2)).await;
        let _ = upstream.kill();
        let _ = upstream.wait();
    });
}
