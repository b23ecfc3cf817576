//! erlmcp_flow_workload: routing workloads and two ways to run them.
//!
//! A [`Workload`] is a set of heterogeneous agents (service-time distributions: steady,
//! erratic; failure rates; an agent that degrades mid-run), a per-agent capacity (the
//! bulkhead) and an arrival process (Poisson, optionally in bursts). The four presets
//! ([`Workload::presets`]: homogeneous, heterogeneous with a 4× speed spread, degrading,
//! bursty) are what `flow bench routing` compares every strategy on.
//!
//! * [`sim`]: a seeded, deterministic discrete-event simulation in virtual time that
//!   drives the real strategy implementations (Q-learning included, its model pumped
//!   synchronously) over real registry entries: large runs in seconds.
//! * [`actors`]: the real thing, scaled down: a [`FlowNode`](erlmcp_flow::FlowNode) with
//!   sleep-based agents, for smaller runs.
//!
//! Both produce a [`RunReport`] per (workload, strategy); [`report::table`] prints them
//! side by side with the ratio of each mean latency to round-robin's.
//!
//! ```
//! use erlmcp_flow::core::{FlowConfig, StrategyKind};
//! use erlmcp_flow_workload::{SimSettings, Workload, simulate};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let actor = erlmcp_flow_workload::idle_actor().await;
//! let settings = SimSettings { tasks: 2_000, seed: 1, config: erlmcp_flow_workload::bench_config() };
//! let report = simulate(&Workload::heterogeneous(), StrategyKind::QLearning, &settings, &actor);
//! assert_eq!(report.completed + report.failed, 2_000);
//! # }
//! ```
//!
//! # Layout
//!
//! * [`profile`]: [`Workload`], [`AgentProfile`], [`ServiceTime`], [`ArrivalStream`].
//! * [`sim`]: the discrete-event mode, [`simulate`].
//! * [`actors`]: the real-actor mode, [`run_actors`].
//! * [`report`]: [`RunReport`], ratios and the table.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod profile;
pub mod report;
pub mod sim;

use erlmcp_flow::core::config::FlowConfig;
use erlmcp_flow::core::{AgentMsg, AgentRef};
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use actors::{ActorRunError, ActorSettings, run_actors};
pub use profile::{AgentProfile, ArrivalStream, Burst, Degradation, ServiceTime, Workload};
pub use report::{RunReport, fill_ratios, table};
pub use sim::{SimSettings, simulate};

/// The configuration the routing benchmark uses: the defaults, with retry backoff scaled
/// down like the workloads' service times (5 ms base, 100 ms cap instead of 100 ms and
/// 5 s: the default base is 25–50 × a typical service time here, as it would be for
/// tasks of a few seconds).
pub fn bench_config() -> FlowConfig {
    let mut cfg = FlowConfig::default();
    cfg.failure_detector.base_retry_delay_ms = 5;
    cfg.failure_detector.max_retry_delay_ms = 100;
    cfg
}

struct Idle;

impl Actor for Idle {
    type Msg = AgentMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// An agent actor that does nothing, for the simulated registry entries (which need an
/// actor reference but never message it).
pub async fn idle_actor() -> AgentRef {
    Actor::spawn(None, Idle, ()).await.expect("an idle actor starts").0
}
