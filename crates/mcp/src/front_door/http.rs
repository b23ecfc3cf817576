//! The HTTP listener: rmcp's Streamable HTTP service mounted at `mcp.path` in an axum
//! router (one listener; other routes such as `/metrics` can share it), behind one guard:
//!
//! 1. **bearer token**: with `mcp.auth_token` (or `FLOW_MCP_TOKEN`) set, a request without
//!    `Authorization: Bearer <token>` is answered 401 with a JSON-RPC error body
//!    ([`UNAUTHORIZED`](super::errors::UNAUTHORIZED)); the comparison takes the same time
//!    whatever the token;
//! 2. **session bound**: a request that would open a session (a POST without
//!    `Mcp-Session-Id`) at `mcp.max_sessions` open sessions is answered 503 with a JSON-RPC
//!    error ([`OVERLOADED`](super::errors::OVERLOADED)) and `Retry-After`; idle sessions
//!    close after `mcp.session_idle_timeout_ms`;
//! 3. rmcp then checks `Host` against `mcp.allowed_hosts` and `Origin` against
//!    `mcp.allowed_origins` (DNS-rebinding protection: any `Origin` is refused by default),
//!    bounds the body (`mcp.max_body_bytes`, 413), and answers malformed JSON-RPC with a
//!    JSON-RPC error. The guard counts every 4xx answer (`http_rejected`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::FrontDoor;
use super::errors::{OVERLOADED, UNAUTHORIZED, http_body};
use crate::stats::McpStats;

/// What the HTTP front door needs from the config.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Endpoint path.
    pub path: String,
    /// Required bearer token.
    pub token: Option<String>,
    /// Accepted `Host` values.
    pub allowed_hosts: Vec<String>,
    /// Accepted `Origin` values.
    pub allowed_origins: Vec<String>,
    /// Open sessions allowed.
    pub max_sessions: usize,
    /// Idle session lifetime.
    pub session_idle_timeout: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
}

#[derive(Clone)]
struct Guard {
    token: Option<Arc<str>>,
    max_sessions: usize,
    sessions: Arc<LocalSessionManager>,
    stats: Arc<McpStats>,
}

/// Equal-time comparison of two byte strings (the length may leak, the content does not).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_error(status: StatusCode, code: i32, kind: &str, message: &str) -> Response {
    let mut r = Response::new(Body::from(http_body(code, kind, message)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn guard(State(g): State<Guard>, request: Request, next: Next) -> Response {
    if let Some(token) = &g.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            McpStats::inc(&g.stats.unauthorized);
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token (Authorization: Bearer <mcp.auth_token>)",
            );
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let opens_session = request.method() == Method::POST && !request.headers().contains_key("mcp-session-id");
    if opens_session && g.sessions.sessions.read().await.len() >= g.max_sessions {
        McpStats::inc(&g.stats.sessions_refused);
        let mut r = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            OVERLOADED,
            "overloaded",
            &format!("{} MCP sessions are open (mcp.max_sessions); retry later", g.max_sessions),
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let response = next.run(request).await;
    if response.status().is_client_error() {
        McpStats::inc(&g.stats.http_rejected);
    }
    response
}

/// Serves `door` on `listener` until `stop` is cancelled. Returns the bound address and
/// the server's task.
pub async fn serve(
    door: FrontDoor,
    settings: HttpSettings,
    listener: TcpListener,
    stats: Arc<McpStats>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(settings.session_idle_timeout);
    let sessions = Arc::new(sessions);
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_allowed_origins(settings.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(settings.max_body_bytes)
        .with_cancellation_token(stop.child_token());
    if settings.allowed_hosts.is_empty() {
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(move || Ok(door.clone()), sessions.clone(), config);
    let g =
        Guard { token: settings.token.as_deref().map(Arc::from), max_sessions: settings.max_sessions, sessions, stats };
    let app =
        axum::Router::new().route_service(&settings.path, service).layer(middleware::from_fn_with_state(g, guard));
    let task = tokio::spawn(async move {
        let shutdown = stop.clone();
        if let Err(e) =
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
        {
            tracing::error!(error = %e, "MCP HTTP front door stopped");
        }
    });
    Ok((addr, task))
}
