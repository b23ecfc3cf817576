//! [`QTable`]: the pure Q-learning state machine (no I/O, no clock, no locks).
//!
//! # Values
//!
//! `Q(s, a)` for every state `s` (see [`super::state`]) and action `a`. The actions are
//! the agents, plus one action per swarm (*route within swarm X*) and one for the whole
//! pool (*route to any capable agent*). Every outcome of agent `a` (member of swarms
//! `X…`) observed in state `s` updates `Q(s, a)`, `Q(s, X)` for each of its swarms, and
//! `Q(s, pool)` with the same TD target. The swarm and pool values are therefore the
//! values of *routing into that group* under the current policy; they serve as priors: an
//! agent never observed in state `s` is valued at its swarms' mean `Q(s, X)`, else at
//! `Q(s, pool)`, else at the running mean of all targets. A new agent in a known swarm
//! thus starts from what its swarm is worth instead of an arbitrary constant (0 would be
//! wildly optimistic with negative rewards and would flood a newcomer with work).
//! Selection itself always executes an agent action: a swarm action has to resolve to one
//! of its members anyway, and once a member's own `Q(s, a)` exists it is strictly more
//! specific than its swarm's.
//!
//! # Reward and TD update
//!
//! ```text
//! r      = −min(latency / ref, 10) − (failed ? 5 : 0)
//! target = r + γ · max_b Q(s′, b)
//! Q(s,a) ← Q(s,a) + max(α, 1/n) · (target − Q(s,a))     (n: visits of (s,a), this one included)
//! ε      ← max(ε · decay, ε_min)                         (once per update)
//! ```
//!
//! `ref` is a running mean (EWMA, weight 0.01) of successful attempt latencies, so the
//! reward is in units of "a typical attempt" whatever the workload's time scale; the
//! clamp keeps one pathological sample (a timeout) from swamping the table. A failed
//! attempt costs 5 typical attempts on top of its own time: the task still has to be
//! retried elsewhere after a backoff. `s′` is the state the same agent is in when its
//! outcome is known, and `max_b Q(s′, b)` the best value known for any agent in that
//! state: the environment's transition for "send to `a`" is `a`'s own state change, and
//! the next decision's value from there is estimated by the best action seen in it
//! (Watkins' Q-learning, Sutton & Barto, *Reinforcement Learning*, 2nd ed., §6.5).
//!
//! Three refinements make it learn fast enough for routing, where every wrong decision
//! costs latency (each was measured with `flow bench routing`; without them Q-learning
//! lost to round-robin on the homogeneous workload in 2 000-task runs):
//!
//! * **Sample averages first.** The step size is `max(α, 1/n)`: an entry is the plain
//!   mean of its first `⌈1/α⌉` targets, then an exponential average with weight α. A
//!   constant α from the first sample either keeps an arbitrary initial value for ~20
//!   samples or, with the first sample taken as is, trusts one noisy draw; the mean has
//!   neither bias (Sutton & Barto §2.5–2.7 on step sizes).
//! * **Settled bootstrap.** `max_b Q(s′, b)` ranges over entries with at least `⌈1/α⌉`
//!   visits; until some agent's estimate in `s′` has settled, the pool's value in `s′` is
//!   used, and for a state nobody has seen, the running mean of targets. A max over a
//!   handful of one- or two-sample means picks the luckiest draw (the maximisation bias,
//!   van Hasselt, *Double Q-learning*, 2010), and that noise, multiplied by γ = 0.9, was
//!   as large as the latency differences the table has to learn.
//! * **Monotone in load.** The values used for *decisions* (not the table itself) are
//!   made non-increasing in the load level within each success × latency bucket: a
//!   running minimum from level 0 up. More work queued on an agent never makes it a better
//!   choice, so an estimate saying otherwise is noise, and an unobserved high level
//!   inherits the agent's value at lower levels instead of a generic prior.
//!
//! # Bounds
//!
//! At most `max_actions` actions (agents + swarms; default [`DEFAULT_MAX_ACTIONS`]); a new
//! action beyond that evicts the least recently updated one. Memory is
//! `max_actions × 99 × 12` bytes at most (≈ 4.9 MB for 4 096 actions).

use std::collections::HashMap;

use erlmcp_flow_core::config::QLearningConfig;
use erlmcp_flow_core::hash::FoldBuildHasher;
use erlmcp_flow_core::{AgentId, SwarmName};
use serde::{Deserialize, Serialize};

use super::snapshot::QSnapshot;
use super::state::{AgentState, LATENCY_BUCKETS, LOAD_LEVELS, STATES, SUCCESS_BUCKETS};

/// Cost of a failed attempt, in typical-attempt latencies (on top of its own time).
pub const FAILURE_PENALTY: f64 = 5.0;
/// Largest latency counted, in typical-attempt latencies.
pub const MAX_LATENCY_UNITS: f64 = 10.0;
/// Weight of a new sample in the latency reference and in the mean of targets.
pub const REFERENCE_WEIGHT: f64 = 0.01;
/// Default bound on the number of actions (agents + swarms).
pub const DEFAULT_MAX_ACTIONS: usize = 4096;

/// An action of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Send the task to this agent.
    Agent(AgentId),
    /// Route within this swarm (learned as a group value; used as a prior).
    Swarm(SwarmName),
}

/// Learning parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Learning rate α in (0, 1].
    pub alpha: f64,
    /// Discount γ in [0, 1).
    pub gamma: f64,
    /// Initial exploration rate ε.
    pub epsilon: f64,
    /// Multiplicative decay of ε per update.
    pub epsilon_decay: f64,
    /// Floor of ε.
    pub epsilon_min: f64,
    /// See [`FAILURE_PENALTY`].
    pub failure_penalty: f64,
    /// See [`MAX_LATENCY_UNITS`].
    pub max_latency_units: f64,
}

impl QParams {
    /// From the `[q_learning]` config section (validated).
    pub fn from_config(c: &QLearningConfig) -> Self {
        Self {
            alpha: c.alpha,
            gamma: c.gamma,
            epsilon: c.epsilon,
            epsilon_decay: c.epsilon_decay,
            epsilon_min: c.epsilon_min,
            failure_penalty: FAILURE_PENALTY,
            max_latency_units: MAX_LATENCY_UNITS,
        }
    }
}

impl Default for QParams {
    fn default() -> Self {
        Self::from_config(&QLearningConfig::default())
    }
}

/// One observed outcome, discretised.
#[derive(Debug, Clone, Copy)]
pub struct TdUpdate<'a> {
    /// The agent the task went to.
    pub agent: &'a AgentId,
    /// Its swarms.
    pub swarms: &'a [SwarmName],
    /// Its state when the task was dispatched.
    pub state: AgentState,
    /// Its state when the outcome was known.
    pub next_state: AgentState,
    /// Attempt latency, ns.
    pub latency_ns: u64,
    /// Whether the attempt succeeded.
    pub success: bool,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TdStep {
    /// The reward.
    pub reward: f64,
    /// The TD target `r + γ · max Q(s′, ·)`.
    pub target: f64,
    /// `target − Q(s, a)` before the update (the target itself on a first visit).
    pub td_error: f64,
}

/// One action's row of the persisted model: its visited states only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The action.
    pub action: Action,
    /// For agents: their swarms (as last observed).
    pub swarms: Vec<SwarmName>,
    /// `(state index, Q, visits)` for every visited state.
    pub entries: Vec<(u8, f64, u32)>,
}

/// The table's serialisable content (see [`super::persist`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelData {
    /// Number of states the values were learned over (must be 99).
    pub states: u32,
    /// ε when saved.
    pub epsilon: f64,
    /// Latency reference, ns.
    pub latency_ref_ns: f64,
    /// Running mean of TD targets.
    pub value_mean: f64,
    /// Updates applied in the table's lifetime.
    pub updates: u64,
    /// The pool row: `(state index, Q, visits)`.
    pub pool: Vec<(u8, f64, u32)>,
    /// Agents and swarms.
    pub actions: Vec<ActionRecord>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct QTable {
    params: QParams,
    max_actions: usize,
    epsilon: f64,
    latency_ref_ns: f64,
    value_mean: f64,
    updates: u64,
    actions: Vec<Action>,
    index: HashMap<Action, u32, FoldBuildHasher>,
    /// `slot * STATES + state`.
    q: Vec<f64>,
    visits: Vec<u32>,
    /// Per slot: the update count when it was last touched (eviction order).
    last_used: Vec<u64>,
    /// Per slot: swarms of an agent action (empty for swarm actions).
    swarms_of: Vec<Vec<SwarmName>>,
    pool_q: [f64; STATES],
    pool_visits: [u32; STATES],
    /// Per state: the best visited agent action and its value.
    best: [Option<(u32, f64)>; STATES],
}

impl QTable {
    /// An empty table.
    pub fn new(params: QParams, max_actions: usize) -> Self {
        Self {
            params,
            max_actions: max_actions.max(1),
            epsilon: params.epsilon,
            latency_ref_ns: 0.0,
            value_mean: 0.0,
            updates: 0,
            actions: Vec::new(),
            index: HashMap::default(),
            q: Vec::new(),
            visits: Vec::new(),
            last_used: Vec::new(),
            swarms_of: Vec::new(),
            pool_q: [0.0; STATES],
            pool_visits: [0; STATES],
            best: [None; STATES],
        }
    }

    /// The learning parameters.
    pub fn params(&self) -> &QParams {
        &self.params
    }

    /// Current exploration rate.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Latency reference, ns (0 before the first successful sample).
    pub fn latency_ref_ns(&self) -> f64 {
        self.latency_ref_ns
    }

    /// Updates applied.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Actions (agents + swarms) in the table.
    pub fn action_count(&self) -> usize {
        self.actions.len()
    }

    /// Visited `(state, action)` entries (agents and swarms).
    pub fn visited_entries(&self) -> usize {
        self.visits.iter().filter(|&&v| v > 0).count()
    }

    /// The value used for anything never observed: the running mean of TD targets
    /// (0 before the first update).
    pub fn default_value(&self) -> f64 {
        self.value_mean
    }

    /// The reward of an attempt that took `latency_ns` and succeeded or not.
    pub fn reward(&self, latency_ns: u64, success: bool) -> f64 {
        let units = if self.latency_ref_ns > 0.0 { latency_ns as f64 / self.latency_ref_ns } else { 1.0 };
        -units.min(self.params.max_latency_units) - if success { 0.0 } else { self.params.failure_penalty }
    }

    /// `Q(state, action)` if it was ever observed.
    pub fn q(&self, action: &Action, state: AgentState) -> Option<f64> {
        let slot = *self.index.get(action)? as usize;
        let i = slot * STATES + state.index();
        (self.visits[i] > 0).then(|| self.q[i])
    }

    /// `Q(state, pool)` if it was ever observed.
    pub fn pool_q(&self, state: AgentState) -> Option<f64> {
        let s = state.index();
        (self.pool_visits[s] > 0).then(|| self.pool_q[s])
    }

    /// `max_b Q(state, b)` over the agents whose estimate in `state` is settled (see
    /// the module docs), if any.
    pub fn best_value(&self, state: AgentState) -> Option<f64> {
        self.best[state.index()].map(|(_, v)| v)
    }

    /// The value used to choose: `agent`'s (member of `swarms`) learned value in `state`,
    /// its prior when unobserved, made non-increasing in load (see the module docs).
    pub fn value(&self, agent: &AgentId, swarms: &[SwarmName], state: AgentState) -> f64 {
        let slot = self.index.get(&Action::Agent(agent.clone())).map(|&k| k as usize);
        self.resolved_row(slot, swarms)[state.index()]
    }

    /// Decision values of one agent slot (or of an agent unknown to the table, `None`) in
    /// all 99 states: learned value, else prior; then, for each success and latency
    /// bucket, a running minimum over increasing load levels.
    fn resolved_row(&self, slot: Option<usize>, swarms: &[SwarmName]) -> [f64; STATES] {
        let mut row = [0.0; STATES];
        for (s, v) in row.iter_mut().enumerate() {
            *v = match slot {
                Some(k) if self.visits[k * STATES + s] > 0 => self.q[k * STATES + s],
                _ => self.prior(swarms, s),
            };
        }
        let per_load = SUCCESS_BUCKETS * LATENCY_BUCKETS;
        for bucket in 0..per_load {
            let mut lowest = f64::INFINITY;
            for load in 0..LOAD_LEVELS {
                let v = &mut row[load * per_load + bucket];
                lowest = lowest.min(*v);
                *v = lowest;
            }
        }
        row
    }

    fn prior(&self, swarms: &[SwarmName], s: usize) -> f64 {
        let (mut sum, mut n) = (0.0, 0u32);
        for sw in swarms {
            if let Some(&slot) = self.index.get(&Action::Swarm(sw.clone())) {
                let i = slot as usize * STATES + s;
                if self.visits[i] > 0 {
                    sum += self.q[i];
                    n += 1;
                }
            }
        }
        if n > 0 {
            sum / f64::from(n)
        } else if self.pool_visits[s] > 0 {
            self.pool_q[s]
        } else {
            self.value_mean
        }
    }

    /// Applies one observed outcome.
    pub fn update(&mut self, u: &TdUpdate<'_>) -> TdStep {
        let first = self.updates == 0;
        if u.success || self.latency_ref_ns == 0.0 {
            let l = u.latency_ns as f64;
            self.latency_ref_ns = if self.latency_ref_ns == 0.0 {
                l.max(1.0)
            } else {
                self.latency_ref_ns + REFERENCE_WEIGHT * (l - self.latency_ref_ns)
            };
        }
        let reward = self.reward(u.latency_ns, u.success);
        let next = self.best_value(u.next_state).or_else(|| self.pool_q(u.next_state)).unwrap_or(self.value_mean);
        let target = reward + self.params.gamma * next;
        debug_assert!(target.is_finite(), "TD target {target} from reward {reward}, next {next}");

        self.updates += 1;
        let s = u.state.index();
        let mut td_error = target;
        if let Some(slot) = self.slot_for(Action::Agent(u.agent.clone())) {
            if self.swarms_of[slot] != u.swarms {
                self.swarms_of[slot] = u.swarms.to_vec();
            }
            td_error = self.apply(slot, s, target);
            self.refresh_best(slot as u32, s);
        }
        for sw in u.swarms {
            if let Some(slot) = self.slot_for(Action::Swarm(sw.clone())) {
                self.apply(slot, s, target);
            }
        }
        self.pool_visits[s] = self.pool_visits[s].saturating_add(1);
        let step = self.step(self.pool_visits[s]);
        self.pool_q[s] += step * (target - self.pool_q[s]);
        self.value_mean = if first { target } else { self.value_mean + REFERENCE_WEIGHT * (target - self.value_mean) };
        self.epsilon = (self.epsilon * self.params.epsilon_decay).max(self.params.epsilon_min);
        TdStep { reward, target, td_error }
    }

    /// `Q(s, slot) ← …`; returns the TD error.
    fn apply(&mut self, slot: usize, s: usize, target: f64) -> f64 {
        let i = slot * STATES + s;
        self.visits[i] = self.visits[i].saturating_add(1);
        let err = if self.visits[i] == 1 { target } else { target - self.q[i] };
        self.q[i] += self.step(self.visits[i]) * err;
        self.last_used[slot] = self.updates;
        err
    }

    /// Visits after which an entry's step size is α (before: a sample mean), and from
    /// which it takes part in `max_b Q(s′, b)`: `⌈1/α⌉`.
    fn settled_visits(&self) -> u32 {
        (1.0 / self.params.alpha).ceil() as u32
    }

    /// Step size of the `n`-th visit: `max(α, 1/n)`.
    fn step(&self, n: u32) -> f64 {
        self.params.alpha.max(1.0 / f64::from(n.max(1)))
    }

    /// Keeps `best[s]` right after agent `slot`'s value in `s` changed: O(1) unless the
    /// best agent got worse, which needs a scan of the state's agents.
    fn refresh_best(&mut self, slot: u32, s: usize) {
        let i = slot as usize * STATES + s;
        if self.visits[i] < self.settled_visits() {
            return;
        }
        let v = self.q[i];
        match self.best[s] {
            None => self.best[s] = Some((slot, v)),
            Some((b, bv)) if b == slot => {
                if v >= bv {
                    self.best[s] = Some((slot, v));
                } else {
                    self.rescan_best(s);
                }
            }
            Some((_, bv)) => {
                if v > bv {
                    self.best[s] = Some((slot, v));
                }
            }
        }
    }

    fn rescan_best(&mut self, s: usize) {
        let mut best: Option<(u32, f64)> = None;
        for (k, a) in self.actions.iter().enumerate() {
            let i = k * STATES + s;
            let settled = self.visits[i] >= self.settled_visits();
            if matches!(a, Action::Agent(_)) && settled && best.is_none_or(|(_, v)| self.q[i] > v) {
                best = Some((k as u32, self.q[i]));
            }
        }
        self.best[s] = best;
    }

    /// The slot of `action`, inserting it (and evicting the least recently updated
    /// action when full). `None` when every slot was touched by the current update.
    fn slot_for(&mut self, action: Action) -> Option<usize> {
        if let Some(&slot) = self.index.get(&action) {
            return Some(slot as usize);
        }
        if self.actions.len() >= self.max_actions {
            let victim = (0..self.actions.len())
                .filter(|&k| self.last_used[k] < self.updates)
                .min_by_key(|&k| self.last_used[k])?;
            self.evict(victim);
        }
        let slot = self.actions.len();
        self.index.insert(action.clone(), slot as u32);
        self.actions.push(action);
        self.q.resize(self.q.len() + STATES, 0.0);
        self.visits.resize(self.visits.len() + STATES, 0);
        self.last_used.push(self.updates);
        self.swarms_of.push(Vec::new());
        debug_assert_eq!(self.q.len(), self.actions.len() * STATES);
        Some(slot)
    }

    /// Removes the action in `slot` (the last slot moves into its place).
    fn evict(&mut self, slot: usize) {
        let last = self.actions.len() - 1;
        let gone = self.actions.swap_remove(slot);
        self.index.remove(&gone);
        if slot != last {
            self.index.insert(self.actions[slot].clone(), slot as u32);
            for s in 0..STATES {
                self.q[slot * STATES + s] = self.q[last * STATES + s];
                self.visits[slot * STATES + s] = self.visits[last * STATES + s];
            }
        }
        self.q.truncate(last * STATES);
        self.visits.truncate(last * STATES);
        self.last_used.swap_remove(slot);
        self.swarms_of.swap_remove(slot);
        for s in 0..STATES {
            self.rescan_best(s);
        }
    }

    /// An immutable copy for the routing hot path: every agent's value in every state
    /// with the priors already resolved, so inference is one hash lookup and one read.
    pub fn snapshot(&self) -> QSnapshot {
        let mut slots = HashMap::with_capacity_and_hasher(self.actions.len(), FoldBuildHasher);
        let mut values = Vec::new();
        for (k, a) in self.actions.iter().enumerate() {
            let Action::Agent(id) = a else { continue };
            slots.insert(id.clone(), (values.len() / STATES) as u32);
            values.extend(self.resolved_row(Some(k), &self.swarms_of[k]).iter().map(|&v| v as f32));
        }
        let fallback = self.resolved_row(None, &[]).map(|v| v as f32);
        QSnapshot::new(slots, values.into_boxed_slice(), fallback, self.epsilon, self.latency_ref_ns, self.updates)
    }

    /// The table's content, for persistence.
    pub fn to_data(&self) -> ModelData {
        let row = |q: &[f64], visits: &[u32]| -> Vec<(u8, f64, u32)> {
            (0..STATES).filter(|&s| visits[s] > 0).map(|s| (s as u8, q[s], visits[s])).collect()
        };
        ModelData {
            states: STATES as u32,
            epsilon: self.epsilon,
            latency_ref_ns: self.latency_ref_ns,
            value_mean: self.value_mean,
            updates: self.updates,
            pool: row(&self.pool_q, &self.pool_visits),
            actions: self
                .actions
                .iter()
                .enumerate()
                .map(|(k, a)| ActionRecord {
                    action: a.clone(),
                    swarms: self.swarms_of[k].clone(),
                    entries: row(&self.q[k * STATES..(k + 1) * STATES], &self.visits[k * STATES..(k + 1) * STATES]),
                })
                .collect(),
        }
    }

    /// Rebuilds a table from persisted content, checking that it is usable: the same
    /// state space, finite values, state indexes in range, no duplicate actions, at most
    /// `max_actions` actions. ε continues from the saved value, kept within the
    /// configured `[epsilon_min, epsilon]`.
    pub fn from_data(data: ModelData, params: QParams, max_actions: usize) -> Result<Self, String> {
        if data.states as usize != STATES {
            return Err(format!("the model has {} states, this build uses {STATES}", data.states));
        }
        let finite = |v: f64, what: &str| if v.is_finite() { Ok(v) } else { Err(format!("{what} is not finite: {v}")) };
        finite(data.epsilon, "epsilon")?;
        finite(data.latency_ref_ns, "latency reference")?;
        finite(data.value_mean, "mean value")?;
        if data.latency_ref_ns < 0.0 {
            return Err(format!("negative latency reference {}", data.latency_ref_ns));
        }
        if data.actions.len() > max_actions {
            return Err(format!("{} actions, more than the bound of {max_actions}", data.actions.len()));
        }
        let mut t = QTable::new(params, max_actions);
        t.epsilon = data.epsilon.clamp(params.epsilon_min, params.epsilon);
        t.latency_ref_ns = data.latency_ref_ns;
        t.value_mean = data.value_mean;
        t.updates = data.updates;
        let entry = |(s, v, n): (u8, f64, u32)| -> Result<(usize, f64, u32), String> {
            if s as usize >= STATES {
                return Err(format!("state index {s} out of range"));
            }
            Ok((s as usize, finite(v, "a Q-value")?, n.max(1)))
        };
        for e in data.pool {
            let (s, v, n) = entry(e)?;
            t.pool_q[s] = v;
            t.pool_visits[s] = n;
        }
        for rec in data.actions {
            if t.index.contains_key(&rec.action) {
                return Err(format!("duplicate action {:?}", rec.action));
            }
            let slot = t.slot_for(rec.action).expect("below the bound: checked above");
            t.swarms_of[slot] = rec.swarms;
            for e in rec.entries {
                let (s, v, n) = entry(e)?;
                t.q[slot * STATES + s] = v;
                t.visits[slot * STATES + s] = n;
            }
        }
        for s in 0..STATES {
            t.rescan_best(s);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q_learning::policy::epsilon_greedy;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn id(s: &str) -> AgentId {
        AgentId::new(s).unwrap()
    }

    fn st(load: u8) -> AgentState {
        AgentState { load, success: 0, latency: 1 }
    }

    fn params(gamma: f64) -> QParams {
        QParams { alpha: 0.5, gamma, epsilon: 0.5, epsilon_decay: 0.5, epsilon_min: 0.1, ..QParams::default() }
    }

    fn upd<'a>(agent: &'a AgentId, s: u8, next: u8, latency_ns: u64, success: bool) -> TdUpdate<'a> {
        TdUpdate { agent, swarms: &[], state: st(s), next_state: st(next), latency_ns, success }
    }

    /// The TD update follows `Q ← Q + α(r + γ·max Q(s′) − Q)` exactly, with the first
    /// visit taking the target, latency measured against the running reference, and a
    /// failure costing the penalty.
    #[test]
    fn td_update_arithmetic() {
        let a = id("a");
        let mut t = QTable::new(params(0.5), 16);
        // First sample: reference := 1 ms, r = -1, s′ unseen and no mean yet → bootstrap 0.
        let step = t.update(&upd(&a, 0, 1, 1_000_000, true));
        assert_eq!(step, TdStep { reward: -1.0, target: -1.0, td_error: -1.0 });
        assert_eq!(t.q(&Action::Agent(a.clone()), st(0)), Some(-1.0));
        assert_eq!(t.latency_ref_ns(), 1_000_000.0);
        assert_eq!(t.default_value(), -1.0);

        // a's estimate in state 0 has 1 visit: not settled (⌈1/α⌉ = 2).
        assert_eq!(t.best_value(st(0)), None);
        // Second sample in the same state: 3 ms (reference moves 1 % towards it first).
        let step = t.update(&upd(&a, 0, 0, 3_000_000, true));
        let reference = 1_000_000.0 + 0.01 * 2_000_000.0;
        let r = -(3_000_000.0 / reference);
        assert!((step.reward - r).abs() < 1e-12);
        // s′ = state 0, where no estimate was settled yet: the bootstrap is the pool's
        // value in state 0, -1.
        let (gamma, pool0) = (0.5, -1.0);
        let target = r + gamma * pool0;
        assert!((step.target - target).abs() < 1e-12);
        assert!((step.td_error - (target - -1.0)).abs() < 1e-12);
        // Step max(α, 1/2) = 0.5: the mean of the two targets.
        let q = t.q(&Action::Agent(a.clone()), st(0)).unwrap();
        assert!((q - (-1.0 + target) / 2.0).abs() < 1e-12);
        // Now settled: it is the best value of state 0.
        assert_eq!(t.best_value(st(0)), Some(q));

        // A failure costs the penalty on top of its latency units.
        let before = t.reward(1_000_000, true);
        assert!((t.reward(1_000_000, false) - (before - FAILURE_PENALTY)).abs() < 1e-12);
        // Latency units are clamped.
        assert_eq!(t.reward(u64::MAX, true), -MAX_LATENCY_UNITS);
    }

    /// The first ⌈1/α⌉ visits of an entry average their targets; later ones move it by α.
    #[test]
    fn step_size_is_sample_mean_then_alpha() {
        let a = id("a");
        let mut t = QTable::new(QParams { alpha: 0.25, ..params(0.0) }, 4);
        // γ = 0 and a fixed reference: targets are just the rewards.
        let rewards: Vec<f64> =
            [1_000u64, 3_000, 2_000, 2_000, 6_000].iter().map(|&l| t.update(&upd(&a, 0, 0, l, true)).reward).collect();
        let mean4 = rewards[..4].iter().sum::<f64>() / 4.0;
        let expected = mean4 + 0.25 * (rewards[4] - mean4);
        let q = t.q(&Action::Agent(a.clone()), st(0)).unwrap();
        assert!((q - expected).abs() < 1e-9, "{q} vs {expected}");
    }

    /// Decision values never rise with load within a bucket: a noisy high-load estimate
    /// is capped by the agent's value at lower load, and unseen levels inherit it.
    #[test]
    fn decision_values_are_monotone_in_load() {
        let a = id("a");
        let mut t = QTable::new(QParams { alpha: 1.0, ..params(0.0) }, 4);
        t.update(&upd(&a, 1, 0, 5_000, true)); // load 1: slow sample (reference 5 µs → r = -1)
        t.update(&upd(&a, 4, 0, 1_000, true)); // load 4: a lucky fast one
        let q1 = t.q(&Action::Agent(a.clone()), st(1)).unwrap();
        assert!(t.q(&Action::Agent(a.clone()), st(4)).unwrap() > q1, "raw table keeps the noisy value");
        assert_eq!(t.value(&a, &[], st(4)), q1, "capped by load 1");
        assert_eq!(t.value(&a, &[], st(9)), q1, "unseen level inherits");
        let snap = t.snapshot();
        for load in 1..11 {
            assert!(snap.value("a", st(load)) <= snap.value("a", st(load - 1)));
        }
    }

    /// ε decays multiplicatively once per update and stops at its floor.
    #[test]
    fn epsilon_decays_to_its_floor() {
        let a = id("a");
        let mut t = QTable::new(params(0.0), 16);
        assert_eq!(t.epsilon(), 0.5);
        t.update(&upd(&a, 0, 0, 1_000, true));
        assert_eq!(t.epsilon(), 0.25);
        t.update(&upd(&a, 0, 0, 1_000, true));
        assert_eq!(t.epsilon(), 0.125);
        for _ in 0..10 {
            t.update(&upd(&a, 0, 0, 1_000, true));
        }
        assert_eq!(t.epsilon(), 0.1);
    }

    /// Greedy selection (ε = 0) picks the action with the highest value in each
    /// candidate's own state, and unseen agents get their swarm's, then the pool's value.
    #[test]
    fn greedy_choice_and_priors() {
        let (fast, slow, new) = (id("fast"), id("slow"), id("new"));
        let blue = [SwarmName::new("blue").unwrap()];
        let mut t = QTable::new(params(0.0), 16);
        for _ in 0..4 {
            t.update(&TdUpdate { swarms: &blue, ..upd(&fast, 2, 2, 1_000_000, true) });
            t.update(&upd(&slow, 0, 0, 4_000_000, true));
        }
        // fast at load 2 beats slow at load 0: per-state values, not per-agent averages.
        let options = [(&slow, &[][..], st(0)), (&fast, &blue[..], st(2))];
        let mut rng = SmallRng::seed_from_u64(1);
        let pick =
            epsilon_greedy(0.0, options.len(), |i| Some(t.value(options[i].0, options[i].1, options[i].2)), &mut rng);
        assert_eq!(pick, Some(1));
        // A newcomer in swarm blue is valued like blue in that state (capped by its
        // value at lower loads: the pool's); outside any swarm like the pool; in a
        // bucket nobody saw, at the mean of targets.
        let blue_q = t.q(&Action::Swarm(blue[0].clone()), st(2)).unwrap();
        let pool0 = t.pool_q(st(0)).unwrap();
        assert_eq!(t.value(&new, &blue, st(2)), blue_q.min(pool0));
        assert_eq!(t.value(&new, &[], st(0)), pool0);
        let unseen = AgentState { load: 0, success: 2, latency: 2 };
        assert_eq!(t.value(&new, &[], unseen), t.default_value());
        // The snapshot resolves the same values.
        let snap = t.snapshot();
        assert_eq!(snap.value("fast", st(2)), t.value(&fast, &blue, st(2)) as f32 as f64);
        assert_eq!(snap.value("fast", st(5)), t.value(&fast, &blue, st(5)) as f32 as f64);
        assert_eq!(snap.value("new", st(0)), t.pool_q(st(0)).unwrap() as f32 as f64);
    }

    /// `max Q(s′, ·)` follows the best agent, also when the best one gets worse.
    #[test]
    fn best_value_tracks_rises_and_falls() {
        let (a, b) = (id("a"), id("b"));
        let mut t = QTable::new(QParams { alpha: 1.0, ..params(0.0) }, 16);
        t.update(&upd(&a, 0, 0, 1_000, true));
        t.update(&upd(&b, 0, 0, 2_000, true));
        let qa = t.q(&Action::Agent(a.clone()), st(0)).unwrap();
        assert_eq!(t.best_value(st(0)), Some(qa));
        // a gets much worse: b is now the best.
        t.update(&upd(&a, 0, 0, 50_000, true));
        let qb = t.q(&Action::Agent(b.clone()), st(0)).unwrap();
        assert_eq!(t.best_value(st(0)), Some(qb));
        assert_eq!(t.best_value(st(9)), None);
    }

    /// The number of actions is bounded; the least recently updated one is evicted.
    #[test]
    fn actions_are_bounded_with_lru_eviction() {
        let mut t = QTable::new(QParams { alpha: 1.0, ..params(0.0) }, 3);
        let ids: Vec<_> = (0..5).map(|i| id(&format!("a{i}"))).collect();
        for a in &ids {
            t.update(&upd(a, 0, 0, 1_000, true));
        }
        assert_eq!(t.action_count(), 3);
        assert!(t.q(&Action::Agent(ids[0].clone()), st(0)).is_none(), "oldest evicted");
        assert!(t.q(&Action::Agent(ids[4].clone()), st(0)).is_some());
        assert!(t.best_value(st(0)).is_some());
        let round = QTable::from_data(t.to_data(), QParams { alpha: 1.0, ..params(0.0) }, 3).unwrap();
        assert_eq!(round.to_data(), t.to_data());
    }

    /// Persisted content that is not a usable model is refused with a reason.
    #[test]
    fn from_data_validates() {
        let a = id("a");
        let mut t = QTable::new(params(0.0), 8);
        t.update(&upd(&a, 3, 0, 1_000, true));
        let good = t.to_data();
        assert!(QTable::from_data(good.clone(), params(0.0), 8).is_ok());
        let mut d = good.clone();
        d.states = 98;
        assert!(QTable::from_data(d, params(0.0), 8).unwrap_err().contains("98 states"));
        let mut d = good.clone();
        d.actions[0].entries[0].1 = f64::NAN;
        assert!(QTable::from_data(d, params(0.0), 8).unwrap_err().contains("not finite"));
        let mut d = good.clone();
        d.actions[0].entries[0].0 = 200;
        assert!(QTable::from_data(d, params(0.0), 8).unwrap_err().contains("out of range"));
        let mut d = good.clone();
        d.actions.push(d.actions[0].clone());
        assert!(QTable::from_data(d, params(0.0), 8).unwrap_err().contains("duplicate"));
        assert!(QTable::from_data(good, params(0.0), 0).is_err());
    }
}
