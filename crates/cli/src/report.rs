//! The demo's summary: a table for people, one JSON object for programs.

use std::time::Duration;

use erlmcp_flow::NodeStats;
use hdrhistogram::Histogram;
use serde::Serialize;

/// What every run of tasks reports (`flow demo`, a cluster node's `run`), flattened into
/// the JSON of the report that carries it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunCounts {
    pub(crate) accepted: u64,
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) dead_lettered: u64,
    /// Acknowledged (or submitted) tasks without a terminal state: 0 unless a task was lost.
    pub(crate) lost: u64,
    pub(crate) retries: u64,
    pub(crate) redeliveries: u64,
    pub(crate) breaker_opens: u64,
    pub(crate) restarts: u64,
    pub(crate) throughput_per_s: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) elapsed_ms: u64,
}

impl RunCounts {
    /// The run between the node statistics `before` (`None`: since the node started) and
    /// `after`, which took `elapsed` for `submitted` tasks, with latencies from `latency_us`.
    pub(crate) fn measure(
        before: Option<&NodeStats>,
        after: &NodeStats,
        submitted: u64,
        elapsed: Duration,
        latency_us: &Histogram<u64>,
    ) -> Self {
        let since = |f: fn(&NodeStats) -> u64| f(after) - before.map_or(0, f);
        let accepted = since(|s| s.flow.accepted);
        let completed = since(|s| s.flow.completed);
        let failed = since(|s| s.flow.failed);
        let dead_lettered = since(|s| s.flow.dead_lettered);
        let terminal = completed + failed + dead_lettered;
        RunCounts {
            accepted,
            submitted,
            completed,
            failed,
            dead_lettered,
            lost: accepted.max(submitted).saturating_sub(terminal),
            retries: since(|s| s.flow.retries),
            redeliveries: since(|s| s.flow.redeliveries),
            breaker_opens: since(|s| s.flow.breaker_opens),
            restarts: since(|s| s.restarts),
            throughput_per_s: terminal as f64 / elapsed.as_secs_f64(),
            p50_us: latency_us.value_at_quantile(0.5),
            p99_us: latency_us.value_at_quantile(0.99),
            elapsed_ms: elapsed.as_millis() as u64,
        }
    }
}

/// Everything `flow demo` reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DemoReport {
    #[serde(flatten)]
    pub(crate) run: RunCounts,
    pub(crate) agent_restarts: u64,
    pub(crate) service_restarts: u64,
    pub(crate) agent_panics: u64,
    pub(crate) timeouts: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    pub(crate) strategy: String,
    pub(crate) agents: usize,
    pub(crate) swarms: u32,
    pub(crate) tasks: u64,
    pub(crate) crash_rate: f64,
    pub(crate) seed: u64,
    pub(crate) agent_restart_intensity: String,
    pub(crate) dead_letter_reasons: std::collections::BTreeMap<String, u64>,
}

impl DemoReport {
    pub(crate) fn print_table(&self) {
        let rows: Vec<(&str, String)> = vec![
            ("strategy", self.strategy.clone()),
            ("agents / swarms", format!("{} / {}", self.agents, self.swarms)),
            ("crash rate", format!("{}", self.crash_rate)),
            ("seed", self.seed.to_string()),
            ("accepted", self.run.accepted.to_string()),
            ("  completed", self.run.completed.to_string()),
            ("  failed", self.run.failed.to_string()),
            ("  dead-lettered", self.run.dead_lettered.to_string()),
            ("  LOST", self.run.lost.to_string()),
            ("retries", self.run.retries.to_string()),
            ("redeliveries (agent died first)", self.run.redeliveries.to_string()),
            ("agent panics", self.agent_panics.to_string()),
            ("breaker opens", self.run.breaker_opens.to_string()),
            (
                "restarts (agents + services)",
                format!("{} ({} + {})", self.run.restarts, self.agent_restarts, self.service_restarts),
            ),
            ("agent restart intensity", self.agent_restart_intensity.clone()),
            ("elapsed", format!("{:.2} s", self.run.elapsed_ms as f64 / 1000.0)),
            ("throughput", format!("{:.0} tasks/s", self.run.throughput_per_s)),
            (
                "latency p50 / p99 / p99.9 / max",
                format!("{} / {} / {} / {} µs", self.run.p50_us, self.run.p99_us, self.p999_us, self.max_us),
            ),
        ];
        let w = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        println!("erlmcp-flow demo");
        println!("{}", "─".repeat(w + 24));
        for (k, v) in rows {
            println!("{k:<w$}  {v}");
        }
        for (reason, n) in &self.dead_letter_reasons {
            println!("dead letter: {n} × {reason}");
        }
        println!("{}", "─".repeat(w + 24));
        println!(
            "invariant: accepted {} = completed {} + failed {} + dead-lettered {} + lost {}",
            self.run.accepted, self.run.completed, self.run.failed, self.run.dead_lettered, self.run.lost
        );
    }
}
