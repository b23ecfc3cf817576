//! Real-actor mode: a real [`FlowNode`] (router, registry, breakers, bulkheads, retries,
//! the QLearning actor and its model) routing a workload to real agent actors whose
//! service times are tokio sleeps drawn from the same profiles as the simulation.
//!
//! Arrivals follow the same seeded stream as the discrete-event mode; the generator
//! sleeps until each arrival time and submits. Latency is measured by the submitter, from
//! `submit` to the outcome. A degrading agent degrades at the same share of the run's
//! *expected* duration as in the simulation.
//!
//! **Timer fidelity.** tokio's timer has a 1 ms resolution and a sleep overshoots its
//! request by about 1.1 ms on average here (measured: a 2 ms sleep takes 3.1 ms, a 0.5 ms
//! one 1.6 ms). Left alone, that adds ~50 % to a 2 ms service time, squeezes the speed
//! spread and pushes a 70 %-load workload past 90 %: a different experiment. So the
//! runner (1) stretches the workload in time by [`ActorSettings::time_scale`] (default
//! 2: service times and burst periods doubled, arrival rates halved, the same
//! utilisation), and (2) measures the mean overshoot at start ([`timer_overshoot`]) and
//! shortens every service sleep by it. Each agent measures what its executions really
//! took; the report carries those means ([`RunReport::agent_mean_service_us`]) so the
//! effective workload can be checked against the profile. Arrivals still come in small
//! per-millisecond batches.
//!
//! Each run starts a fresh node (and, for Q-learning, a fresh model file in the given
//! directory, deleted afterwards), so no run learns from another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow::core::config::FlowConfig;
use erlmcp_flow::core::{AgentError, AgentId, CapabilitySet, StrategyKind, SubmitError, Task};
use erlmcp_flow::registry::splitmix64;
use erlmcp_flow::{Agent, AgentSpec, FlowNode, StartError};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::profile::{AgentProfile, ArrivalStream, Workload};
use crate::report::{LatencySummary, RunReport};
use crate::sim::run_config;

/// Settings of a real-actor run.
#[derive(Debug, Clone)]
pub struct ActorSettings {
    /// Tasks to route.
    pub tasks: u64,
    /// Seed of the arrivals, the agents' draws and the node's routing choices.
    pub seed: u64,
    /// Node configuration; the strategy, bulkhead, seed and model path are set per run.
    pub config: FlowConfig,
    /// Directory for the Q-learning model files of the runs.
    pub model_dir: PathBuf,
    /// Every duration of the workload is multiplied by this (see the module docs).
    pub time_scale: f64,
    /// Mean sleep overshoot to compensate; `None`: measured at the start of the run.
    pub sleep_overshoot: Option<Duration>,
}

/// Why a real-actor run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActorRunError {
    /// The node did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// An agent could not be spawned.
    #[error("cannot spawn agent: {0}")]
    Spawn(String),
    /// A submission was refused.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// Tasks were still open long after the last arrival.
    #[error("{0} tasks still open 60 s after the last arrival")]
    Stuck(u64),
}

/// Total and count of one agent's measured execution times.
#[derive(Debug, Default)]
struct ServiceMeter {
    total_ns: AtomicU64,
    count: AtomicU64,
}

/// An agent that sleeps for its profile's service time and fails at its failure rate.
#[derive(Debug)]
struct SleepAgent {
    profile: AgentProfile,
    rng: SmallRng,
    start: Instant,
    run_ns: u64,
    overshoot_ns: u64,
    meter: Arc<ServiceMeter>,
}

impl Agent for SleepAgent {
    async fn handle(&mut self, _task: &Task) -> Result<Bytes, AgentError> {
        let began = Instant::now();
        let elapsed = began.saturating_duration_since(self.start).as_nanos() as u64;
        let (ns, ok) = self.profile.execute(&mut self.rng, elapsed, self.run_ns);
        tokio::time::sleep(Duration::from_nanos(ns.saturating_sub(self.overshoot_ns))).await;
        self.meter.total_ns.fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.meter.count.fetch_add(1, Ordering::Relaxed);
        if ok { Ok(Bytes::new()) } else { Err(AgentError::Retryable(format!("{} failed", self.profile.name))) }
    }
}

/// The mean time by which a tokio sleep of a few milliseconds overshoots its request on
/// the current runtime: 8 concurrent sleepers × 25 sleeps of 2 ms (about 80 ms).
pub async fn timer_overshoot() -> Duration {
    const REQUEST: Duration = Duration::from_millis(2);
    let sleepers: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async {
                let mut over = Duration::ZERO;
                for _ in 0..25 {
                    let t = Instant::now();
                    tokio::time::sleep(REQUEST).await;
                    over += t.elapsed().saturating_sub(REQUEST);
                }
                over / 25
            })
        })
        .collect();
    let mut total = Duration::ZERO;
    for s in sleepers {
        total += s.await.unwrap_or_default();
    }
    total / 8
}

/// Runs `workload` under strategy `kind` on a real node.
pub async fn run_actors(
    workload: &Workload,
    kind: StrategyKind,
    s: &ActorSettings,
) -> Result<RunReport, ActorRunError> {
    let wall = std::time::Instant::now();
    let overshoot = match s.sleep_overshoot {
        Some(d) => d,
        None => timer_overshoot().await,
    };
    let nominal = workload;
    let workload = &workload.time_scaled(s.time_scale);
    let mut cfg = run_config(&s.config, workload, kind, s.seed);
    let model_path = s.model_dir.join(format!("{}-{}-{}.qtable", workload.name, kind, std::process::id()));
    let _ = std::fs::remove_file(&model_path);
    cfg.q_learning.model_path = Some(model_path.clone());
    cfg.q_learning.persist_interval_ms = 0;
    let node = FlowNode::start(cfg).await?;

    let run_ns = workload.expected_run_ns(s.tasks);
    // Agents and arrivals share one origin, a little ahead so that spawning is done.
    let start = Instant::now() + Duration::from_millis(20);
    let meters: Vec<Arc<ServiceMeter>> = workload.agents.iter().map(|_| Arc::default()).collect();
    for (i, profile) in workload.agents.iter().enumerate() {
        let spec = AgentSpec::parse(&profile.name, ["work"]).map_err(|e| ActorRunError::Spawn(e.to_string()))?;
        let (profile, seed, meter) = (profile.clone(), s.seed, meters[i].clone());
        let overshoot_ns = overshoot.as_nanos() as u64;
        let incarnation = std::sync::atomic::AtomicU64::new(0);
        node.spawn_agent(spec, move || SleepAgent {
            profile: profile.clone(),
            rng: SmallRng::seed_from_u64(splitmix64(
                seed ^ splitmix64(0xa6e0 + i as u64)
                    ^ incarnation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 48,
            )),
            start,
            run_ns,
            overshoot_ns,
            meter: meter.clone(),
        })
        .await
        .map_err(|e| ActorRunError::Spawn(e.to_string()))?;
    }

    let caps = CapabilitySet::parse(["work"]).expect("valid capability");
    let mut task_rng = SmallRng::seed_from_u64(splitmix64(s.seed ^ 0x7a5c));
    let arrivals = ArrivalStream::new(workload, SmallRng::seed_from_u64(splitmix64(s.seed)));
    let mut waits = Vec::with_capacity(s.tasks as usize);
    for (k, t) in arrivals.take(s.tasks as usize).enumerate() {
        tokio::time::sleep_until(start + Duration::from_nanos(t)).await;
        let task = Task::new_with_rng(caps.clone(), &mut task_rng).with_affinity_key(format!("session-{}", k % 1000));
        let submitted = Instant::now();
        let handle = node.submit(task).await?;
        waits.push(tokio::spawn(async move {
            let outcome = handle.await;
            let done = Instant::now();
            (done.duration_since(submitted).as_nanos() as u64, done, outcome.is_completed())
        }));
    }
    let mut latencies = Vec::with_capacity(waits.len());
    let (mut completed, mut failed) = (0u64, 0u64);
    let mut last = start;
    for w in waits {
        let (lat, done, ok) = w.await.expect("waiters do not panic");
        last = last.max(done);
        if ok {
            completed += 1;
            latencies.push(lat);
        } else {
            failed += 1;
        }
    }
    if !node.wait_idle(Duration::from_secs(60)).await {
        let open = node.stats().flow.in_flight;
        node.shutdown(Duration::from_secs(1)).await;
        return Err(ActorRunError::Stuck(open));
    }

    let mut attempts = BTreeMap::new();
    let mut failed_attempts = 0;
    for p in &workload.agents {
        let id = AgentId::new(p.name.clone()).expect("valid agent name");
        let (done, bad) = node.registry().find(&id).map_or((0, 0), |e| (e.load.completed(), e.load.failed()));
        failed_attempts += bad;
        attempts.insert(p.name.clone(), done + bad);
    }
    let total: u64 = attempts.values().sum();
    let agent_share = attempts.into_iter().map(|(k, v)| (k, v as f64 / total.max(1) as f64)).collect();
    let agent_mean_service_us = workload
        .agents
        .iter()
        .zip(&meters)
        .map(|(p, m)| {
            let n = m.count.load(Ordering::Relaxed).max(1);
            (p.name.clone(), m.total_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e3)
        })
        .collect();
    let q_learning = (kind == StrategyKind::QLearning).then(|| node.q_model().stats());
    node.shutdown(Duration::from_secs(2)).await;
    let _ = std::fs::remove_file(&model_path);

    let lat = LatencySummary::of(&mut latencies);
    let span_s = last.saturating_duration_since(start).as_secs_f64().max(1e-9);
    Ok(RunReport {
        workload: nominal.name.clone(),
        strategy: kind.to_string(),
        mode: "actors".into(),
        tasks: s.tasks,
        completed,
        failed,
        mean_us: lat.mean_us,
        p50_us: lat.p50_us,
        p99_us: lat.p99_us,
        success_rate: completed as f64 / s.tasks.max(1) as f64,
        throughput_per_s: completed as f64 / span_s,
        mean_vs_round_robin: None,
        failed_attempts,
        agent_share,
        agent_mean_service_us,
        time_scale: s.time_scale,
        sleep_overshoot_us: Some(overshoot.as_secs_f64() * 1e6),
        q_learning,
        seed: s.seed,
        wall_ms: wall.elapsed().as_millis() as u64,
    })
}
