//! [`FlowNode`]: one erlmcp-flow node (supervision tree, registry, router, agents).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::tree::RaftDutyArgs;
use erlmcp_flow_agent::{AgentPool, AgentPoolError, AgentSpec};
use erlmcp_flow_cluster::{
    ClusterArgs, ClusterGossipTransport, ClusterMsg, GatewayArgs, GatewayMsg, GossipChildArgs, GossipSlot, Hello,
    NodeReport, Peer, PeerTable, RaftEndpoint, RaftLink, RaftReportSource, gossip_config,
};
use erlmcp_flow_consensus::ConsensusNode;
use erlmcp_flow_core::config::{ConfigError, FlowConfig};
use erlmcp_flow_core::{
    Agent, AgentId, Codec, MonoClock, NodeName, StrategyKind, SubmitError, Task, TaskId, TaskOutcome,
};
use erlmcp_flow_registry::{RegistryArgs, RegistryHandle, RegistryView};
use erlmcp_flow_router::breaker::{BreakersArgs, BreakersMsg};
use erlmcp_flow_router::correlation::{CorrelationArgs, CorrelationMsg};
use erlmcp_flow_router::failure_detector::{DetectorArgs, DetectorMsg};
use erlmcp_flow_router::q_learning::{QLearningArgs, QLearningMsg, QLearningStrategy, QModel};
use erlmcp_flow_router::router_actor::RouterArgs;
use erlmcp_flow_router::{
    AdmissionStats, CircuitBreakers, ControlError, CorrelationRecord, CorrelationTable, DeadLetter, DeadLetterQueue,
    DiscardHandler, DrainReport, FlowStats, RouterCore, RouterMsg, RouterParts, Strategy, StrategyError,
    StrategyFactory, TaskHandle, TaskTable,
};
use erlmcp_flow_supervision::{
    ActorSlot, Incarnation, Slot, Supervisor, SupervisorMsg, SupervisorSpec, SupervisorStats,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::Serialize;
use tokio::sync::watch;

use crate::tree::{Child, TreeArgs, flow_supervisor_spec};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configured strategy cannot be built.
    #[error("strategy {kind}: {reason}")]
    Strategy {
        /// Which.
        kind: StrategyKind,
        /// Why.
        reason: StrategyError,
    },
    /// The supervision tree failed to start.
    #[error("supervision tree failed to start: {0}")]
    Tree(String),
}

/// Lifecycle of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum NodeStatus {
    /// Serving.
    Running,
    /// The FlowSupervisor exceeded its restart intensity (or failed otherwise); the node
    /// stopped accepting and dead-lettered what it could not finish.
    Failed(String),
    /// Shut down.
    Stopped,
}

/// Counters of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStats {
    /// Routing figures.
    #[serde(flatten)]
    pub flow: FlowStats,
    /// Agents in the pool.
    pub agents: usize,
    /// Agent restarts by the AgentSupervisor.
    pub agent_restarts: u64,
    /// Restarts of the node's services (and of the AgentSupervisor) by the FlowSupervisor.
    pub service_restarts: u64,
    /// All restarts: `agent_restarts + service_restarts`.
    pub restarts: u64,
    /// Supervisors that exceeded their intensity.
    pub meltdowns: u64,
    /// Current strategy.
    pub strategy: StrategyKind,
    /// Admission: submitters waiting, discards per reason, cancellations. With the
    /// ledger's figures: every task that passed the door checks is accepted
    /// (`flow.accepted`), discarded (`admission.discarded`, per reason), cancelled, or
    /// still waiting; and `flow.accepted = completed + failed + dead_lettered + in_flight`.
    pub admission: AdmissionStats,
}

/// Builds and starts a [`FlowNode`].
#[derive(Default)]
pub struct FlowNodeBuilder {
    config: FlowConfig,
    strategy: Option<StrategyKind>,
    on_discard: Option<Arc<dyn DiscardHandler>>,
}

impl std::fmt::Debug for FlowNodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowNodeBuilder")
            .field("config", &self.config)
            .field("strategy", &self.strategy)
            .field("on_discard", &self.on_discard.is_some())
            .finish()
    }
}

impl FlowNodeBuilder {
    /// Uses `config` (validated at start).
    pub fn config(mut self, config: FlowConfig) -> Self {
        self.config = config;
        self
    }

    /// Overrides `load_balancer.strategy`.
    pub fn strategy(mut self, kind: StrategyKind) -> Self {
        self.strategy = Some(kind);
        self
    }

    /// Overrides `node.seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.node.seed = Some(seed);
        self
    }

    /// Tells `handler` about every task discarded before admission (full queue,
    /// eviction, queue TTL, rate limit, drain), with the reason. It runs on the task that
    /// discarded it: keep it quick, and do not block or submit from it. Any
    /// `Fn(&Task, DiscardReason) + Send + Sync + 'static` closure will do.
    pub fn on_discard(mut self, handler: impl DiscardHandler) -> Self {
        self.on_discard = Some(Arc::new(handler));
        self
    }

    /// Starts the node.
    pub async fn start(self) -> Result<FlowNode, StartError> {
        let mut config = self.config;
        if let Some(kind) = self.strategy {
            config.load_balancer.strategy = kind;
        }
        let node = FlowNode::start(config).await?;
        if let Some(h) = self.on_discard {
            node.inner.core.set_discard_handler(h);
        }
        Ok(node)
    }
}

struct Slots {
    registry: ActorSlot<erlmcp_flow_registry::RegistryMsg>,
    breakers: ActorSlot<BreakersMsg>,
    correlation: ActorSlot<CorrelationMsg>,
    detector: ActorSlot<DetectorMsg>,
    router: ActorSlot<RouterMsg>,
    q_learning: ActorSlot<QLearningMsg>,
    flow_supervisor: ActorSlot<SupervisorMsg>,
    cluster: ActorSlot<ClusterMsg>,
    gateway: ActorSlot<GatewayMsg>,
    gossip: GossipSlot,
    raft: RaftEndpoint,
    raft_report: RaftReportSource,
    raft_duty: ActorSlot<crate::tree::RaftDutyMsg>,
    byzantine_inbox: erlmcp_flow_cluster::ByzantineInbox,
}

/// Builds the cluster actor's and the gateway's arguments, binding the listener.
async fn cluster_args(
    config: &FlowConfig,
    node: NodeName,
    registry: &RegistryHandle,
    parts: &RouterParts,
    slots: &Slots,
    clock: MonoClock,
    seed: u64,
) -> Result<(GossipChildArgs, ClusterArgs, GatewayArgs, std::net::SocketAddr), StartError> {
    let cfg = &config.cluster;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| StartError::Tree(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener.local_addr().map_err(|e| StartError::Tree(e.to_string()))?;
    let hello = Hello {
        node,
        incarnation: rand::random::<u64>() | 1,
        listen: addr.to_string(),
        version: erlmcp_flow_cluster::wire::PROTOCOL_VERSION,
    };
    let peers = Arc::new(PeerTable::default());
    let codec = Codec::new(config.codec.max_payload_bytes.saturating_add(64 * 1024));
    let gossip_cfg = gossip_config(cfg, config.failure_detector.phi_threshold);
    let gossip = GossipChildArgs {
        me: hello.node.clone(),
        config: gossip_cfg.clone(),
        transport: Arc::new(ClusterGossipTransport::new(hello.node.clone(), peers.clone(), codec, &gossip_cfg)),
        slot: slots.gossip.clone(),
        seed,
    };
    let tasks = parts.tasks.clone();
    let ledger = Arc::new(move || {
        let c = tasks.counts();
        [c.accepted, c.completed, c.failed, c.dead_lettered]
    });
    let cluster = ClusterArgs {
        cfg: cfg.clone(),
        hello: hello.clone(),
        listener: Arc::new(listener),
        registry: registry.clone(),
        peers: peers.clone(),
        codec,
        clock,
        slot: slots.cluster.clone(),
        ledger,
        gossip: slots.gossip.clone(),
        raft: slots.raft_report.clone(),
    };
    let gateway = GatewayArgs {
        hello,
        registry: registry.clone(),
        peers,
        codec,
        in_flight: Arc::new(tokio::sync::Semaphore::new(cfg.max_remote_in_flight as usize)),
        cluster: slots.cluster.clone(),
        gossip: slots.gossip.clone(),
        gossip_codec: Codec::new(gossip_cfg.max_message_bytes),
        slot: slots.gateway.clone(),
        raft: slots.raft.clone(),
        byzantine: slots.byzantine_inbox.clone(),
    };
    Ok((gossip, cluster, gateway, addr))
}

struct NodeInner {
    config: FlowConfig,
    clock: MonoClock,
    registry: RegistryHandle,
    pool: AgentPool,
    core: Arc<RouterCore>,
    q_model: Arc<QModel>,
    slots: Slots,
    flow_stats: Arc<SupervisorStats>,
    status: watch::Receiver<NodeStatus>,
    watch_actor: ActorRef<()>,
    listen: Option<std::net::SocketAddr>,
    peers: Option<Arc<PeerTable>>,
    replicated: Option<Replicated>,
    byzantine: Option<crate::voting::DetectorSlot>,
    watch_handle: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// One node: agents, registry, router and the supervision tree that keeps them up.
///
/// Cheap to clone; all clones drive the same node.
#[derive(Clone)]
pub struct FlowNode {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for FlowNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowNode")
            .field("name", &self.inner.config.node.name)
            .field("status", &*self.inner.status.borrow())
            .finish_non_exhaustive()
    }
}

/// Builds the strategy factory for a config; Q-learning strategies share the node's model.
pub(crate) fn strategy_factory(cfg: &FlowConfig, q_model: Arc<QModel>) -> StrategyFactory {
    let params = erlmcp_flow_router::RouterSettings::from_config(cfg).strategy_params;
    Arc::new(move |kind: StrategyKind| -> Result<Arc<dyn Strategy>, StrategyError> {
        if kind == StrategyKind::QLearning {
            return Ok(Arc::new(QLearningStrategy::new(q_model.clone())));
        }
        erlmcp_flow_router::strategy::build(kind, params).ok_or(StrategyError::Unavailable(kind))
    })
}

impl FlowNode {
    /// A builder with the default config.
    pub fn builder() -> FlowNodeBuilder {
        FlowNodeBuilder::default()
    }

    /// Validates `config` and starts a node. Kept for the workspace's own crates; the one
    /// documented way is [`FlowNode::builder`], which calls this.
    #[doc(hidden)]
    pub async fn start(config: FlowConfig) -> Result<FlowNode, StartError> {
        config.validate()?;
        let clock = MonoClock::new();
        let seed = config.node.seed.unwrap_or_else(rand::random);
        let call_timeout = Duration::from_millis(config.timeouts.routing_ms.max(1_000));

        let node_name = NodeName::new(&config.node.name).expect("validated config");
        let view = Arc::new(RegistryView::for_node(
            node_name.clone(),
            config.registry.max_agents as usize,
            config.registry.candidate_cache_entries as usize,
        ));
        let slots = Slots {
            registry: ActorSlot::new(),
            breakers: ActorSlot::new(),
            correlation: ActorSlot::new(),
            detector: ActorSlot::new(),
            router: ActorSlot::new(),
            q_learning: ActorSlot::new(),
            flow_supervisor: ActorSlot::new(),
            cluster: ActorSlot::new(),
            gateway: ActorSlot::new(),
            gossip: GossipSlot::default(),
            raft: RaftEndpoint::default(),
            raft_report: RaftReportSource::default(),
            raft_duty: ActorSlot::new(),
            byzantine_inbox: Default::default(),
        };
        let registry = RegistryHandle::new(view.clone(), slots.registry.clone(), call_timeout);
        let parts = RouterParts {
            registry: registry.clone(),
            breakers: Arc::new(CircuitBreakers::new(config.circuit_breaker.clone())),
            correlation: Arc::new(CorrelationTable::new(
                Duration::from_millis(config.correlation.ttl_ms),
                config.correlation.max_entries as usize,
            )),
            tasks: Arc::new(TaskTable::new(config.router.dedup_window as usize)),
            dead_letters: Arc::new(DeadLetterQueue::new(config.router.dead_letter_capacity as usize)),
            clock,
        };
        // Loaded (or started fresh, with a warning, from an unusable file) before anything
        // routes; saved by the QLearning actor.
        let q_model = QModel::open(&config);
        let strategies = strategy_factory(&config, q_model.clone());
        let kind = config.load_balancer.strategy;
        let strategy = strategies(kind).map_err(|reason| StartError::Strategy { kind, reason })?;
        let core = RouterCore::new(&config, parts.clone(), strategy, seed);
        let pool = AgentPool::new(registry.clone(), clock, call_timeout);

        let tree = TreeArgs {
            registry: RegistryArgs {
                view,
                slot: slots.registry.clone(),
                clock,
                bulkhead_capacity: config.router.bulkhead_max_concurrent as usize,
                seq: Arc::new(AtomicU64::new(0)),
                restart_grace: Duration::from_millis(config.registry.restart_grace_ms),
            },
            breakers: BreakersArgs {
                table: parts.breakers.clone(),
                registry: registry.clone(),
                prune_interval: Duration::from_secs(10),
                slot: slots.breakers.clone(),
            },
            correlation: CorrelationArgs {
                table: parts.correlation.clone(),
                clock,
                sweep_interval: Duration::from_millis(config.correlation.sweep_interval_ms),
                slot: slots.correlation.clone(),
            },
            detector: DetectorArgs {
                core: core.clone(),
                sweep_interval: Duration::from_millis(config.failure_detector.sweep_interval_ms),
                heartbeat_interval: Duration::from_millis(config.timeouts.heartbeat_ms),
                hung_after: Duration::from_millis(config.failure_detector.hung_agent_after_ms),
                slot: slots.detector.clone(),
            },
            router: RouterArgs { core: core.clone(), strategies, slot: slots.router.clone() },
            cluster: None,
            raft: None,
            byzantine: None,
            pool: pool.clone(),
            q_learning: QLearningArgs {
                model: q_model.clone(),
                clock,
                tick_interval: erlmcp_flow_router::q_learning::actor::DEFAULT_TICK,
                persist_interval: match config.q_learning.persist_interval_ms {
                    0 => None,
                    ms => Some(Duration::from_millis(ms)),
                },
                slot: slots.q_learning.clone(),
            },
        };
        let mut tree = tree;
        let mut listen = None;
        let mut peers = None;
        let mut replicated = None;
        let mut byzantine = None;
        if config.cluster.enabled {
            let (gossip, cluster, gateway, addr) =
                cluster_args(&config, node_name.clone(), &registry, &parts, &slots, clock, seed).await?;
            listen = Some(addr);
            peers = Some(gateway.peers.clone());
            if config.raft.enabled {
                let r = start_replicated(&config, node_name.clone(), gateway.peers.clone(), &slots, &core).await?;
                tree.raft = Some(RaftDutyArgs {
                    reconciler: Arc::new(tokio::sync::Mutex::new(r.reconciler(core.clone(), gateway.peers.clone()))),
                    interval: Duration::from_millis(config.raft.election_timeout_max_ms.max(100)),
                    slot: slots.raft_duty.clone(),
                });
                replicated = Some(r);
            }
            if config.byzantine.enabled {
                let keys = crate::voting::load_keys(&config, &node_name).map_err(StartError::Tree)?;
                let link = erlmcp_flow_cluster::VoteLink::new(node_name.clone(), gateway.peers.clone(), gateway.codec);
                let slot = crate::voting::DetectorSlot::default();
                crate::voting::install_inbox(&slots.byzantine_inbox, slot.clone());
                tree.byzantine = Some(crate::voting::child_spec(&config, keys, link, slot.clone()));
                byzantine = Some(slot);
            }
            tree.cluster = Some((gossip, cluster, gateway));
        }
        let flow_stats = Arc::new(SupervisorStats::default());
        let spec = flow_supervisor_spec(&config, tree, flow_stats.clone());
        let (status_tx, status) = watch::channel(NodeStatus::Running);
        let (watch_actor, watch_handle) = Actor::spawn(
            None,
            NodeWatch,
            WatchArgs { spec, status: status_tx, core: core.clone(), slot: slots.flow_supervisor.clone() },
        )
        .await
        .map_err(|e| StartError::Tree(e.to_string()))?;
        tracing::info!(node = %config.node.name, seed, strategy = %kind, "node started");
        Ok(FlowNode {
            inner: Arc::new(NodeInner {
                config,
                clock,
                registry,
                pool,
                core,
                q_model,
                slots,
                flow_stats,
                status,
                watch_actor,
                listen,
                peers,
                replicated,
                byzantine,
                watch_handle: parking_lot::Mutex::new(Some(watch_handle)),
            }),
        })
    }

    /// The node's configuration.
    pub fn config(&self) -> &FlowConfig {
        &self.inner.config
    }

    /// The node's clock.
    pub fn clock(&self) -> MonoClock {
        self.inner.clock
    }

    /// Spawns a supervised agent; `factory` builds a fresh agent value on every (re)start.
    pub async fn spawn_agent<A, F>(&self, spec: AgentSpec, factory: F) -> Result<AgentId, AgentPoolError>
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let id = spec.id.clone();
        self.inner.pool.spawn(spec, factory).await?;
        Ok(id)
    }

    /// Stops an agent for good.
    ///
    /// The task the agent is running finishes first (the actor stops between messages;
    /// after 5 s it is killed, and a task it was running is then redelivered, or failed
    /// as "may have run" if it is at-most-once). Tasks still queued in its mailbox are
    /// handed back: the router redelivers them to another capable agent without spending
    /// an attempt. To stop an agent only once it is idle, see [`FlowNode::scale_agents`].
    pub async fn stop_agent(&self, id: &AgentId) -> Result<(), AgentPoolError> {
        self.inner.pool.stop(id).await
    }

    /// Resizes a pool of identical agents to `n`: the agents `{template.id}-0` to
    /// `{template.id}-{n-1}`, each with the template's capabilities, swarms, weight and
    /// restart type, built by `factory` (shared by the pool's members). Missing members
    /// are spawned; members numbered `n` and above are retired, highest first, gracefully:
    /// each is first taken out of routing, then stopped once the tasks it holds have
    /// finished (waiting at most `timeouts.execution_ms` for them; a task it still holds
    /// then is handed back, as with [`FlowNode::stop_agent`]). No task is lost either way.
    /// Returns the pool's members after the change.
    pub async fn scale_agents<A, F>(
        &self,
        template: &AgentSpec,
        factory: F,
        n: usize,
    ) -> Result<Vec<AgentId>, AgentPoolError>
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let prefix = format!("{}-", template.id);
        let member = |id: &AgentId| id.as_str().strip_prefix(&prefix).and_then(|i| i.parse::<usize>().ok());
        let mut current: Vec<(usize, AgentId)> =
            self.inner.pool.specs().into_iter().filter_map(|s| member(&s.id).map(|i| (i, s.id))).collect();
        current.sort();
        let factory = Arc::new(factory);
        for i in 0..n {
            if current.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let id = format!("{prefix}{i}");
            let id = AgentId::new(&id).map_err(|e| AgentPoolError::InvalidId { id, reason: e.to_string() })?;
            let mut spec = template.clone();
            spec.id = id;
            let f = factory.clone();
            self.inner.pool.spawn(spec, move || f()).await?;
        }
        let retiring: Vec<&AgentId> = current.iter().rev().filter(|(i, _)| *i >= n).map(|(_, id)| id).collect();
        // All of them out of routing first, so that the tasks they give up go to members
        // that stay.
        for id in &retiring {
            if let Some(entry) = self.inner.registry.find(id)
                && let Some(actor) = entry.actor()
            {
                // Strategies only pick live entries.
                entry.mark_down(actor.get_id());
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.inner.config.timeouts.execution_ms);
        for id in retiring {
            self.retire_agent(id, deadline).await?;
        }
        let mut members: Vec<(usize, AgentId)> =
            self.inner.pool.specs().into_iter().filter_map(|s| member(&s.id).map(|i| (i, s.id))).collect();
        members.sort();
        Ok(members.into_iter().map(|(_, id)| id).collect())
    }

    /// Waits (up to `deadline`) until an agent taken out of routing holds no task, then
    /// stops it.
    async fn retire_agent(&self, id: &AgentId, deadline: tokio::time::Instant) -> Result<(), AgentPoolError> {
        if let Some(entry) = self.inner.registry.find(id) {
            let capacity = self.inner.config.router.bulkhead_max_concurrent as usize;
            // Leases (bulkhead slots) cover the tasks delivered and those about to be.
            while (entry.load.in_flight() > 0 || entry.bulkhead.available_permits() < capacity)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        self.inner.pool.stop(id).await
    }

    /// Drains the node: no new task is accepted ([`SubmitError::Draining`]), submitters
    /// waiting for admission are discarded (`DiscardReason::Draining`), and the tasks
    /// already accepted run on; waits up to `timeout` for them to finish. Nothing is
    /// dead-lettered. The node stays drained (its agents keep running); call
    /// [`FlowNode::shutdown`] to stop it, which is this drain followed by dead-lettering
    /// what is still open.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        self.inner.core.drain(timeout).await
    }

    /// Submits a task; waits for an admission slot at the in-flight limit. The returned
    /// handle resolves to the task's outcome.
    ///
    /// With the replicated ledger (`raft.enabled`) the task is accepted only once its
    /// `Submit` entry has committed; a node cut off from the Raft leader answers
    /// [`SubmitError::NotLeader`] or [`SubmitError::Unavailable`] and accepts nothing.
    ///
    /// A submit whose commit is not confirmed in time answers
    /// [`SubmitError::Indeterminate`]: the task may still be accepted and run (this node
    /// drives it if its entry commits later); look it up with [`FlowNode::task_entry`].
    ///
    /// At the limit the submitter waits in the bounded admission queue
    /// (`router.queue`); a task discarded there (full queue, eviction, queue TTL, rate
    /// limit, drain) answers [`SubmitError::Discarded`] with the reason and was never
    /// accepted. A draining node answers [`SubmitError::Draining`].
    pub async fn submit(&self, task: Task) -> Result<TaskHandle, SubmitError> {
        if self.inner.replicated.is_none() {
            return self.inner.core.submit(task).await;
        }
        // Admission first: a task discarded while queued must not become a ledger entry.
        let _held = self.hold_submit(&task);
        let (task, permit) = self.inner.core.admit(task).await?;
        self.commit_submit(&task).await?;
        self.inner.core.accept_admitted(task, permit)
    }

    /// Marks the task as submitted here until the router holds it, so that the
    /// reconciliation of open ledger entries does not claim it meanwhile.
    fn hold_submit(&self, task: &Task) -> Option<crate::replicated::SubmitHold> {
        self.inner.replicated.as_ref().map(|r| r.submits.hold(task.id))
    }

    /// Submits a task, failing with `Overloaded` at the in-flight limit instead of waiting.
    /// With the replicated ledger it cannot wait for a commit and answers
    /// [`SubmitError::Unavailable`]: use [`FlowNode::submit`].
    pub fn try_submit(&self, task: Task) -> Result<TaskHandle, SubmitError> {
        if self.inner.replicated.is_some() {
            return Err(SubmitError::Unavailable("try_submit cannot wait for a Raft commit; use submit".into()));
        }
        self.inner.core.try_submit(task)
    }

    async fn commit_submit(&self, task: &Task) -> Result<(), SubmitError> {
        let Some(r) = &self.inner.replicated else { return Ok(()) };
        // Validate before the entry is replicated: a task the router would refuse must
        // not become an open ledger entry.
        self.inner.core.check(task)?;
        crate::replicated::commit_submit(&r.node, task, &self.inner.config.node.name).await
    }

    /// Submits a task and waits for its outcome, routing it on the caller's task (cheaper
    /// than `submit` and awaiting the handle). Dropping the future midway does not lose
    /// the task: the failure detector takes it over.
    pub async fn route(&self, task: Task) -> Result<TaskOutcome, SubmitError> {
        if self.inner.replicated.is_none() {
            return self.inner.core.route(task).await;
        }
        let _held = self.hold_submit(&task);
        let (task, permit) = self.inner.core.admit(task).await?;
        self.commit_submit(&task).await?;
        self.inner.core.route_admitted(task, permit).await
    }

    /// The Raft node of the replicated ledger (`raft.enabled`): status, leader,
    /// linearizable reads, the control KV, membership changes.
    pub fn consensus(&self) -> Option<&ConsensusNode> {
        self.inner.replicated.as_ref().map(|r| &r.node)
    }

    /// Commits a command to the replicated log (through the leader, waiting out an
    /// election up to `raft.client_timeout_ms`) and returns the state machine's answer.
    /// `Unavailable` when Raft is off.
    pub async fn submit_command(
        &self,
        cmd: erlmcp_flow_consensus::LedgerCommand,
    ) -> Result<erlmcp_flow_consensus::CommitReceipt, erlmcp_flow_consensus::ConsensusError> {
        match self.consensus() {
            Some(c) => c.submit(cmd).await,
            None => Err(erlmcp_flow_consensus::ConsensusError::Unavailable("raft is not enabled".into())),
        }
    }

    /// What the replicated ledger says about task `id`, read linearizably: open (and who
    /// drives it), finished (and how), or unknown (never accepted). How a client learns
    /// what became of a task whose submission answered [`SubmitError::Indeterminate`].
    /// `Unavailable` when Raft is off.
    pub async fn task_entry(
        &self,
        id: TaskId,
    ) -> Result<erlmcp_flow_consensus::TaskEntry, erlmcp_flow_consensus::ConsensusError> {
        match self.consensus() {
            Some(c) => c.linearizable_read(move |l| l.entry(&id)).await,
            None => Err(erlmcp_flow_consensus::ConsensusError::Unavailable("raft is not enabled".into())),
        }
    }

    /// The Raft leader this node knows of (`None` without Raft or during an election).
    pub fn get_leader(&self) -> Option<String> {
        self.consensus().and_then(|c| c.leader()).map(|(_, name)| name)
    }

    /// This node's Raft view as `flow status` shows it (`None` without Raft).
    pub fn raft_report(&self) -> Option<erlmcp_flow_cluster::RaftReport> {
        self.consensus().map(crate::replicated::raft_report)
    }

    /// This node's Raft status (`None` without Raft), read without waiting.
    pub fn raft_status(&self) -> Option<erlmcp_flow_consensus::RaftStatus> {
        self.consensus().map(|c| c.status())
    }

    /// The Byzantine voting detector (`byzantine.enabled`), its current incarnation.
    pub fn byzantine(&self) -> Option<erlmcp_flow_byzantine::ByzantineHandle> {
        self.inner.byzantine.as_ref().and_then(|s| s.get())
    }

    /// Terminal entries not yet committed to the replicated ledger (0 without Raft).
    pub fn ledger_backlog(&self) -> u64 {
        self.inner.replicated.as_ref().map_or(0, |r| r.writer.pending())
    }

    /// Whether this node's replicated ledger can serve: false while its Raft core is down
    /// (restarting after a fatal error) or stopped; true without Raft. What a readiness
    /// probe (`/readyz`) reports.
    pub fn is_ready(&self) -> bool {
        self.consensus().is_none_or(|c| c.is_ready())
    }

    /// Open ledger entries of this node's own that nothing held (an indeterminate submit
    /// that committed later, a leftover of a previous incarnation), claimed and driven here
    /// (0 without Raft).
    pub fn reclaimed_tasks(&self) -> u64 {
        self.inner.replicated.as_ref().map_or(0, |r| r.reclaimed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Tasks of dead nodes this node adopted as Raft leader (0 without Raft).
    pub fn adopted_tasks(&self) -> u64 {
        self.inner.replicated.as_ref().map_or(0, |r| r.adopted.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The agent registry (reads are lock-free snapshots).
    pub fn registry(&self) -> &RegistryHandle {
        &self.inner.registry
    }

    /// The router core (advanced use: strategies, tables).
    pub fn router(&self) -> &Arc<RouterCore> {
        &self.inner.core
    }

    /// The Q-learning model (shared by every Q-learning strategy of this node; written by
    /// the QLearning actor, persisted to `q_learning.model_path`).
    pub fn q_model(&self) -> &Arc<QModel> {
        &self.inner.q_model
    }

    /// Specs of the agents in the pool.
    pub fn agents(&self) -> Vec<AgentSpec> {
        self.inner.pool.specs()
    }

    /// Correlation record of a task.
    pub fn correlation(&self, task: &TaskId) -> Option<CorrelationRecord> {
        self.inner.core.correlation(task)
    }

    /// Queued dead letters.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.core.parts().dead_letters.snapshot()
    }

    /// Switches the routing strategy (through the Router actor).
    pub async fn set_strategy(&self, kind: StrategyKind) -> Result<(), ControlError> {
        Ok(self.router_call(|r| RouterMsg::SetStrategy(kind, r)).await??)
    }

    /// Resubmits queued dead letters as new tasks; returns how many were accepted.
    ///
    /// With the replicated ledger each replayed task (a new task with a fresh id) is
    /// committed like any submission before it is accepted; one that cannot be committed
    /// stays in the dead-letter queue.
    pub async fn replay_dead_letters(&self) -> Result<usize, ControlError> {
        if self.inner.replicated.is_none() {
            return self.router_call(RouterMsg::ReplayDeadLetters).await;
        }
        let queue = &self.inner.core.parts().dead_letters;
        let mut accepted = 0;
        for letter in queue.drain() {
            let mut task = Task::clone(&letter.task);
            task.id = TaskId::new_v4();
            task.attempt = 0;
            // Once committed, the task must reach the router: `submit` waits for an
            // admission slot rather than refuse (and leave an open ledger entry behind).
            let _held = self.hold_submit(&task);
            let replayed = match self.inner.core.admit(task).await {
                Ok((task, permit)) => match self.commit_submit(&task).await {
                    Ok(()) => self.inner.core.accept_admitted(task, permit).map(|_| ()),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match replayed {
                Ok(()) => accepted += 1,
                // It may commit later; then this node drives it (replaying the letter
                // again could run it twice).
                Err(e @ SubmitError::Indeterminate { .. }) => {
                    tracing::warn!(error = %e, "dead letter replay not confirmed; the ledger decides");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dead letter not replayed");
                    queue.push(letter);
                }
            }
        }
        Ok(accepted)
    }

    async fn router_call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> RouterMsg,
    ) -> Result<T, ControlError> {
        let timeout = Duration::from_secs(5);
        let router = self.inner.slots.router.wait(timeout).await.ok_or(ControlError::RouterUnavailable)?;
        match router.call(msg, Some(timeout)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            _ => Err(ControlError::NoAnswer),
        }
    }

    /// Counters.
    pub fn stats(&self) -> NodeStats {
        let agent_stats = self.inner.pool.stats();
        let agent_restarts = agent_stats.restarts();
        let service_restarts = self.inner.flow_stats.restarts();
        NodeStats {
            flow: self.inner.core.stats(),
            agents: self.inner.pool.len(),
            agent_restarts,
            service_restarts,
            restarts: agent_restarts + service_restarts,
            meltdowns: agent_stats.meltdowns() + self.inner.flow_stats.meltdowns(),
            strategy: self.inner.core.strategy_kind(),
            admission: self.inner.core.admission_stats(),
        }
    }

    /// Lifecycle status.
    pub fn status(&self) -> NodeStatus {
        self.inner.status.borrow().clone()
    }

    /// Waits until the status differs from `Running`, up to `timeout`.
    pub async fn wait_not_running(&self, timeout: Duration) -> NodeStatus {
        let mut rx = self.inner.status.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|s| *s != NodeStatus::Running)).await;
        self.status()
    }

    /// Waits until every accepted task is terminal, up to `timeout`; true when idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.core.parts().tasks.wait_idle(timeout).await
    }

    /// The FlowSupervisor (to list children in tests and tools).
    pub fn flow_supervisor(&self) -> Option<ActorRef<SupervisorMsg>> {
        self.inner.slots.flow_supervisor.get()
    }

    /// The AgentSupervisor.
    pub fn agent_supervisor(&self) -> Option<ActorRef<SupervisorMsg>> {
        self.inner.pool.supervisor().get()
    }

    /// Where this node accepts other nodes (cluster mode).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.listen
    }

    /// What this node knows of peer `node` right now (cluster mode): reachability, session,
    /// incarnation, listen address. A read of the shared peer table, no mailbox round
    /// trip, so it is cheap enough to poll. φ and the time since the peer's last heartbeat
    /// are in [`FlowNode::cluster_report`].
    pub fn peer(&self, node: &NodeName) -> Option<Peer> {
        self.inner.peers.as_ref()?.get(node)
    }

    /// This node's view of the cluster (cluster mode).
    pub async fn cluster_report(&self) -> Option<NodeReport> {
        let cluster = self.inner.slots.cluster.wait(Duration::from_secs(2)).await?;
        match cluster.call(ClusterMsg::Report, Some(Duration::from_secs(2))).await {
            Ok(CallResult::Success(r)) => Some(r),
            _ => None,
        }
    }

    /// Partition fault injection: cut these peers off (nothing sent, nothing received),
    /// or heal the cut with `cut = false`. True when the cluster actor took the order.
    pub async fn partition(&self, peers: Vec<NodeName>, cut: bool) -> bool {
        let Some(cluster) = self.inner.slots.cluster.wait(Duration::from_secs(2)).await else { return false };
        let r = if cut {
            cluster.call(|r| ClusterMsg::Block(peers, r), Some(Duration::from_secs(2))).await
        } else {
            cluster.call(|r| ClusterMsg::Unblock(peers, r), Some(Duration::from_secs(2))).await
        };
        matches!(r, Ok(CallResult::Success(())))
    }

    /// Fault injection: kills the child's current actor through its slot, an abnormal
    /// exit that the FlowSupervisor restarts like a crash (and counts against its
    /// intensity). False if the child is not running on this node.
    #[doc(hidden)]
    pub fn kill_child(&self, child: Child) -> bool {
        self.child_cell(child).is_some_and(|cell| {
            cell.kill();
            true
        })
    }

    /// The actor id of the child's current incarnation (to observe restarts).
    #[doc(hidden)]
    pub fn child_actor(&self, child: Child) -> Option<ractor::ActorId> {
        self.child_cell(child).map(|cell| cell.get_id())
    }

    /// The actor of the child's current live incarnation, read from its slot.
    fn child_cell(&self, child: Child) -> Option<ActorCell> {
        fn cell<H: Incarnation>(slot: &Slot<H>) -> Option<ActorCell> {
            slot.get().map(|h| h.cell())
        }
        let s = &self.inner.slots;
        match child {
            Child::Registry => cell(&s.registry),
            Child::CircuitBreakers => cell(&s.breakers),
            Child::CorrelationTracker => cell(&s.correlation),
            Child::FailureDetector => cell(&s.detector),
            Child::Router => cell(&s.router),
            Child::Gossip => cell(&s.gossip),
            Child::Cluster => cell(&s.cluster),
            Child::Gateway => cell(&s.gateway),
            Child::Raft => cell(&s.raft_duty),
            Child::Byzantine => cell(self.inner.byzantine.as_ref()?),
            Child::AgentSupervisor => cell(self.inner.pool.supervisor()),
            Child::QLearning => cell(&s.q_learning),
        }
    }

    /// Stops accepting, waits up to `grace` for in-flight tasks, dead-letters the rest
    /// (`NodeStopped`), then stops the supervision tree. Returns how many tasks were
    /// dead-lettered by the shutdown.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let cut = self.inner.core.shutdown(grace).await;
        if let Some(r) = &self.inner.replicated {
            // Give queued terminal entries the grace period to commit, then stop Raft.
            if !r.writer.drain(tokio::time::Instant::now() + grace).await {
                tracing::warn!(
                    pending = r.writer.pending(),
                    "terminal entries not committed at shutdown; the leader requeues their tasks"
                );
            }
            r.writer.stop();
            r.node.shutdown().await;
        }
        self.inner.watch_actor.stop(None);
        let handle = self.inner.watch_handle.lock().take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        cut
    }
}

// ---------------------------------------------------------------- the replicated ledger

/// A cluster node's Raft side.
struct Replicated {
    node: ConsensusNode,
    writer: Arc<crate::replicated::LedgerWriter>,
    submits: Arc<crate::replicated::SubmitsInProgress>,
    adopted: Arc<AtomicU64>,
    reclaimed: Arc<AtomicU64>,
    me: String,
    grace: Duration,
}

impl Replicated {
    fn reconciler(&self, core: Arc<RouterCore>, peers: Arc<PeerTable>) -> crate::replicated::Reconciler {
        crate::replicated::Reconciler {
            me: self.me.clone(),
            node: self.node.clone(),
            core,
            peers,
            submits: self.submits.clone(),
            writer: self.writer.clone(),
            grace: self.grace,
            gone_since: Default::default(),
            adopted: self.adopted.clone(),
            reclaimed: self.reclaimed.clone(),
        }
    }
}

/// Starts the consensus node over the gateways, hooks the router's terminal outcomes to
/// the ledger and publishes the RPC handler and the status report.
async fn start_replicated(
    config: &FlowConfig,
    me: NodeName,
    peers: Arc<PeerTable>,
    slots: &Slots,
    core: &Arc<RouterCore>,
) -> Result<Replicated, StartError> {
    let link = RaftLink::new(me.clone(), peers, Codec::new(erlmcp_flow_consensus::wire::MAX_RPC_BYTES + 4096));
    let transport = Arc::new(crate::replicated::GatewayTransport { link });
    let node = ConsensusNode::start(me.as_str(), &config.raft, transport)
        .await
        .map_err(|e| StartError::Tree(format!("raft: {e}")))?;
    if config.raft.voters.iter().any(|v| v == me.as_str()) {
        node.initialize(&config.raft.voters).await.map_err(|e| StartError::Tree(format!("raft initialize: {e}")))?;
    }
    let handler: Arc<dyn erlmcp_flow_cluster::RaftHandler> =
        Arc::new(crate::replicated::ConsensusHandler(node.clone()));
    let _ = slots.raft.set(handler);
    let n = node.clone();
    let _ = slots.raft_report.set(Arc::new(move || crate::replicated::raft_report(&n)));
    let writer = crate::replicated::LedgerWriter::start(node.clone());
    core.set_finish_hook(crate::replicated::finish_hook(writer.clone()));
    Ok(Replicated {
        node,
        writer,
        submits: Default::default(),
        adopted: Arc::new(AtomicU64::new(0)),
        reclaimed: Arc::new(AtomicU64::new(0)),
        me: me.as_str().to_string(),
        // Longer than a phi-accrual detection of a frozen node plus a re-dial: a node that
        // merely blinked keeps its tasks.
        grace: Duration::from_millis(config.raft.election_timeout_max_ms.saturating_mul(4).max(1_000)),
    })
}

// ---------------------------------------------------------------- the root watcher

struct WatchArgs {
    spec: SupervisorSpec,
    status: watch::Sender<NodeStatus>,
    core: Arc<RouterCore>,
    slot: ActorSlot<SupervisorMsg>,
}

/// Parent of the FlowSupervisor: turns its exit into the node's status.
struct NodeWatch;

impl Actor for NodeWatch {
    type Msg = ();
    type State = WatchArgs;
    type Arguments = WatchArgs;

    async fn pre_start(&self, myself: ActorRef<()>, args: WatchArgs) -> Result<WatchArgs, ActorProcessingErr> {
        let (sup, _) = Supervisor::start_linked(args.spec.clone(), myself.get_cell()).await?;
        args.slot.set(sup);
        Ok(args)
    }

    async fn post_stop(&self, _: ActorRef<()>, state: &mut WatchArgs) -> Result<(), ActorProcessingErr> {
        if let Some(sup) = state.slot.get() {
            let _ = sup.stop_and_wait(Some("node shutdown".into()), Some(Duration::from_secs(10))).await;
        }
        state.status.send_if_modified(|s| {
            if *s == NodeStatus::Running {
                *s = NodeStatus::Stopped;
                true
            } else {
                false
            }
        });
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        evt: SupervisionEvent,
        state: &mut WatchArgs,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(_, err) => {
                tracing::error!(error = %err, "FlowSupervisor failed; the node stops serving");
                state.status.send_replace(NodeStatus::Failed(err.to_string()));
                // The tree (agents included) is gone: end every open task now.
                let core = state.core.clone();
                tokio::spawn(async move {
                    core.shutdown(Duration::ZERO).await;
                });
                myself.stop(None);
            }
            SupervisionEvent::ActorTerminated(..) => myself.stop(None),
            _ => {}
        }
        Ok(())
    }
}
