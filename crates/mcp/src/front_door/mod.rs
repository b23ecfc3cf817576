//! The front door: an MCP server (rmcp's [`ServerHandler`]) whose tools are every tool in
//! the cluster plus the management tools, and whose `tools/call` becomes a routed task.
//!
//! A call goes through, in order: the tool name (unknown → `-32602`), the arguments
//! against the tool's `inputSchema` ([`crate::schema`], violation → `-32602`), the
//! front door's in-flight bound (`mcp.max_calls_in_flight`, full → [`errors::OVERLOADED`]),
//! then [`FlowNode::submit`] of a task needing the tool's capabilities, at-most-once unless
//! the tool is idempotent, with the tool's timeout. While the task runs, the upstream's
//! progress notifications are forwarded (replica on this node) and a client's
//! `notifications/cancelled` cancels it (replica on this node: the upstream is told too).
//!
//! Per-call timeout: the tool's `call_timeout_ms` (its upstream's config), or less if the
//! request's `_meta` carries `"erlmcp-flow/timeoutMs"`.
//!
//! The front door speaks the MCP protocol versions with an `initialize` handshake
//! (2024-11-05 to 2025-11-25): sessions, `notifications/tools/list_changed` on the
//! session's stream. Clients that probe for 2026-07-28 fall back to the handshake.

pub mod errors;
pub mod http;
pub mod management;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::{FlowNode, Task, TaskOutcome};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::calls::CallRegistry;
use crate::catalog::Catalog;
use crate::payload::{LaneRequest, ToolCall};
use crate::schema;
use crate::stats::McpStats;
use management::Management;

/// `_meta` key of a client's per-call timeout, ms.
pub const TIMEOUT_META_KEY: &str = "erlmcp-flow/timeoutMs";

/// Slack between the lane's own timeout and the router's attempt timeout: the lane always
/// answers first, so a timed-out call is reported by the lane that knows what happened.
const ATTEMPT_SLACK: Duration = Duration::from_secs(1);

/// How often a session's list-change follower checks that its session is still open.
const SESSION_CHECK: Duration = Duration::from_secs(10);

pub(crate) struct Shared {
    pub(crate) node: FlowNode,
    pub(crate) catalog: watch::Receiver<Arc<Catalog>>,
    pub(crate) calls: Arc<CallRegistry>,
    pub(crate) stats: Arc<McpStats>,
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) max_calls: u32,
    pub(crate) management: Option<Management>,
}

/// The MCP server of a node; cheap to clone (one per session).
#[derive(Clone)]
pub struct FrontDoor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoor").field("tools", &self.shared.catalog.borrow().len()).finish_non_exhaustive()
    }
}

impl FrontDoor {
    pub(crate) fn new(shared: Shared) -> Self {
        Self { shared: Arc::new(shared) }
    }

    /// Every tool listed now: the cluster's, then the management tools.
    pub fn tools(&self) -> Vec<Tool> {
        let catalog = self.shared.catalog.borrow().clone();
        let mut tools: Vec<Tool> = catalog.tools().map(|t| t.tool.clone()).collect();
        if let Some(m) = &self.shared.management {
            tools.extend(m.tools().iter().cloned());
        }
        tools
    }

    async fn call_upstream(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let s = &self.shared;
        let name = request.name.to_string();
        let Some(tool) = s.catalog.borrow().get(&name).cloned() else {
            McpStats::inc(&s.stats.unknown_tool);
            let known = s.catalog.borrow().len();
            return Err(ErrorData::invalid_params(
                format!("unknown tool {name:?} (tools/list lists {known} upstream tools)"),
                Some(json!({"kind": "unknown_tool"})),
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        if let Err(v) = schema::check(&tool.tool.input_schema, &Value::Object(arguments.clone())) {
            McpStats::inc(&s.stats.invalid_arguments);
            return Err(ErrorData::invalid_params(
                format!("arguments of {name} do not match its inputSchema: {v}"),
                Some(json!({"kind": "invalid_arguments", "pointer": v.pointer})),
            ));
        }
        let Ok(_permit) = s.in_flight.clone().try_acquire_owned() else {
            McpStats::inc(&s.stats.overloaded);
            return Err(errors::error(
                errors::OVERLOADED,
                "overloaded",
                format!("{} calls in flight on this node (mcp.max_calls_in_flight); retry later", s.max_calls),
                json!({}),
            ));
        };
        McpStats::inc(&s.stats.calls);
        let requested = context.meta.get(TIMEOUT_META_KEY).and_then(Value::as_u64).filter(|ms| *ms > 0);
        let timeout_ms = requested.map_or(tool.timeout_ms, |r| r.min(tool.timeout_ms));
        let client_token = context.meta.get_progress_token();
        let (guard, mut progress) = s.calls.open(client_token.is_some());
        let payload = LaneRequest::Call(ToolCall {
            tool: tool.upstream_name.clone(),
            arguments: Some(arguments),
            idempotent: tool.idempotent,
            timeout_ms,
            origin: Some(guard.origin()),
        });
        let mut task = Task::new(tool.capabilities.clone())
            .with_payload(payload.encode())
            .with_timeout(Duration::from_millis(timeout_ms) + ATTEMPT_SLACK);
        if !tool.idempotent {
            task = task.with_at_most_once();
        }
        if let Some(tp) = context.meta.get("traceparent").and_then(Value::as_str)
            && let Ok(t) = task.clone().with_traceparent(tp)
        {
            task = t;
        }
        let id = task.id;
        // The call is routed on this task (`FlowNode::route`: no driver task to spawn and
        // no outcome to hand across tasks, two wake-ups fewer than `submit`). If the client
        // cancels or this future is dropped, the route goes on on its own task to its
        // terminal state (`DetachOnDrop`): the lane sees the cancellation and answers.
        let node = s.node.clone();
        let mut route = DetachOnDrop::new(async move { node.route(task).await });
        let routed = loop {
            tokio::select! {
                routed = &mut route => break routed,
                Some(p) = async { match progress.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                    if let Some(token) = &client_token {
                        let mut note = ProgressNotificationParam::new(token.clone(), p.progress);
                        note.total = p.total;
                        note.message = p.message;
                        let _ = context.peer.notify_progress(note).await;
                    }
                }
                _ = context.ct.cancelled() => {
                    guard.cancel();
                    McpStats::inc(&s.stats.calls_cancelled);
                    return Err(errors::error(errors::CANCELLED, "cancelled", format!("call of {name} cancelled"), json!({"task": id.to_string()})));
                }
            }
        };
        let outcome = match routed {
            Ok(outcome) => outcome,
            Err(e) => {
                McpStats::inc(&s.stats.calls_failed);
                if matches!(e, erlmcp_flow::SubmitError::Overloaded { .. }) {
                    McpStats::inc(&s.stats.overloaded);
                }
                return Err(errors::submit_refused(&name, &e));
            }
        };
        drop(guard);
        match outcome {
            TaskOutcome::Completed { output, .. } => match serde_json::from_slice::<CallToolResult>(&output) {
                Ok(r) => {
                    McpStats::inc(&s.stats.calls_completed);
                    Ok(r)
                }
                Err(e) => {
                    McpStats::inc(&s.stats.calls_failed);
                    Err(errors::error(
                        errors::UPSTREAM_PROTOCOL,
                        "upstream_protocol",
                        format!("{name}: unreadable result: {e}"),
                        json!({"task": id.to_string()}),
                    ))
                }
            },
            TaskOutcome::Failed { reason, .. } => {
                let (e, may_have_run) = errors::call_failed(&name, id, &reason);
                McpStats::inc(if may_have_run { &s.stats.calls_may_have_run } else { &s.stats.calls_failed });
                Err(e)
            }
            TaskOutcome::DeadLettered { reason, .. } => {
                McpStats::inc(&s.stats.calls_failed);
                Err(errors::dead_lettered(&name, id, &reason))
            }
        }
    }

    /// Follows the catalog and tells the session when its tool list changed; ends with
    /// the session.
    fn follow_list_changes(&self, peer: rmcp::Peer<RoleServer>) {
        let mut rx = self.shared.catalog.clone();
        let stats = self.shared.stats.clone();
        rx.mark_unchanged();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() || peer.notify_tool_list_changed().await.is_err() {
                            return;
                        }
                        McpStats::inc(&stats.list_changed_sent);
                    }
                    _ = tokio::time::sleep(SESSION_CHECK) => {
                        if peer.is_transport_closed() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

impl ServerHandler for FrontDoor {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build();
        ServerConfig::new(caps)
            .with_server_info(Implementation::new("erlmcp-flow", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_instructions(
                "Tools of every MCP server in an erlmcp-flow cluster, routed with retries and failover. \
                 flow_* tools manage the cluster.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(m) = &self.shared.management
            && m.has(&request.name)
        {
            McpStats::inc(&self.shared.stats.management_calls);
            let args = request.arguments.unwrap_or_default();
            return m.call(&request.name, args).await.map(CallToolResponse::Complete);
        }
        self.call_upstream(request, &context).await.map(CallToolResponse::Complete)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        McpStats::inc(&self.shared.stats.sessions_opened);
        self.follow_list_changes(context.peer);
    }
}

/// A future that, dropped before it finished, finishes on a task of its own instead.
///
/// A routed call must reach its terminal state even when the client cancels or its
/// session goes away: a `FlowNode::route` dropped midway hands its task to orphan
/// recovery, which drives it again from the start, and for a tool that is not idempotent
/// that could be a second run while the first attempt is still at the upstream.
struct DetachOnDrop<F: Future + Send + 'static>
where
    F::Output: Send,
{
    inner: Option<std::pin::Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> DetachOnDrop<F>
where
    F::Output: Send,
{
    fn new(f: F) -> Self {
        Self { inner: Some(Box::pin(f)) }
    }
}

impl<F: Future + Send + 'static> Future for DetachOnDrop<F>
where
    F::Output: Send,
{
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        let Some(f) = this.inner.as_mut() else {
            return std::task::Poll::Pending;
        };
        let ready = f.as_mut().poll(cx);
        if ready.is_ready() {
            this.inner = None;
        }
        ready
    }
}

impl<F: Future + Send + 'static> Drop for DetachOnDrop<F>
where
    F::Output: Send,
{
    fn drop(&mut self) {
        if let Some(f) = self.inner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(f);
        }
    }
}

#[cfg(test)]
mod detach_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::DetachOnDrop;

    /// A future dropped after its first poll still runs to completion on its own task;
    /// one that completed is not run again.
    #[tokio::test]
    async fn a_dropped_future_finishes_on_its_own_task() {
        let finished = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let f = finished.clone();
        let mut fut = DetachOnDrop::new(async move {
            let _ = rx.await;
            f.store(true, Ordering::SeqCst);
        });
        // Polled once (pending), then dropped: like a cancelled request handler.
        assert!(futures::poll!(&mut fut).is_pending());
        drop(fut);
        assert!(!finished.load(Ordering::SeqCst));
        tx.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !finished.load(Ordering::SeqCst) {
            assert!(tokio::time::Instant::now() < deadline, "the detached future never finished");
            tokio::task::yield_now().await;
        }
        // Completed in place: nothing is detached on drop.
        let fut = DetachOnDrop::new(async { 7 });
        assert_eq!(fut.await, 7);
    }
}
