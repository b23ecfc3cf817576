//! [`McpService`]: the MCP layer of one node: upstream replicas (supervised), the
//! catalog refresher, the front door over HTTP and/or stdio.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::FlowNode;
use erlmcp_flow::core::McpConfig;
use erlmcp_flow::supervision::{
    ChildSpec, Restart, RestartIntensity, Strategy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use parking_lot::Mutex;
use ractor::{Actor, ActorRef};
use rmcp::ServiceExt;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::calls::CallRegistry;
use crate::catalog::Catalog;
use crate::front_door::http::HttpSettings;
use crate::front_door::management::Management;
use crate::front_door::{FrontDoor, Shared};
use crate::stats::{McpStats, McpStatsSnapshot};
use crate::upstream::UpstreamSpec;
use crate::upstream::lane::ReplicaLink;
use crate::upstream::manager::{ManagerArgs, ReplicaManager};
use crate::upstream::replica::ReplicaTiming;

/// Environment variable read for the bearer token when `mcp.auth_token` is absent.
pub const TOKEN_ENV: &str = "FLOW_MCP_TOKEN";

/// A replica up for this long starts its restart backoff over.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Why the MCP layer could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum McpServiceError {
    /// The `[mcp]` section is invalid.
    #[error(transparent)]
    Config(#[from] erlmcp_flow::core::ConfigError),
    /// The upstream supervisor did not start.
    #[error("upstream supervisor failed to start: {0}")]
    Supervisor(String),
    /// The listener could not be bound or served.
    #[error("MCP front door on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A non-loopback listener without a token.
    #[error("refusing to serve MCP on non-loopback {0} without mcp.auth_token (or {TOKEN_ENV})")]
    Unprotected(SocketAddr),
    /// The stdio transport failed.
    #[error("MCP on stdio: {0}")]
    Stdio(String),
}

/// The MCP layer of a node.
pub struct McpService {
    node: FlowNode,
    config: McpConfig,
    stats: Arc<McpStats>,
    catalog: watch::Receiver<Arc<Catalog>>,
    door: FrontDoor,
    supervisor: Option<ActorRef<SupervisorMsg>>,
    stop: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for McpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpService").field("upstreams", &self.config.upstream.len()).finish_non_exhaustive()
    }
}

impl McpService {
    /// Starts the node's upstreams (`node.config().mcp.upstream`) and the catalog
    /// refresher. Serve the front door with [`serve_http`](Self::serve_http) or
    /// [`serve_stdio`](Self::serve_stdio).
    pub async fn start(node: FlowNode) -> Result<Self, McpServiceError> {
        let config = node.config().mcp.clone();
        config.validate()?;
        let stats = Arc::new(McpStats::default());
        let calls = CallRegistry::new(node.config().node.name.clone());
        let stop = CancellationToken::new();
        let timing = ReplicaTiming {
            ping_interval: Duration::from_millis(config.ping_interval_ms),
            backoff_base: Duration::from_millis(config.restart_backoff_base_ms),
            backoff_max: Duration::from_millis(config.restart_backoff_max_ms),
            stable_after: STABLE_AFTER,
        };
        let supervisor = if config.upstream.is_empty() {
            None
        } else {
            let mut spec = SupervisorSpec::new(
                "mcp_upstreams",
                Strategy::OneForOne,
                RestartIntensity::new(10, Duration::from_secs(60)),
            );
            for u in &config.upstream {
                let upstream = Arc::new(UpstreamSpec::from(u));
                for replica in 0..upstream.replicas {
                    let args = ManagerArgs {
                        spec: upstream.clone(),
                        replica,
                        node: node.clone(),
                        link: ReplicaLink::new(upstream.name.clone(), replica, calls.clone(), stats.clone()),
                        timing,
                        ping_timeout: Duration::from_millis(config.ping_timeout_ms),
                        stats: stats.clone(),
                    };
                    spec = spec.child(ChildSpec::new(
                        format!("{}/{replica}", upstream.name),
                        Restart::Permanent,
                        move |sup| {
                            let args = args.clone();
                            async move {
                                Actor::spawn_linked(None, ReplicaManager, args, sup).await.map(|(r, _)| r.get_cell())
                            }
                        },
                    ));
                }
            }
            let (sup, _) = Supervisor::start(spec).await.map_err(|e| McpServiceError::Supervisor(e.to_string()))?;
            Some(sup)
        };
        let (publish, catalog) = watch::channel(Arc::new(Catalog::default()));
        let refresher = tokio::spawn(crate::catalog_sync::run(
            node.clone(),
            stats.clone(),
            Duration::from_millis(config.catalog_refresh_ms),
            publish,
            stop.clone(),
        ));
        let management = config.management_tools.then(|| Management::new(node.clone(), catalog.clone(), stats.clone()));
        let door = FrontDoor::new(Shared {
            node: node.clone(),
            catalog: catalog.clone(),
            calls,
            stats: stats.clone(),
            in_flight: Arc::new(Semaphore::new(config.max_calls_in_flight as usize)),
            max_calls: config.max_calls_in_flight,
            management,
        });
        Ok(Self { node, config, stats, catalog, door, supervisor, stop, tasks: Mutex::new(vec![refresher]) })
    }

    /// The front door (an rmcp `ServerHandler`), to serve on any transport.
    pub fn front_door(&self) -> FrontDoor {
        self.door.clone()
    }

    /// Counters.
    pub fn stats(&self) -> McpStatsSnapshot {
        self.stats.snapshot()
    }

    /// The tools listed now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// Waits until at least `n` upstream tools are listed, up to `timeout`; true if so.
    pub async fn wait_for_tools(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.catalog.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| c.len() >= n)).await.is_ok_and(|r| r.is_ok())
    }

    /// Serves the front door over Streamable HTTP on `addr` (else `mcp.listen`); returns
    /// the bound address. `None` when neither is set.
    pub async fn serve_http(&self, addr: Option<SocketAddr>) -> Result<Option<SocketAddr>, McpServiceError> {
        let addr = match addr {
            Some(a) => a,
            None => match &self.config.listen {
                Some(l) => l.parse().map_err(|_| McpServiceError::Listen {
                    addr: l.clone(),
                    source: std::io::Error::other("not host:port"),
                })?,
                None => return Ok(None),
            },
        };
        let token = self.config.auth_token.clone().or_else(|| std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()));
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(McpServiceError::Unprotected(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| McpServiceError::Listen { addr: addr.to_string(), source })?;
        let settings = HttpSettings {
            path: self.config.path.clone(),
            token,
            allowed_hosts: self.config.allowed_hosts.clone(),
            allowed_origins: self.config.allowed_origins.clone(),
            max_sessions: self.config.max_sessions as usize,
            session_idle_timeout: Duration::from_millis(self.config.session_idle_timeout_ms),
            max_body_bytes: self.config.max_body_bytes as usize,
        };
        let (bound, task) = crate::front_door::http::serve(
            self.door.clone(),
            settings,
            listener,
            self.stats.clone(),
            self.stop.child_token(),
        )
        .await
        .map_err(|source| McpServiceError::Listen { addr: addr.to_string(), source })?;
        self.tasks.lock().push(task);
        Ok(Some(bound))
    }

    /// Serves the front door on this process's stdin/stdout until stdin closes (the host
    /// went away) or [`shutdown`](Self::shutdown). Nothing else may write to stdout.
    pub async fn serve_stdio(&self) -> Result<(), McpServiceError> {
        let running = self
            .door
            .clone()
            .serve_with_ct(rmcp::transport::stdio(), self.stop.child_token())
            .await
            .map_err(|e| McpServiceError::Stdio(e.to_string()))?;
        running.waiting().await.map_err(|e| McpServiceError::Stdio(e.to_string()))?;
        Ok(())
    }

    /// The node this layer runs on.
    pub fn node(&self) -> &FlowNode {
        &self.node
    }

    /// Stops serving, withdraws every upstream lane and stops the replicas.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        if let Some(sup) = &self.supervisor {
            let _ = sup.stop_and_wait(Some("mcp shutdown".into()), Some(Duration::from_secs(10))).await;
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}
