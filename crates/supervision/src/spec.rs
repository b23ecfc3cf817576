//! Child and supervisor specifications.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use ractor::{ActorCell, SpawnErr};

use crate::intensity::RestartIntensity;

/// How a supervisor reacts when one child exits and must be restarted (OTP names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Restart only the child that exited.
    OneForOne,
    /// Stop all other children, then restart all of them in start order.
    OneForAll,
    /// Stop the children started after the exited one, then restart it and them.
    RestForOne,
}

/// Which exits get a child restarted (OTP names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit (panic, error, kill).
    Transient,
    /// Never restarted; removed when it exits.
    Temporary,
}

/// How a child exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildExit {
    /// Stopped normally, with an optional reason.
    Normal(Option<String>),
    /// Panicked, returned an error, or was killed.
    Abnormal(String),
}

impl ChildExit {
    /// True for panics, errors and kills.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, ChildExit::Abnormal(_))
    }
}

type StartFn = Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// How to start (and restart) one child.
///
/// The start function receives the supervisor's cell and must spawn the child linked to
/// it (`Actor::spawn_linked(.., supervisor)`); it is called again on every restart, so it
/// must rebuild whatever the child needs.
#[derive(Clone)]
pub struct ChildSpec {
    /// Name of the child within its supervisor (unique there).
    pub id: String,
    /// Restart type.
    pub restart: Restart,
    start: StartFn,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec").field("id", &self.id).field("restart", &self.restart).finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A child named `id` started by `start`.
    pub fn new<F, Fut>(id: impl Into<String>, restart: Restart, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self { id: id.into(), restart, start: Arc::new(move |sup| Box::pin(start(sup))) }
    }

    pub(crate) fn start(&self, supervisor: ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> {
        (self.start)(supervisor)
    }
}

/// Counters a supervisor keeps across its own restarts (the parent hands the same
/// `Arc` to every incarnation).
#[derive(Debug, Default)]
pub struct SupervisorStats {
    restarts: AtomicU64,
    meltdowns: AtomicU64,
    removed: AtomicU64,
}

impl SupervisorStats {
    /// Child restarts performed.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    /// Times this supervisor exceeded its intensity and escalated.
    pub fn meltdowns(&self) -> u64 {
        self.meltdowns.load(Ordering::Relaxed)
    }
    /// Children removed for good (temporary exits, normal transient exits, terminations).
    pub fn removed(&self) -> u64 {
        self.removed.load(Ordering::Relaxed)
    }
    pub(crate) fn add_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_meltdown(&self) {
        self.meltdowns.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_removed(&self) {
        self.removed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Called when a child leaves the supervisor for good, with its id and last exit.
pub type OnChildRemoved = Arc<dyn Fn(&str, &ChildExit) + Send + Sync>;

/// Everything a supervisor needs to start.
#[derive(Clone)]
pub struct SupervisorSpec {
    /// Name used in logs and errors.
    pub name: String,
    /// Restart strategy.
    pub strategy: Strategy,
    /// Restart intensity.
    pub intensity: RestartIntensity,
    /// Children in start order.
    pub children: Vec<ChildSpec>,
    /// Shared counters.
    pub stats: Arc<SupervisorStats>,
    /// Hook for children that leave for good.
    pub on_child_removed: Option<OnChildRemoved>,
}

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("intensity", &self.intensity)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl SupervisorSpec {
    /// A supervisor with no children yet.
    pub fn new(name: impl Into<String>, strategy: Strategy, intensity: RestartIntensity) -> Self {
        Self {
            name: name.into(),
            strategy,
            intensity,
            children: Vec::new(),
            stats: Arc::default(),
            on_child_removed: None,
        }
    }

    /// Adds a child (started after the ones already added).
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Uses `stats` (so counts survive the supervisor's own restarts).
    pub fn with_stats(mut self, stats: Arc<SupervisorStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Sets the removal hook.
    pub fn on_child_removed(mut self, hook: OnChildRemoved) -> Self {
        self.on_child_removed = Some(hook);
        self
    }
}
