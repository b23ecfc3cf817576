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
//! QLearning starts last only so that the other children keep their positions in
//! [`Child::SINGLE_NODE`]; it depends on none of them (its model is node-owned, and routing reads
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

pub use crate::replicated::{RaftDuty, RaftDutyArgs, RaftDutyMsg};

/// A child of the FlowSupervisor. Its [`name`](Child::name) is the child spec's id, what
/// `which_children` lists and what `flow node`'s `crash <child>` command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Child {
    /// The single writer of the agent registry.
    Registry,
    /// Breaker-table maintenance.
    CircuitBreakers,
    /// Correlation-table TTL sweeps.
    CorrelationTracker,
    /// Hung agents, heartbeats, orphaned-task recovery.
    FailureDetector,
    /// The routing control plane.
    Router,
    /// (cluster mode) Gossip: directory, load, heartbeats, reachability.
    Gossip,
    /// (cluster mode) NodeServer, sessions, dialing.
    Cluster,
    /// (cluster mode) The node's only cluster-message actor.
    Gateway,
    /// (`raft.enabled`) The ledger reconciliation duty.
    Raft,
    /// (`byzantine.enabled`) The Byzantine voting detector.
    Byzantine,
    /// The supervisor of the agents.
    AgentSupervisor,
    /// Q-learning updates and model persistence.
    QLearning,
}

impl Child {
    /// Every child, in start order (the cluster, Raft and Byzantine ones only where enabled).
    pub const ALL: [Child; 12] = [
        Child::Registry,
        Child::CircuitBreakers,
        Child::CorrelationTracker,
        Child::FailureDetector,
        Child::Router,
        Child::Gossip,
        Child::Cluster,
        Child::Gateway,
        Child::Raft,
        Child::Byzantine,
        Child::AgentSupervisor,
        Child::QLearning,
    ];

    /// The children of a single (non-cluster) node, in start order.
    pub const SINGLE_NODE: [Child; 7] = [
        Child::Registry,
        Child::CircuitBreakers,
        Child::CorrelationTracker,
        Child::FailureDetector,
        Child::Router,
        Child::AgentSupervisor,
        Child::QLearning,
    ];

    /// The child spec's id.
    pub const fn name(self) -> &'static str {
        match self {
            Child::Registry => "registry",
            Child::CircuitBreakers => "circuit_breakers",
            Child::CorrelationTracker => "correlation_tracker",
            Child::FailureDetector => "failure_detector",
            Child::Router => "router",
            Child::Gossip => "gossip",
            Child::Cluster => "cluster",
            Child::Gateway => "gateway",
            Child::Raft => "raft",
            Child::Byzantine => "byzantine",
            Child::AgentSupervisor => "agent_supervisor",
            Child::QLearning => "q_learning",
        }
    }
}

impl std::fmt::Display for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no FlowSupervisor child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown child {name:?} (valid: {})", valid_names())]
pub struct UnknownChild {
    /// The name given.
    pub name: String,
}

fn valid_names() -> String {
    Child::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

impl std::str::FromStr for Child {
    type Err = UnknownChild;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Child::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| UnknownChild { name: s.to_string() })
    }
}

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

fn child<A, F>(id: Child, actor: F, args: A::Arguments) -> ChildSpec
where
    A: Actor,
    A::Arguments: Clone + Sync,
    F: Fn() -> A + Send + Sync + 'static,
{
    ChildSpec::new(id.name(), Restart::Permanent, move |sup: ActorCell| {
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
    .child(child::<Registry, _>(Child::Registry, || Registry, args.registry))
    .child(child::<CircuitBreakersActor, _>(Child::CircuitBreakers, || CircuitBreakersActor, args.breakers))
    .child(child::<CorrelationTrackerActor, _>(Child::CorrelationTracker, || CorrelationTrackerActor, args.correlation))
    .child(child::<FailureDetector, _>(Child::FailureDetector, || FailureDetector, args.detector))
    .child(child::<RouterActor, _>(Child::Router, || RouterActor, args.router));
    let spec = match args.cluster {
        Some((gossip, cluster, gateway)) => spec
            .child(ChildSpec::new(Child::Gossip.name(), Restart::Permanent, move |sup: ActorCell| {
                let gossip = gossip.clone();
                async move { gossip.start(sup).await }
            }))
            .child(child::<ClusterActor, _>(Child::Cluster, || ClusterActor, cluster))
            .child(child::<Gateway, _>(Child::Gateway, || Gateway, gateway)),
        None => spec,
    };
    let spec = match args.raft {
        Some(raft) => spec.child(child::<RaftDuty, _>(Child::Raft, || RaftDuty, raft)),
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
    .child(child::<QLearningActor, _>(Child::QLearning, || QLearningActor, args.q_learning))
}
