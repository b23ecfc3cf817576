//! The local FailureDetector: agent liveness and recovery of orphaned tasks.
//!
//! Every sweep (`failure_detector.sweep_interval_ms`) it
//!
//! * re-drives tasks whose routing driver was lost (see [`crate::tasks`]); a report also
//!   wakes it between sweeps;
//! * kills agents busy on one task for longer than `hung_agent_after_ms` (an agent stuck
//!   in a loop would otherwise hold its bulkhead and mailbox forever); their supervisor
//!   restarts them and the tasks queued behind them are redelivered;
//! * every `timeouts.heartbeat_ms`, sends each agent a heartbeat; an agent records when
//!   it last served its mailbox, which the registry exposes as `last_seen`.
//!
//! It keeps no state of its own beyond timers: a restarted incarnation picks up whatever
//! orphans accumulated while it was down.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::AgentMsg;
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::core::RouterCore;
use crate::metrics::RouterMetrics;

/// Messages of the failure detector.
#[derive(Debug)]
pub enum DetectorMsg {
    /// Periodic sweep.
    Sweep,
    /// An orphan was reported.
    Orphans,
}
impl ractor::Message for DetectorMsg {}

/// Arguments of the failure detector.
#[derive(Debug, Clone)]
pub struct DetectorArgs {
    /// The router whose tasks it recovers.
    pub core: Arc<RouterCore>,
    /// Sweep period.
    pub sweep_interval: Duration,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Busy time after which an agent is presumed hung.
    pub hung_after: Duration,
    /// Where the incarnation is published.
    pub slot: ActorSlot<DetectorMsg>,
}

/// The failure detector actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailureDetector;

/// Its state.
#[derive(Debug)]
pub struct DetectorState {
    args: DetectorArgs,
    timers: Vec<tokio::task::JoinHandle<()>>,
    last_heartbeat_ns: u64,
}

impl Actor for FailureDetector {
    type Msg = DetectorMsg;
    type State = DetectorState;
    type Arguments = DetectorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DetectorMsg>,
        args: DetectorArgs,
    ) -> Result<DetectorState, ActorProcessingErr> {
        let sweep = myself.send_interval(args.sweep_interval, || DetectorMsg::Sweep);
        let core = args.core.clone();
        let me = myself.clone();
        let wake = tokio::spawn(async move {
            loop {
                core.parts().tasks.orphan_reported().await;
                if me.send_message(DetectorMsg::Orphans).is_err() {
                    break;
                }
            }
        });
        // Orphans reported while no detector was running.
        myself.send_message(DetectorMsg::Orphans)?;
        args.slot.set(myself);
        Ok(DetectorState { args, timers: vec![sweep, wake], last_heartbeat_ns: 0 })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<DetectorMsg>,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        for t in &state.timers {
            t.abort();
        }
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<DetectorMsg>,
        msg: DetectorMsg,
        state: &mut DetectorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DetectorMsg::Orphans => {
                state.args.core.recover_orphans();
            }
            DetectorMsg::Sweep => {
                state.args.core.recover_orphans();
                state.sweep_agents();
            }
        }
        Ok(())
    }
}

impl DetectorState {
    fn sweep_agents(&mut self) {
        let core = &self.args.core;
        let now = core.parts().clock.now_ns();
        let heartbeat_due =
            now.saturating_sub(self.last_heartbeat_ns) >= self.args.heartbeat_interval.as_nanos() as u64;
        if heartbeat_due {
            self.last_heartbeat_ns = now;
        }
        let hung_ns = self.args.hung_after.as_nanos() as u64;
        for entry in core.parts().registry.view().all() {
            // Remote agents are watched by their own node.
            let Some(actor) = entry.actor() else { continue };
            if let Some(since) = entry.load.busy_since_ns()
                && now.saturating_sub(since) > hung_ns
            {
                tracing::warn!(agent = %entry.id, busy_ms = (now - since) / 1_000_000, "agent hung; killing it");
                RouterMetrics::inc(&core.metrics().hung_agents_killed);
                entry.load.set_busy_since(0);
                actor.kill();
                continue;
            }
            if heartbeat_due {
                let _ = actor.send_message(AgentMsg::Heartbeat);
            }
        }
    }
}
