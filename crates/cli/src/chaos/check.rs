//! The end-of-run checker: pure judgement of what a run left in its directory.
//!
//! [`Evidence::load`] reads the run directory (client histories, the ledger's view of
//! every task, the final observations of the driver, the nodes' logs) and [`check`] turns
//! it into [`Violation`]s. The same two steps run at the end of `flow chaos` and in
//! `flow chaos --recheck DIR`, so a saved run can be judged again (or doctored to check
//! the checker).
//!
//! Per task, the client's outcome ([`ClientOutcome`]) against the ledger's entry
//! ([`LedgerEntry`]):
//!
//! | client \ ledger | absent | open | finished(k) |
//! |---|---|---|---|
//! | ok(k')          | **lost** | **lost** | ok if k = k', else **outcome-mismatch** |
//! | fail            | ok | **refused-but-accepted** | **refused-but-accepted** |
//! | info            | ok (never committed) | **indeterminate-open** | ok (exactly one terminal entry) |
//!
//! The ledger's state machine takes the first terminal entry of a task and ignores the
//! others, so "finished" means exactly one terminal entry. Plus: no open task at all
//! after quiescence (**ledger-open**), every replica at the same applied index with the
//! same digest (**replicas-disagree**), a linearizable KV history
//! (**kv-not-linearizable**), no panic in a node's log (**panic**) and no Raft core that
//! quit on an error (**raft-fatal**: the node's consensus is dead), and what the driver
//! saw go wrong (a node that stopped answering, did not restart or did not quit; no
//! common leader after the heal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use erlmcp_flow::TaskId;
use erlmcp_flow::core::TerminalKind;
use erlmcp_flow_lincheck::{CheckConfig, CheckResult, ClientId, Event, EventKind, History, OpId};
use serde::{Deserialize, Serialize};

use super::record::{ClientOutcome, LedgerDump, LedgerEntry, Record, classify_submit_error, read_history};

/// Files of a run directory.
pub(crate) mod files {
    /// Client histories, `<node>.<incarnation>.jsonl`.
    pub(crate) const HISTORY_DIR: &str = "history";
    /// Node logs (stderr), `<node>.<incarnation>.log`.
    pub(crate) const LOG_DIR: &str = "logs";
    /// The ledger's view ([`super::LedgerDump`]).
    pub(crate) const LEDGER: &str = "ledger.json";
    /// The driver's final observations ([`super::FinalObservations`]).
    pub(crate) const FINAL: &str = "final.json";
    /// Ids of every invoked task (input of `chaos-ledger`).
    pub(crate) const TASK_IDS: &str = "task-ids.txt";
    /// The schedule.
    pub(crate) const SCHEDULE: &str = "schedule.json";
    /// The report.
    pub(crate) const REPORT: &str = "report.json";
}

/// One task as the clients saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    /// The history file (node and incarnation) that invoked it.
    pub(crate) client: String,
    /// When, wall-clock ns.
    pub(crate) invoked_ns: u64,
    /// When the client got its answer, if it did.
    pub(crate) done_ns: Option<u64>,
    /// What it was told.
    pub(crate) outcome: ClientOutcome,
}

/// A replica's state at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplicaView {
    /// The node.
    pub(crate) node: String,
    /// Its applied index.
    pub(crate) last_applied: u64,
    /// Its state machine digest.
    pub(crate) digest: u64,
}

/// Something the driver saw go wrong with a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Incident {
    /// The violation kind (`unresponsive`, `restart-failed`, `no-leader`, `not-quit`).
    pub(crate) kind: String,
    /// What happened.
    pub(crate) detail: String,
}

/// What the driver observed after the heal and quiescence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FinalObservations {
    /// Open tasks as the `ledger` command read them (linearizably) at the end.
    pub(crate) ledger_open: Option<u64>,
    /// Every node's applied index and digest, once they lined up (or the last seen).
    pub(crate) replicas: Vec<ReplicaView>,
    /// What went wrong along the way.
    pub(crate) incidents: Vec<Incident>,
}

/// What `erlmcp_flow_consensus::supervisor` logs once it has restarted a core that quit.
const RAFT_CORE_RESTARTED: &str = "raft core restarted";

/// A node log's findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogScan {
    /// The log file's name.
    pub(crate) file: String,
    /// Lines reporting a panic.
    pub(crate) panics: Vec<String>,
    /// Lines reporting that openraft's core quit on an error and no restart of the core
    /// followed in this log (the node's consensus was dead from then on).
    #[serde(default)]
    pub(crate) raft_fatal: Vec<String>,
    /// The same, followed by the consensus supervisor's "raft core restarted": the core
    /// quit and came back on the same store (openraft 0.9's snapshot race, handled).
    /// Reported, not a violation.
    #[serde(default)]
    pub(crate) raft_fatal_recovered: Vec<String>,
    /// ERROR lines.
    pub(crate) errors: u64,
    /// WARN lines.
    pub(crate) warnings: u64,
}

impl LogScan {
    /// Scans one log (ANSI colour codes are ignored).
    pub(crate) fn of(file: &str, text: &str) -> LogScan {
        let mut scan = LogScan { file: file.to_string(), ..LogScan::default() };
        for line in text.lines() {
            let line = strip_ansi(line);
            let line = line.as_str();
            if line.contains("panicked at") {
                scan.panics.push(line.chars().take(300).collect());
            } else if line.contains("RaftCore::main on error") {
                scan.raft_fatal.push(line.chars().take(300).collect());
            } else if line.contains(RAFT_CORE_RESTARTED) {
                scan.raft_fatal_recovered.append(&mut scan.raft_fatal);
                scan.warnings += 1;
            } else if line.contains(" ERROR ") {
                scan.errors += 1;
            } else if line.contains(" WARN ") {
                scan.warnings += 1;
            }
        }
        scan
    }
}

/// `line` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything the checker judges.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evidence {
    /// Per task, what its client saw.
    pub(crate) tasks: BTreeMap<TaskId, TaskRecord>,
    /// The KV history of every client, merged in real-time order.
    pub(crate) kv: History,
    /// The ledger's view (None: it could not be read).
    pub(crate) ledger: Option<LedgerDump>,
    /// The driver's final observations.
    pub(crate) last: FinalObservations,
    /// Node logs.
    pub(crate) logs: Vec<LogScan>,
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    v.sort();
    v
}

impl Evidence {
    /// Reads a run directory.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Evidence> {
        let mut histories = Vec::new();
        for path in files_in(&dir.join(files::HISTORY_DIR)) {
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
            histories.push((name, read_history(&path)?));
        }
        let ledger = match std::fs::read(dir.join(files::LEDGER)) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).context("ledger.json")?),
            Err(_) => None,
        };
        let last = match std::fs::read(dir.join(files::FINAL)) {
            Ok(bytes) => serde_json::from_slice(&bytes).context("final.json")?,
            Err(_) => FinalObservations::default(),
        };
        let mut logs = Vec::new();
        for path in files_in(&dir.join(files::LOG_DIR)) {
            let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
            let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("?");
            logs.push(LogScan::of(name, &text));
        }
        Ok(Evidence::from_histories(&histories, ledger, last, logs))
    }

    /// Builds the evidence from parsed histories (one per client file, by name).
    pub(crate) fn from_histories(
        histories: &[(String, Vec<Record>)],
        ledger: Option<LedgerDump>,
        last: FinalObservations,
        logs: Vec<LogScan>,
    ) -> Evidence {
        let mut tasks = BTreeMap::new();
        // KV events: (t_ns, completion?, global op id, kind); ids are per file, made global.
        let mut kv_events: Vec<(u64, u8, u64, EventKind)> = Vec::new();
        for (file_no, (name, records)) in histories.iter().enumerate() {
            let global = |op_no: u64| ((file_no as u64) << 40) | op_no;
            for r in records {
                match r {
                    Record::TaskInvoke { t_ns, task } => {
                        tasks.entry(*task).or_insert(TaskRecord {
                            client: name.clone(),
                            invoked_ns: *t_ns,
                            done_ns: None,
                            outcome: ClientOutcome::Info("no answer: the client's node died or the run ended".into()),
                        });
                    }
                    Record::TaskDone { t_ns, task, outcome } => {
                        if let Some(t) = tasks.get_mut(task) {
                            t.done_ns = Some(*t_ns);
                            t.outcome = match outcome {
                                Ok(kind) => ClientOutcome::Ok(*kind),
                                Err(e) => classify_submit_error(e),
                            };
                        }
                    }
                    Record::KvInvoke { t_ns, client, op_no, op } => kv_events.push((
                        *t_ns,
                        0,
                        global(*op_no),
                        EventKind::Invoke { client: ClientId(((file_no as u64) << 8) | client), op: op.clone() },
                    )),
                    Record::KvDone { t_ns, op_no, outcome } => kv_events.push((
                        *t_ns,
                        1,
                        global(*op_no),
                        match outcome {
                            Ok(result) => EventKind::Ok { result: result.clone() },
                            // The consensus API promises nothing about a failed write: it
                            // may have committed (a forwarded write whose answer was lost).
                            Err(_) => EventKind::Unknown,
                        },
                    )),
                }
            }
        }
        // Same instant: invocations first, which only widens intervals (never invents a
        // violation).
        kv_events.sort_by_key(|e| (e.0, e.1, e.2));
        let mut invoked = std::collections::HashSet::new();
        let mut events = Vec::with_capacity(kv_events.len());
        for (_, completion, id, kind) in kv_events {
            if completion == 0 {
                invoked.insert(id);
            } else if !invoked.contains(&id) {
                continue; // its invocation line was lost: nothing to check it against
            }
            events.push(Event { time: events.len() as u64 + 1, id: OpId(id), kind });
        }
        let kv = History::from_events(events).unwrap_or_default();
        Evidence { tasks, kv, ledger, last, logs }
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Violation {
    /// Which invariant (`lost`, `outcome-mismatch`, `refused-but-accepted`, …).
    pub(crate) kind: String,
    /// What exactly.
    pub(crate) detail: String,
}

/// How the clients' tasks ended, by their own account and the ledger's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskSummary {
    /// Tasks invoked.
    pub(crate) invoked: u64,
    /// Client told ok, by terminal kind.
    pub(crate) ok: BTreeMap<String, u64>,
    /// Client told the task was refused.
    pub(crate) fail: u64,
    /// Client does not know (timeout, died waiting).
    pub(crate) info: u64,
    /// Of the indeterminate ones, how many the ledger finished.
    pub(crate) info_finished: u64,
    /// Of the indeterminate ones, how many the ledger never accepted.
    pub(crate) info_absent: u64,
    /// Refusal texts and how often each was seen.
    pub(crate) fail_reasons: BTreeMap<String, u64>,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Verdict {
    /// Every broken invariant (capped per kind: see `violation_counts`).
    pub(crate) violations: Vec<Violation>,
    /// How many of each kind.
    pub(crate) violation_counts: BTreeMap<String, u64>,
    /// Tasks.
    pub(crate) tasks: TaskSummary,
    /// KV operations checked.
    pub(crate) kv_operations: u64,
    /// The linearizability verdict.
    pub(crate) kv_verdict: String,
    /// Panics, errors and warnings per log.
    pub(crate) logs: Vec<LogScan>,
}

impl Verdict {
    fn add(&mut self, kind: &str, detail: String) {
        let n = self.violation_counts.entry(kind.to_string()).or_default();
        *n += 1;
        // Enough examples per kind to act on; the counts say how many there were.
        if *n <= 20 {
            self.violations.push(Violation { kind: kind.to_string(), detail });
        }
    }

    /// Whether every invariant held.
    pub(crate) fn passed(&self) -> bool {
        self.violation_counts.is_empty()
    }
}

/// Removes the variable part of an error text (task ids, durations) so reasons group.
fn reason_class(error: &str) -> String {
    let mut s: String = error.chars().take(120).collect();
    if let Some(i) = s.find("task ") {
        s.truncate(i + 5);
        s.push('…');
    }
    s
}

/// Judges the evidence. See the module docs.
pub(crate) fn check(e: &Evidence) -> Verdict {
    let mut v = Verdict::default();
    let kind_name = |k: TerminalKind| match k {
        TerminalKind::Completed => "completed",
        TerminalKind::Failed => "failed",
        TerminalKind::DeadLettered => "dead_lettered",
    };
    v.tasks.invoked = e.tasks.len() as u64;
    for (id, t) in &e.tasks {
        let entry = e.ledger.as_ref().map(|l| l.tasks.get(id).cloned().unwrap_or(LedgerEntry::Absent));
        match &t.outcome {
            ClientOutcome::Ok(k) => *v.tasks.ok.entry(kind_name(*k).to_string()).or_default() += 1,
            ClientOutcome::Fail(reason) => {
                v.tasks.fail += 1;
                *v.tasks.fail_reasons.entry(reason_class(reason)).or_default() += 1;
            }
            ClientOutcome::Info(_) => v.tasks.info += 1,
        }
        let Some(entry) = entry else { continue };
        match (&t.outcome, &entry) {
            (ClientOutcome::Ok(k), LedgerEntry::Finished { kind }) if k != kind => {
                v.add("outcome-mismatch", format!("task {id} ({}): client told {k:?}, ledger says {kind:?}", t.client))
            }
            (ClientOutcome::Ok(k), LedgerEntry::Absent | LedgerEntry::Open { .. }) => v.add(
                "lost",
                format!("task {id} ({}): client told {k:?}, ledger has it {}", t.client, describe(&entry)),
            ),
            (ClientOutcome::Fail(reason), LedgerEntry::Open { .. } | LedgerEntry::Finished { .. }) => v.add(
                "refused-but-accepted",
                format!("task {id} ({}): client told {reason:?}, ledger has it {}", t.client, describe(&entry)),
            ),
            (ClientOutcome::Info(why), LedgerEntry::Open { .. }) => v.add(
                "indeterminate-open",
                format!("task {id} ({}): client saw {why:?}, ledger has it {}", t.client, describe(&entry)),
            ),
            (ClientOutcome::Info(_), LedgerEntry::Finished { .. }) => v.tasks.info_finished += 1,
            (ClientOutcome::Info(_), LedgerEntry::Absent) => v.tasks.info_absent += 1,
            _ => {}
        }
    }
    match &e.ledger {
        None => v.add("ledger-unreadable", "the replicated ledger could not be read at the end".into()),
        Some(l) if !l.open.is_empty() => {
            let mut by_owner: BTreeMap<&str, u64> = BTreeMap::new();
            for (_, owner) in &l.open {
                *by_owner.entry(owner).or_default() += 1;
            }
            v.add("ledger-open", format!("{} tasks still open after quiescence, by owner {by_owner:?}", l.open.len()));
        }
        Some(_) => {}
    }
    if let Some(open) = e.last.ledger_open.filter(|&o| o > 0)
        && e.ledger.as_ref().is_some_and(|l| l.open.is_empty())
    {
        v.add("ledger-open", format!("the final ledger read counted {open} open tasks"));
    }
    let r = &e.last.replicas;
    if r.is_empty() {
        v.add("replicas-disagree", "no replica state could be read at the end".into());
    } else if r.windows(2).any(|w| w[0].last_applied != w[1].last_applied || w[0].digest != w[1].digest) {
        let seen: Vec<String> =
            r.iter().map(|x| format!("{} applied {} digest {:016x}", x.node, x.last_applied, x.digest)).collect();
        v.add("replicas-disagree", seen.join("; "));
    }
    v.kv_operations = e.kv.operations().len() as u64;
    let kv = erlmcp_flow_lincheck::check_with(&e.kv, &CheckConfig { max_steps_per_key: 5_000_000 });
    v.kv_verdict = match &kv {
        CheckResult::Linearizable => "linearizable".into(),
        CheckResult::Inconclusive { key, steps } => format!("inconclusive (key {key} after {steps} steps)"),
        CheckResult::NotLinearizable { .. } => "NOT linearizable".into(),
    };
    if let CheckResult::NotLinearizable { .. } = &kv {
        v.add("kv-not-linearizable", kv.to_string().chars().take(4_000).collect());
    }
    for log in &e.logs {
        for p in &log.panics {
            v.add("panic", format!("{}: {p}", log.file));
        }
        for f in &log.raft_fatal {
            v.add("raft-fatal", format!("{}: {f}", log.file));
        }
    }
    for i in &e.last.incidents {
        v.add(&i.kind, i.detail.clone());
    }
    v.logs = e.logs.clone();
    v
}

fn describe(entry: &LedgerEntry) -> String {
    match entry {
        LedgerEntry::Absent => "absent".into(),
        LedgerEntry::Open { owner } => format!("open (owner {owner})"),
        LedgerEntry::Finished { kind } => format!("finished {kind:?}"),
    }
}

/// Task completions per second since `start_ns`, by client outcome: `[ok, fail, info]`
/// per one-second bucket, by the time the client got its answer (indeterminate tasks
/// without an answer are left out).
pub(crate) fn throughput(tasks: &BTreeMap<TaskId, TaskRecord>, start_ns: u64, seconds: usize) -> Vec<[u64; 3]> {
    let mut buckets = vec![[0u64; 3]; seconds.max(1)];
    for t in tasks.values() {
        let Some(done) = t.done_ns else { continue };
        let s = (done.saturating_sub(start_ns) / 1_000_000_000) as usize;
        let col = match t.outcome {
            ClientOutcome::Ok(_) => 0,
            ClientOutcome::Fail(_) => 1,
            ClientOutcome::Info(_) => 2,
        };
        if let Some(b) = buckets.get_mut(s) {
            b[col] += 1;
        }
    }
    buckets
}

/// The first time after `from_ns` a client got an ok answer (a task or a KV write):
/// when commits flowed again after a heal.
pub(crate) fn first_ok_after(e: &Evidence, from_ns: u64) -> Option<u64> {
    e.tasks
        .values()
        .filter(|t| matches!(t.outcome, ClientOutcome::Ok(_)))
        .filter_map(|t| t.done_ns)
        .filter(|&d| d >= from_ns)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_lincheck::{Op, OpResult};

    fn ok_evidence() -> (Evidence, Vec<TaskId>) {
        let ids: Vec<TaskId> = (0..4).map(|_| TaskId::new_v4()).collect();
        let records = vec![
            Record::TaskInvoke { t_ns: 10, task: ids[0] },
            Record::TaskDone { t_ns: 20, task: ids[0], outcome: Ok(TerminalKind::Completed) },
            Record::TaskInvoke { t_ns: 11, task: ids[1] },
            Record::TaskDone { t_ns: 21, task: ids[1], outcome: Err("not committed: no Raft leader".into()) },
            Record::TaskInvoke { t_ns: 12, task: ids[2] },
            Record::TaskDone {
                t_ns: 22,
                task: ids[2],
                outcome: Err("replicated ledger unavailable: write not committed before the deadline".into()),
            },
            // Invoked, never answered (the client's node was killed).
            Record::TaskInvoke { t_ns: 13, task: ids[3] },
            Record::KvInvoke { t_ns: 30, client: 0, op_no: 0, op: Op::put("k", "a") },
            Record::KvDone { t_ns: 31, op_no: 0, outcome: Ok(OpResult::Done) },
            Record::KvInvoke { t_ns: 32, client: 0, op_no: 1, op: Op::get("k") },
            Record::KvDone { t_ns: 33, op_no: 1, outcome: Ok(OpResult::value(Some("a"))) },
        ];
        let mut ledger = LedgerDump::default();
        ledger.tasks.insert(ids[0], LedgerEntry::Finished { kind: TerminalKind::Completed });
        ledger.tasks.insert(ids[1], LedgerEntry::Absent);
        ledger.tasks.insert(ids[2], LedgerEntry::Finished { kind: TerminalKind::Completed });
        ledger.tasks.insert(ids[3], LedgerEntry::Absent);
        let last = FinalObservations {
            ledger_open: Some(0),
            replicas: vec![
                ReplicaView { node: "a".into(), last_applied: 9, digest: 1 },
                ReplicaView { node: "b".into(), last_applied: 9, digest: 1 },
            ],
            incidents: vec![],
        };
        let logs = vec![LogScan::of("a.0.log", "2025 \u{1b}[33m WARN\u{1b}[0m something\n2025 ERROR x\n")];
        (Evidence::from_histories(&[("node-1.0".into(), records)], Some(ledger), last, logs), ids)
    }

    fn kinds(v: &Verdict) -> Vec<&str> {
        v.violation_counts.keys().map(String::as_str).collect()
    }

    /// A consistent run passes, and its accounting adds up: the deadline refusal and the
    /// unanswered task are indeterminate (one finished, one never accepted).
    #[test]
    fn a_consistent_run_passes() {
        let (e, _) = ok_evidence();
        let v = check(&e);
        assert!(v.passed(), "{:?}", v.violations);
        assert_eq!((v.tasks.invoked, v.tasks.fail, v.tasks.info), (4, 1, 2));
        assert_eq!((v.tasks.info_finished, v.tasks.info_absent), (1, 1));
        assert_eq!(v.kv_operations, 2);
        assert_eq!(v.kv_verdict, "linearizable");
        assert_eq!((v.logs[0].warnings, v.logs[0].errors), (1, 1), "coloured or not");
    }

    /// A core that quit on openraft's fatal error and was restarted by the consensus
    /// supervisor in the same incarnation is reported, not a violation; one that quit and
    /// never came back (or quit again after the restart) is `raft-fatal`.
    #[test]
    fn a_restarted_raft_core_is_reported_not_a_violation() {
        let fatal = "2026 ERROR openraft::core::raft_core: quit RaftCore::main on error error=when Read Snapshot(None): replication channel closed";
        let restarted =
            "2026 WARN erlmcp_flow_consensus::supervisor: raft core restarted node=node-3 generation=1 restarts=1";
        let (mut e, _) = ok_evidence();
        e.logs = vec![LogScan::of("node-3.9.log", &format!("{fatal}\n{restarted}\n"))];
        let v = check(&e);
        assert!(v.passed(), "{:?}", v.violations);
        assert_eq!(v.logs[0].raft_fatal_recovered.len(), 1);
        for dead in [fatal.to_string(), format!("{fatal}\n{restarted}\n{fatal}\n")] {
            e.logs = vec![LogScan::of("node-3.9.log", &dead)];
            let v = check(&e);
            assert_eq!(v.violations.iter().filter(|x| x.kind == "raft-fatal").count(), 1, "{dead}");
        }
    }

    /// Checking the checker: each doctored piece of evidence is caught as its own
    /// violation kind.
    #[test]
    fn doctored_evidence_is_caught() {
        type Doctor = Box<dyn Fn(&mut Evidence, &[TaskId])>;
        let cases: Vec<(&str, Doctor)> = vec![
            (
                "lost",
                Box::new(|e, ids| {
                    e.ledger.as_mut().unwrap().tasks.insert(ids[0], LedgerEntry::Absent);
                }),
            ),
            (
                "lost",
                Box::new(|e, ids| {
                    e.ledger.as_mut().unwrap().tasks.insert(ids[0], LedgerEntry::Open { owner: "n".into() });
                }),
            ),
            (
                "outcome-mismatch",
                Box::new(|e, ids| {
                    e.ledger
                        .as_mut()
                        .unwrap()
                        .tasks
                        .insert(ids[0], LedgerEntry::Finished { kind: TerminalKind::Failed });
                }),
            ),
            (
                "refused-but-accepted",
                Box::new(|e, ids| {
                    e.ledger
                        .as_mut()
                        .unwrap()
                        .tasks
                        .insert(ids[1], LedgerEntry::Finished { kind: TerminalKind::Completed });
                }),
            ),
            (
                "indeterminate-open",
                Box::new(|e, ids| {
                    e.ledger.as_mut().unwrap().tasks.insert(ids[3], LedgerEntry::Open { owner: "n".into() });
                }),
            ),
            (
                "ledger-open",
                Box::new(|e, _| {
                    e.ledger.as_mut().unwrap().open.push((TaskId::new_v4(), "node-2".into()));
                }),
            ),
            ("ledger-unreadable", Box::new(|e, _| e.ledger = None)),
            ("replicas-disagree", Box::new(|e, _| e.last.replicas[1].digest = 2)),
            ("replicas-disagree", Box::new(|e, _| e.last.replicas[1].last_applied = 8)),
            ("replicas-disagree", Box::new(|e, _| e.last.replicas.clear())),
            ("panic", Box::new(|e, _| e.logs = vec![LogScan::of("b.1.log", "thread 'x' panicked at src/a.rs:1:1")])),
            (
                "raft-fatal",
                Box::new(|e, _| {
                    let line = "2026 ERROR openraft::core::raft_core: quit RaftCore::main on error: replication channel closed";
                    e.logs = vec![LogScan::of("b.1.log", line)];
                }),
            ),
            (
                "unresponsive",
                Box::new(|e, _| {
                    e.last.incidents.push(Incident { kind: "unresponsive".into(), detail: "node-2".into() })
                }),
            ),
            (
                "kv-not-linearizable",
                Box::new(|e, _| {
                    // A read after the acknowledged put that does not see it.
                    let mut events = e.kv.clone().into_events();
                    let t = events.last().unwrap().time;
                    events.push(Event {
                        time: t + 1,
                        id: OpId(99),
                        kind: EventKind::Invoke { client: ClientId(7), op: Op::get("k") },
                    });
                    events.push(Event {
                        time: t + 2,
                        id: OpId(99),
                        kind: EventKind::Ok { result: OpResult::value(None) },
                    });
                    e.kv = History::from_events(events).unwrap();
                }),
            ),
        ];
        for (kind, doctor) in cases {
            let (mut e, ids) = ok_evidence();
            doctor(&mut e, &ids);
            let v = check(&e);
            assert_eq!(kinds(&v), [kind], "{:?}", v.violations);
        }
    }

    /// A KV history merged from two files is in real-time order across them: a read in
    /// one file that misses a write acknowledged earlier in another is a violation.
    #[test]
    fn kv_histories_merge_across_files_by_time() {
        let a = vec![
            Record::KvInvoke { t_ns: 100, client: 0, op_no: 0, op: Op::put("x", "1") },
            Record::KvDone { t_ns: 200, op_no: 0, outcome: Ok(OpResult::Done) },
        ];
        let b = vec![
            Record::KvInvoke { t_ns: 300, client: 0, op_no: 0, op: Op::get("x") },
            Record::KvDone { t_ns: 400, op_no: 0, outcome: Ok(OpResult::value(None)) },
        ];
        let e = Evidence::from_histories(&[("a".into(), a.clone()), ("b".into(), b)], None, Default::default(), vec![]);
        assert!(matches!(erlmcp_flow_lincheck::check(&e.kv), CheckResult::NotLinearizable { .. }));
        // Overlapping in time, the same read is fine; an error answer is unknown.
        let b = vec![
            Record::KvInvoke { t_ns: 150, client: 0, op_no: 0, op: Op::get("x") },
            Record::KvDone { t_ns: 400, op_no: 0, outcome: Ok(OpResult::value(None)) },
            Record::KvInvoke { t_ns: 500, client: 0, op_no: 1, op: Op::put("x", "2") },
            Record::KvDone { t_ns: 600, op_no: 1, outcome: Err("unavailable".into()) },
        ];
        let e = Evidence::from_histories(&[("a".into(), a), ("b".into(), b)], None, Default::default(), vec![]);
        assert!(erlmcp_flow_lincheck::check(&e.kv).is_linearizable());
        assert_eq!(e.kv.operations().len(), 3);
    }
}
