//! What the endpoints read: one [`Observation`] of the node per request, gathered from the
//! counters the node already keeps (nothing is added to the hot path), then rendered as
//! Prometheus text ([`Observation::render_metrics`]), as the dashboard's JSON
//! ([`Observation::status_json`]), or as a readiness verdict ([`Readiness`]).

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::cluster::NodeReport;
use erlmcp_flow::router::BreakerStatus;
use erlmcp_flow::{FlowNode, NodeStats, NodeStatus};
use erlmcp_flow_mcp::McpService;
use parking_lot::Mutex;
use serde::Serialize;

use super::exposition::{Exposition, Kind};
use super::history::History;

/// How long a scrape waits for an actor's answer (the cluster report, Byzantine stats)
/// before rendering without it.
const ACTOR_WAIT: Duration = Duration::from_secs(2);
/// Most agents listed by name (per-agent breaker series, the dashboard's agent table).
pub(crate) const MAX_LISTED_AGENTS: usize = 500;
/// Latency histogram buckets, seconds.
const LATENCY_BUCKETS_S: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What the endpoints share.
pub(crate) struct Observed {
    pub(crate) node: FlowNode,
    pub(crate) mcp: Option<Arc<McpService>>,
    pub(crate) history: Arc<Mutex<History>>,
}

/// Why a node is not ready.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Readiness {
    pub(crate) ready: bool,
    pub(crate) reasons: Vec<String>,
}

/// One agent as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
struct AgentView {
    id: String,
    node: String,
    alive: bool,
    in_flight: u32,
    completed: u64,
    failed: u64,
    success_rate: f64,
    breaker: &'static str,
}

fn breaker_name(s: BreakerStatus) -> &'static str {
    match s {
        BreakerStatus::Closed => "closed",
        BreakerStatus::Open => "open",
        BreakerStatus::HalfOpen => "half_open",
    }
}

/// A view of the node at one instant.
pub(crate) struct Observation {
    name: String,
    status: NodeStatus,
    stats: NodeStats,
    report: Option<NodeReport>,
    raft: Option<erlmcp_flow::consensus::RaftStatus>,
    byzantine: Option<erlmcp_flow::byzantine::ByzantineStats>,
    agents: Vec<AgentView>,
    agents_total: usize,
    agents_local: usize,
    breakers: [u64; 3],
    readiness: Readiness,
}

impl Observation {
    /// Reads everything (the actor round trips bounded by [`ACTOR_WAIT`]).
    pub(crate) async fn gather(o: &Observed) -> Self {
        let node = &o.node;
        let report = cluster_report(node).await;
        let byzantine = match node.byzantine() {
            Some(h) => tokio::time::timeout(ACTOR_WAIT, h.stats()).await.ok().and_then(Result::ok),
            None => None,
        };
        let view = node.registry().view();
        let breakers_table = &node.router().parts().breakers;
        let entries = view.all();
        let mut breakers = [0u64; 3];
        let mut agents = Vec::new();
        let agents_local = entries.iter().filter(|e| e.is_local()).count();
        for e in &entries {
            let b = breakers_table.status(&e.id);
            breakers[b as usize] += 1;
            // Open breakers first in the listing: they are what an operator looks for.
            if agents.len() < MAX_LISTED_AGENTS || b != BreakerStatus::Closed {
                agents.push(AgentView {
                    id: e.id.to_string(),
                    node: e.node.as_ref().map(|n| n.to_string()).unwrap_or_else(|| node.config().node.name.clone()),
                    alive: e.is_alive(),
                    in_flight: e.load.in_flight(),
                    completed: e.load.completed(),
                    failed: e.load.failed(),
                    success_rate: e.load.success_rate(),
                    breaker: breaker_name(b),
                });
            }
        }
        agents.sort_by(|a, b| (a.breaker == "closed", &a.node, &a.id).cmp(&(b.breaker == "closed", &b.node, &b.id)));
        agents.truncate(MAX_LISTED_AGENTS);
        let readiness = readiness(node, report.as_ref());
        Self {
            name: node.config().node.name.clone(),
            status: node.status(),
            stats: node.stats(),
            report,
            raft: node.raft_status(),
            byzantine,
            agents,
            agents_total: entries.len(),
            agents_local,
            breakers,
            readiness,
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render_metrics(&self, o: &Observed) -> String {
        let node = &o.node;
        let s = &self.stats;
        let f = &s.flow;
        let mut e = Exposition::default();
        use Kind::{Counter, Gauge};
        e.single(
            "erlmcp_flow_up",
            Gauge,
            "1 while the node's supervision tree runs.",
            f64::from(u8::from(self.status == NodeStatus::Running)),
        );
        e.single("erlmcp_flow_ready", Gauge, "1 when /readyz answers 200.", f64::from(u8::from(self.readiness.ready)));
        e.family("erlmcp_flow_strategy_info", Gauge, "The active routing strategy (value 1).").sample(
            "erlmcp_flow_strategy_info",
            &[("strategy", &format!("{:?}", s.strategy))],
            1.0,
        );
        for (name, help, v) in [
            ("erlmcp_flow_tasks_accepted_total", "Tasks accepted by this node's router.", f.accepted),
            ("erlmcp_flow_tasks_completed_total", "Accepted tasks that completed.", f.completed),
            ("erlmcp_flow_tasks_failed_total", "Accepted tasks that failed.", f.failed),
            ("erlmcp_flow_tasks_dead_lettered_total", "Accepted tasks that were dead-lettered.", f.dead_lettered),
            (
                "erlmcp_flow_task_attempts_total",
                "Deliveries to agents (first tries, retries, redeliveries).",
                f.attempts,
            ),
            ("erlmcp_flow_task_retries_total", "Re-deliveries after a failed attempt.", f.retries),
            (
                "erlmcp_flow_task_redeliveries_total",
                "Re-deliveries of tasks whose agent died before running them.",
                f.redeliveries,
            ),
            ("erlmcp_flow_task_timeouts_total", "Attempts that timed out.", f.timeouts),
            (
                "erlmcp_flow_task_orphan_recoveries_total",
                "Tasks whose routing driver was lost and restarted.",
                f.orphan_recoveries,
            ),
            (
                "erlmcp_flow_task_late_finishes_total",
                "Terminal transitions refused because the task was already terminal.",
                f.late_finishes,
            ),
            ("erlmcp_flow_agent_panics_total", "Agent panics seen by the router.", f.agent_panics),
            (
                "erlmcp_flow_hung_agents_killed_total",
                "Agents killed by the failure detector as hung.",
                f.hung_agents_killed,
            ),
            ("erlmcp_flow_breaker_opens_total", "Times any circuit breaker opened.", f.breaker_opens),
            ("erlmcp_flow_agent_restarts_total", "Agent restarts by the AgentSupervisor.", s.agent_restarts),
            (
                "erlmcp_flow_service_restarts_total",
                "Restarts of the node's services by the FlowSupervisor.",
                s.service_restarts,
            ),
            (
                "erlmcp_flow_supervisor_escalations_total",
                "Supervisors that exceeded their restart intensity.",
                s.meltdowns,
            ),
        ] {
            e.single(name, Counter, help, v as f64);
        }
        e.single("erlmcp_flow_tasks_in_flight", Gauge, "Accepted tasks not yet terminal.", f.in_flight as f64);
        e.single(
            "erlmcp_flow_dead_letters_queued",
            Gauge,
            "Dead letters queued for inspection or replay.",
            f.dead_letters_queued as f64,
        );
        e.single("erlmcp_flow_agents", Gauge, "Agents in this node's pool.", s.agents as f64);
        let local = self.agents_local;
        e.family("erlmcp_flow_registry_agents", Gauge, "Agents in this node's registry (live and down).")
            .sample("erlmcp_flow_registry_agents", &[("location", "local")], local as f64)
            .sample("erlmcp_flow_registry_agents", &[("location", "remote")], (self.agents_total - local) as f64);
        e.family("erlmcp_flow_breakers", Gauge, "Circuit breakers of the registry's agents by state.");
        for (i, state) in ["closed", "open", "half_open"].iter().enumerate() {
            e.sample("erlmcp_flow_breakers", &[("state", state)], self.breakers[i] as f64);
        }
        e.family(
            "erlmcp_flow_agent_breaker_open",
            Gauge,
            "Agents whose breaker is not closed (1 open, 0.5 half-open); closed ones are omitted to bound cardinality.",
        );
        for a in self.agents.iter().filter(|a| a.breaker != "closed") {
            let v = if a.breaker == "open" { 1.0 } else { 0.5 };
            e.sample("erlmcp_flow_agent_breaker_open", &[("agent", &a.id), ("node", &a.node)], v);
        }
        let hist = node.router().parts().tasks.latency_histogram();
        e.family(
            "erlmcp_flow_task_latency_seconds",
            Kind::Histogram,
            "Task latency from acceptance to its terminal state (bucket bounds within 1% by HdrHistogram; the sum is mean x count).",
        );
        for b in LATENCY_BUCKETS_S {
            let upto = hist.count_between(0, (b * 1e6) as u64);
            e.sample("erlmcp_flow_task_latency_seconds_bucket", &[("le", &b.to_string())], upto as f64);
        }
        e.sample("erlmcp_flow_task_latency_seconds_bucket", &[("le", "+Inf")], hist.len() as f64);
        e.sample("erlmcp_flow_task_latency_seconds_sum", &[], hist.mean() * hist.len() as f64 / 1e6);
        e.sample("erlmcp_flow_task_latency_seconds_count", &[], hist.len() as f64);

        let q = node.q_model().stats();
        e.single(
            "erlmcp_flow_qlearning_epsilon",
            Gauge,
            "Current exploration rate of the Q-learning model.",
            q.epsilon,
        );
        e.single("erlmcp_flow_qlearning_updates_total", Counter, "Updates the Q table applied.", q.updates as f64);
        e.single(
            "erlmcp_flow_qlearning_samples_dropped_total",
            Counter,
            "Q-learning samples dropped (queue full).",
            q.dropped as f64,
        );

        if let Some(r) = &self.report {
            e.single("erlmcp_flow_peers", Gauge, "Peers this node knows.", r.peers.len() as f64);
            e.family("erlmcp_flow_peer_reachable", Gauge, "1 when the peer is reachable from this node.");
            for p in &r.peers {
                e.sample("erlmcp_flow_peer_reachable", &[("peer", &p.node)], f64::from(u8::from(p.reachable)));
            }
            e.family("erlmcp_flow_peer_phi", Gauge, "Phi-accrual suspicion of the peer.");
            for p in &r.peers {
                e.sample("erlmcp_flow_peer_phi", &[("peer", &p.node)], p.phi);
            }
            e.family("erlmcp_flow_peer_silent_seconds", Gauge, "Time since the peer's last heartbeat.");
            for p in &r.peers {
                if let Some(ms) = p.silent_ms {
                    e.sample("erlmcp_flow_peer_silent_seconds", &[("peer", &p.node)], ms as f64 / 1e3);
                }
            }
            e.family("erlmcp_flow_cluster_events_total", Counter, "Cluster transport and gossip events by kind.");
            for (k, v) in &r.counters {
                e.sample("erlmcp_flow_cluster_events_total", &[("event", k)], *v as f64);
            }
            if let Some(rr) = &r.raft {
                e.family(
                    "erlmcp_flow_ledger_entries",
                    Gauge,
                    "Replicated ledger entries (this replica's applied state) by state.",
                );
                for (i, state) in ["accepted", "completed", "failed", "dead_lettered", "open"].iter().enumerate() {
                    e.sample("erlmcp_flow_ledger_entries", &[("state", state)], rr.ledger[i] as f64);
                }
            }
        }
        if let Some(rs) = &self.raft {
            e.single("erlmcp_flow_raft_term", Gauge, "Current Raft term.", rs.current_term as f64);
            e.family("erlmcp_flow_raft_role", Gauge, "This node's Raft role (one-hot).");
            let role = format!("{:?}", rs.state);
            for r in ["Leader", "Follower", "Candidate", "Learner", "Shutdown"] {
                e.sample("erlmcp_flow_raft_role", &[("role", &r.to_lowercase())], f64::from(u8::from(role == r)));
            }
            e.single(
                "erlmcp_flow_raft_has_leader",
                Gauge,
                "1 when this node knows a leader.",
                f64::from(u8::from(rs.leader.is_some())),
            );
            let applied = rs.applied_index.unwrap_or(0) as f64;
            e.single(
                "erlmcp_flow_raft_commit_index",
                Gauge,
                "Highest index known committed (openraft 0.9 publishes the applied index).",
                applied,
            );
            e.single("erlmcp_flow_raft_applied_index", Gauge, "Highest log index applied.", applied);
            e.single(
                "erlmcp_flow_raft_last_log_index",
                Gauge,
                "Highest index in the local log.",
                rs.last_log_index.unwrap_or(0) as f64,
            );
            e.single(
                "erlmcp_flow_raft_core_up",
                Gauge,
                "1 while the openraft core runs.",
                f64::from(u8::from(rs.core_up)),
            );
            for (name, help, v) in [
                (
                    "erlmcp_flow_raft_core_restarts_total",
                    "Restarts of the openraft core after fatal errors.",
                    rs.core_restarts,
                ),
                (
                    "erlmcp_flow_raft_elections_started_total",
                    "Elections started after a granted pre-vote.",
                    rs.elections_started,
                ),
                (
                    "erlmcp_flow_raft_pre_votes_refused_total",
                    "Pre-vote rounds a quorum did not grant.",
                    rs.pre_votes_refused,
                ),
                (
                    "erlmcp_flow_raft_forwarded_writes_total",
                    "Client writes forwarded to the leader.",
                    rs.forwarded_writes,
                ),
                ("erlmcp_flow_raft_decode_errors_total", "Undecodable Raft RPCs received.", rs.decode_errors),
                (
                    "erlmcp_flow_raft_leader_changes_observed_total",
                    "Leader changes seen by the listener's 1 s sampler (changes faster than that are merged).",
                    o.history.lock().leader_changes(),
                ),
                ("erlmcp_flow_ledger_adopted_total", "Tasks of dead nodes adopted as leader.", node.adopted_tasks()),
                ("erlmcp_flow_ledger_reclaimed_total", "Own open ledger entries reclaimed.", node.reclaimed_tasks()),
            ] {
                e.single(name, Counter, help, v as f64);
            }
            e.single(
                "erlmcp_flow_ledger_writer_backlog",
                Gauge,
                "Terminal entries not yet committed to the ledger.",
                node.ledger_backlog() as f64,
            );
        }
        if let Some(b) = &self.byzantine {
            e.family("erlmcp_flow_byzantine_rounds_total", Counter, "Byzantine voting rounds by outcome.")
                .sample("erlmcp_flow_byzantine_rounds_total", &[("outcome", "decided")], b.decided as f64)
                .sample("erlmcp_flow_byzantine_rounds_total", &[("outcome", "timed_out")], b.timed_out as f64);
            e.family("erlmcp_flow_byzantine_rejections_total", Counter, "Refused Byzantine messages by reason.");
            for (reason, n) in &b.rejected {
                e.sample("erlmcp_flow_byzantine_rejections_total", &[("reason", &format!("{reason:?}"))], *n as f64);
            }
            e.family("erlmcp_flow_byzantine_faults_total", Counter, "Faults charged to peers by kind.");
            for (kind, n) in &b.faults {
                e.sample("erlmcp_flow_byzantine_faults_total", &[("kind", &format!("{kind:?}"))], *n as f64);
            }
            let black = b.peers.values().filter(|p| p.blacklisted).count();
            e.single("erlmcp_flow_byzantine_blacklisted_peers", Gauge, "Peers blacklisted by this node.", black as f64);
        }
        if let Some(m) = &o.mcp
            && let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(m.stats())
        {
            for (k, v) in fields {
                let name = format!("erlmcp_flow_mcp_{k}_total");
                e.single(&name, Counter, &format!("MCP layer counter `{k}`."), v.as_f64().unwrap_or(0.0));
            }
        }
        e.finish()
    }

    /// The dashboard's JSON.
    pub(crate) fn status_json(&self, o: &Observed) -> serde_json::Value {
        let f = &self.stats.flow;
        let history = o.history.lock().samples();
        let status = match &self.status {
            NodeStatus::Running => "running".to_string(),
            NodeStatus::Failed(why) => format!("failed: {why}"),
            NodeStatus::Stopped => "stopped".into(),
        };
        serde_json::json!({
            "node": self.name,
            "status": status,
            "ready": self.readiness,
            "strategy": format!("{:?}", self.stats.strategy),
            "stats": self.stats,
            "tasks": { "accepted": f.accepted, "completed": f.completed, "failed": f.failed,
                       "dead_lettered": f.dead_lettered, "in_flight": f.in_flight },
            "dead_letters": f.dead_letters_queued,
            "peers": self.report.as_ref().map(|r| serde_json::to_value(&r.peers).unwrap_or_default()).unwrap_or_default(),
            "raft": self.report.as_ref().and_then(|r| r.raft.clone()),
            "agents": self.agents,
            "agents_total": self.agents_total,
            "breakers": { "closed": self.breakers[0], "open": self.breakers[1], "half_open": self.breakers[2] },
            "history": history,
            "byzantine": self.byzantine,
            "mcp": o.mcp.as_ref().map(|m| m.stats()),
        })
    }
}

/// Ready: the tree runs, the cluster is joined (some peer reachable when the node has
/// seeds), and Raft (when on) has its core up and knows a leader.
pub(crate) async fn readiness_of(node: &FlowNode) -> Readiness {
    readiness(node, cluster_report(node).await.as_ref())
}

async fn cluster_report(node: &FlowNode) -> Option<NodeReport> {
    tokio::time::timeout(ACTOR_WAIT * 2, node.cluster_report()).await.ok().flatten()
}

fn readiness(node: &FlowNode, report: Option<&NodeReport>) -> Readiness {
    let mut reasons = Vec::new();
    match node.status() {
        NodeStatus::Running => {}
        NodeStatus::Failed(why) => reasons.push(format!("supervision tree failed: {why}")),
        NodeStatus::Stopped => reasons.push("node stopped".into()),
    }
    let cfg = node.config();
    if cfg.cluster.enabled
        && !cfg.cluster.seeds.is_empty()
        && !report.is_some_and(|r| r.peers.iter().any(|p| p.reachable))
    {
        reasons.push("cluster not joined: no peer reachable".into());
    }
    if let Some(rs) = node.raft_status() {
        if !rs.core_up {
            reasons.push("raft core down (restarting after a fatal error)".into());
        } else if rs.leader.is_none() {
            reasons.push(format!("raft has no leader (term {}, role {:?})", rs.current_term, rs.state));
        }
    }
    Readiness { ready: reasons.is_empty(), reasons }
}
