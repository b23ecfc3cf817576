//! [`Simulation`]: N cores in one thread, a seeded message shuffle and an explicit clock.
//! Deterministic for a seed; used by the scenario tests and proptests.
//!
//! A round: the leader's core proposes, every message is delivered (in an order drawn from
//! the seed, through the wire codec, faulty senders rewritten by their [`FaultInjector`])
//! until none is left, then the clock moves past the round timeout and every core ticks.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use erlmcp_flow_core::config::ByzantineConfig;
use erlmcp_flow_core::{NameError, NodeName};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::{ByzantineCore, CoreError, Decision, Output, ProposeError};
use crate::fault::{Behaviour, FaultInjector};
use crate::keys::{KeyError, KeyRing};
use crate::wire;

/// Why a simulation could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// A node name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Keys.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A core.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The leader could not propose.
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// What happened in one round at the honest nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundReport {
    /// The round.
    pub round: u64,
    /// The round's leader.
    pub leader: Option<NodeName>,
    /// Decisions of honest nodes.
    pub decisions: BTreeMap<NodeName, Decision>,
    /// Honest nodes that timed out.
    pub timed_out: Vec<NodeName>,
}

/// N nodes with behaviours, driven deterministically.
#[derive(Debug)]
pub struct Simulation {
    cores: BTreeMap<NodeName, ByzantineCore>,
    injectors: BTreeMap<NodeName, FaultInjector>,
    behaviours: BTreeMap<NodeName, Behaviour>,
    queue: VecDeque<(NodeName, Vec<u8>)>,
    now: Instant,
    timeout: Duration,
    rng: SmallRng,
    /// Every decision every node ever emitted: (node, round) → decisions (a safety check
    /// looks for two).
    decided: BTreeMap<(NodeName, u64), Vec<Decision>>,
    delivered: u64,
}

impl Simulation {
    /// Nodes `node-00`… with `behaviours[i]` for node i (missing entries are honest).
    pub fn new(
        n: usize,
        config: &ByzantineConfig,
        behaviours: &[Behaviour],
        seed: u64,
    ) -> Result<Self, SimulationError> {
        let names: Vec<NodeName> = (0..n).map(|i| NodeName::new(format!("node-{i:02}"))).collect::<Result<_, _>>()?;
        let rings = KeyRing::provision(&names, seed)?;
        let mut cores = BTreeMap::new();
        let mut injectors = BTreeMap::new();
        let mut map = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let ring = rings[name].clone();
            let b = behaviours.get(i).copied().unwrap_or(Behaviour::Honest);
            if b != Behaviour::Honest {
                injectors.insert(name.clone(), FaultInjector::new(b, ring.clone()));
            }
            map.insert(name.clone(), b);
            cores.insert(name.clone(), ByzantineCore::new(ring, config, (i as u64) << 40)?);
        }
        Ok(Self {
            cores,
            injectors,
            behaviours: map,
            queue: VecDeque::new(),
            now: Instant::now(),
            timeout: Duration::from_millis(config.round_timeout_ms),
            rng: SmallRng::seed_from_u64(seed),
            decided: BTreeMap::new(),
            delivered: 0,
        })
    }

    /// All node names, sorted.
    pub fn names(&self) -> Vec<NodeName> {
        self.cores.keys().cloned().collect()
    }

    /// Honest node names.
    pub fn honest(&self) -> Vec<NodeName> {
        self.behaviours.iter().filter(|(_, b)| **b == Behaviour::Honest).map(|(n, _)| n.clone()).collect()
    }

    /// A node's behaviour.
    pub fn behaviour(&self, node: &NodeName) -> Behaviour {
        self.behaviours.get(node).copied().unwrap_or(Behaviour::Honest)
    }

    /// A node's core.
    pub fn core(&self, node: &NodeName) -> Option<&ByzantineCore> {
        self.cores.get(node)
    }

    /// A node's core, mutably.
    pub fn core_mut(&mut self, node: &NodeName) -> Option<&mut ByzantineCore> {
        self.cores.get_mut(node)
    }

    /// The simulated clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Every decision ever emitted, per (node, round): more than one entry would be a bug.
    pub fn all_decisions(&self) -> &BTreeMap<(NodeName, u64), Vec<Decision>> {
        &self.decided
    }

    /// The leader of `round`.
    pub fn leader_of(&self, round: u64) -> NodeName {
        self.cores.values().next().map(|c| c.leader_of(round).clone()).unwrap_or_else(placeholder)
    }

    /// Queues raw bytes for `to` (tests inject garbage or crafted messages this way).
    pub fn inject(&mut self, to: &NodeName, bytes: Vec<u8>) {
        self.queue.push_back((to.clone(), bytes));
    }

    /// Runs `round`: the leader proposes `value`, messages flow until none is left, then
    /// time passes the round timeout.
    pub fn run_round(&mut self, round: u64, value: &[u8]) -> Result<RoundReport, SimulationError> {
        let leader = self.leader_of(round);
        let now = self.now;
        let outputs = match self.cores.get_mut(&leader) {
            Some(core) => core.propose(round, value.to_vec(), now)?,
            None => Vec::new(),
        };
        self.execute(&leader, outputs);
        self.deliver_all();
        self.advance(self.timeout);
        let mut report = RoundReport { round, leader: Some(leader), ..RoundReport::default() };
        for name in self.honest() {
            let core = &self.cores[&name];
            if let Some(d) = core.decision(round) {
                report.decisions.insert(name.clone(), d.clone());
            } else if core.timed_out(round) {
                report.timed_out.push(name.clone());
            }
        }
        Ok(report)
    }

    /// Delivers queued messages in seeded random order until the queue is empty.
    pub fn deliver_all(&mut self) {
        while !self.queue.is_empty() {
            let i = self.rng.random_range(0..self.queue.len());
            let Some((to, bytes)) = self.queue.swap_remove_back(i) else { break };
            self.delivered += 1;
            let now = self.now;
            let outputs = match self.cores.get_mut(&to) {
                Some(core) => core.on_bytes(&bytes, now),
                None => continue,
            };
            self.execute(&to, outputs);
        }
    }

    /// Moves the clock forward and ticks every core.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        let names = self.names();
        for name in names {
            let outputs = match self.cores.get_mut(&name) {
                Some(core) => core.on_tick(now),
                None => continue,
            };
            self.execute(&name, outputs);
        }
    }

    fn execute(&mut self, from: &NodeName, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Broadcast(message) => {
                    let peers: Vec<NodeName> = self.cores.keys().filter(|n| *n != from).cloned().collect();
                    for to in peers {
                        let messages = match self.injectors.get_mut(from) {
                            Some(injector) => injector.rewrite(&to, &message),
                            None => vec![message.clone()],
                        };
                        for m in messages {
                            if let Ok(bytes) = wire::encode(&m) {
                                self.queue.push_back((to.clone(), bytes));
                            }
                        }
                    }
                }
                Output::Decided(d) => self.decided.entry((from.clone(), d.round)).or_default().push(d),
                Output::TimedOut { .. } | Output::Rejected(_) | Output::Charged { .. } | Output::Blacklisted(_) => {}
            }
        }
    }
}

fn placeholder() -> NodeName {
    // A valid constant name; `new` cannot fail on it.
    NodeName::new("unnamed").unwrap_or_else(|_| unreachable!("constant name is valid"))
}
