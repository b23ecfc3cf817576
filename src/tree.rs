//! The FlowSupervisor tree of one node.
//!
//! ```text
//! FlowSupervisor (one_for_one, supervision.flow: 10 restarts in 60 s)
//! ├── Registry             single writer of the agent registry
//! ├── CircuitBreakers      breaker-table maintenance (pruning)
//! ├── CorrelationTracker   correlation-table TTL sweeps
//! ├── FailureDetector      hung agents, heartbeats, orphaned-task recovery
//! ├── Router               routing control plane (strategy, dead letters)
//! ├── Gossip               (cluster mode) directory, load, addresses, heartbeats, reachability
//! ├── Cluster              (cluster mode) NodeServer, sessions, dialing, directory mirroring
//! ├── Gateway              (cluster mode) the node's only cluster-message actor
//! ├── Raft                 (raft.enabled) reconcile the ledger: drive own loose entries; the leader adopts dead nodes' tasks
//! ├── ByzantineDetector    (byzantine.enabled) signed quorum votes, dishonesty scores, blacklist
//! ├── AgentSupervisor      one_for_one, supervision.agents: 5 restarts in 60 s
//! │   └── agents …
//! └── QLearning            applies Q-learning TD updates, publishes snapshots, saves the model
//! ```
//!
//! QLearning starts last only so that the indexes of the other children in [`CHILDREN`]
//! stay stable; it depends on none of them (its model is node-owned, and routing reads
//! the model's snapshot whether or not the actor is up).
//!
//! **Why one_for_one at the top.** Each child's state that matters lives in a structure
//! the node owns and hands to every incarnation (the registry view, the breaker table, the
//! correlation table, the task table, the Q-learning model), or is rebuilt on start from a source of truth (the
//! registry re-monitors live agents and drops dead ones; the AgentSupervisor restarts every
//! agent in the pool's table; the failure detector takes the orphans that piled up). No
//! child holds state that depends on a sibling's incarnation, so restarting siblings
//! (one_for_all, rest_for_one) would only add downtime: a registry crash would kill every
//! agent and fail their in-flight tasks for nothing.
//!
//! **Intensities.** The FlowSupervisor tolerates 10 restarts in 60 s: its children are
//! small and restart in microseconds, so 10 in a minute means a persistent fault, and it
//! escalates: the node reports `Failed` and dead-letters what it cannot finish. The
//! AgentSupervisor uses OTP's 5 in 60 s by default; when agents are expected to crash
//! often (chaos tests, the demo's crash injection) raise `supervision.agents`. Past its
//! intensity it escalates to the FlowSupervisor, which restarts it (counting one restart
//! of its own), and the new AgentSupervisor brings every agent back.

use std::time::Duration;

use erlmcp_flow_agent::AgentPool;
use erlmcp_flow_cluster::{ClusterActor, ClusterArgs, Gateway, GatewayArgs, GossipChildArgs};
use erlmcp_flow_core::config::FlowConfig;
use erlmcp_flow_registry::{Registry, RegistryArgs};
use erlmcp_flow_router::breaker::BreakersArgs;
use erlmcp_flow_router::correlation::CorrelationArgs;
use erlmcp_flow_router::failure_detector::DetectorArgs;
use erlmcp_flow_router::q_learning::QLearningArgs;
use erlmcp_flow_router::router_actor::RouterArgs;
use erlmcp_flow_router::{CircuitBreakersActor, CorrelationTrackerActor, FailureDetector, QLearningActor, RouterActor};
use erlmcp_flow_supervision::{ChildSpec, Restart, RestartIntensity, Strategy, SupervisorSpec, SupervisorStats};
use ractor::{Actor, ActorCell};
use std::sync::Arc;

/// Extra children of a cluster node, started after the Router and before the AgentSupervisor.
pub const CLUSTER_CHILDREN: [&str; 3] = ["gossip", "cluster", "gateway"];

/// The extra child of a node with the replicated ledger, started after the gateway.
pub const RAFT_CHILD: &str = "raft";

/// The extra child of a node with Byzantine voting, started after the gateway (and Raft).
pub const BYZANTINE_CHILD: &str = "byzantine";

pub use crate::replicated::{RaftDuty, RaftDutyArgs, RaftDutyMsg};

/// Names of the FlowSupervisor's children on a single node, in start order.
pub const CHILDREN: [&str; 7] = [
    "registry",
    "circuit_breakers",
    "correlation_tracker",
    "failure_detector",
    "router",
    "agent_supervisor",
    "q_learning",
];

/// Everything the tree's children are started with.
#[derive(Debug, Clone)]
pub(crate) struct TreeArgs {
    pub(crate) registry: RegistryArgs,
    pub(crate) breakers: BreakersArgs,
    pub(crate) correlation: CorrelationArgs,
    pub(crate) detector: DetectorArgs,
    pub(crate) router: RouterArgs,
    pub(crate) cluster: Option<(GossipChildArgs, ClusterArgs, GatewayArgs)>,
    pub(crate) raft: Option<RaftDutyArgs>,
    pub(crate) byzantine: Option<ChildSpec>,
    pub(crate) pool: AgentPool,
    pub(crate) q_learning: QLearningArgs,
}

fn child<A, F>(id: &str, actor: F, args: A::Arguments) -> ChildSpec
where
    A: Actor,
    A::Arguments: Clone + Sync,
    F: Fn() -> A + Send + Sync + 'static,
{
    ChildSpec::new(id, Restart::Permanent, move |sup: ActorCell| {
        let a = actor();
        let args = args.clone();
        async move { Actor::spawn_linked(None, a, args, sup).await.map(|(r, _)| r.get_cell()) }
    })
}

pub(crate) fn flow_supervisor_spec(cfg: &FlowConfig, args: TreeArgs, stats: Arc<SupervisorStats>) -> SupervisorSpec {
    let flow = cfg.supervision.flow;
    let agents = cfg.supervision.agents;
    let spec = SupervisorSpec::new(
        "flow_supervisor",
        Strategy::OneForOne,
        RestartIntensity::new(flow.max_restarts, Duration::from_millis(flow.window_ms)),
    )
    .with_stats(stats)
    .child(child::<Registry, _>(CHILDREN[0], || Registry, args.registry))
    .child(child::<CircuitBreakersActor, _>(CHILDREN[1], || CircuitBreakersActor, args.breakers))
    .child(child::<CorrelationTrackerActor, _>(CHILDREN[2], || CorrelationTrackerActor, args.correlation))
    .child(child::<FailureDetector, _>(CHILDREN[3], || FailureDetector, args.detector))
    .child(child::<RouterActor, _>(CHILDREN[4], || RouterActor, args.router));
    let spec = match args.cluster {
        Some((gossip, cluster, gateway)) => spec
            .child(ChildSpec::new(CLUSTER_CHILDREN[0], Restart::Permanent, move |sup: ActorCell| {
                let gossip = gossip.clone();
                async move { gossip.start(sup).await }
            }))
            .child(child::<ClusterActor, _>(CLUSTER_CHILDREN[1], || ClusterActor, cluster))
            .child(child::<Gateway, _>(CLUSTER_CHILDREN[2], || Gateway, gateway)),
        None => spec,
    };
    let spec = match args.raft {
        Some(raft) => spec.child(child::<RaftDuty, _>(RAFT_CHILD, || RaftDuty, raft)),
        None => spec,
    };
    let spec = match args.byzantine {
        Some(byzantine) => spec.child(byzantine),
        None => spec,
    };
    spec.child(
        args.pool
            .supervisor_child_spec(RestartIntensity::new(agents.max_restarts, Duration::from_millis(agents.window_ms))),
    )
    .child(child::<QLearningActor, _>(CHILDREN[6], || QLearningActor, args.q_learning))
}
