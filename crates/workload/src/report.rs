//! The result of one run (one workload, one strategy, one mode) and the comparison table.

use std::collections::BTreeMap;

use erlmcp_flow::router::q_learning::QModelStats;
use serde::Serialize;

/// Latency summary of the completed tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Mean, µs.
    pub mean_us: f64,
    /// Median (nearest rank), µs.
    pub p50_us: f64,
    /// 99th percentile (nearest rank), µs.
    pub p99_us: f64,
}

impl LatencySummary {
    /// From latencies in ns (sorted in place).
    pub fn of(latencies_ns: &mut [u64]) -> Self {
        if latencies_ns.is_empty() {
            return Self::default();
        }
        latencies_ns.sort_unstable();
        let n = latencies_ns.len();
        let rank = |p: f64| latencies_ns[((n as f64 * p).ceil() as usize).clamp(1, n) - 1] as f64 / 1e3;
        let mean = latencies_ns.iter().map(|&l| l as f64).sum::<f64>() / n as f64 / 1e3;
        Self { mean_us: mean, p50_us: rank(0.5), p99_us: rank(0.99) }
    }
}

/// One run: a workload under one strategy in one mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Workload name.
    pub workload: String,
    /// Strategy (config spelling).
    pub strategy: String,
    /// `sim` (discrete-event, virtual time) or `actors` (real node, real time).
    pub mode: String,
    /// Tasks submitted.
    pub tasks: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks that failed after their retries (or could not be placed).
    pub failed: u64,
    /// Mean latency (submission → completion) of completed tasks, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// `completed / tasks`.
    pub success_rate: f64,
    /// Completed tasks per second of the run (virtual seconds in `sim` mode).
    pub throughput_per_s: f64,
    /// `mean_us / mean_us of round_robin` on the same workload, mode and seed.
    pub mean_vs_round_robin: Option<f64>,
    /// Attempts that ended in a failure (each retried elsewhere).
    pub failed_attempts: u64,
    /// Share of attempts each agent received.
    pub agent_share: BTreeMap<String, f64>,
    /// Mean measured execution time of each agent, µs (failures included: they take
    /// a quarter of a draw).
    pub agent_mean_service_us: BTreeMap<String, f64>,
    /// Durations of the run relative to the workload's profile (actors mode: see
    /// `erlmcp_flow_workload::actors`; sim: 1).
    pub time_scale: f64,
    /// The timer overshoot compensated in actors mode, µs.
    pub sleep_overshoot_us: Option<f64>,
    /// The Q-learning model's counters after the run (Q-learning runs only).
    pub q_learning: Option<QModelStats>,
    /// Seed of the run.
    pub seed: u64,
    /// Wall-clock time the run took, ms.
    pub wall_ms: u64,
}

/// Fills `mean_vs_round_robin` of every report from the round-robin report of the same
/// workload and mode.
pub fn fill_ratios(reports: &mut [RunReport]) {
    let rr: Vec<(String, String, f64)> = reports
        .iter()
        .filter(|r| r.strategy == "round_robin")
        .map(|r| (r.workload.clone(), r.mode.clone(), r.mean_us))
        .collect();
    for r in reports.iter_mut() {
        r.mean_vs_round_robin = rr
            .iter()
            .find(|(w, m, _)| *w == r.workload && *m == r.mode)
            .filter(|(_, _, mean)| *mean > 0.0)
            .map(|(_, _, mean)| r.mean_us / mean);
    }
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

/// The human table: one block per workload.
pub fn table(reports: &[RunReport]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut workloads: Vec<&str> = Vec::new();
    for r in reports {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    let _ = writeln!(
        out,
        "{:<14} {:<18} {:>10} {:>10} {:>10} {:>8} {:>10} {:>8}",
        "workload", "strategy", "mean", "p50", "p99", "success", "tasks/s", "vs RR"
    );
    for w in workloads {
        for r in reports.iter().filter(|r| r.workload == w) {
            let ratio = r.mean_vs_round_robin.map_or_else(|| "-".into(), |x| format!("{:+.0} %", (x - 1.0) * 100.0));
            let _ = writeln!(
                out,
                "{:<14} {:<18} {:>10} {:>10} {:>10} {:>7.2}% {:>10.0} {:>8}",
                r.workload,
                r.strategy,
                ms(r.mean_us),
                ms(r.p50_us),
                ms(r.p99_us),
                r.success_rate * 100.0,
                r.throughput_per_s,
                ratio
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles are nearest-rank and the mean is exact.
    #[test]
    fn summary() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1_000).collect();
        let s = LatencySummary::of(&mut v);
        assert_eq!(s, LatencySummary { mean_us: 50.5, p50_us: 50.0, p99_us: 99.0 });
        assert_eq!(LatencySummary::of(&mut []), LatencySummary::default());
    }
}
