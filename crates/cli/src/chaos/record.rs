//! What a chaos run records, and the client outcome model.
//!
//! The workload clients run inside the node processes (see [`super::client`]) and append
//! one JSON object per line to a history file per node incarnation, each line with a
//! single `write`, so a SIGKILL loses at most the answer of the operation in flight (which
//! then counts as indeterminate, as it would for any client that died waiting). Times are
//! wall-clock nanoseconds: every process on the host reads the same clock, so the driver
//! can merge the files into one real-time order for the linearizability check.
//!
//! # Outcomes, à la Jepsen
//!
//! A client operation ends in one of three ways ([`ClientOutcome`]): **ok** (it happened,
//! with this result), **fail** (it definitely did not happen) or **info** (it may or may
//! not have happened: a timeout, or a client that died waiting). [`classify_submit_error`]
//! is the one place that decides which submit errors are definite.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use erlmcp_flow::TaskId;
use erlmcp_flow::core::TerminalKind;
use erlmcp_flow_lincheck::{Op, OpResult};
use serde::{Deserialize, Serialize};

/// One line of a history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A task is about to be routed (`FlowNode::route`).
    TaskInvoke {
        /// Wall-clock ns since the Unix epoch.
        t_ns: u64,
        /// The task.
        task: TaskId,
    },
    /// `route` returned: the terminal kind the client was told, or the error text.
    TaskDone {
        /// Wall-clock ns since the Unix epoch.
        t_ns: u64,
        /// The task.
        task: TaskId,
        /// What the client saw.
        outcome: Result<TerminalKind, String>,
    },
    /// A KV operation is about to be sent.
    KvInvoke {
        /// Wall-clock ns since the Unix epoch.
        t_ns: u64,
        /// Which KV client of the file.
        client: u64,
        /// Operation number within the file.
        op_no: u64,
        /// The operation.
        op: Op,
    },
    /// A KV operation was answered.
    KvDone {
        /// Wall-clock ns since the Unix epoch.
        t_ns: u64,
        /// Operation number within the file.
        op_no: u64,
        /// Its result, or the error text.
        outcome: Result<OpResult, String>,
    },
}

/// Nanoseconds since the Unix epoch (wall clock, shared by every process on the host).
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// An append-only history file; one `write` per record.
#[derive(Debug)]
pub(crate) struct HistoryWriter {
    file: parking_lot::Mutex<std::fs::File>,
}

impl HistoryWriter {
    /// Opens (creating or appending to) `path`.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open history file {}", path.display()))?;
        Ok(Self { file: parking_lot::Mutex::new(file) })
    }

    /// Appends one record. An I/O error is logged, not fatal: a missing answer only makes
    /// that operation indeterminate.
    pub(crate) fn write(&self, record: &Record) {
        let mut line = serde_json::to_string(record).unwrap_or_default();
        line.push('\n');
        if let Err(e) = self.file.lock().write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "history record not written");
        }
    }
}

/// Reads a history file; a torn last line (a SIGKILL mid-write) is skipped.
pub(crate) fn read_history(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// What a client was told about one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "detail", rename_all = "snake_case")]
pub(crate) enum ClientOutcome {
    /// It happened; for a task, how it ended.
    Ok(TerminalKind),
    /// It definitely did not happen (the error text).
    Fail(String),
    /// It may or may not have happened (the error text, or why there is no answer).
    Info(String),
}

/// Error texts that mean "the submit may have been accepted".
///
/// * `"before the deadline"`: today's consensus layer says a write it appended but did
///   not see commit in `raft.client_timeout_ms` was "not committed before the deadline",
///   and the node reports the task as refused; the entry may commit later.
/// * `"indeterminate"`, `"may have been accepted"`: the explicit error the Raft fixes of
///   issue 9 introduce for the same case.
///
/// Every other submit error is a definite refusal by the node's contract
/// (`SubmitError`: "the task was not accepted").
const INDETERMINATE_MARKERS: [&str; 3] = ["before the deadline", "indeterminate", "may have been accepted"];

/// The one mapping from a submit error to the client's outcome (see
/// [`INDETERMINATE_MARKERS`]).
pub(crate) fn classify_submit_error(error: &str) -> ClientOutcome {
    let lower = error.to_ascii_lowercase();
    if INDETERMINATE_MARKERS.iter().any(|m| lower.contains(m)) {
        ClientOutcome::Info(error.to_string())
    } else {
        ClientOutcome::Fail(error.to_string())
    }
}

/// What the replicated ledger holds for a task after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum LedgerEntry {
    /// The ledger never accepted it (or it fell out of the finished-id window).
    Absent,
    /// Accepted and not finished: nobody may be driving it.
    Open {
        /// The node that owns it.
        owner: String,
    },
    /// Finished with exactly one terminal entry.
    Finished {
        /// How.
        kind: TerminalKind,
    },
}

/// What `chaos-ledger` writes: the ledger's view of every task the clients invoked, plus
/// every open task (invoked by a client or not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LedgerDump {
    /// Per invoked task.
    pub(crate) tasks: BTreeMap<TaskId, LedgerEntry>,
    /// Every open task and its owner.
    pub(crate) open: Vec<(TaskId, String)>,
    /// accepted, completed, failed, dead-lettered.
    pub(crate) counts: [u64; 4],
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Today's deadline refusal and the future explicit error are indeterminate; a plain
    /// "no leader" refusal is a definite failure.
    #[test]
    fn submit_errors_map_to_outcomes() {
        let deadline = "replicated ledger unavailable: write not committed before the deadline";
        assert!(matches!(classify_submit_error(deadline), ClientOutcome::Info(_)));
        assert!(matches!(
            classify_submit_error("submit indeterminate: may have been accepted"),
            ClientOutcome::Info(_)
        ));
        assert!(matches!(
            classify_submit_error("replicated ledger unavailable: write not done within 2s: no leader known"),
            ClientOutcome::Fail(_)
        ));
        assert!(matches!(classify_submit_error("task 1 was already submitted"), ClientOutcome::Fail(_)));
    }

    /// Records round-trip through a file, and a torn last line is skipped.
    #[test]
    fn history_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("flow-record-{}-{}", std::process::id(), now_ns()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let w = HistoryWriter::open(&path).unwrap();
        let task = TaskId::new_v4();
        let records = vec![
            Record::TaskInvoke { t_ns: 1, task },
            Record::TaskDone { t_ns: 2, task, outcome: Ok(TerminalKind::Completed) },
            Record::KvInvoke { t_ns: 3, client: 0, op_no: 0, op: Op::cas("k", None, Some("v")) },
            Record::KvDone { t_ns: 4, op_no: 0, outcome: Err("unavailable".into()) },
        ];
        for r in &records {
            w.write(r);
        }
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"ev\":\"task_in").unwrap();
        assert_eq!(read_history(&path).unwrap(), records);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
