//! The [`Supervisor`] actor.
//!
//! Children are started in order from a [`SupervisorSpec`]; more can be added at run time
//! with [`SupervisorMsg::StartChild`] (a dynamic supervisor is simply one whose spec starts
//! empty). The supervisor is linked to each child (ractor's `spawn_linked`), so a child's
//! panic, error or kill arrives as a supervision event and is handled by the strategy:
//!
//! * exits of children the supervisor stopped on purpose are recognised by actor id and
//!   ignored;
//! * every restart is recorded in a [`RestartTracker`]; exceeding the intensity stops all
//!   children (last started first) and fails the supervisor with
//!   [`SupervisorError::Meltdown`], so its parent decides what happens next;
//! * a child that fails to start again counts as another restart, so a child that can
//!   never come up also ends in a meltdown rather than a loop.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;

use crate::intensity::{RestartTracker, RestartVerdict};
use crate::spec::{ChildExit, ChildSpec, Restart, Strategy, SupervisorSpec};

/// How long a child gets to stop gracefully before it is killed.
pub const CHILD_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between failed start attempts of the same child.
const START_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Errors of supervisor operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// A child with this id already exists.
    #[error("a child named {0:?} already exists")]
    DuplicateChild(String),
    /// No child with this id.
    #[error("no child named {0:?}")]
    UnknownChild(String),
    /// The child's start function failed.
    #[error("child {id:?} failed to start: {reason}")]
    StartFailed {
        /// The child.
        id: String,
        /// The spawn error.
        reason: String,
    },
    /// Restart intensity exceeded: the supervisor gave up and escalated.
    #[error(
        "supervisor {supervisor:?} exceeded {max_restarts} restarts in {window:?} (last exit: child {child:?}); escalating"
    )]
    Meltdown {
        /// The supervisor.
        supervisor: String,
        /// The child whose exit tipped it over.
        child: String,
        /// The intensity.
        max_restarts: u32,
        /// Its window.
        window: Duration,
    },
    /// The supervisor did not answer (stopped or restarting).
    #[error("supervisor is not running")]
    NotRunning,
}

/// A child as reported by [`SupervisorMsg::WhichChildren`].
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Its id.
    pub id: String,
    /// The running actor, if any.
    pub actor: Option<ActorCell>,
    /// Restart type.
    pub restart: Restart,
}

/// Messages a supervisor takes.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Start and supervise one more child.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Stop a child and forget it.
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// List children in start order.
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
}

impl ractor::Message for SupervisorMsg {}

/// The supervisor actor. Spawn it with a [`SupervisorSpec`] as arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
}

/// The supervisor's state.
pub struct SupervisorState {
    spec: SupervisorSpec,
    tracker: RestartTracker,
    next_key: u64,
    children: BTreeMap<u64, Child>,
    by_id: HashMap<String, u64>,
    by_actor: HashMap<ActorId, u64>,
}

impl std::fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorState")
            .field("name", &self.spec.name)
            .field("children", &self.children.len())
            .finish()
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        spec: SupervisorSpec,
    ) -> Result<Self::State, ActorProcessingErr> {
        let initial = spec.children.clone();
        let mut state = SupervisorState {
            tracker: RestartTracker::new(spec.intensity),
            spec,
            next_key: 0,
            children: BTreeMap::new(),
            by_id: HashMap::new(),
            by_actor: HashMap::new(),
        };
        for child in initial {
            if let Err(e) = state.add_and_start(&myself, child).await {
                state.stop_all().await;
                return Err(Box::new(e));
            }
        }
        tracing::debug!(supervisor = %state.spec.name, children = state.children.len(), "supervisor started");
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let r = state.add_and_start(&myself, spec).await;
                let r = r.map(|key| state.children[&key].cell.clone().expect("a started child has a cell"));
                let _ = reply.send(r);
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let r = match state.by_id.get(&id).copied() {
                    None => Err(SupervisorError::UnknownChild(id)),
                    Some(key) => {
                        let cell = state.detach(key);
                        if let Some(cell) = cell {
                            stop_child(cell).await;
                        }
                        state.forget(key, &ChildExit::Normal(Some("terminated".into())));
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            SupervisorMsg::WhichChildren(reply) => {
                let list = state
                    .children
                    .values()
                    .map(|c| ChildInfo { id: c.spec.id.clone(), actor: c.cell.clone(), restart: c.spec.restart })
                    .collect();
                let _ = reply.send(list);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, exit) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, ChildExit::Abnormal(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, last_state, reason) => {
                let killed =
                    last_state.is_none() && matches!(reason.as_deref(), Some("killed") | Some("actor_task_cancelled"));
                if killed {
                    (cell, ChildExit::Abnormal(reason.unwrap_or_default()))
                } else {
                    (cell, ChildExit::Normal(reason))
                }
            }
            _ => return Ok(()),
        };
        let Some(&key) = state.by_actor.get(&cell.get_id()) else {
            // An incarnation we already replaced or stopped on purpose.
            return Ok(());
        };
        state.on_child_exit(&myself, key, exit).await.map_err(|e| Box::new(e) as ActorProcessingErr)
    }
}

impl SupervisorState {
    async fn add_and_start(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<u64, SupervisorError> {
        if self.by_id.contains_key(&spec.id) {
            return Err(SupervisorError::DuplicateChild(spec.id));
        }
        let cell = spec
            .start(myself.get_cell())
            .await
            .map_err(|e| SupervisorError::StartFailed { id: spec.id.clone(), reason: e.to_string() })?;
        let key = self.next_key;
        self.next_key += 1;
        self.by_id.insert(spec.id.clone(), key);
        self.by_actor.insert(cell.get_id(), key);
        self.children.insert(key, Child { spec, cell: Some(cell) });
        Ok(key)
    }

    /// Unhooks a child's current actor so its exit event will be ignored.
    fn detach(&mut self, key: u64) -> Option<ActorCell> {
        let cell = self.children.get_mut(&key)?.cell.take()?;
        self.by_actor.remove(&cell.get_id());
        Some(cell)
    }

    fn forget(&mut self, key: u64, exit: &ChildExit) {
        if let Some(child) = self.children.remove(&key) {
            if let Some(cell) = &child.cell {
                self.by_actor.remove(&cell.get_id());
            }
            self.by_id.remove(&child.spec.id);
            self.spec.stats.add_removed();
            if let Some(hook) = &self.spec.on_child_removed {
                hook(&child.spec.id, exit);
            }
        }
    }

    async fn on_child_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        key: u64,
        exit: ChildExit,
    ) -> Result<(), SupervisorError> {
        self.detach(key);
        let (restart, id) = {
            let child = &self.children[&key];
            (child.spec.restart, child.spec.id.clone())
        };
        let wanted = match restart {
            Restart::Permanent => true,
            Restart::Transient => exit.is_abnormal(),
            Restart::Temporary => false,
        };
        if !wanted {
            tracing::debug!(supervisor = %self.spec.name, child = %id, ?exit, "child exited; not restarted");
            self.forget(key, &exit);
            return Ok(());
        }
        tracing::info!(supervisor = %self.spec.name, child = %id, ?exit, "restarting child");
        self.count_restart(&id).await?;

        // Which children go down and come back, in start order.
        let affected: Vec<u64> = match self.spec.strategy {
            Strategy::OneForOne => vec![key],
            Strategy::OneForAll => self.children.keys().copied().collect(),
            Strategy::RestForOne => self.children.range(key..).map(|(k, _)| *k).collect(),
        };
        for &k in affected.iter().rev() {
            if k != key
                && let Some(cell) = self.detach(k)
            {
                stop_child(cell).await;
            }
        }
        for &k in &affected {
            self.restart_child(myself, k).await?;
        }
        Ok(())
    }

    async fn count_restart(&mut self, child: &str) -> Result<(), SupervisorError> {
        match self.tracker.record(Instant::now()) {
            RestartVerdict::Allowed => {
                self.spec.stats.add_restart();
                Ok(())
            }
            RestartVerdict::Exceeded => {
                tracing::error!(supervisor = %self.spec.name, child, "restart intensity exceeded; escalating");
                self.spec.stats.add_meltdown();
                self.stop_all().await;
                Err(SupervisorError::Meltdown {
                    supervisor: self.spec.name.clone(),
                    child: child.to_owned(),
                    max_restarts: self.spec.intensity.max_restarts,
                    window: self.spec.intensity.window,
                })
            }
        }
    }

    async fn restart_child(&mut self, myself: &ActorRef<SupervisorMsg>, key: u64) -> Result<(), SupervisorError> {
        loop {
            let spec = self.children[&key].spec.clone();
            match spec.start(myself.get_cell()).await {
                Ok(cell) => {
                    self.by_actor.insert(cell.get_id(), key);
                    if let Some(child) = self.children.get_mut(&key) {
                        child.cell = Some(cell);
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(supervisor = %self.spec.name, child = %spec.id, error = %e, "child failed to restart");
                    self.count_restart(&spec.id).await?;
                    tokio::time::sleep(START_RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Stops every child, last started first.
    async fn stop_all(&mut self) {
        let keys: Vec<u64> = self.children.keys().rev().copied().collect();
        for key in keys {
            if let Some(cell) = self.detach(key) {
                stop_child(cell).await;
            }
        }
    }
}

async fn stop_child(cell: ActorCell) {
    if cell.stop_and_wait(Some("supervisor stop".into()), Some(CHILD_SHUTDOWN_TIMEOUT)).await.is_err() {
        cell.kill();
    }
}

impl Supervisor {
    /// Spawns an unsupervised (root) supervisor.
    pub async fn start(
        spec: SupervisorSpec,
    ) -> Result<(ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>), ractor::SpawnErr> {
        Actor::spawn(None, Supervisor, spec).await
    }

    /// Spawns a supervisor supervised by `parent`.
    pub async fn start_linked(
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<(ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>), ractor::SpawnErr> {
        Actor::spawn_linked(None, Supervisor, spec, parent).await
    }

    /// Asks `sup` to start and supervise `child`.
    pub async fn start_child(
        sup: &ActorRef<SupervisorMsg>,
        child: ChildSpec,
        timeout: Duration,
    ) -> Result<ActorCell, SupervisorError> {
        match sup.call(|r| SupervisorMsg::StartChild(child, r), Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            _ => Err(SupervisorError::NotRunning),
        }
    }

    /// Asks `sup` to stop and forget the child `id`.
    pub async fn terminate_child(
        sup: &ActorRef<SupervisorMsg>,
        id: &str,
        timeout: Duration,
    ) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        match sup.call(|r| SupervisorMsg::TerminateChild(id, r), Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            _ => Err(SupervisorError::NotRunning),
        }
    }

    /// Lists `sup`'s children.
    pub async fn which_children(
        sup: &ActorRef<SupervisorMsg>,
        timeout: Duration,
    ) -> Result<Vec<ChildInfo>, SupervisorError> {
        match sup.call(SupervisorMsg::WhichChildren, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(r)) => Ok(r),
            _ => Err(SupervisorError::NotRunning),
        }
    }
}
