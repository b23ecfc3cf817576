//! The management tools of the front door, for orchestrators: submit a task by
//! capabilities and read its status, list agents and tools, read the cluster's status,
//! list and replay dead letters, switch the routing strategy. Their results are
//! structured content (JSON), repeated as text for clients that only read text.
//!
//! | tool | arguments | result |
//! |---|---|---|
//! | `flow_submit_task` | `capabilities` (strings), `payload`?, `priority`?, `timeout_ms`? | `{task_id}` |
//! | `flow_task_status` | `task_id` | `{state, attempts?, agent?, output?, reason?}` |
//! | `flow_list_agents` | `capability`?, `limit`? | `{agents: [...], total}` |
//! | `flow_list_tools` | - | `{tools: [{name, servers, idempotent, timeout_ms}]}` |
//! | `flow_cluster_status` | - | `{node, stats, mcp, strategy, cluster?, raft?}` |
//! | `flow_dead_letters` | `limit`? | `{dead_letters: [...], queued}` |
//! | `flow_replay_dead_letters` | - | `{replayed}` |
//! | `flow_set_strategy` | `strategy` | `{strategy}` |
//!
//! Outcomes of tasks submitted here are kept for `flow_task_status` in a bounded table
//! (the last [`OUTCOMES_KEPT`]); older ones answer from the correlation log (state only).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::core::Priority;
use erlmcp_flow::core::outcome::TerminalKind;
use erlmcp_flow::{CapabilitySet, FlowNode, StrategyKind, Task, TaskId, TaskOutcome};
use parking_lot::Mutex;
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::schema;
use crate::stats::McpStats;

/// Outcomes of submitted tasks kept for `flow_task_status`.
pub const OUTCOMES_KEPT: usize = 10_000;

/// Largest task output returned by `flow_task_status`, bytes.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Outcomes {
    order: VecDeque<TaskId>,
    by_id: HashMap<TaskId, TaskOutcome>,
}

impl Outcomes {
    fn record(&mut self, id: TaskId, outcome: TaskOutcome) {
        if self.by_id.insert(id, outcome).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > OUTCOMES_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// The management tools of one node.
#[derive(Clone)]
pub(crate) struct Management {
    node: FlowNode,
    catalog: watch::Receiver<Arc<Catalog>>,
    stats: Arc<McpStats>,
    tools: Arc<Vec<Tool>>,
    outcomes: Arc<Mutex<Outcomes>>,
}

fn tool(name: &'static str, description: &'static str, schema: Value, read_only: bool) -> Tool {
    let Value::Object(schema) = schema else { unreachable!("schemas are objects") };
    Tool::new(name, description, Arc::new(schema))
        .with_annotations(ToolAnnotations::new().read_only(read_only).idempotent(read_only))
}

fn result(v: Value) -> CallToolResult {
    CallToolResult::structured(v)
}

fn bad(message: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(message.into(), Some(json!({"kind": "invalid_arguments"})))
}

impl Management {
    pub(crate) fn new(node: FlowNode, catalog: watch::Receiver<Arc<Catalog>>, stats: Arc<McpStats>) -> Self {
        let strategies: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.as_str()).collect();
        let tools = vec![
            tool(
                "flow_submit_task",
                "Submit a task to the agents that have all the given capabilities; returns its id.",
                json!({
                    "type": "object",
                    "properties": {
                        "capabilities": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "payload": {"type": "string", "description": "UTF-8 input for the agent"},
                        "priority": {"type": "string", "enum": ["low", "normal", "high", "critical"]},
                        "timeout_ms": {"type": "integer", "minimum": 1}
                    },
                    "required": ["capabilities"],
                    "additionalProperties": false
                }),
                false,
            ),
            tool(
                "flow_task_status",
                "The state of a task: open, completed (with its output), failed or dead-lettered.",
                json!({
                    "type": "object",
                    "properties": {"task_id": {"type": "string"}},
                    "required": ["task_id"],
                    "additionalProperties": false
                }),
                true,
            ),
            tool(
                "flow_list_agents",
                "Agents this node can route to (its own and other nodes'), with load and health.",
                json!({
                    "type": "object",
                    "properties": {
                        "capability": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100000}
                    },
                    "additionalProperties": false
                }),
                true,
            ),
            tool(
                "flow_list_tools",
                "Upstream tools in the cluster: the servers serving each, idempotence, timeout.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
                true,
            ),
            tool(
                "flow_cluster_status",
                "This node's counters, strategy, MCP counters, cluster membership and Raft state.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
                true,
            ),
            tool(
                "flow_dead_letters",
                "Tasks no agent could take, most recent last.",
                json!({
                    "type": "object",
                    "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 100000}},
                    "additionalProperties": false
                }),
                true,
            ),
            tool(
                "flow_replay_dead_letters",
                "Resubmit every queued dead letter as a new task; returns how many were accepted.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
                false,
            ),
            tool(
                "flow_set_strategy",
                "Switch this node's routing strategy.",
                json!({
                    "type": "object",
                    "properties": {"strategy": {"type": "string", "enum": strategies}},
                    "required": ["strategy"],
                    "additionalProperties": false
                }),
                false,
            ),
        ];
        Self { node, catalog, stats, tools: Arc::new(tools), outcomes: Arc::default() }
    }

    pub(crate) fn tools(&self) -> &[Tool] {
        &self.tools
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }

    pub(crate) async fn call(&self, name: &str, args: Map<String, Value>) -> Result<CallToolResult, ErrorData> {
        let Some(tool) = self.tools.iter().find(|t| t.name == name) else {
            return Err(bad(format!("unknown tool {name:?}")));
        };
        if let Err(v) = schema::check(&tool.input_schema, &Value::Object(args.clone())) {
            McpStats::inc(&self.stats.invalid_arguments);
            return Err(bad(format!("arguments of {name} do not match its inputSchema: {v}")));
        }
        let str_arg = |k: &str| args.get(k).and_then(Value::as_str);
        let u64_arg = |k: &str| args.get(k).and_then(Value::as_u64);
        match name {
            "flow_submit_task" => {
                let caps: Vec<&str> =
                    args["capabilities"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let caps = CapabilitySet::parse(caps).map_err(|e| bad(e.to_string()))?;
                let mut task = Task::new(caps).with_payload(str_arg("payload").unwrap_or("").as_bytes().to_vec());
                task = task.with_priority(match str_arg("priority") {
                    Some("low") => Priority::Low,
                    Some("high") => Priority::High,
                    Some("critical") => Priority::Critical,
                    _ => Priority::Normal,
                });
                if let Some(ms) = u64_arg("timeout_ms") {
                    task = task.with_timeout(Duration::from_millis(ms));
                }
                let id = task.id;
                let handle =
                    self.node.submit(task).await.map_err(|e| crate::front_door::errors::submit_refused(name, &e))?;
                let outcomes = self.outcomes.clone();
                tokio::spawn(async move {
                    let outcome = handle.await;
                    outcomes.lock().record(id, outcome);
                });
                Ok(result(json!({"task_id": id.to_string()})))
            }
            "flow_task_status" => {
                let raw = str_arg("task_id").unwrap_or_default();
                let id: TaskId = raw.parse().map_err(|_| bad(format!("{raw:?} is not a task id (a UUID)")))?;
                if let Some(o) = self.outcomes.lock().by_id.get(&id) {
                    return Ok(result(outcome_json(id, o)));
                }
                let v = match self.node.correlation(&id) {
                    Some(r) => json!({
                        "task_id": id.to_string(),
                        "state": match r.terminal {
                            None => "open",
                            Some(TerminalKind::Completed) => "completed",
                            Some(TerminalKind::Failed) => "failed",
                            Some(TerminalKind::DeadLettered) => "dead_lettered",
                        },
                        "attempts": r.attempt,
                        "agent": r.agent.map(|a| a.to_string()),
                    }),
                    None => json!({"task_id": id.to_string(), "state": "unknown"}),
                };
                Ok(result(v))
            }
            "flow_list_agents" => {
                let limit = u64_arg("limit").unwrap_or(1000) as usize;
                let wanted = str_arg("capability");
                let all = self.node.registry().view().all_entries();
                let mut agents: Vec<Value> = all
                    .iter()
                    .filter(|e| wanted.is_none_or(|c| e.capabilities.iter().any(|x| x.as_str() == c)))
                    .map(|e| {
                        json!({
                            "id": e.id.to_string(),
                            "node": e.node.as_ref().map(|n| n.to_string()).unwrap_or_else(|| self.node.config().node.name.clone()),
                            "alive": e.is_alive(),
                            "capabilities": e.capabilities.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                            "in_flight": e.load.in_flight(),
                            "completed": e.load.completed(),
                            "failed": e.load.failed(),
                        })
                    })
                    .collect();
                let total = agents.len();
                agents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
                agents.truncate(limit);
                Ok(result(json!({"agents": agents, "total": total})))
            }
            "flow_list_tools" => {
                let catalog = self.catalog.borrow().clone();
                let tools: Vec<Value> = catalog
                    .tools()
                    .map(|t| {
                        json!({
                            "name": t.name,
                            "upstream_name": t.upstream_name,
                            "servers": t.servers,
                            "idempotent": t.idempotent,
                            "timeout_ms": t.timeout_ms,
                            "replicas_up": self.node.registry().query(&t.capabilities, None).iter().filter(|e| e.is_alive()).count(),
                        })
                    })
                    .collect();
                Ok(result(json!({"tools": tools})))
            }
            "flow_cluster_status" => {
                let mut v = json!({
                    "node": self.node.config().node.name,
                    "status": format!("{:?}", self.node.status()),
                    "strategy": self.node.stats().strategy.as_str(),
                    "stats": self.node.stats(),
                    "mcp": self.stats.snapshot(),
                });
                if let Some(r) = self.node.cluster_report().await {
                    v["cluster"] = serde_json::to_value(r).unwrap_or(Value::Null);
                }
                if let Some(r) = self.node.raft_report() {
                    v["raft"] = serde_json::to_value(r).unwrap_or(Value::Null);
                }
                Ok(result(v))
            }
            "flow_dead_letters" => {
                let limit = u64_arg("limit").unwrap_or(100) as usize;
                let letters = self.node.dead_letters();
                let queued = letters.len();
                let shown: Vec<Value> = letters
                    .iter()
                    .rev()
                    .take(limit)
                    .rev()
                    .map(|l| {
                        json!({
                            "task_id": l.task.id.to_string(),
                            "capabilities": l.task.capabilities.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                            "reason": l.reason.to_string(),
                            "attempts": l.attempts,
                        })
                    })
                    .collect();
                Ok(result(json!({"dead_letters": shown, "queued": queued})))
            }
            "flow_replay_dead_letters" => {
                let n = self
                    .node
                    .replay_dead_letters()
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                Ok(result(json!({"replayed": n})))
            }
            "flow_set_strategy" => {
                let raw = str_arg("strategy").unwrap_or_default();
                let kind: StrategyKind = raw.parse().map_err(bad)?;
                self.node.set_strategy(kind).await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                Ok(result(json!({"strategy": kind.as_str()})))
            }
            _ => Err(bad(format!("unknown tool {name:?}"))),
        }
    }
}

fn outcome_json(id: TaskId, o: &TaskOutcome) -> Value {
    match o {
        TaskOutcome::Completed { agent, output, attempts } => {
            let cut = output.len().min(MAX_OUTPUT_BYTES);
            json!({
                "task_id": id.to_string(),
                "state": "completed",
                "agent": agent.to_string(),
                "attempts": attempts,
                "output": String::from_utf8_lossy(&output[..cut]),
                "output_truncated": cut < output.len(),
            })
        }
        TaskOutcome::Failed { reason, attempts } => {
            json!({"task_id": id.to_string(), "state": "failed", "reason": reason.to_string(), "attempts": attempts})
        }
        TaskOutcome::DeadLettered { reason, attempts } => {
            json!({"task_id": id.to_string(), "state": "dead_lettered", "reason": reason.to_string(), "attempts": attempts})
        }
    }
}
