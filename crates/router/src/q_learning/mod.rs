//! Q-learning routing (the seeds' `erlmcp_flow_q_learning`).
//!
//! Tabular Q-learning (Watkins 1989; Sutton & Barto, *Reinforcement Learning*, 2nd ed.,
//! §6.5) over the seeds' state space of 11 load levels × 3 success buckets × 3 latency
//! buckets, with ε-greedy exploration, α, γ, ε and its decay from `[q_learning]`.
//!
//! # How routing maps onto Q-learning
//!
//! * **State**: per candidate. Each candidate agent is in one of 99 states, computed from
//!   its live load figures (in flight, success EWMA, peak-EWMA latency against the
//!   model's running latency reference): [`state`].
//! * **Action**: send the task to candidate `a`. The decision compares `Q(s_a, a)`
//!   across the eligible candidates, each in its own state, so the table learns, per
//!   agent, how its value falls with its load, its failures and its latency. Swarm actions
//!   ("route within swarm X") and a pool action are learned alongside as group values
//!   and serve as priors for agents not yet observed in a state: [`table`].
//! * **Reward**: minus the attempt latency in units of a typical attempt (clamped at 10),
//!   minus 5 for a failure. **TD target**: `r + γ · max_b Q(s′, b)`, where `s′` is the
//!   chosen agent's state once its outcome is known: [`table`].
//! * **Policy**: ε-greedy, ε decaying multiplicatively per update to `epsilon_min`; all
//!   candidates valued up to 16, a random sample of 8 beyond: [`policy`].
//!
//! # Where it runs
//!
//! * hot path ([`QLearningStrategy`]): `select` reads an immutable [`QSnapshot`]
//!   (`arc_swap`), `observe` does a non-blocking push into a bounded queue: [`strategy`];
//! * the node-owned [`QModel`] holds the [`QTable`], the queue and the snapshot: [`model`];
//! * the supervised [`QLearningActor`] drains the queue, applies TD updates, republishes
//!   snapshots at a bounded rate and saves the table: [`actor`];
//! * the model file (magic, version, checksum; atomic writes; a bad file means a warning
//!   and a fresh table, never a failed start): [`persist`].
//!
//! The table is a pure state machine (no clock, no I/O, no locks): a simulation can drive
//! the same code synchronously through [`QModel::pump`] with virtual time.
//!
//! # What it is good at, and what not
//!
//! It learns which agents are fast, slow, erratic or failing *at each load level*, and so
//! converges to "shortest expected delay" routing with failure avoidance: on agents with a
//! 4× speed spread it had the lowest mean latency of all strategies (about −75 to −80 %
//! against round-robin). Where the best signal is a raw figure it pays for having to
//! learn: on identical agents least-connections (which reads queue lengths directly) stays
//! a little ahead, and when an agent suddenly degrades, load-aware and P2C react at the
//! next sample while Q-learning re-learns that agent over a few samples per state. ε never
//! drops below `epsilon_min`. Measured results and the analysis are in
//! `docs/benchmarks.md` (`flow bench routing`).

pub mod actor;
pub mod model;
pub mod persist;
pub mod policy;
pub mod snapshot;
pub mod state;
pub mod strategy;
pub mod table;

pub use actor::{QLearningActor, QLearningArgs, QLearningMsg};
pub use model::{PumpReport, QModel, QModelSettings, QModelStats, TdSample};
pub use persist::{LoadedModel, ModelFileError};
pub use snapshot::QSnapshot;
pub use state::{AgentState, STATES};
pub use strategy::QLearningStrategy;
pub use table::{Action, QParams, QTable, TdStep, TdUpdate};
