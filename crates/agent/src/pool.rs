//! [`AgentPool`]: the AgentSupervisor and the table of agents that should exist.
//!
//! The AgentSupervisor is a dynamic `one_for_one` supervisor (restart intensity from
//! `supervision.agents`, 5 in 60 s by default, OTP's default). The pool keeps the spec and
//! factory of every agent in a table that outlives the supervisor: if the supervisor
//! exceeds its intensity it escalates to the FlowSupervisor, which restarts it, and the
//! new incarnation starts every agent in the table again. Agents leave the table when
//! stopped through the pool or when their restart type says they are done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{Agent, AgentId, MonoClock};
use erlmcp_flow_registry::RegistryHandle;
use erlmcp_flow_supervision::{
    ActorSlot, ChildExit, ChildSpec, RestartIntensity, Strategy, Supervisor, SupervisorError, SupervisorMsg,
    SupervisorSpec, SupervisorStats,
};
use parking_lot::Mutex;
use ractor::{Actor, ActorCell};

use crate::actor::{AgentActor, AgentArgs};
use crate::spec::AgentSpec;

/// Why an agent could not be spawned or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentPoolError {
    /// The spec lists no capability, so no task could ever reach the agent.
    #[error("agent {0} has no capabilities")]
    EmptyCapabilities(AgentId),
    /// Weight 0.
    #[error("agent {0}: weight must be at least 1")]
    InvalidWeight(AgentId),
    /// An agent with this id exists.
    #[error("agent {0} already exists")]
    Duplicate(AgentId),
    /// No such agent.
    #[error("no agent {0}")]
    Unknown(AgentId),
    /// The agent actor failed to start (registration refused, for example).
    #[error("agent {id} failed to start: {reason}")]
    StartFailed {
        /// The agent.
        id: AgentId,
        /// Why.
        reason: String,
    },
    /// A pool member's id (`{template}-{index}`) is not a valid agent id.
    #[error("agent id {id:?} is invalid: {reason}")]
    InvalidId {
        /// The id.
        id: String,
        /// Why.
        reason: String,
    },
    /// No AgentSupervisor answered in time.
    #[error("agent supervisor unavailable")]
    SupervisorUnavailable,
}

#[derive(Clone)]
struct TableEntry {
    spec: AgentSpec,
    child: ChildSpec,
}

/// Spawns, supervises and stops agents.
#[derive(Clone)]
pub struct AgentPool {
    table: Arc<Mutex<BTreeMap<AgentId, TableEntry>>>,
    supervisor: ActorSlot<SupervisorMsg>,
    registry: RegistryHandle,
    clock: MonoClock,
    stats: Arc<SupervisorStats>,
    call_timeout: Duration,
}

impl std::fmt::Debug for AgentPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPool").field("agents", &self.table.lock().len()).finish_non_exhaustive()
    }
}

impl AgentPool {
    /// An empty pool registering agents in `registry`.
    pub fn new(registry: RegistryHandle, clock: MonoClock, call_timeout: Duration) -> Self {
        Self {
            table: Arc::default(),
            supervisor: ActorSlot::new(),
            registry,
            clock,
            stats: Arc::default(),
            call_timeout,
        }
    }

    /// Restart counters of the AgentSupervisor (across its incarnations).
    pub fn stats(&self) -> &Arc<SupervisorStats> {
        &self.stats
    }

    /// The current AgentSupervisor.
    pub fn supervisor(&self) -> &ActorSlot<SupervisorMsg> {
        &self.supervisor
    }

    /// Specs of the agents that should exist.
    pub fn specs(&self) -> Vec<AgentSpec> {
        self.table.lock().values().map(|e| e.spec.clone()).collect()
    }

    /// The child spec that starts the AgentSupervisor under a parent supervisor. Every
    /// start (first or restart) launches all agents in the table.
    pub fn supervisor_child_spec(&self, intensity: RestartIntensity) -> ChildSpec {
        let pool = self.clone();
        ChildSpec::new("agent_supervisor", erlmcp_flow_supervision::Restart::Permanent, move |parent: ActorCell| {
            let pool = pool.clone();
            async move {
                let children: Vec<ChildSpec> = pool.table.lock().values().map(|e| e.child.clone()).collect();
                let table = pool.table.clone();
                let registry = pool.registry.clone();
                let spec = SupervisorSpec {
                    name: "agent_supervisor".into(),
                    strategy: Strategy::OneForOne,
                    intensity,
                    children,
                    stats: pool.stats.clone(),
                    on_child_removed: Some(Arc::new(move |id: &str, exit: &ChildExit| {
                        tracing::info!(agent = id, ?exit, "agent left the pool");
                        table.lock().retain(|k, _| k.as_str() != id);
                        // Gone for good: take it out of the registry now, not after the grace.
                        if let Ok(agent) = AgentId::new(id) {
                            let registry = registry.clone();
                            tokio::spawn(async move {
                                let _ = registry.unregister(&agent).await;
                            });
                        }
                    })),
                };
                let (sup, _) = Supervisor::start_linked(spec, parent).await?;
                pool.supervisor.set(sup.clone());
                Ok(sup.get_cell())
            }
        })
    }

    /// Spawns an agent built by `factory` (called again on every restart).
    pub async fn spawn<A, F>(&self, spec: AgentSpec, factory: F) -> Result<ActorCell, AgentPoolError>
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        if spec.capabilities.is_empty() {
            return Err(AgentPoolError::EmptyCapabilities(spec.id));
        }
        if spec.weight == 0 {
            return Err(AgentPoolError::InvalidWeight(spec.id));
        }
        let factory = Arc::new(factory);
        let registry = self.registry.clone();
        let clock = self.clock;
        let child_spec = spec.clone();
        let child = ChildSpec::new(spec.id.to_string(), spec.restart, move |sup: ActorCell| {
            let args = AgentArgs { agent: factory(), spec: child_spec.clone(), registry: registry.clone(), clock };
            async move { Actor::spawn_linked(None, AgentActor::<A>::default(), args, sup).await.map(|(r, _)| r.get_cell()) }
        });
        {
            let mut table = self.table.lock();
            if table.contains_key(&spec.id) {
                return Err(AgentPoolError::Duplicate(spec.id));
            }
            table.insert(spec.id.clone(), TableEntry { spec: spec.clone(), child: child.clone() });
        }
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(sup) = self.supervisor.wait(left).await else {
                self.table.lock().remove(&spec.id);
                return Err(AgentPoolError::SupervisorUnavailable);
            };
            match Supervisor::start_child(&sup, child.clone(), left).await {
                Ok(cell) => return Ok(cell),
                // A restarted supervisor already started it from the table.
                Err(SupervisorError::DuplicateChild(_)) => {
                    return self
                        .registry
                        .find(&spec.id)
                        .and_then(|e| e.actor())
                        .map(|a| a.get_cell())
                        .ok_or(AgentPoolError::SupervisorUnavailable);
                }
                Err(SupervisorError::StartFailed { reason, .. }) => {
                    self.table.lock().remove(&spec.id);
                    return Err(AgentPoolError::StartFailed { id: spec.id, reason });
                }
                Err(_) if left.is_zero() => {
                    self.table.lock().remove(&spec.id);
                    return Err(AgentPoolError::SupervisorUnavailable);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Stops an agent for good.
    pub async fn stop(&self, id: &AgentId) -> Result<(), AgentPoolError> {
        if self.table.lock().remove(id).is_none() {
            return Err(AgentPoolError::Unknown(id.clone()));
        }
        let sup = self.supervisor.wait(self.call_timeout).await.ok_or(AgentPoolError::SupervisorUnavailable)?;
        match Supervisor::terminate_child(&sup, id.as_str(), self.call_timeout).await {
            Ok(()) | Err(SupervisorError::UnknownChild(_)) => {
                let _ = self.registry.unregister(id).await;
                Ok(())
            }
            Err(_) => Err(AgentPoolError::SupervisorUnavailable),
        }
    }

    /// Number of agents that should exist.
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    /// True when the pool has no agents.
    pub fn is_empty(&self) -> bool {
        self.table.lock().is_empty()
    }
}
