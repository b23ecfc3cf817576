//! How a call that did not produce a result is answered: JSON-RPC errors with stable
//! codes (in the JSON-RPC "server error" range for ours) and a message a person can act
//! on. `data` always carries `{"kind": ...}` and, when the call was routed, `"task"`.
//!
//! | code | kind | meaning | safe to retry? |
//! |---|---|---|---|
//! | -32602 | `unknown_tool`, `invalid_arguments` | the request is wrong | no (fix it) |
//! | [`MAY_HAVE_RUN`] -32010 | `may_have_run` | the replica failed mid-call; the tool is not idempotent, so it was not retried | only if a second run is acceptable |
//! | [`NO_REPLICA`] -32011 | `no_replica` | no replica could take the call (none up, breakers open, bulkheads full) | yes: it did not run |
//! | [`OVERLOADED`] -32012 | `overloaded` | too many calls in flight (or sessions) | yes, later |
//! | [`UPSTREAM_FAILED`] -32013 | `upstream_failed` | every allowed attempt of an idempotent tool failed | yes |
//! | [`NOT_COMMITTED`] -32014 | `not_committed` | the replicated ledger did not accept the call (no Raft quorum) | yes: it did not run |
//! | [`UPSTREAM_PROTOCOL`] -32015 | `upstream_protocol` | the upstream answered something that is not MCP | no |
//! | [`CANCELLED`] -32016 | `cancelled` | the client cancelled it | - |
//! | [`SHUTTING_DOWN`] -32017 | `shutting_down` | the node is stopping | yes, elsewhere |
//! | [`UNAUTHORIZED`] -32018 | `unauthorized` | missing or wrong bearer token (HTTP 401) | with the token |
//! | upstream's | `upstream_error` | the upstream's own JSON-RPC error, passed through | per upstream |

use erlmcp_flow::core::outcome::{DeadLetterReason, FailureReason};
use erlmcp_flow::{SubmitError, TaskId};
use rmcp::ErrorData;
use rmcp::model::ErrorCode;
use serde_json::{Value, json};

use crate::payload::CallFailure;

/// The call may have run; it was not retried (tool not idempotent).
pub const MAY_HAVE_RUN: i32 = -32010;
/// No replica could take the call; it did not run.
pub const NO_REPLICA: i32 = -32011;
/// Too many calls in flight, or too many sessions.
pub const OVERLOADED: i32 = -32012;
/// Every allowed attempt failed.
pub const UPSTREAM_FAILED: i32 = -32013;
/// Not accepted by the replicated ledger; it did not run.
pub const NOT_COMMITTED: i32 = -32014;
/// The upstream answered something that is not MCP.
pub const UPSTREAM_PROTOCOL: i32 = -32015;
/// Cancelled by the client.
pub const CANCELLED: i32 = -32016;
/// The node is stopping.
pub const SHUTTING_DOWN: i32 = -32017;
/// Missing or wrong bearer token.
pub const UNAUTHORIZED: i32 = -32018;

/// An error with `data = {"kind": kind, ...extra}`.
pub fn error(code: i32, kind: &str, message: impl Into<String>, extra: Value) -> ErrorData {
    let mut data = json!({ "kind": kind });
    if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), extra) {
        d.extend(extra);
    }
    ErrorData::new(ErrorCode(code), message.into(), Some(data))
}

/// A JSON-RPC error response body for the HTTP layer (no request id is known there).
pub fn http_body(code: i32, kind: &str, message: &str) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message, "data": { "kind": kind } }
    })
    .to_string()
}

/// The answer to a submission that was not accepted: refused or discarded (nothing ran),
/// or indeterminate (the cluster may still run it).
pub fn submit_refused(tool: &str, e: &SubmitError) -> ErrorData {
    let m = format!("call of {tool} not accepted: {e}");
    match e {
        SubmitError::Overloaded { .. } => error(OVERLOADED, "overloaded", m, json!({})),
        SubmitError::NotLeader { .. } | SubmitError::Unavailable(_) => {
            error(NOT_COMMITTED, "not_committed", format!("{m}; it did not run, retry it"), json!({}))
        }
        SubmitError::NodeStopped | SubmitError::Draining => error(SHUTTING_DOWN, "shutting_down", m, json!({})),
        SubmitError::Discarded { reason } => {
            error(OVERLOADED, "overloaded", format!("{m}; it did not run"), json!({"discarded": reason.to_string()}))
        }
        SubmitError::Indeterminate { task, .. } => error(
            MAY_HAVE_RUN,
            "may_have_run",
            format!("{m}; the cluster may still run it (its commit was not confirmed): do not assume either way"),
            json!({"task": task.to_string()}),
        ),
        SubmitError::PayloadTooLarge { .. } => ErrorData::invalid_params(m, Some(json!({"kind": "invalid_arguments"}))),
        _ => ErrorData::internal_error(m, Some(json!({"kind": "internal"}))),
    }
}

/// The answer to a routed call that failed. `may_have_run` tells the caller's counters.
pub fn call_failed(tool: &str, task: TaskId, reason: &FailureReason) -> (ErrorData, bool) {
    let t = json!({ "task": task.to_string() });
    match reason {
        FailureReason::Permanent { message, agent } => match CallFailure::decode(message) {
            Some(CallFailure::Upstream { code, message, data }) => {
                let mut data = data.unwrap_or(Value::Null);
                if data.is_null() {
                    data = json!({ "kind": "upstream_error", "task": task.to_string() });
                }
                (ErrorData::new(ErrorCode(code), message, Some(data)), false)
            }
            Some(CallFailure::MayHaveRun { detail }) => (may_have_run(tool, &detail, t), true),
            Some(CallFailure::Cancelled) => {
                (error(CANCELLED, "cancelled", format!("call of {tool} cancelled"), t), false)
            }
            Some(CallFailure::Protocol { detail }) => (
                error(
                    UPSTREAM_PROTOCOL,
                    "upstream_protocol",
                    format!("{tool}: the upstream broke the protocol: {detail}"),
                    t,
                ),
                false,
            ),
            Some(CallFailure::BadRequest { detail }) => (
                ErrorData::invalid_params(format!("{tool}: {detail}"), Some(json!({"kind": "invalid_arguments"}))),
                false,
            ),
            None => {
                (error(UPSTREAM_FAILED, "upstream_failed", format!("{tool} failed on {agent}: {message}"), t), false)
            }
        },
        FailureReason::MayHaveRun { detail, .. } => (may_have_run(tool, detail, t), true),
        FailureReason::RetriesExhausted { last } | FailureReason::RetryBudgetExhausted { last } => (
            error(
                UPSTREAM_FAILED,
                "upstream_failed",
                format!("{tool} failed on every allowed attempt; last: {last}"),
                t,
            ),
            false,
        ),
        FailureReason::Internal(m) => {
            (ErrorData::internal_error(format!("{tool}: {m}"), Some(json!({"kind": "internal"}))), false)
        }
    }
}

fn may_have_run(tool: &str, detail: &str, data: Value) -> ErrorData {
    error(
        MAY_HAVE_RUN,
        "may_have_run",
        format!(
            "{tool} may have run: {detail}. It was not retried because the tool is not idempotent \
             (no readOnlyHint or idempotentHint); check its effect before calling it again"
        ),
        data,
    )
}

/// The answer to a call no replica took (nothing ran).
pub fn dead_lettered(tool: &str, task: TaskId, reason: &DeadLetterReason) -> ErrorData {
    let t = json!({ "task": task.to_string() });
    match reason {
        DeadLetterReason::NodeStopped => error(SHUTTING_DOWN, "shutting_down", format!("{tool}: the node stopped"), t),
        DeadLetterReason::NoCapableAgent => {
            error(NO_REPLICA, "no_replica", format!("no replica of {tool} is up; the call did not run"), t)
        }
        DeadLetterReason::NoAvailableAgent { detail } => error(
            NO_REPLICA,
            "no_replica",
            format!("no replica of {tool} could take the call ({detail}); it did not run"),
            t,
        ),
    }
}

#[cfg(test)]
mod tests {
    use erlmcp_flow::core::DiscardReason;

    use super::*;

    /// Each way a submission can fail reaches the client as its own kind: discards and
    /// drains are "did not run", an unconfirmed commit is "may have run", never "internal".
    #[test]
    fn refusals_map_to_their_kinds() {
        let kind = |e: SubmitError| {
            let d = submit_refused("demo.echo", &e);
            (d.code.0, d.data.and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string)))
        };
        assert_eq!(kind(SubmitError::Draining), (SHUTTING_DOWN, Some("shutting_down".into())));
        assert_eq!(kind(SubmitError::NodeStopped), (SHUTTING_DOWN, Some("shutting_down".into())));
        assert_eq!(
            kind(SubmitError::Discarded { reason: DiscardReason::QueueFull }),
            (OVERLOADED, Some("overloaded".into()))
        );
        assert_eq!(kind(SubmitError::Overloaded { limit: 1 }), (OVERLOADED, Some("overloaded".into())));
        let id = erlmcp_flow::TaskId::new_v4();
        assert_eq!(
            kind(SubmitError::Indeterminate { task: id, reason: "deadline".into() }),
            (MAY_HAVE_RUN, Some("may_have_run".into()))
        );
        assert_eq!(kind(SubmitError::Unavailable("x".into())), (NOT_COMMITTED, Some("not_committed".into())));
    }
}
