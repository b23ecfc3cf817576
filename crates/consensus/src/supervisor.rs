//! The openraft core is supervised like every other child of a node: when it quits on a
//! fatal error, it is restarted on the same stores.
//!
//! openraft 0.9 ends its `RaftCore` task on any fatal error (a storage error, or an
//! internal one such as `Read Snapshot(None): replication channel closed`, see
//! `docs/architecture.md`) and never starts it again: every later API call answers
//! `Fatal`, and a node that keeps running around it has lost consensus for good. Here the
//! node owns the stores ([`CoreStores`]: the in-memory log or the open redb file, and the
//! state machine) and one task watches the core's metrics:
//!
//! 1. the metrics are relayed to the node's own watch channel, so readers and waiters
//!    survive a change of core;
//! 2. when `running_state` turns to an error (or the core task ends) while the node is not
//!    shutting down, the node reports the core down ([`CoreHealth::Down`]: `flow status`,
//!    `ConsensusNode::is_ready`) and publishes "no leader" so client requests wait and
//!    answer `Unavailable` instead of `Fatal`;
//! 3. the dead core is joined, the store fence advances (handles the dead core's tasks
//!    still hold refuse from then on, see `fence.rs`), and a new openraft instance starts
//!    on the same stores after a delay ([`RestartBackoff`]), exactly as a process restart
//!    on the same disk would: it reads the vote, the log and the committed index back and
//!    re-applies what the state machine has not applied yet.
//!
//! A core that keeps failing is restarted with a growing delay (50 ms doubling to 5 s,
//! reset after 10 s of uptime), so a persistent storage fault costs a log line every few
//! seconds, not a busy loop.

use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::{Config, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::ConsensusError;
use crate::fence::{Fence, FencedLog, FencedStateMachine};
use crate::network::NetworkFactory;
use crate::node::NodeInner;
use crate::state_machine::LedgerStateMachine;
use crate::store_mem::MemLogStore;
use crate::store_redb::RedbLogStore;
use crate::types::{LogId, Raft, RaftNodeId};

/// Whether a node's openraft core is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoreHealth {
    /// Running.
    Up,
    /// Quit on a fatal error; the supervisor is restarting it.
    Down {
        /// The fatal error.
        reason: String,
    },
    /// The node shut down.
    Stopped,
}

/// The node's log store.
#[derive(Debug, Clone)]
pub(crate) enum LogBackend {
    /// `raft.storage = "memory"`: kept by the node across core restarts.
    Memory(MemLogStore),
    /// `raft.storage = "redb"`: the open redb file, reused by every core incarnation.
    Redb(RedbLogStore),
}

/// What every core incarnation is built from.
pub(crate) struct CoreStores {
    pub(crate) id: RaftNodeId,
    pub(crate) config: Arc<Config>,
    pub(crate) network: NetworkFactory,
    pub(crate) fence: Arc<Fence>,
    pub(crate) log: LogBackend,
    pub(crate) sm: LedgerStateMachine,
}

impl CoreStores {
    /// Starts an openraft instance on the stores, with handles fenced to the current
    /// incarnation.
    pub(crate) async fn start_core(&self) -> Result<Raft, ConsensusError> {
        let sm = FencedStateMachine::new(self.sm.clone(), self.fence.clone());
        let (id, config, network) = (self.id, self.config.clone(), self.network.clone());
        let started = match &self.log {
            LogBackend::Memory(log) => {
                Raft::new(id, config, network, FencedLog::new(log.clone(), self.fence.clone()), sm).await
            }
            LogBackend::Redb(log) => {
                Raft::new(id, config, network, FencedLog::new(log.clone(), self.fence.clone()), sm).await
            }
        };
        started.map_err(|e| ConsensusError::Fatal(e.to_string()))
    }

    /// The last log id in the local log (what a pre-vote compares).
    pub(crate) async fn last_log_id(&self) -> Result<Option<LogId>, ConsensusError> {
        let state = match &self.log {
            LogBackend::Memory(log) => log.clone().get_log_state().await,
            LogBackend::Redb(log) => log.clone().get_log_state().await,
        };
        state.map(|s| s.last_log_id).map_err(|e| ConsensusError::Storage(e.to_string()))
    }
}

/// The delay before restarting a core that quit: 50 ms, doubling (up to 5 s) while the
/// core keeps dying within 10 s of its start, back to 50 ms after a longer uptime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartBackoff {
    next: Duration,
}

impl RestartBackoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(5);
    const STABLE: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next restart of a core that ran for `uptime`.
    pub(crate) fn delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= Self::STABLE {
            self.next = Self::FIRST;
        }
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }
}

/// Relays the core's metrics until it quits; answers why, or `None` when the node is
/// gone or shutting down.
async fn relay(node: &Weak<NodeInner>, raft: &Raft) -> Option<String> {
    let mut rx = raft.metrics();
    loop {
        {
            let m = rx.borrow_and_update().clone();
            let inner = node.upgrade()?;
            let failed = m.running_state.as_ref().err().map(|e| e.to_string());
            inner.metrics_tx.send_replace(m);
            if inner.stopped.load(Ordering::Acquire) {
                return None;
            }
            if failed.is_some() {
                return failed;
            }
        }
        if rx.changed().await.is_err() {
            return Some("the raft core task ended".into());
        }
    }
}

/// The supervisor task of a node's core (see the module docs). Ends when the node is
/// dropped or shut down.
pub(crate) async fn supervise(node: Weak<NodeInner>, mut raft: Raft) {
    let mut backoff = RestartBackoff::new();
    let mut started = Instant::now();
    loop {
        let Some(reason) = relay(&node, &raft).await else { return };
        let Some(inner) = node.upgrade() else { return };
        tracing::error!(node = %inner.name, error = %reason, "raft core quit on a fatal error; restarting it on the same store");
        inner.health.send_replace(CoreHealth::Down { reason });
        inner.metrics_tx.send_modify(|m| {
            m.state = ServerState::Shutdown;
            m.current_leader = None;
        });
        // Join the dead core (it has quit already; this collects its task).
        let _ = tokio::time::timeout(Duration::from_secs(5), raft.shutdown()).await;
        loop {
            tokio::time::sleep(backoff.delay(started.elapsed())).await;
            if inner.stopped.load(Ordering::Acquire) {
                return;
            }
            let generation = inner.fence.advance();
            match inner.stores.start_core().await {
                Ok(new) => {
                    *inner.core.write() = new.clone();
                    raft = new;
                    started = Instant::now();
                    let n = inner.core_restarts.fetch_add(1, Ordering::AcqRel) + 1;
                    inner.health.send_replace(CoreHealth::Up);
                    tracing::warn!(node = %inner.name, generation, restarts = n, "raft core restarted");
                    break;
                }
                Err(e) => tracing::error!(node = %inner.name, error = %e, "raft core did not restart; retrying"),
            }
        }
        if inner.stopped.load(Ordering::Acquire) {
            // Shut down while the new core started: stop it too.
            let _ = inner.raft().shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restarts of a core that keeps dying back off (doubling, capped); a core that ran
    /// long enough is restarted quickly again.
    #[test]
    fn restart_delays_back_off_and_reset() {
        let mut b = RestartBackoff::new();
        let quick = Duration::from_millis(10);
        let delays: Vec<u128> = (0..10).map(|_| b.delay(quick).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.delay(Duration::from_secs(10)), Duration::from_millis(50));
        assert_eq!(b.delay(quick), Duration::from_millis(100));
    }
}
