//! Histories: the totally ordered invoke / complete events a [`Recorder`] saw, and the
//! operations they pair up into.
//!
//! A history is a list of [`Event`]s with strictly increasing logical times. Each
//! operation has one `invoke` event and at most one completion: `ok` (it took effect and
//! returned a result), `fail` (it definitely did not take effect) or `unknown` (it timed
//! out: it may have taken effect, at any point after its invocation, or never). An
//! operation with no completion yet is treated as `unknown`.
//!
//! Histories are validated when built ([`History::from_events`], and so also when read
//! back from JSON), so the checker can rely on them being well formed. They serialize as
//! `{"events": [...]}` so a failing history from an integration test can be saved with
//! [`History::to_json`] and replayed with [`History::from_json`].
//!
//! [`Recorder`]: crate::Recorder

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::op::{ClientId, Op, OpId, OpResult};

/// One event of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Logical time: strictly increasing along the history.
    pub time: u64,
    /// The operation this event belongs to.
    pub id: OpId,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an [`Event`] records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A client started an operation.
    Invoke {
        /// Who.
        client: ClientId,
        /// What.
        op: Op,
    },
    /// The operation took effect and returned `result`.
    Ok {
        /// What it returned.
        result: OpResult,
    },
    /// The operation definitely did not take effect.
    Fail,
    /// The outcome is unknown (timeout, lost connection): it may have taken effect.
    Unknown,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Took effect, returned this.
    Ok(OpResult),
    /// Definitely did not take effect.
    Fail,
    /// May or may not have taken effect; includes operations never completed.
    Unknown,
}

/// An operation of a history: its invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// Its number.
    pub id: OpId,
    /// Who issued it.
    pub client: ClientId,
    /// What it was.
    pub op: Op,
    /// Logical time of the invocation.
    pub invoked_at: u64,
    /// Logical time of the completion event, if any. For an [`Outcome::Unknown`] operation
    /// this is only when the client gave up; the checker treats its return as +infinity.
    pub completed_at: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.id, self.client, self.op)?;
        match &self.outcome {
            Outcome::Ok(result) => write!(f, " -> {result}")?,
            Outcome::Fail => f.write_str(" -> failed")?,
            Outcome::Unknown => f.write_str(" -> unknown")?,
        }
        match self.completed_at {
            Some(end) => write!(f, " [t{}, t{end}]", self.invoked_at),
            None => write!(f, " [t{}, ...]", self.invoked_at),
        }
    }
}

/// Why a list of events is not a well-formed history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Event times must strictly increase.
    #[error("event {index}: time {time} is not after the previous event's time {previous}")]
    TimeNotIncreasing {
        /// Position of the offending event.
        index: usize,
        /// Its time.
        time: u64,
        /// The previous event's time.
        previous: u64,
    },
    /// An operation id was invoked more than once.
    #[error("event {index}: operation {id} invoked twice")]
    DuplicateInvoke {
        /// Position of the offending event.
        index: usize,
        /// The operation.
        id: OpId,
    },
    /// A completion for an operation that was not invoked before it.
    #[error("event {index}: operation {id} completed but never invoked before")]
    CompletionWithoutInvoke {
        /// Position of the offending event.
        index: usize,
        /// The operation.
        id: OpId,
    },
    /// A second completion for the same operation.
    #[error("event {index}: operation {id} completed twice")]
    DuplicateCompletion {
        /// Position of the offending event.
        index: usize,
        /// The operation.
        id: OpId,
    },
    /// An `ok` whose result is the wrong kind for the operation (e.g. a get returning `Done`).
    #[error("event {index}: operation {id} is a {op} but returned {result:?}")]
    ResultMismatch {
        /// Position of the offending event.
        index: usize,
        /// The operation.
        id: OpId,
        /// Its name (`put`, `get`, ...).
        op: &'static str,
        /// The result it was given.
        result: OpResult,
    },
    /// The JSON could not be parsed (or serialized).
    #[error("history JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A validated history of a key-value store. See the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawHistory")]
pub struct History {
    events: Vec<Event>,
}

/// The unvalidated serialized form.
#[derive(Deserialize)]
struct RawHistory {
    events: Vec<Event>,
}

impl TryFrom<RawHistory> for History {
    type Error = HistoryError;

    fn try_from(raw: RawHistory) -> Result<Self, Self::Error> {
        History::from_events(raw.events)
    }
}

impl History {
    /// Builds a history from events, checking that times strictly increase, that every
    /// operation is invoked once before it completes, completes at most once, and that
    /// each `ok` result is the right kind for its operation.
    pub fn from_events(events: Vec<Event>) -> Result<Self, HistoryError> {
        // id -> (op, completed?)
        let mut seen: HashMap<OpId, (&Op, bool)> = HashMap::with_capacity(events.len() / 2 + 1);
        let mut previous: Option<u64> = None;
        for (index, event) in events.iter().enumerate() {
            if let Some(previous) = previous
                && event.time <= previous
            {
                return Err(HistoryError::TimeNotIncreasing { index, time: event.time, previous });
            }
            previous = Some(event.time);
            let id = event.id;
            match &event.kind {
                EventKind::Invoke { op, .. } => {
                    if seen.insert(id, (op, false)).is_some() {
                        return Err(HistoryError::DuplicateInvoke { index, id });
                    }
                }
                completion => {
                    let Some((op, completed)) = seen.get_mut(&id) else {
                        return Err(HistoryError::CompletionWithoutInvoke { index, id });
                    };
                    if *completed {
                        return Err(HistoryError::DuplicateCompletion { index, id });
                    }
                    *completed = true;
                    if let EventKind::Ok { result } = completion
                        && !op.accepts(result)
                    {
                        return Err(HistoryError::ResultMismatch { index, id, op: op.name(), result: result.clone() });
                    }
                }
            }
        }
        Ok(History { events })
    }

    /// The events, in time order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Consumes the history, returning its events.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The operations, in invocation order, each paired with its completion.
    pub fn operations(&self) -> Vec<Operation> {
        let mut ops: Vec<Operation> = Vec::with_capacity(self.events.len() / 2 + 1);
        let mut index_of: HashMap<OpId, usize> = HashMap::with_capacity(self.events.len() / 2 + 1);
        for event in &self.events {
            match &event.kind {
                EventKind::Invoke { client, op } => {
                    index_of.insert(event.id, ops.len());
                    ops.push(Operation {
                        id: event.id,
                        client: *client,
                        op: op.clone(),
                        invoked_at: event.time,
                        completed_at: None,
                        outcome: Outcome::Unknown,
                    });
                }
                completion => {
                    // Validated in `from_events`: the invocation came first.
                    let operation = &mut ops[index_of[&event.id]];
                    operation.completed_at = Some(event.time);
                    operation.outcome = match completion {
                        EventKind::Ok { result } => Outcome::Ok(result.clone()),
                        EventKind::Fail => Outcome::Fail,
                        _ => Outcome::Unknown,
                    };
                }
            }
        }
        ops
    }

    /// The keys the history touches, sorted.
    pub fn keys(&self) -> BTreeSet<&str> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Invoke { op, .. } => Some(op.key()),
                _ => None,
            })
            .collect()
    }

    /// The sub-history of one key (times and ids unchanged): by P-compositionality the
    /// history is linearizable iff every key's sub-history is, so this is what to save
    /// when one key fails.
    pub fn for_key(&self, key: &str) -> History {
        let ids: BTreeSet<OpId> = self
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Invoke { op, .. } if op.key() == key => Some(e.id),
                _ => None,
            })
            .collect();
        History { events: self.events.iter().filter(|e| ids.contains(&e.id)).cloned().collect() }
    }

    /// Compact JSON: `{"events":[...]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a history always serializes")
    }

    /// Indented JSON, one event per few lines, for files meant to be read.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a history always serializes")
    }

    /// Parses and validates JSON written by [`History::to_json`].
    /// Validation errors come back as themselves rather than wrapped in
    /// [`HistoryError::Json`].
    pub fn from_json(json: &str) -> Result<Self, HistoryError> {
        let raw: RawHistory = serde_json::from_str(json)?;
        History::from_events(raw.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(time: u64, id: u64, op: Op) -> Event {
        Event { time, id: OpId(id), kind: EventKind::Invoke { client: ClientId(id), op } }
    }

    fn ok(time: u64, id: u64, result: OpResult) -> Event {
        Event { time, id: OpId(id), kind: EventKind::Ok { result } }
    }

    /// Malformed event lists are rejected with the error naming the problem.
    #[test]
    fn malformed_histories_are_rejected() {
        let err = History::from_events(vec![invoke(2, 0, Op::get("k")), ok(2, 0, OpResult::value(None))]);
        assert!(matches!(err, Err(HistoryError::TimeNotIncreasing { index: 1, .. })));
        let err = History::from_events(vec![ok(1, 0, OpResult::Done)]);
        assert!(matches!(err, Err(HistoryError::CompletionWithoutInvoke { .. })));
        let err = History::from_events(vec![invoke(1, 0, Op::get("k")), invoke(2, 0, Op::get("k"))]);
        assert!(matches!(err, Err(HistoryError::DuplicateInvoke { .. })));
        let err = History::from_events(vec![
            invoke(1, 0, Op::put("k", "v")),
            ok(2, 0, OpResult::Done),
            Event { time: 3, id: OpId(0), kind: EventKind::Fail },
        ]);
        assert!(matches!(err, Err(HistoryError::DuplicateCompletion { .. })));
        let err = History::from_events(vec![invoke(1, 0, Op::get("k")), ok(2, 0, OpResult::Done)]);
        assert!(matches!(err, Err(HistoryError::ResultMismatch { op: "get", .. })));
    }

    /// Reading back JSON validates it: a hand-edited file cannot smuggle in a bad history.
    #[test]
    fn json_is_validated_on_read() {
        let bad = r#"{"events":[{"time":1,"id":0,"type":"ok","result":"done"}]}"#;
        assert!(matches!(History::from_json(bad), Err(HistoryError::CompletionWithoutInvoke { .. })));
        assert!(matches!(History::from_json("{"), Err(HistoryError::Json(_))));
        // Deserialized through serde elsewhere (inside another struct), it is validated too.
        let err = serde_json::from_str::<History>(bad).unwrap_err();
        assert!(err.to_string().contains("never invoked"), "{err}");
    }

    /// Operations pair invoke and completion; an operation never completed is unknown.
    #[test]
    fn operations_pair_events() {
        let history = History::from_events(vec![
            invoke(1, 0, Op::put("a", "1")),
            invoke(2, 1, Op::get("b")),
            ok(3, 0, OpResult::Done),
        ])
        .unwrap();
        let ops = history.operations();
        assert_eq!(ops[0].outcome, Outcome::Ok(OpResult::Done));
        assert_eq!((ops[0].invoked_at, ops[0].completed_at), (1, Some(3)));
        assert_eq!(ops[1].outcome, Outcome::Unknown);
        assert_eq!(ops[1].completed_at, None);
        assert_eq!(history.keys().into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(history.for_key("a").len(), 2);
    }
}
