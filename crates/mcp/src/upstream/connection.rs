//! Opening one replica's MCP client session: a child process over stdio, or a Streamable
//! HTTP URL; `initialize`, then `tools/list`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, PingRequest, ProgressNotificationParam,
    ProgressToken,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService, ServiceError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::calls::ProgressUpdate;
use crate::descriptor::{ReplicaCatalog, ToolDescriptor};
use crate::names::is_servable_tool_name;
use crate::upstream::UpstreamSpec;

/// Where the progress notifications of calls in flight go, by the progress token the
/// client side put in each request.
pub(crate) type ProgressRoutes = Arc<Mutex<HashMap<ProgressToken, mpsc::Sender<ProgressUpdate>>>>;

/// Something the upstream session tells the replica's manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSignal {
    /// `notifications/tools/list_changed`.
    ToolsChanged,
    /// The session ended (process exit, lost connection, closed by us).
    Closed,
}

/// The client side of an upstream session: forwards progress and tool list changes.
pub(crate) struct UpstreamClient {
    progress: ProgressRoutes,
    signals: mpsc::UnboundedSender<SessionSignal>,
}

impl ClientHandler for UpstreamClient {
    async fn on_progress(&self, params: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        let sink = self.progress.lock().get(&params.progress_token).cloned();
        if let Some(sink) = sink {
            // Dropped when the front door falls behind: progress is advisory.
            let _ = sink.try_send(ProgressUpdate {
                progress: params.progress,
                total: params.total,
                message: params.message,
            });
        }
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.signals.send(SessionSignal::ToolsChanged);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("erlmcp-flow", env!("CARGO_PKG_VERSION")))
    }
}

/// An open session with one replica.
pub struct Connection {
    /// Sends requests.
    pub(crate) peer: Peer<RoleClient>,
    /// Progress routes shared with the client handler.
    pub(crate) progress: ProgressRoutes,
    /// The replica's tools (after the allow/deny lists).
    pub(crate) catalog: Arc<ReplicaCatalog>,
    /// Cancelling it ends the session (and kills the process).
    stop: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("tools", &self.catalog.tools.len()).finish_non_exhaustive()
    }
}

impl Connection {
    /// Ends the session; a child process is killed.
    pub(crate) fn close(&self) {
        self.stop.cancel();
    }

    /// Sends a heartbeat ping and waits at most `timeout` for the answer.
    pub(crate) async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let request = ClientRequest::PingRequest(PingRequest::default());
        let handle = self
            .peer
            .send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
            .await
            .map_err(|e| e.to_string())?;
        handle.await_response().await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Lists the tools again.
    pub(crate) async fn relist(&self, spec: &UpstreamSpec, timeout: Duration) -> Result<ReplicaCatalog, String> {
        list_catalog(&self.peer, spec, timeout).await
    }
}

async fn list_catalog(
    peer: &Peer<RoleClient>,
    spec: &UpstreamSpec,
    timeout: Duration,
) -> Result<ReplicaCatalog, String> {
    let tools = tokio::time::timeout(timeout, peer.list_all_tools())
        .await
        .map_err(|_| format!("tools/list not answered within {timeout:?}"))?
        .map_err(|e| format!("tools/list failed: {e}"))?;
    let mut served = Vec::with_capacity(tools.len());
    for tool in tools {
        let name = tool.name.to_string();
        if !is_servable_tool_name(&name) {
            tracing::warn!(server = %spec.name, tool = %name, "tool name unusable (empty, over 128 bytes or with spaces): not served");
            continue;
        }
        if !spec.serves(&name) {
            continue;
        }
        let idempotent = spec.idempotent_tools.iter().any(|t| t == &name);
        served.push(ToolDescriptor::new(tool, idempotent, spec.call_timeout.as_millis() as u64));
    }
    Ok(ReplicaCatalog::new(spec.name.clone(), served))
}

/// Opens a session with replica `replica` of `spec`: starts the process (or connects),
/// initializes and lists the tools, all within `spec.startup_timeout`. `signals` receives
/// the session's [`SessionSignal`]s, ending with `Closed`.
pub(crate) async fn connect(
    spec: &UpstreamSpec,
    replica: u32,
    signals: mpsc::UnboundedSender<SessionSignal>,
) -> Result<Connection, String> {
    let progress: ProgressRoutes = Arc::default();
    let client = UpstreamClient { progress: progress.clone(), signals: signals.clone() };
    let deadline = tokio::time::Instant::now() + spec.startup_timeout;
    let running: RunningService<RoleClient, UpstreamClient> = match (&spec.command, &spec.url) {
        (Some(command), _) => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(&spec.args).envs(&spec.env).kill_on_drop(true);
            if let Some(dir) = &spec.cwd {
                cmd.current_dir(dir);
            }
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {command:?}: {e}"))?;
            if let Some(stderr) = stderr {
                tokio::spawn(forward_stderr(stderr, spec.name.clone(), replica));
            }
            tokio::time::timeout_at(deadline, client.serve(transport))
                .await
                .map_err(|_| format!("initialize not answered within {:?}", spec.startup_timeout))?
                .map_err(|e| format!("initialize failed: {e}"))?
        }
        (None, Some(url)) => {
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            tokio::time::timeout_at(deadline, client.serve(transport))
                .await
                .map_err(|_| format!("initialize not answered within {:?}", spec.startup_timeout))?
                .map_err(|e| format!("initialize failed: {e}"))?
        }
        (None, None) => return Err("neither command nor url".into()),
    };
    let peer = running.peer().clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let watch = stop.clone();
    let end = running.cancellation_token();
    tokio::spawn(async move {
        let quit = running.waiting();
        tokio::pin!(quit);
        tokio::select! {
            _ = &mut quit => {}
            _ = watch.cancelled() => {
                end.cancel();
                let _ = quit.await;
            }
        }
        let _ = signals.send(SessionSignal::Closed);
    });
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    match list_catalog(&peer, spec, left).await {
        Ok(catalog) => Ok(Connection { peer, progress, catalog: Arc::new(catalog), stop }),
        Err(e) => {
            stop.cancel();
            Err(e)
        }
    }
}

/// Copies the child's stderr to the log, one line per event, at most 4 KiB per line.
async fn forward_stderr(mut stderr: tokio::process::ChildStderr, server: String, replica: u32) {
    const MAX_LINE: usize = 4096;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                tracing::info!(target: "mcp_upstream", server = %server, replica, "{}", String::from_utf8_lossy(&line));
                line.clear();
            } else if line.len() < MAX_LINE {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        tracing::info!(target: "mcp_upstream", server = %server, replica, "{}", String::from_utf8_lossy(&line));
    }
}

/// Whether a failed request certainly never reached the upstream.
pub(crate) fn never_sent(e: &ServiceError) -> bool {
    matches!(e, ServiceError::TransportSend(_))
}
