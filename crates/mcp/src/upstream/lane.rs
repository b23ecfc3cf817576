//! [`LaneAgent`]: one concurrent call slot of an upstream replica, as an agent.
//!
//! An agent executes one task at a time, so a replica that serves `max_concurrency`
//! calls at once is published as that many lanes sharing its session ([`ReplicaLink`]).
//! The router balances, breaks and retries across lanes like across any agents.
//!
//! What a lane answers for a call, and why:
//!
//! | what happened | answer | router does |
//! |---|---|---|
//! | result | the `CallToolResult` | completes |
//! | the upstream's JSON-RPC error | `Permanent` (upstream error) | fails, passes it on |
//! | replica down, request not sent | `Retryable` | another replica |
//! | sent, then the replica died or the call timed out; tool idempotent | `Retryable` | another replica |
//! | same, tool not idempotent | `Permanent` (may have run) | fails: never a silent duplicate |
//! | client cancelled | `Permanent` (cancelled) | fails |
//! | not a `tools/call` result | `Permanent` (protocol) | fails |
//!
//! The lane answers every call it sent before it can be stopped: its manager takes it out
//! of routing first and stops it only once it holds nothing, so the router never sees a
//! lane die with a call in it (which, for an at-most-once task, it would have to report as
//! "may have run").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow::{Agent, AgentError, Task};
use parking_lot::RwLock;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification, CancelledNotificationParam,
    ClientNotification, ClientRequest, ServerResult,
};
use rmcp::service::{PeerRequestOptions, ServiceError};

use crate::calls::CallRegistry;
use crate::descriptor::ReplicaCatalog;
use crate::payload::{CallFailure, LaneRequest, ToolCall};
use crate::stats::McpStats;
use crate::upstream::connection::{Connection, never_sent};

/// A replica's live session as its lanes see it.
#[derive(Debug)]
pub(crate) struct LiveSession {
    pub(crate) generation: u64,
    pub(crate) conn: Arc<Connection>,
    /// The tools it serves.
    pub(crate) catalog: Arc<ReplicaCatalog>,
    /// Set when the replica is being withdrawn: lanes stop sending.
    down: AtomicBool,
}

/// What the lanes of one replica share: the current session, if up.
#[derive(Debug)]
pub struct ReplicaLink {
    server: String,
    replica: u32,
    live: RwLock<Option<Arc<LiveSession>>>,
    calls: Arc<CallRegistry>,
    stats: Arc<McpStats>,
}

impl ReplicaLink {
    pub(crate) fn new(server: String, replica: u32, calls: Arc<CallRegistry>, stats: Arc<McpStats>) -> Arc<Self> {
        Arc::new(Self { server, replica, live: RwLock::new(None), calls, stats })
    }

    /// Installs the session of `generation`.
    pub(crate) fn install(&self, generation: u64, conn: Arc<Connection>, catalog: Arc<ReplicaCatalog>) {
        *self.live.write() = Some(Arc::new(LiveSession { generation, conn, catalog, down: AtomicBool::new(false) }));
    }

    /// Marks the session down: lanes answer "not sent" from now on.
    pub(crate) fn mark_down(&self) {
        if let Some(s) = &*self.live.read() {
            s.down.store(true, Ordering::Release);
        }
    }

    /// Removes the session (returned so the caller can close it).
    pub(crate) fn take(&self) -> Option<Arc<LiveSession>> {
        self.live.write().take()
    }

    /// The session of `generation`, if it is installed and up.
    fn session(&self, generation: u64) -> Option<Arc<LiveSession>> {
        self.live.read().as_ref().filter(|s| s.generation == generation && !s.down.load(Ordering::Acquire)).cloned()
    }
}

/// One call slot of a replica (an agent).
#[derive(Debug)]
pub struct LaneAgent {
    link: Arc<ReplicaLink>,
    generation: u64,
}

impl LaneAgent {
    pub(crate) fn new(link: Arc<ReplicaLink>, generation: u64) -> Self {
        Self { link, generation }
    }

    fn not_sent(&self, why: &str) -> AgentError {
        AgentError::Retryable(format!(
            "replica {}/{} {why}; the call was not sent",
            self.link.server, self.link.replica
        ))
    }

    async fn call(&self, session: &LiveSession, call: ToolCall) -> Result<Bytes, AgentError> {
        let stats = &self.link.stats;
        let conn = &session.conn;
        if !session.catalog.tools.iter().any(|t| t.name() == call.tool) {
            let detail =
                format!("replica {}/{} does not serve tool {:?}", self.link.server, self.link.replica, call.tool);
            return Err(AgentError::Permanent(CallFailure::BadRequest { detail }.encode()));
        }
        let hooks = call.origin.as_ref().and_then(|o| self.link.calls.hooks(o));
        let timeout = Duration::from_millis(call.timeout_ms.max(1));
        let mut params = CallToolRequestParams::new(call.tool.clone());
        params.arguments = call.arguments;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = match conn.peer.send_request_with_option(request, PeerRequestOptions::with_timeout(timeout)).await
        {
            Ok(h) => h,
            Err(e) => return Err(self.not_sent(&format!("is unreachable ({e})"))),
        };
        let token = handle.progress_token.clone();
        let id = handle.id.clone();
        if let Some(sink) = hooks.as_ref().and_then(|h| h.progress.clone()) {
            conn.progress.lock().insert(token.clone(), sink);
        }
        let answer = match hooks.as_ref().map(|h| h.cancel.clone()) {
            Some(cancel) => tokio::select! {
                r = handle.await_response() => Some(r),
                _ = cancel.cancelled() => None,
            },
            None => Some(handle.await_response().await),
        };
        conn.progress.lock().remove(&token);
        let may_have_run = |detail: String| {
            if call.idempotent {
                AgentError::Retryable(detail)
            } else {
                AgentError::Permanent(CallFailure::MayHaveRun { detail }.encode())
            }
        };
        match answer {
            None => {
                let note = CancelledNotificationParam::new(Some(id), Some("cancelled by the client".into()));
                let _ = conn
                    .peer
                    .send_notification(ClientNotification::CancelledNotification(CancelledNotification::new(note)))
                    .await;
                Err(AgentError::Permanent(CallFailure::Cancelled.encode()))
            }
            Some(Ok(result)) => match into_call_result(result) {
                Ok(r) => Ok(Bytes::from(serde_json::to_vec(&r).expect("a result serialises"))),
                Err(detail) => {
                    McpStats::inc(&stats.upstream_protocol_errors);
                    Err(AgentError::Permanent(CallFailure::Protocol { detail }.encode()))
                }
            },
            Some(Err(ServiceError::McpError(e))) => Err(AgentError::Permanent(
                CallFailure::Upstream { code: e.code.0, message: e.message.into_owned(), data: e.data }.encode(),
            )),
            Some(Err(ServiceError::Timeout { timeout })) => {
                McpStats::inc(&stats.upstream_timeouts);
                Err(may_have_run(format!(
                    "replica {}/{} did not answer within {timeout:?} (it was told to cancel)",
                    self.link.server, self.link.replica
                )))
            }
            Some(Err(ServiceError::UnexpectedResponse)) => {
                McpStats::inc(&stats.upstream_protocol_errors);
                let detail = "the upstream answered tools/call with another kind of result".into();
                Err(AgentError::Permanent(CallFailure::Protocol { detail }.encode()))
            }
            Some(Err(e)) if never_sent(&e) => Err(self.not_sent(&format!("could not be written to ({e})"))),
            Some(Err(e)) => Err(may_have_run(format!(
                "replica {}/{} was lost during the call ({e})",
                self.link.server, self.link.replica
            ))),
        }
    }
}

/// A `tools/call` answer as a `CallToolResult` (an empty result is an empty call result,
/// as the MCP SDKs read it).
fn into_call_result(result: ServerResult) -> Result<CallToolResult, String> {
    match result {
        ServerResult::CallToolResult(r) => Ok(r),
        ServerResult::EmptyResult(_) => Ok(serde_json::from_value(serde_json::json!({"content": []})).expect("valid")),
        other => {
            let v = serde_json::to_value(&other).map_err(|e| e.to_string())?;
            serde_json::from_value::<CallToolResult>(v.clone())
                .map_err(|_| format!("not a tools/call result: {}", truncate(&v.to_string(), 200)))
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

impl Agent for LaneAgent {
    async fn handle(&mut self, task: &Task) -> Result<Bytes, AgentError> {
        let request = match LaneRequest::decode(&task.payload) {
            Ok(r) => r,
            Err(detail) => return Err(AgentError::Permanent(CallFailure::BadRequest { detail }.encode())),
        };
        let Some(session) = self.link.session(self.generation) else {
            return Err(self.not_sent("is down"));
        };
        match request {
            LaneRequest::Describe => {
                Ok(Bytes::from(serde_json::to_vec(&*session.catalog).expect("a catalog serialises")))
            }
            LaneRequest::Call(call) => self.call(&session, call).await,
        }
    }
}
