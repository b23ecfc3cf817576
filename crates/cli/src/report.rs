//! The demo's summary: a table for people, one JSON object for programs.

use serde::Serialize;

/// Everything `flow demo` reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DemoReport {
    pub(crate) accepted: u64,
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) lost: u64,
    pub(crate) retries: u64,
    pub(crate) redeliveries: u64,
    pub(crate) breaker_opens: u64,
    pub(crate) restarts: u64,
    pub(crate) agent_restarts: u64,
    pub(crate) service_restarts: u64,
    pub(crate) agent_panics: u64,
    pub(crate) timeouts: u64,
    pub(crate) throughput_per_s: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    pub(crate) elapsed_ms: u64,
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
            ("accepted", self.accepted.to_string()),
            ("  completed", self.completed.to_string()),
            ("  failed", self.failed.to_string()),
            ("  dead-lettered", self.dead_lettered.to_string()),
            ("  LOST", self.lost.to_string()),
            ("retries", self.retries.to_string()),
            ("redeliveries (agent died first)", self.redeliveries.to_string()),
            ("agent panics", self.agent_panics.to_string()),
            ("breaker opens", self.breaker_opens.to_string()),
            (
                "restarts (agents + services)",
                format!("{} ({} + {})", self.restarts, self.agent_restarts, self.service_restarts),
            ),
            ("agent restart intensity", self.agent_restart_intensity.clone()),
            ("elapsed", format!("{:.2} s", self.elapsed_ms as f64 / 1000.0)),
            ("throughput", format!("{:.0} tasks/s", self.throughput_per_s)),
            (
                "latency p50 / p99 / p99.9 / max",
                format!("{} / {} / {} / {} µs", self.p50_us, self.p99_us, self.p999_us, self.max_us),
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
            self.accepted, self.completed, self.failed, self.dead_lettered, self.lost
        );
    }
}
