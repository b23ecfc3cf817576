//! The node's operators' HTTP listener (`flow node --http-listen ADDR`, `[http] listen`):
//!
//! | path | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format 0.0.4 (see [`observe`]) |
//! | `GET /healthz` | 200 `{"up":true}` while the process serves HTTP |
//! | `GET /readyz` | 200 `{"ready":true,"reasons":[]}`, or 503 with the reasons (tree not running, cluster not joined, Raft without a leader or its core down) |
//! | `GET /status.json` | the dashboard's data: peers, Raft, agents, throughput and latency history |
//! | `GET /` | the dashboard: one self-contained HTML page polling `/status.json` |
//!
//! Anything else answers a JSON error: 404 for an unknown path, 405 for another method.
//! Request bodies are never read (every route is a GET). Connections are bounded
//! ([`MAX_CONNECTIONS`]; further ones wait in the kernel's backlog), and each is closed
//! after [`IDLE_TIMEOUT`] without progress or [`MAX_LIFETIME`] in all, so slow or idle
//! clients cannot hold the listener.
//!
//! Everything is read at request time from counters the node keeps anyway: no metrics
//! registry, no global recorder, nothing added to the task path. A 1 s sampler keeps
//! the dashboard's throughput/latency history (see [`history`]).

mod bounded;
mod exposition;
mod history;
mod observe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use erlmcp_flow::FlowNode;
use erlmcp_flow_mcp::McpService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use observe::{Observation, Observed};

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A connection without a byte read or written for this long is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection is closed after this long, whatever it does.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(120);

/// The dashboard page.
const DASHBOARD: &str = include_str!("dashboard.html");

/// A running listener.
pub(crate) struct HttpServer {
    pub(crate) addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds `addr` and serves `node` (and its MCP counters, when it has an MCP layer).
    pub(crate) async fn start(
        addr: SocketAddr,
        node: FlowNode,
        mcp: Option<Arc<McpService>>,
    ) -> anyhow::Result<HttpServer> {
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("http listener on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let history = history::spawn(node.clone(), stop.child_token());
        let state = Arc::new(Observed { node, mcp, history });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/status.json", get(status_json))
            .route("/", get(dashboard))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(state);
        let listener = bounded::BoundedListener::new(listener, MAX_CONNECTIONS, IDLE_TIMEOUT, MAX_LIFETIME);
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            if let Err(e) =
                axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
            {
                tracing::error!(error = %e, "http listener stopped");
            }
        });
        Ok(HttpServer { addr, stop, task })
    }

    /// Stops serving (open connections are closed within a second).
    pub(crate) async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
    }
}

type Shared = State<Arc<Observed>>;

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

async fn metrics(State(o): Shared) -> Response {
    let text = Observation::gather(&o).await.render_metrics(&o);
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], text)
        .into_response()
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "up": true }))
}

async fn readyz(State(o): Shared) -> Response {
    let r = observe::readiness_of(&o.node).await;
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, &serde_json::to_value(&r).unwrap_or_default())
}

async fn status_json(State(o): Shared) -> Response {
    let v = Observation::gather(&o).await.status_json(&o);
    json(StatusCode::OK, &v)
}

async fn dashboard() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], DASHBOARD).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": "not_found", "message": format!("no such path {:?}; try /metrics, /healthz, /readyz, /status.json or /", uri.path()) }),
    )
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({ "error": "method_not_allowed", "message": format!("{method} is not served; every path is GET") }),
    );
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}
