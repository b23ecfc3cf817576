//! What travels in a task between a front door and an upstream lane (JSON in
//! [`Task::payload`](erlmcp_flow::Task::payload), so it crosses nodes like any task).
//!
//! * [`LaneRequest::Call`] → the output is the upstream's `CallToolResult` as JSON;
//! * [`LaneRequest::Describe`] → the output is the replica's
//!   [`ReplicaCatalog`](crate::descriptor::ReplicaCatalog) as JSON.
//!
//! A lane that cannot give an output answers with an agent error: `Retryable` when the
//! call certainly did not reach the upstream (its word that another replica may take it),
//! `Permanent` with a [`CallFailure`] as JSON otherwise.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request to a lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LaneRequest {
    /// Call one tool.
    Call(ToolCall),
    /// List the replica's tools.
    Describe,
}

/// One `tools/call` to an upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The upstream's name of the tool.
    pub tool: String,
    /// The arguments, already checked against the schema by the front door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Map<String, Value>>,
    /// Whether the call may run more than once.
    pub idempotent: bool,
    /// Per-call timeout the lane gives the upstream, ms.
    pub timeout_ms: u64,
    /// The front door that waits for it, for progress and cancellation when the lane runs
    /// on the same node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<CallOrigin>,
}

/// Where a call came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOrigin {
    /// The front door's node.
    pub node: String,
    /// The call's number in that node's [`CallRegistry`](crate::calls::CallRegistry).
    pub call: u64,
}

impl LaneRequest {
    /// Encodes for a task payload.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a lane request serialises"))
    }

    /// Decodes a task payload.
    pub fn decode(payload: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(payload).map_err(|e| format!("not an MCP lane request: {e}"))
    }
}

/// Why a call ended without a result, as a lane reports it (the `Permanent` message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallFailure {
    /// The upstream answered with a JSON-RPC error (passed through to the client).
    Upstream {
        /// Its code.
        code: i32,
        /// Its message.
        message: String,
        /// Its data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
    },
    /// The call reached the upstream and then its replica died, hung or timed out: it may
    /// have run, and the tool is not idempotent, so it is not retried.
    MayHaveRun {
        /// What happened.
        detail: String,
    },
    /// The caller cancelled the call.
    Cancelled,
    /// The upstream answered something that is not a `tools/call` result.
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The request itself was unusable (unknown tool on this replica, bad payload).
    BadRequest {
        /// Why.
        detail: String,
    },
}

impl CallFailure {
    /// The `Permanent` error text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a call failure serialises")
    }

    /// Reads a `Permanent` error text; `None` if it was not written by a lane.
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests and failures survive the payload round trip; garbage is refused.
    #[test]
    fn round_trips() {
        let call = LaneRequest::Call(ToolCall {
            tool: "echo".into(),
            arguments: Some(serde_json::json!({"x": 1}).as_object().unwrap().clone()),
            idempotent: true,
            timeout_ms: 5,
            origin: Some(CallOrigin { node: "n".into(), call: 7 }),
        });
        assert_eq!(LaneRequest::decode(&call.encode()), Ok(call));
        assert_eq!(LaneRequest::decode(&LaneRequest::Describe.encode()), Ok(LaneRequest::Describe));
        assert!(LaneRequest::decode(b"hello").is_err());
        let f = CallFailure::MayHaveRun { detail: "died".into() };
        assert_eq!(CallFailure::decode(&f.encode()), Some(f));
        assert_eq!(CallFailure::decode("plain text"), None);
    }
}
