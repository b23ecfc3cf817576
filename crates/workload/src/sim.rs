//! Discrete-event mode: one node routing a workload in virtual time, deterministically,
//! with the **real** strategies.
//!
//! What is real: the strategy objects (`strategy::build`, and [`QLearningStrategy`] over a
//! [`QModel`] pumped synchronously after every outcome, with virtual time), the registry's
//! [`AgentEntry`] values and their lock-free [`AgentLoad`] figures (in flight,
//! peak-EWMA latency, success EWMA) updated exactly where the router updates them, the
//! bulkhead semaphore of each entry, a [`CircuitBreaker`] per agent, and the retry
//! [`Backoff`].
//!
//! [`AgentLoad`]: erlmcp_flow::registry::AgentLoad
//!
//! What is modelled, following `RouterCore`'s pipeline step by step: selection among
//! candidates not yet tried and not skipped; breaker admission (refused → skip); bulkhead
//! slot (full → skip, remember as saturated); nothing left but saturated agents → wait
//! for the first slot to free on one of (up to 8 of) them, first come first served, as
//! the router's wait on their semaphores does; every capable agent tried → allow second
//! tries; a failed attempt → another agent after the backoff, up to
//! `failure_detector.max_retry_attempts`. Each agent serves one task at a time in FIFO
//! order (as agent actors do), with service times and failures drawn from its profile.
//!
//! Not modelled: the retry budget (the workloads' retry rates stay far below the default
//! 20 % budget), attempt timeouts (no service time comes near `timeouts.execution_ms`),
//! agent crashes, and the CPU cost of routing itself (virtual time stands still while a
//! decision is made). A simulated run is therefore about decision *quality*; the
//! real-actor mode ([`crate::actors`]) measures the same workloads with real overheads.
//!
//! Randomness: arrivals, each agent's service draws, and the router's choices come from
//! separate streams derived from one seed, so every strategy sees the same arrival
//! sequence and the same per-agent service-time sequences, and a run replays exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use erlmcp_flow::core::config::FlowConfig;
use erlmcp_flow::core::{AgentId, AgentRef, CapabilitySet, StrategyKind, Task};
use erlmcp_flow::registry::{AgentEntry, Candidates, Registration, splitmix64};
use erlmcp_flow::router::backoff::Backoff;
use erlmcp_flow::router::q_learning::{QLearningStrategy, QModel, QModelSettings, QParams};
use erlmcp_flow::router::strategy::{self, AttemptFeedback, LoadFigures, Selection, Strategy};
use erlmcp_flow::router::{CircuitBreaker, RouterSettings};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::profile::{AgentProfile, ArrivalStream, Workload};
use crate::report::{LatencySummary, RunReport};

/// Saturated agents a waiting task watches at most (as the router does).
const WATCHED: usize = 8;

/// Settings of a simulated run.
#[derive(Debug, Clone)]
pub struct SimSettings {
    /// Tasks to route.
    pub tasks: u64,
    /// Seed of every random stream.
    pub seed: u64,
    /// Node configuration (strategy parameters, breakers, retries, Q-learning); the
    /// strategy and bulkhead are taken from the run.
    pub config: FlowConfig,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    task: usize,
    dispatch: LoadFigures,
    granted_ns: u64,
    probe: bool,
}

struct SimAgent {
    entry: Arc<AgentEntry>,
    profile: AgentProfile,
    rng: SmallRng,
    breaker: CircuitBreaker,
    queue: VecDeque<Job>,
    running: Option<(Job, bool)>,
    attempts: u64,
    busy_ns: u64,
}

struct SimTask {
    task: Task,
    arrival_ns: u64,
    phase_attempts: u32,
    tried: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival(usize),
    Finish(usize),
    Retry(usize),
}

struct Waiter {
    task: usize,
    agents: Vec<usize>,
}

struct Sim {
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    agents: Vec<SimAgent>,
    candidates: Candidates,
    tasks: Vec<SimTask>,
    waiters: VecDeque<Waiter>,
    strategy: Arc<dyn Strategy>,
    model: Option<Arc<QModel>>,
    rng: SmallRng,
    max_attempts: u32,
    backoff: Backoff,
    decay_ns: f64,
    run_ns: u64,
    latencies: Vec<u64>,
    completed: u64,
    failed: u64,
    failed_attempts: u64,
    last_event_ns: u64,
}

/// The config a run uses: `base` with the workload's bulkhead, the strategy and the seed.
pub fn run_config(base: &FlowConfig, workload: &Workload, kind: StrategyKind, seed: u64) -> FlowConfig {
    let mut cfg = base.clone();
    cfg.load_balancer.strategy = kind;
    cfg.router.bulkhead_max_concurrent = workload.capacity;
    cfg.node.seed = Some(seed);
    cfg
}

/// Simulates `workload` under strategy `kind`. `actor` is any actor: the simulated
/// registry entries need one but never message it.
pub fn simulate(workload: &Workload, kind: StrategyKind, s: &SimSettings, actor: &AgentRef) -> RunReport {
    let wall = Instant::now();
    let cfg = run_config(&s.config, workload, kind, s.seed);
    let settings = RouterSettings::from_config(&cfg);
    let (strategy, model): (Arc<dyn Strategy>, Option<Arc<QModel>>) = match kind {
        StrategyKind::QLearning => {
            let model = QModel::in_memory(QParams::from_config(&cfg.q_learning), QModelSettings::from_config(&cfg));
            (Arc::new(QLearningStrategy::new(model.clone())), Some(model))
        }
        other => (strategy::build(other, settings.strategy_params).expect("every other strategy builds"), None),
    };
    let caps = CapabilitySet::parse(["work"]).expect("valid capability");
    let agents: Vec<SimAgent> = workload
        .agents
        .iter()
        .enumerate()
        .map(|(i, p)| SimAgent {
            entry: Arc::new(AgentEntry::new(
                Registration {
                    id: AgentId::new(p.name.clone()).expect("valid agent name"),
                    capabilities: caps.clone(),
                    swarms: Vec::new(),
                    weight: 1,
                    actor: actor.clone(),
                },
                i as u64,
                1,
                workload.capacity as usize,
            )),
            profile: p.clone(),
            rng: SmallRng::seed_from_u64(splitmix64(s.seed ^ splitmix64(0xa6e0 + i as u64))),
            breaker: CircuitBreaker::new(cfg.circuit_breaker.clone()),
            queue: VecDeque::new(),
            running: None,
            attempts: 0,
            busy_ns: 0,
        })
        .collect();
    let candidates: Candidates = agents.iter().map(|a| a.entry.clone()).collect::<Vec<_>>().into();

    let mut task_rng = SmallRng::seed_from_u64(splitmix64(s.seed ^ 0x7a5c));
    let tasks: Vec<SimTask> = ArrivalStream::new(workload, SmallRng::seed_from_u64(splitmix64(s.seed)))
        .take(s.tasks as usize)
        .enumerate()
        .map(|(k, t)| SimTask {
            task: Task::new_with_rng(caps.clone(), &mut task_rng).with_affinity_key(format!("session-{}", k % 1000)),
            // Virtual time starts at 1 ns: 0 means "never" to the load figures.
            arrival_ns: t + 1,
            phase_attempts: 0,
            tried: Vec::new(),
        })
        .collect();

    let mut sim = Sim {
        now: 1,
        seq: 0,
        events: BinaryHeap::new(),
        agents,
        candidates,
        tasks,
        waiters: VecDeque::new(),
        strategy,
        model,
        rng: SmallRng::seed_from_u64(splitmix64(s.seed ^ 0x0e7e)),
        max_attempts: settings.max_attempts,
        backoff: settings.backoff,
        decay_ns: settings.strategy_params.ewma_decay_ns,
        run_ns: workload.expected_run_ns(s.tasks),
        latencies: Vec::with_capacity(s.tasks as usize),
        completed: 0,
        failed: 0,
        failed_attempts: 0,
        last_event_ns: 1,
    };
    if let Some(first) = sim.tasks.first() {
        let at = first.arrival_ns;
        sim.schedule(at, Event::Arrival(0));
    }
    sim.run();
    debug_assert_eq!(sim.completed + sim.failed, s.tasks, "every task ends");
    debug_assert!(sim.agents.iter().all(|a| a.entry.load.in_flight() == 0 && a.queue.is_empty()));

    let attempts: u64 = sim.agents.iter().map(|a| a.attempts).sum();
    let agent_share: BTreeMap<String, f64> =
        sim.agents.iter().map(|a| (a.profile.name.clone(), a.attempts as f64 / attempts.max(1) as f64)).collect();
    let agent_mean_service_us: BTreeMap<String, f64> = sim
        .agents
        .iter()
        .map(|a| (a.profile.name.clone(), a.busy_ns as f64 / a.attempts.max(1) as f64 / 1e3))
        .collect();
    let q_learning = sim.model.as_ref().map(|m| m.stats());
    let first_arrival = sim.tasks.first().map_or(1, |t| t.arrival_ns);
    let span_s = (sim.last_event_ns.saturating_sub(first_arrival)).max(1) as f64 / 1e9;
    let lat = LatencySummary::of(&mut sim.latencies);
    RunReport {
        workload: workload.name.clone(),
        strategy: kind.to_string(),
        mode: "sim".into(),
        tasks: s.tasks,
        completed: sim.completed,
        failed: sim.failed,
        mean_us: lat.mean_us,
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        success_rate: sim.completed as f64 / s.tasks.max(1) as f64,
        throughput_per_s: sim.completed as f64 / span_s,
        mean_vs_round_robin: None,
        failed_attempts: sim.failed_attempts,
        agent_share,
        agent_mean_service_us,
        time_scale: 1.0,
        sleep_overshoot_us: None,
        q_learning,
        seed: s.seed,
        wall_ms: wall.elapsed().as_millis() as u64,
    }
}

impl Sim {
    fn schedule(&mut self, at: u64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    fn run(&mut self) {
        while let Some(Reverse((at, _, e))) = self.events.pop() {
            debug_assert!(at >= self.now, "time never goes back");
            self.now = at;
            self.last_event_ns = at;
            match e {
                Event::Arrival(ti) => {
                    if let Some(next) = self.tasks.get(ti + 1) {
                        let at = next.arrival_ns;
                        self.schedule(at, Event::Arrival(ti + 1));
                    }
                    self.route(ti);
                }
                Event::Retry(ti) => self.route(ti),
                Event::Finish(ai) => self.finish(ai),
            }
        }
    }

    /// Steps 3–5 of the pipeline for task `ti`: dispatch it, park it, or retry later.
    fn route(&mut self, ti: usize) {
        let mut skipped: Vec<u64> = Vec::new();
        let mut saturated: Vec<usize> = Vec::new();
        let mut reset = false;
        loop {
            let pick = {
                let t = &self.tasks[ti];
                let eligible = |e: &AgentEntry| !t.tried.contains(&e.seq) && !skipped.contains(&e.seq);
                self.strategy.select(
                    &self.candidates,
                    &Selection { task: &t.task, now_ns: self.now, eligible: &eligible },
                    &mut self.rng,
                )
            };
            match pick {
                Some(i) => {
                    let (admission, _) = self.agents[i].breaker.admit(self.now);
                    if !admission.is_allowed() {
                        skipped.push(i as u64);
                        continue;
                    }
                    let got_slot = self.agents[i].entry.bulkhead.try_acquire().map(|p| p.forget()).is_ok();
                    if got_slot {
                        self.dispatch(ti, i, admission.is_probe());
                        return;
                    }
                    self.agents[i].breaker.on_abandon(admission.is_probe());
                    skipped.push(i as u64);
                    saturated.push(i);
                }
                None if !saturated.is_empty() => {
                    saturated.truncate(WATCHED);
                    self.waiters.push_back(Waiter { task: ti, agents: saturated });
                    return;
                }
                None if !self.tasks[ti].tried.is_empty() && !reset => {
                    self.tasks[ti].tried.clear();
                    reset = true;
                }
                None => {
                    // No usable agent (every breaker open): spend an attempt, back off.
                    self.attempt_failed(ti);
                    return;
                }
            }
        }
    }

    /// Steps 6–8: the task joins agent `ai`'s queue.
    fn dispatch(&mut self, ti: usize, ai: usize, probe: bool) {
        let a = &mut self.agents[ai];
        let dispatch = LoadFigures::read(&a.entry.load, self.now, self.decay_ns);
        a.entry.load.begin();
        a.attempts += 1;
        a.queue.push_back(Job { task: ti, dispatch, granted_ns: self.now, probe });
        if a.running.is_none() {
            self.start_next(ai);
        }
    }

    fn start_next(&mut self, ai: usize) {
        let (now, run_ns) = (self.now, self.run_ns);
        let a = &mut self.agents[ai];
        let Some(job) = a.queue.pop_front() else { return };
        let (duration, ok) = a.profile.execute(&mut a.rng, now, run_ns);
        a.busy_ns += duration;
        a.running = Some((job, ok));
        self.schedule(now + duration, Event::Finish(ai));
    }

    /// Steps 9–11 for agent `ai`'s running task, then its next one, then a waiter.
    fn finish(&mut self, ai: usize) {
        let now = self.now;
        let (job, ok) = {
            let a = &mut self.agents[ai];
            let (job, ok) = a.running.take().expect("a finish event has a running job");
            let rtt = now - job.granted_ns;
            a.entry.load.end();
            a.entry.bulkhead.add_permits(1);
            a.entry.load.observe(now, rtt, ok, self.decay_ns);
            if ok {
                a.breaker.on_success(job.probe);
            } else {
                a.breaker.on_failure(now, job.probe);
            }
            self.strategy.observe(&AttemptFeedback {
                agent: &a.entry,
                candidates: &self.candidates,
                latency_ns: rtt,
                success: ok,
                now_ns: now,
                dispatch: job.dispatch,
            });
            (job, ok)
        };
        if let Some(model) = &self.model {
            model.pump(now);
        }
        self.start_next(ai);
        if ok {
            let t = &self.tasks[job.task];
            self.latencies.push(now - t.arrival_ns);
            self.completed += 1;
        } else {
            self.failed_attempts += 1;
            self.tasks[job.task].tried.push(ai as u64);
            self.attempt_failed(job.task);
        }
        self.serve_waiter(ai);
    }

    /// One attempt of `ti` is spent: retry after the backoff, or fail the task.
    fn attempt_failed(&mut self, ti: usize) {
        let t = &mut self.tasks[ti];
        t.phase_attempts += 1;
        if t.phase_attempts >= self.max_attempts {
            self.failed += 1;
        } else {
            let delay = self.backoff.delay(t.phase_attempts, &mut self.rng);
            self.schedule(self.now + delay.as_nanos() as u64, Event::Retry(ti));
        }
    }

    /// A slot freed on agent `ai`: the first task waiting for it takes it.
    fn serve_waiter(&mut self, ai: usize) {
        let Some(pos) = self.waiters.iter().position(|w| w.agents.contains(&ai)) else { return };
        if self.agents[ai].entry.bulkhead.try_acquire().map(|p| p.forget()).is_err() {
            return;
        }
        let w = self.waiters.remove(pos).expect("found above");
        let (admission, _) = self.agents[ai].breaker.admit(self.now);
        if admission.is_allowed() {
            self.dispatch(w.task, ai, admission.is_probe());
        } else {
            self.agents[ai].entry.bulkhead.add_permits(1);
            self.route(w.task);
        }
    }
}
