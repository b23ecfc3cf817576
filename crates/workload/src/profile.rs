//! What a workload is made of: agents with service-time distributions, failure rates and
//! degradation, a bulkhead capacity, and an arrival process; plus the four preset
//! workloads of `flow bench routing`.
//!
//! Times are microseconds. Service times are a few milliseconds so that the real-actor
//! mode can reproduce them with tokio sleeps (whose resolution is 1 ms); the discrete-
//! event mode runs the same numbers in virtual time.

use rand::Rng;
use serde::Serialize;

/// Share of its drawn service time a failing execution takes (failures answer early).
pub const FAIL_FRACTION: f64 = 0.25;

/// A service-time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ServiceTime {
    /// Half the mean as a floor plus an exponential tail with the other half: a
    /// coefficient of variation of 0.5, typical of steady request processing.
    Shifted {
        /// Mean, µs.
        mean_us: f64,
    },
    /// Mostly `Shifted { base_us }`, but with probability `spike_prob` a draw is
    /// `spike_factor` times longer (a GC pause, a cold cache, a slow dependency).
    Erratic {
        /// Mean of the ordinary draws, µs.
        base_us: f64,
        /// Probability of a spike.
        spike_prob: f64,
        /// How much longer a spike is.
        spike_factor: f64,
    },
}

impl ServiceTime {
    /// The same shape with every duration multiplied by `factor`.
    pub fn scaled(self, factor: f64) -> Self {
        match self {
            ServiceTime::Shifted { mean_us } => ServiceTime::Shifted { mean_us: mean_us * factor },
            ServiceTime::Erratic { base_us, spike_prob, spike_factor } => {
                ServiceTime::Erratic { base_us: base_us * factor, spike_prob, spike_factor }
            }
        }
    }

    /// One draw, µs.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let shifted = |mean: f64, rng: &mut R| {
            let u: f64 = rng.random::<f64>();
            mean * 0.5 + mean * 0.5 * -(1.0 - u).ln()
        };
        match *self {
            ServiceTime::Shifted { mean_us } => shifted(mean_us, rng),
            ServiceTime::Erratic { base_us, spike_prob, spike_factor } => {
                let d = shifted(base_us, rng);
                if rng.random::<f64>() < spike_prob { d * spike_factor } else { d }
            }
        }
    }

    /// The mean, µs.
    pub fn mean_us(&self) -> f64 {
        match *self {
            ServiceTime::Shifted { mean_us } => mean_us,
            ServiceTime::Erratic { base_us, spike_prob, spike_factor } => {
                base_us * (1.0 - spike_prob + spike_prob * spike_factor)
            }
        }
    }
}

/// An agent that gets worse mid-run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Degradation {
    /// When, as a share of the run's expected duration (tasks / arrival rate).
    pub at_fraction: f64,
    /// Service times are multiplied by this from then on.
    pub slowdown: f64,
    /// Failure rate from then on.
    pub failure_rate: f64,
}

/// One agent of a workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentProfile {
    /// Agent id.
    pub name: String,
    /// Service times.
    pub service: ServiceTime,
    /// Probability that an execution fails (retryable).
    pub failure_rate: f64,
    /// Mid-run degradation, if any.
    pub degrade: Option<Degradation>,
}

impl AgentProfile {
    fn new(name: impl Into<String>, service: ServiceTime) -> Self {
        Self { name: name.into(), service, failure_rate: 0.0, degrade: None }
    }

    /// Service-time multiplier and failure rate at `elapsed_ns` into a run whose expected
    /// duration is `run_ns`.
    pub fn condition_at(&self, elapsed_ns: u64, run_ns: u64) -> (f64, f64) {
        match self.degrade {
            Some(d) if elapsed_ns as f64 >= d.at_fraction * run_ns as f64 => (d.slowdown, d.failure_rate),
            _ => (1.0, self.failure_rate),
        }
    }

    /// One execution at `elapsed_ns` into a run of expected duration `run_ns`: how long it
    /// takes (ns) and whether it succeeds.
    pub fn execute<R: Rng + ?Sized>(&self, rng: &mut R, elapsed_ns: u64, run_ns: u64) -> (u64, bool) {
        let (slowdown, failure_rate) = self.condition_at(elapsed_ns, run_ns);
        let service_us = self.service.sample(rng) * slowdown;
        let ok = rng.random::<f64>() >= failure_rate;
        let us = if ok { service_us } else { service_us * FAIL_FRACTION };
        ((us * 1_000.0).round().max(1.0) as u64, ok)
    }
}

/// Periodic arrival bursts: `burst_ms` of every `period_ms` arrive at `burst_factor` ×
/// the mean rate, the rest of the period slower, so the mean rate is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Burst {
    /// Period, ms.
    pub period_ms: f64,
    /// Burst length, ms (< period).
    pub burst_ms: f64,
    /// Rate during a burst relative to the mean (> 1, < period / burst).
    pub burst_factor: f64,
}

impl Burst {
    /// Rate multiplier outside bursts.
    pub fn quiet_factor(&self) -> f64 {
        (self.period_ms - self.burst_ms * self.burst_factor) / (self.period_ms - self.burst_ms)
    }
}

/// A workload: agents, load and arrival process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// Name (`homogeneous`, `heterogeneous`, `degrading`, `bursty`, or your own).
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// The agents.
    pub agents: Vec<AgentProfile>,
    /// Mean arrival rate as a share of the agents' total service capacity (before any
    /// degradation), in (0, 1).
    pub utilisation: f64,
    /// Tasks queued or running per agent (the bulkhead), like
    /// `router.bulkhead_max_concurrent`.
    pub capacity: u32,
    /// Arrival bursts (none: a Poisson process).
    pub burst: Option<Burst>,
}

impl Workload {
    /// Tasks per second all agents complete when busy all the time (before degradation).
    pub fn capacity_per_s(&self) -> f64 {
        self.agents.iter().map(|a| 1e6 / a.service.mean_us()).sum()
    }

    /// Mean arrival rate, tasks/s.
    pub fn arrival_rate_per_s(&self) -> f64 {
        self.utilisation * self.capacity_per_s()
    }

    /// The same workload with every duration (service times, burst periods) multiplied
    /// by `factor`: the same utilisation and shape on a slower clock (arrival rates are
    /// divided by `factor`).
    pub fn time_scaled(&self, factor: f64) -> Workload {
        let mut w = self.clone();
        for a in &mut w.agents {
            a.service = a.service.scaled(factor);
        }
        if let Some(b) = &mut w.burst {
            b.period_ms *= factor;
            b.burst_ms *= factor;
        }
        w
    }

    /// Expected duration of a run of `tasks` tasks, ns.
    pub fn expected_run_ns(&self, tasks: u64) -> u64 {
        (tasks as f64 / self.arrival_rate_per_s() * 1e9) as u64
    }

    /// The four preset workloads of `flow bench routing`.
    pub fn presets() -> Vec<Workload> {
        vec![Self::homogeneous(), Self::heterogeneous(), Self::degrading(), Self::bursty()]
    }

    /// A preset by name.
    pub fn preset(name: &str) -> Option<Workload> {
        Self::presets().into_iter().find(|w| w.name == name)
    }

    /// Names of the presets.
    pub fn preset_names() -> Vec<String> {
        Self::presets().into_iter().map(|w| w.name).collect()
    }

    /// 8 identical agents (4 ms mean), 70 % load.
    pub fn homogeneous() -> Workload {
        Workload {
            name: "homogeneous".into(),
            description: "8 identical agents (4 ms mean service), Poisson arrivals at 70 % of capacity".into(),
            agents: (0..8)
                .map(|i| AgentProfile::new(format!("agent-{i}"), ServiceTime::Shifted { mean_us: 4_000.0 }))
                .collect(),
            utilisation: 0.7,
            capacity: 8,
            burst: None,
        }
    }

    /// A 4× speed spread (2, 4 and 8 ms), an erratic agent and a flaky fast one, 70 % load.
    pub fn heterogeneous() -> Workload {
        let mut agents = Vec::new();
        for i in 0..3 {
            agents.push(AgentProfile::new(format!("fast-{i}"), ServiceTime::Shifted { mean_us: 2_000.0 }));
        }
        agents[2].failure_rate = 0.05;
        for i in 0..2 {
            agents.push(AgentProfile::new(format!("medium-{i}"), ServiceTime::Shifted { mean_us: 4_000.0 }));
        }
        for i in 0..2 {
            agents.push(AgentProfile::new(format!("slow-{i}"), ServiceTime::Shifted { mean_us: 8_000.0 }));
        }
        agents.push(AgentProfile::new(
            "erratic-0",
            ServiceTime::Erratic { base_us: 2_000.0, spike_prob: 0.1, spike_factor: 10.0 },
        ));
        Workload {
            name: "heterogeneous".into(),
            description: "3 fast (2 ms, one failing 5 %), 2 medium (4 ms), 2 slow (8 ms), 1 erratic (2 ms, 10 % spikes ×10); 70 % load".into(),
            agents,
            utilisation: 0.7,
            capacity: 8,
            burst: None,
        }
    }

    /// 8 identical agents (4 ms); a third into the run one becomes 8× slower and fails 10 %.
    pub fn degrading() -> Workload {
        let mut w = Self::homogeneous();
        w.name = "degrading".into();
        w.description =
            "8 identical agents (4 ms); at 1/3 of the run agent-0 turns 8x slower and fails 10 %; 60 % load".into();
        w.utilisation = 0.6;
        w.agents[0].degrade = Some(Degradation { at_fraction: 1.0 / 3.0, slowdown: 8.0, failure_rate: 0.1 });
        w
    }

    /// 4 agents at 3 ms and 4 at 6 ms; 60 % mean load arriving in bursts (100 ms of every
    /// 500 ms at 2.5× the mean rate, i.e. 150 % of capacity).
    pub fn bursty() -> Workload {
        let mut agents = Vec::new();
        for i in 0..4 {
            agents.push(AgentProfile::new(format!("quick-{i}"), ServiceTime::Shifted { mean_us: 3_000.0 }));
        }
        for i in 0..4 {
            agents.push(AgentProfile::new(format!("steady-{i}"), ServiceTime::Shifted { mean_us: 6_000.0 }));
        }
        Workload {
            name: "bursty".into(),
            description:
                "4 agents at 3 ms, 4 at 6 ms; 60 % mean load, bursts of 100 ms per 500 ms at 150 % of capacity".into(),
            agents,
            utilisation: 0.6,
            capacity: 8,
            burst: Some(Burst { period_ms: 500.0, burst_ms: 100.0, burst_factor: 2.5 }),
        }
    }
}

/// The arrival times (ns from the start of the run) of a workload's tasks: a Poisson
/// process at the workload's rate, modulated by its bursts. Deterministic for a seed.
#[derive(Debug)]
pub struct ArrivalStream<R> {
    rng: R,
    rate_per_ns: f64,
    burst: Option<Burst>,
    now_ns: f64,
}

impl<R: Rng> ArrivalStream<R> {
    /// Arrivals of `workload` drawn from `rng`.
    pub fn new(workload: &Workload, rng: R) -> Self {
        Self { rng, rate_per_ns: workload.arrival_rate_per_s() / 1e9, burst: workload.burst, now_ns: 0.0 }
    }

    /// Rate multiplier at `t_ns` and when it next changes.
    fn phase(&self, t_ns: f64) -> (f64, f64) {
        match self.burst {
            None => (1.0, f64::INFINITY),
            Some(b) => {
                let (period, burst) = (b.period_ms * 1e6, b.burst_ms * 1e6);
                let start = (t_ns / period).floor() * period;
                if t_ns - start < burst { (b.burst_factor, start + burst) } else { (b.quiet_factor(), start + period) }
            }
        }
    }
}

impl<R: Rng> Iterator for ArrivalStream<R> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            let (factor, until) = self.phase(self.now_ns);
            let u: f64 = self.rng.random::<f64>();
            let gap = -(1.0 - u).ln() / (self.rate_per_ns * factor);
            if self.now_ns + gap < until {
                self.now_ns += gap;
                return Some(self.now_ns as u64);
            }
            // Exponential gaps are memoryless: restart the draw at the phase boundary.
            self.now_ns = until;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    /// Sample means match the documented means (shifted and erratic distributions).
    #[test]
    fn service_means() {
        let mut rng = SmallRng::seed_from_u64(1);
        for s in [
            ServiceTime::Shifted { mean_us: 2_000.0 },
            ServiceTime::Erratic { base_us: 2_000.0, spike_prob: 0.1, spike_factor: 10.0 },
        ] {
            let n = 200_000;
            let mean = (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((mean / s.mean_us() - 1.0).abs() < 0.02, "{s:?}: {mean}");
        }
    }

    /// Arrivals come at the workload's mean rate, with or without bursts, and bursts
    /// really are denser than the quiet part of each period.
    #[test]
    fn arrival_rates() {
        for w in Workload::presets() {
            let n = 100_000;
            let last = ArrivalStream::new(&w, SmallRng::seed_from_u64(2)).take(n).last().unwrap();
            let rate = n as f64 / (last as f64 / 1e9);
            assert!((rate / w.arrival_rate_per_s() - 1.0).abs() < 0.03, "{}: {rate}", w.name);
        }
        let w = Workload::bursty();
        let b = w.burst.unwrap();
        let (mut burst, mut quiet) = (0u32, 0u32);
        for t in ArrivalStream::new(&w, SmallRng::seed_from_u64(3)).take(50_000) {
            if (t as f64 % (b.period_ms * 1e6)) < b.burst_ms * 1e6 { burst += 1 } else { quiet += 1 }
        }
        // Per unit of time: burst_factor vs quiet_factor.
        let ratio = (f64::from(burst) / b.burst_ms) / (f64::from(quiet) / (b.period_ms - b.burst_ms));
        let expected = b.burst_factor / b.quiet_factor();
        assert!((ratio / expected - 1.0).abs() < 0.05, "{ratio} vs {expected}");
    }

    /// A degrading agent changes at the documented point of the run.
    #[test]
    fn degradation_switches_at_its_fraction() {
        let w = Workload::degrading();
        let a = &w.agents[0];
        assert_eq!(a.condition_at(0, 3_000), (1.0, 0.0));
        assert_eq!(a.condition_at(999, 3_000), (1.0, 0.0));
        assert_eq!(a.condition_at(1_001, 3_000), (8.0, 0.1));
        assert_eq!(w.agents[1].condition_at(2_999, 3_000), (1.0, 0.0));
    }
}
