//! [`QModel`]: the node-owned Q-learning model shared by the strategy (hot path) and the
//! QLearning actor (writer).
//!
//! ```text
//!  routing drivers                         QLearning actor (every tick)
//!  ───────────────                         ─────────────────────────────
//!  select: snapshot.load() ── read ──┐     pump: drain ≤ max_batch samples
//!                                    │           → discretise → QTable::update
//!  observe: try_send(sample) ──┐     │           → publish a snapshot (≤ 1 per interval)
//!         (full: counted drop) │     │     persist: every persist_interval_ms, on stop
//!                              ▼     │
//!                  bounded queue   ArcSwap<QSnapshot>
//! ```
//!
//! Nothing on the routing path waits: selection reads the current snapshot (one atomic
//! load through `arc_swap`), feedback is a non-blocking `try_send` into a bounded queue;
//! when the queue is full the sample is dropped and counted ([`QModelStats::dropped`]),
//! because a learning signal is worth less than routing latency. The table, the queue and
//! the snapshot belong to the node, not to the actor, so a crashed actor's successor
//! carries on with the same model and the samples that queued up meanwhile.
//!
//! The same [`QModel::pump`] drives a simulation synchronously (the workload crate's
//! discrete-event mode calls it after every outcome, with virtual time).
//!
//! Snapshots are rebuilt at most once per `max(publish_interval, 100 ns × entries)`: a
//! rebuild copies every agent's 99 values, so the interval grows with the table to keep
//! that copying at a few percent of one core.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use erlmcp_flow_core::config::FlowConfig;
use erlmcp_flow_registry::AgentEntry;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use super::persist::{self, ModelFileError};
use super::snapshot::QSnapshot;
use super::state::{STATES, discretise};
use super::table::{DEFAULT_MAX_ACTIONS, QParams, QTable, TdUpdate};
use crate::strategy::LoadFigures;

/// Tuning of the model's plumbing (not learning parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QModelSettings {
    /// Bulkhead capacity per agent (`router.bulkhead_max_concurrent`), for load levels.
    pub capacity: u32,
    /// Peak-EWMA decay time constant, ns (`load_balancer.ewma_decay_ms`).
    pub ewma_decay_ns: f64,
    /// Samples queued between pumps at most. Default 16 384.
    pub queue_capacity: usize,
    /// Samples applied per pump at most. Default 65 536.
    pub max_batch: usize,
    /// Shortest interval between snapshots, ns. Default 10 ms.
    pub publish_interval_ns: u64,
    /// Actions (agents + swarms) in the table at most. Default 4 096.
    pub max_actions: usize,
}

impl QModelSettings {
    /// From a validated config.
    pub fn from_config(cfg: &FlowConfig) -> Self {
        Self {
            capacity: cfg.router.bulkhead_max_concurrent,
            ewma_decay_ns: cfg.load_balancer.ewma_decay_ms as f64 * 1e6,
            ..Self::default()
        }
    }
}

impl Default for QModelSettings {
    fn default() -> Self {
        Self {
            capacity: 8,
            ewma_decay_ns: 10e9,
            queue_capacity: 16_384,
            max_batch: 65_536,
            publish_interval_ns: 10_000_000,
            max_actions: DEFAULT_MAX_ACTIONS,
        }
    }
}

/// One attempt's outcome as the strategy saw it (raw figures; discretised when applied).
#[derive(Debug, Clone)]
pub struct TdSample {
    /// The agent.
    pub agent: Arc<AgentEntry>,
    /// Its figures at dispatch.
    pub dispatch: LoadFigures,
    /// Its figures when the outcome was known.
    pub after: LoadFigures,
    /// Attempt latency, ns.
    pub latency_ns: u64,
    /// Success.
    pub success: bool,
}

/// What one pump did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpReport {
    /// Samples applied.
    pub applied: usize,
    /// Whether a new snapshot was published.
    pub published: bool,
}

/// Counters of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QModelStats {
    /// Updates the table applied in its lifetime (persisted ones included).
    pub updates: u64,
    /// Current ε.
    pub epsilon: f64,
    /// Actions in the table.
    pub actions: usize,
    /// Samples queued by the strategy.
    pub recorded: u64,
    /// Samples dropped because the queue was full.
    pub dropped: u64,
    /// Samples applied (this process).
    pub applied: u64,
    /// Snapshots published.
    pub publishes: u64,
    /// Successful saves to `model_path`.
    pub saves: u64,
    /// Failed saves.
    pub save_errors: u64,
}

#[derive(Debug, Default)]
struct PumpState {
    last_publish_ns: Option<u64>,
    unpublished: bool,
    dirty: bool,
}

/// See the module docs.
pub struct QModel {
    settings: QModelSettings,
    table: Mutex<QTable>,
    snapshot: ArcSwap<QSnapshot>,
    tx: mpsc::Sender<TdSample>,
    rx: Mutex<mpsc::Receiver<TdSample>>,
    state: Mutex<PumpState>,
    path: Option<PathBuf>,
    load_warning: Option<String>,
    loaded_from_file: bool,
    recorded: AtomicU64,
    dropped: AtomicU64,
    applied: AtomicU64,
    publishes: AtomicU64,
    saves: AtomicU64,
    save_errors: AtomicU64,
}

impl std::fmt::Debug for QModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QModel").field("path", &self.path).field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl QModel {
    /// A fresh model that is never persisted (simulations, tests).
    pub fn in_memory(params: QParams, settings: QModelSettings) -> Arc<Self> {
        Self::build(QTable::new(params, settings.max_actions), settings, None, None, false)
    }

    /// The model of a node. With `q_learning.model_path` set: loaded from that file when it
    /// exists and is usable, else fresh (with [`QModel::load_warning`] saying why the file
    /// was not used), and saved back there by [`QModel::persist`]. Without it (the
    /// default): fresh and in memory only; no file is read or written.
    pub fn open(cfg: &FlowConfig) -> Arc<Self> {
        let settings = QModelSettings::from_config(cfg);
        let params = QParams::from_config(&cfg.q_learning);
        let Some(path) = cfg.q_learning.model_path.clone() else {
            return Self::in_memory(params, settings);
        };
        let loaded = persist::load_or_fresh(&path, params, settings.max_actions);
        Self::build(loaded.table, settings, Some(path), loaded.warning, loaded.from_file)
    }

    fn build(
        table: QTable,
        settings: QModelSettings,
        path: Option<PathBuf>,
        load_warning: Option<String>,
        loaded_from_file: bool,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(table.snapshot()),
            table: Mutex::new(table),
            tx,
            rx: Mutex::new(rx),
            state: Mutex::new(PumpState::default()),
            path,
            load_warning,
            loaded_from_file,
            settings,
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            saves: AtomicU64::new(0),
            save_errors: AtomicU64::new(0),
        })
    }

    /// The plumbing settings.
    pub fn settings(&self) -> &QModelSettings {
        &self.settings
    }

    /// Where the model is persisted (`None`: in memory only).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Why the model file was not used at start, if it existed but was unusable.
    pub fn load_warning(&self) -> Option<&str> {
        self.load_warning.as_deref()
    }

    /// True when the table was loaded from the model file.
    pub fn loaded_from_file(&self) -> bool {
        self.loaded_from_file
    }

    /// The current snapshot (lock-free).
    #[inline]
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<QSnapshot>> {
        self.snapshot.load()
    }

    /// Queues a sample for the next pump; `false` (and counted) when the queue is full.
    pub fn record(&self, sample: TdSample) -> bool {
        match self.tx.try_send(sample) {
            Ok(()) => {
                self.recorded.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Applies queued samples (at most `max_batch`) to the table and publishes a new
    /// snapshot if one is due at `now_ns`.
    pub fn pump(&self, now_ns: u64) -> PumpReport {
        let mut table = self.table.lock();
        let mut applied = 0;
        {
            let mut rx = self.rx.lock();
            let cap = self.settings.capacity;
            while applied < self.settings.max_batch {
                let Ok(s) = rx.try_recv() else { break };
                let reference = table.latency_ref_ns();
                let state = discretise(&s.dispatch, cap, reference);
                let next_state = discretise(&s.after, cap, reference);
                table.update(&TdUpdate {
                    agent: &s.agent.id,
                    swarms: &s.agent.initial_swarms,
                    state,
                    next_state,
                    latency_ns: s.latency_ns,
                    success: s.success,
                });
                applied += 1;
            }
        }
        self.applied.fetch_add(applied as u64, Ordering::Relaxed);
        let mut st = self.state.lock();
        if applied > 0 {
            st.unpublished = true;
            st.dirty = true;
        }
        let interval = self.settings.publish_interval_ns.max((table.action_count() * STATES) as u64 * 100);
        let due = st.last_publish_ns.is_none_or(|t| now_ns.saturating_sub(t) >= interval);
        let published = st.unpublished && due;
        if published {
            self.snapshot.store(Arc::new(table.snapshot()));
            self.publishes.fetch_add(1, Ordering::Relaxed);
            st.last_publish_ns = Some(now_ns);
            st.unpublished = false;
        }
        PumpReport { applied, published }
    }

    /// Publishes a snapshot of the table now, whatever the interval.
    pub fn publish(&self) {
        let table = self.table.lock();
        self.snapshot.store(Arc::new(table.snapshot()));
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.state.lock().unpublished = false;
    }

    /// Saves the table to the model path if it changed since the last save. `Ok(true)`
    /// when a file was written; `Ok(false)` when there was nothing to do (no change, or an
    /// in-memory model).
    pub fn persist(&self) -> Result<bool, ModelFileError> {
        let Some(path) = &self.path else { return Ok(false) };
        let data = {
            let table = self.table.lock();
            let mut st = self.state.lock();
            if !st.dirty {
                return Ok(false);
            }
            st.dirty = false;
            table.to_data()
        };
        let written = persist::encode_data(&data).and_then(|image| persist::write_image(path, &image));
        match &written {
            Ok(()) => {
                self.saves.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.save_errors.fetch_add(1, Ordering::Relaxed);
                self.state.lock().dirty = true;
                tracing::warn!(path = %path.display(), error = %e, "Q-learning model not saved");
            }
        }
        written.map(|()| true)
    }

    /// Reads the table (tests, tools).
    pub fn with_table<R>(&self, f: impl FnOnce(&QTable) -> R) -> R {
        f(&self.table.lock())
    }

    /// Counters.
    pub fn stats(&self) -> QModelStats {
        let (updates, epsilon, actions) = {
            let t = self.table.lock();
            (t.updates(), t.epsilon(), t.action_count())
        };
        QModelStats {
            updates,
            epsilon,
            actions,
            recorded: self.recorded.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            publishes: self.publishes.load(Ordering::Relaxed),
            saves: self.saves.load(Ordering::Relaxed),
            save_errors: self.save_errors.load(Ordering::Relaxed),
        }
    }
}
