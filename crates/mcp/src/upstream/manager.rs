//! [`ReplicaManager`]: the actor that runs one replica (a thin shell around
//! [`ReplicaCore`]): it executes the core's commands (start the process, publish and
//! withdraw lanes, ping, re-list) and feeds their results back as events.
//!
//! The managers of a node are children of one `mcp_upstreams` supervisor
//! (`one_for_one`): a manager that panics is restarted, and its new incarnation first
//! withdraws whatever lanes and session the old one left.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::{AgentId, AgentSpec, CapabilitySet, FlowNode};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::descriptor::ReplicaCatalog;
use crate::names::{catalog_capability, lane_id, server_capability, tool_capability};
use crate::stats::McpStats;
use crate::upstream::UpstreamSpec;
use crate::upstream::connection::{Connection, SessionSignal, connect};
use crate::upstream::lane::{LaneAgent, ReplicaLink};
use crate::upstream::replica::{ReplicaCommand, ReplicaCore, ReplicaEvent, ReplicaNote, ReplicaTiming};

/// Longest wait for withdrawn lanes to answer what they hold before they are stopped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Start-up arguments of a [`ReplicaManager`].
#[derive(Clone)]
pub struct ManagerArgs {
    /// The upstream.
    pub spec: Arc<UpstreamSpec>,
    /// Which replica.
    pub replica: u32,
    /// The node the lanes are spawned on.
    pub node: FlowNode,
    /// The session shared with the lanes.
    pub link: Arc<ReplicaLink>,
    /// Restart and ping timing.
    pub timing: ReplicaTiming,
    /// A ping unanswered for this long means the replica hangs.
    pub ping_timeout: Duration,
    /// Counters.
    pub stats: Arc<McpStats>,
}

impl std::fmt::Debug for ManagerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerArgs").field("server", &self.spec.name).field("replica", &self.replica).finish()
    }
}

/// Messages of a [`ReplicaManager`].
#[derive(Debug)]
pub enum ManagerMsg {
    /// Feed an event to the core.
    Event(ReplicaEvent),
    /// A timer; stale ones (an older sequence number) are ignored.
    Tick(u64),
    /// A connection attempt finished.
    Connected(u64, Result<Arc<Connection>, String>),
    /// A re-listing finished.
    Relisted(u64, Result<ReplicaCatalog, String>),
    /// The session of a generation said something.
    Session(u64, SessionSignal),
}

impl ractor::Message for ManagerMsg {}

/// The actor.
#[derive(Debug, Default)]
pub struct ReplicaManager;

/// Its state.
pub struct ManagerState {
    args: ManagerArgs,
    core: ReplicaCore,
    /// The connection of the current generation, once connected.
    conn: Option<(u64, Arc<Connection>)>,
    /// The published tool list.
    catalog: Option<Arc<ReplicaCatalog>>,
    /// Lanes currently spawned.
    lanes: Vec<AgentId>,
    tick_seq: u64,
}

impl std::fmt::Debug for ManagerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerState").field("args", &self.args).field("phase", &self.core.phase()).finish()
    }
}

impl ManagerState {
    fn lane_ids(&self) -> Vec<AgentId> {
        (0..self.args.spec.max_concurrency).map(|l| lane_id(&self.args.spec.name, self.args.replica, l)).collect()
    }

    fn note(&self, notes: Vec<ReplicaNote>) {
        let s = &self.args.stats;
        for n in notes {
            McpStats::inc(match n {
                ReplicaNote::Started => &s.replica_starts,
                ReplicaNote::StartFailed => &s.replica_start_failures,
                ReplicaNote::Exited => &s.replica_exits,
                ReplicaNote::Hung => &s.replica_hangs,
            });
        }
    }

    async fn feed(&mut self, myself: &ActorRef<ManagerMsg>, event: ReplicaEvent) {
        let mut queue = std::collections::VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let commands = self.core.on(event, Instant::now());
            let notes = self.core.take_notes();
            self.note(notes);
            for c in commands {
                if let Some(follow_up) = self.execute(myself, c).await {
                    queue.push_back(follow_up);
                }
            }
        }
    }

    /// Runs one command; returns an event to feed at once, if any.
    async fn execute(&mut self, myself: &ActorRef<ManagerMsg>, command: ReplicaCommand) -> Option<ReplicaEvent> {
        let server = self.args.spec.name.clone();
        let replica = self.args.replica;
        match command {
            ReplicaCommand::Connect { generation } => {
                let spec = self.args.spec.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let result = connect(&spec, replica, tx).await.map(Arc::new);
                    let ok = result.is_ok();
                    if me.send_message(ManagerMsg::Connected(generation, result)).is_err() || !ok {
                        return;
                    }
                    while let Some(signal) = rx.recv().await {
                        let closed = signal == SessionSignal::Closed;
                        if me.send_message(ManagerMsg::Session(generation, signal)).is_err() || closed {
                            break;
                        }
                    }
                });
                None
            }
            ReplicaCommand::Publish { generation } => {
                let (g, conn) = self.conn.clone().filter(|(g, _)| *g == generation)?;
                let catalog = conn.catalog.clone();
                tracing::info!(%server, replica, generation = g, tools = catalog.tools.len(), "upstream replica up");
                self.publish(g, conn, catalog).await;
                None
            }
            ReplicaCommand::Republish { generation } => {
                let (Some((g, conn)), Some(catalog)) = (self.conn.clone(), self.catalog.clone()) else { return None };
                if g != generation {
                    return None;
                }
                tracing::info!(%server, replica, tools = catalog.tools.len(), "upstream tool list changed");
                self.withdraw_lanes().await;
                self.publish(g, conn, catalog).await;
                None
            }
            ReplicaCommand::Ping { generation } => {
                let conn = self.conn.clone().filter(|(g, _)| *g == generation)?.1;
                let timeout = self.args.ping_timeout;
                let me = myself.clone();
                tokio::spawn(async move {
                    let event = match conn.ping(timeout).await {
                        Ok(()) => ReplicaEvent::PingAnswered { generation },
                        Err(e) => {
                            tracing::warn!(%server, replica, error = %e, "upstream replica did not answer its ping");
                            ReplicaEvent::PingFailed { generation }
                        }
                    };
                    let _ = me.send_message(ManagerMsg::Event(event));
                });
                None
            }
            ReplicaCommand::Relist { generation } => {
                let conn = self.conn.clone().filter(|(g, _)| *g == generation)?.1;
                let spec = self.args.spec.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = conn.relist(&spec, spec.startup_timeout).await;
                    let _ = me.send_message(ManagerMsg::Relisted(generation, result));
                });
                None
            }
            ReplicaCommand::Withdraw { generation } => {
                tracing::warn!(%server, replica, generation, "upstream replica down: withdrawing its lanes");
                self.args.link.mark_down();
                if let Some((_, conn)) = self.conn.take() {
                    conn.close();
                }
                self.withdraw_lanes().await;
                if let Some(session) = self.args.link.take() {
                    session.conn.close();
                }
                self.catalog = None;
                Some(ReplicaEvent::Drained { generation })
            }
            ReplicaCommand::Discard { generation } => {
                if let Some((g, conn)) = &self.conn
                    && *g == generation
                {
                    conn.close();
                    self.conn = None;
                }
                None
            }
            ReplicaCommand::ScheduleTick(after) => {
                self.tick_seq += 1;
                let seq = self.tick_seq;
                myself.send_after(after, move || ManagerMsg::Tick(seq));
                None
            }
        }
    }

    /// Installs the session and spawns the lanes.
    async fn publish(&mut self, generation: u64, conn: Arc<Connection>, catalog: Arc<ReplicaCatalog>) {
        let spec = &self.args.spec;
        let mut caps = vec![server_capability(&spec.name), catalog_capability(&spec.name, catalog.digest())];
        caps.extend(catalog.tools.iter().map(|t| tool_capability(t.name())));
        let caps = CapabilitySet::from(caps);
        self.args.link.install(generation, conn, catalog.clone());
        self.catalog = Some(catalog);
        for id in self.lane_ids() {
            let link = self.args.link.clone();
            let spawn = || {
                let link = link.clone();
                self.args.node.spawn_agent(AgentSpec::new(id.clone(), caps.clone()), move || {
                    LaneAgent::new(link.clone(), generation)
                })
            };
            let mut result = spawn().await;
            if matches!(result, Err(erlmcp_flow::agent::AgentPoolError::Duplicate(_))) {
                // Left by a previous incarnation of this manager.
                let _ = self.args.node.stop_agent(&id).await;
                result = spawn().await;
            }
            match result {
                Ok(_) => {
                    if let Some(entry) = self.args.node.registry().find(&id) {
                        crate::names::limit_to_one_call(&entry);
                    }
                    self.lanes.push(id)
                }
                Err(e) => tracing::error!(server = %spec.name, lane = %id, error = %e, "lane not spawned"),
            }
        }
    }

    /// Takes the lanes out of routing, lets them answer what they hold (bounded by
    /// [`DRAIN_TIMEOUT`]), then stops them.
    async fn withdraw_lanes(&mut self) {
        let lanes = std::mem::take(&mut self.lanes);
        let registry = self.args.node.registry();
        let entries: Vec<_> = lanes.iter().filter_map(|id| registry.find(id)).collect();
        for e in &entries {
            if let Some(actor) = e.actor_id() {
                e.mark_down(actor);
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut pause = Duration::from_micros(100);
        while entries.iter().any(|e| e.load.in_flight() > 0) && Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        for id in &lanes {
            if let Err(e) = self.args.node.stop_agent(id).await {
                tracing::debug!(lane = %id, error = %e, "lane already gone");
            }
        }
    }
}

impl Actor for ReplicaManager {
    type Msg = ManagerMsg;
    type State = ManagerState;
    type Arguments = ManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ManagerMsg>,
        args: ManagerArgs,
    ) -> Result<ManagerState, ActorProcessingErr> {
        let mut state = ManagerState {
            core: ReplicaCore::new(args.timing),
            args,
            conn: None,
            catalog: None,
            lanes: Vec::new(),
            tick_seq: 0,
        };
        // A previous incarnation may have left lanes and a session behind.
        state.lanes = state.lane_ids();
        state.withdraw_lanes().await;
        if let Some(old) = state.args.link.take() {
            old.conn.close();
        }
        state.feed(&myself, ReplicaEvent::Start).await;
        Ok(state)
    }

    async fn post_stop(&self, _: ActorRef<ManagerMsg>, state: &mut ManagerState) -> Result<(), ActorProcessingErr> {
        state.core.on(ReplicaEvent::Shutdown, Instant::now());
        state.args.link.mark_down();
        if let Some((_, conn)) = state.conn.take() {
            conn.close();
        }
        state.withdraw_lanes().await;
        if let Some(session) = state.args.link.take() {
            session.conn.close();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ManagerMsg>,
        msg: ManagerMsg,
        state: &mut ManagerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ManagerMsg::Event(e) => state.feed(&myself, e).await,
            ManagerMsg::Tick(seq) if seq == state.tick_seq => state.feed(&myself, ReplicaEvent::Tick).await,
            ManagerMsg::Tick(_) => {}
            ManagerMsg::Connected(generation, Ok(conn)) => {
                state.conn = Some((generation, conn));
                state.feed(&myself, ReplicaEvent::Connected { generation }).await;
            }
            ManagerMsg::Connected(generation, Err(e)) => {
                tracing::warn!(server = %state.args.spec.name, replica = state.args.replica, error = %e, "upstream replica failed to start");
                state.feed(&myself, ReplicaEvent::ConnectFailed { generation }).await;
            }
            ManagerMsg::Relisted(generation, Ok(catalog)) => {
                let changed = state.catalog.as_ref().is_none_or(|c| c.digest() != catalog.digest());
                if changed && state.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
                    state.catalog = Some(Arc::new(catalog));
                }
                state.feed(&myself, ReplicaEvent::Relisted { generation, changed }).await;
            }
            ManagerMsg::Relisted(generation, Err(e)) => {
                tracing::warn!(server = %state.args.spec.name, error = %e, "re-listing the tools failed");
                state.feed(&myself, ReplicaEvent::Relisted { generation, changed: false }).await;
            }
            ManagerMsg::Session(generation, SessionSignal::Closed) => {
                state.feed(&myself, ReplicaEvent::Exited { generation }).await;
            }
            ManagerMsg::Session(generation, SessionSignal::ToolsChanged) => {
                state.feed(&myself, ReplicaEvent::ToolsChanged { generation }).await;
            }
        }
        Ok(())
    }
}
