//! Counters of the MCP layer: calls and how they ended, refused input by reason, upstream
//! replica lifecycle. Relaxed atomics; [`McpStats::snapshot`] reads them all.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($(#[$doc:meta])* $name:ident / $snap:ident { $($(#[$fdoc:meta])* $field:ident,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: AtomicU64,)*
        }

        /// A copy of every counter.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct $snap {
            $($(#[$fdoc])* pub $field: u64,)*
        }

        impl $name {
            /// Reads every counter.
            pub fn snapshot(&self) -> $snap {
                $snap { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// The MCP layer's counters (one per node, shared by the front door and the upstreams).
    McpStats / McpStatsSnapshot {
        /// `tools/call` requests for upstream tools.
        calls,
        /// Calls answered with the upstream's result (including results with `isError`).
        calls_completed,
        /// Calls answered with an error after they were routed.
        calls_failed,
        /// Calls answered "may have run" (not retried: not idempotent).
        calls_may_have_run,
        /// Calls the client cancelled.
        calls_cancelled,
        /// Calls of the management tools.
        management_calls,
        /// Calls of tools nobody lists.
        unknown_tool,
        /// Calls whose arguments violate the tool's input schema.
        invalid_arguments,
        /// Calls refused at `max_calls_in_flight` (or by the router's admission).
        overloaded,
        /// HTTP requests without the right bearer token.
        unauthorized,
        /// New sessions refused at `max_sessions`.
        sessions_refused,
        /// Sessions opened.
        sessions_opened,
        /// HTTP requests answered 4xx by the MCP service (bad JSON-RPC, bad Host or Origin,
        /// oversized body, unknown session, wrong method).
        http_rejected,
        /// `notifications/tools/list_changed` sent to sessions.
        list_changed_sent,
        /// Replica starts that answered `initialize` and listed their tools.
        replica_starts,
        /// Replica starts that failed (exit at start, garbage, no answer in time).
        replica_start_failures,
        /// Replicas that went down after starting (exit, lost connection).
        replica_exits,
        /// Replicas restarted because a heartbeat `ping` went unanswered.
        replica_hangs,
        /// Upstream answers that were not valid MCP.
        upstream_protocol_errors,
        /// Upstream calls that hit their per-call timeout.
        upstream_timeouts,
        /// `describe` tasks sent to learn a replica's tools.
        describes,
        /// `describe` tasks that failed (retried at the next refresh).
        describe_failures,
    }
}

impl McpStats {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
