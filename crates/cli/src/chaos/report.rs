//! The report of a chaos run: per fault, per fault kind, throughput over time, the Raft
//! churn seen, and the checker's verdict. A table for people, one JSON object for programs
//! (also saved as `report.json` in the run directory).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::Verdict;

/// What happened to one scheduled fault.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FaultOutcome {
    /// Scheduled injection, ms after the workload started.
    pub(crate) at_ms: u64,
    /// Fault kind.
    pub(crate) kind: String,
    /// The victims as injected (names), or why it was skipped.
    pub(crate) victims: Vec<String>,
    /// Why it was not injected.
    pub(crate) skipped: Option<String>,
    /// The leader just before the injection.
    pub(crate) leader_before: Option<String>,
    /// Injection to the first poll in which a node on the other side of the fault saw a
    /// victim unreachable, ms.
    pub(crate) detected_ms: Option<u64>,
    /// When the leader was a victim: injection to the first poll in which a non-victim
    /// named a new leader, ms.
    pub(crate) failover_ms: Option<u64>,
    /// When it was healed, ms after the workload started.
    pub(crate) healed_at_ms: Option<u64>,
    /// Heal to the first poll in which every node was up, reached every peer and named
    /// the same leader, ms.
    pub(crate) recovered_ms: Option<u64>,
    /// The next fault came before the cluster recovered from this one (so
    /// `recovered_ms` is not measured).
    pub(crate) recovery_cut_short: bool,
    /// Heal to the first task a client saw finish ok, ms.
    pub(crate) first_ok_ms: Option<u64>,
}

/// Median and maximum of a set of durations, ms.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Spread {
    pub(crate) n: usize,
    pub(crate) median_ms: Option<u64>,
    pub(crate) max_ms: Option<u64>,
}

impl Spread {
    pub(crate) fn of(mut v: Vec<u64>) -> Spread {
        v.sort_unstable();
        Spread { n: v.len(), median_ms: v.get(v.len() / 2).copied(), max_ms: v.last().copied() }
    }

    fn show(&self) -> String {
        match (self.median_ms, self.max_ms) {
            (Some(m), Some(x)) => format!("{m} / {x}"),
            _ => "-".into(),
        }
    }
}

/// Per fault kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct KindStats {
    pub(crate) injected: usize,
    pub(crate) skipped: usize,
    /// Healed, but the next fault came before the cluster had recovered.
    pub(crate) recovery_cut_short: usize,
    pub(crate) detected: Spread,
    pub(crate) failover: Spread,
    pub(crate) recovered: Spread,
    pub(crate) first_ok: Spread,
}

/// The Raft churn the polls saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RaftChurn {
    /// Highest term seen when the workload started.
    pub(crate) term_start: u64,
    /// Highest term seen at the end.
    pub(crate) term_end: u64,
    /// Times the leader named by the polls changed.
    pub(crate) leader_changes: u64,
}

/// Everything `flow chaos` reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ChaosReport {
    pub(crate) passed: bool,
    pub(crate) seed: u64,
    pub(crate) nodes: usize,
    pub(crate) duration_s: u64,
    pub(crate) majority_loss: bool,
    pub(crate) kill_submitter: bool,
    pub(crate) submitters: Vec<String>,
    pub(crate) tasks_per_s: u64,
    pub(crate) dir: String,
    /// Faults in the schedule.
    pub(crate) scheduled: usize,
    pub(crate) faults: Vec<FaultOutcome>,
    pub(crate) by_kind: BTreeMap<String, KindStats>,
    /// `[ok, fail, info]` task answers per second since the workload started.
    pub(crate) throughput_per_s: Vec<[u64; 3]>,
    pub(crate) raft: RaftChurn,
    /// What each workload client counted when stopped.
    pub(crate) clients: BTreeMap<String, serde_json::Value>,
    /// Time from the end of the faulty phase to quiescence (or the bound), ms.
    pub(crate) quiescence_ms: u64,
    pub(crate) verdict: Verdict,
}

impl ChaosReport {
    /// Fills `by_kind` from `faults`.
    pub(crate) fn summarize(&mut self) {
        let mut by: BTreeMap<String, KindStats> = BTreeMap::new();
        // Per kind: detection, failover, recovery and first-ok times.
        let mut times: BTreeMap<String, [Vec<u64>; 4]> = BTreeMap::new();
        for f in &self.faults {
            let stats = by.entry(f.kind.clone()).or_default();
            if f.skipped.is_some() {
                stats.skipped += 1;
                continue;
            }
            stats.injected += 1;
            stats.recovery_cut_short += usize::from(f.recovery_cut_short);
            let t = times.entry(f.kind.clone()).or_default();
            for (k, v) in [f.detected_ms, f.failover_ms, f.recovered_ms, f.first_ok_ms].into_iter().enumerate() {
                t[k].extend(v);
            }
        }
        for (kind, [d, fo, r, ok]) in times {
            let stats = by.entry(kind).or_default();
            stats.detected = Spread::of(d);
            stats.failover = Spread::of(fo);
            stats.recovered = Spread::of(r);
            stats.first_ok = Spread::of(ok);
        }
        self.by_kind = by;
    }

    pub(crate) fn print(&self) {
        let line = "─".repeat(78);
        println!("erlmcp-flow chaos run (seed {})", self.seed);
        println!("{line}");
        println!(
            "{} nodes, {} s, {} tasks/s from {}; majority loss {}, submitter a victim {}",
            self.nodes,
            self.duration_s,
            self.tasks_per_s,
            self.submitters.join(", "),
            if self.majority_loss { "on" } else { "off" },
            if self.kill_submitter { "yes" } else { "no" },
        );
        println!("run directory: {}", self.dir);
        println!("{line}");
        println!(
            "{:<14} {:>4} {:>4} {:>15} {:>15} {:>15} {:>4} {:>15}",
            "fault", "done", "skip", "detect med/max", "failover", "recover", "cut", "first ok"
        );
        for (k, s) in &self.by_kind {
            println!(
                "{:<14} {:>4} {:>4} {:>15} {:>15} {:>15} {:>4} {:>15}",
                k,
                s.injected,
                s.skipped,
                s.detected.show(),
                s.failover.show(),
                s.recovered.show(),
                s.recovery_cut_short,
                s.first_ok.show()
            );
        }
        println!("(ms; detect: a survivor sees a victim unreachable; failover: a new leader when the leader was hit;");
        println!(" recover: heal to all nodes up, connected, one leader (cut: the next fault came first);");
        println!(" first ok: heal to the next task finished ok)");
        println!(
            "raft: term {} → {}, {} leader changes seen",
            self.raft.term_start, self.raft.term_end, self.raft.leader_changes
        );
        println!("{line}");
        println!("throughput (tasks answered per second, 5 s buckets: ok / refused / indeterminate):");
        let mut row = Vec::new();
        for (i, chunk) in self.throughput_per_s.chunks(5).enumerate() {
            let sum = chunk.iter().fold([0u64; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
            let n = chunk.len() as u64;
            row.push(format!("{:>3}s {:>5}/{}/{}", i * 5, sum[0] / n, sum[1] / n, sum[2] / n));
            if row.len() == 4 {
                println!("  {}", row.join("   "));
                row.clear();
            }
        }
        if !row.is_empty() {
            println!("  {}", row.join("   "));
        }
        println!("{line}");
        let t = &self.verdict.tasks;
        println!(
            "tasks: {} invoked; ok {:?}; refused {}; indeterminate {} ({} finished in the ledger, {} never accepted)",
            t.invoked, t.ok, t.fail, t.info, t.info_finished, t.info_absent
        );
        for (reason, n) in &t.fail_reasons {
            println!("  refused {n} × {reason}");
        }
        println!("kv: {} operations, {}", self.verdict.kv_operations, self.verdict.kv_verdict);
        let (e, w): (u64, u64) = self.verdict.logs.iter().fold((0, 0), |(e, w), l| (e + l.errors, w + l.warnings));
        println!("logs: {e} ERROR and {w} WARN lines in {} node logs", self.verdict.logs.len());
        for l in &self.verdict.logs {
            for f in &l.raft_fatal_recovered {
                println!("raft core quit and was restarted by its supervisor ({}): {f}", l.file);
            }
        }
        println!("quiescence after the faulty phase: {:.1} s", self.quiescence_ms as f64 / 1000.0);
        println!("{line}");
        if self.passed {
            println!("PASSED: no violation");
        } else {
            print_violations(&self.verdict);
        }
    }
}

/// The violation counts and up to three examples of each kind (all of them are in the
/// JSON report).
pub(crate) fn print_violations(verdict: &Verdict) {
    println!("FAILED: {:?}", verdict.violation_counts);
    for kind in verdict.violation_counts.keys() {
        for v in verdict.violations.iter().filter(|v| &v.kind == kind).take(3) {
            println!("  [{}] {}", v.kind, v.detail);
        }
    }
}
