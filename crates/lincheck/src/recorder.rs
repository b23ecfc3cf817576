//! [`Recorder`]: a thread-safe log of invocations and completions with a logical clock.
//!
//! Call [`Recorder::invoke`] just before sending a request and complete the returned
//! [`OpHandle`] just after the reply arrives. Every event takes the next value of one
//! counter under one lock, so events are totally ordered by when the recorder saw them:
//! if a client completed A before another client invoked B, A's return is before B's
//! invocation in the history, which is exactly the real-time order linearizability
//! must respect. (Recording *later* than the real event only widens intervals, which can
//! hide a violation but never invent one.)
//!
//! A handle dropped without being completed records [`EventKind::Unknown`]: a client
//! that gave up or panicked may or may not have had its request applied.

use std::sync::{Arc, Mutex, PoisonError};

use crate::history::{Event, EventKind, History};
use crate::op::{ClientId, Op, OpId, OpResult};

/// Thread-safe history recorder; clones share one log.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    log: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    events: Vec<Event>,
    /// The logical clock: the time of the next event.
    next_time: u64,
    next_op: u64,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `op` now; complete the handle when the reply arrives.
    pub fn invoke(&self, client: impl Into<ClientId>, op: Op) -> OpHandle {
        let client = client.into();
        let invoked = op.clone();
        let id = self.with_log(|log| {
            let id = OpId(log.next_op);
            log.next_op += 1;
            log.push(id, EventKind::Invoke { client, op: invoked });
            id
        });
        OpHandle { recorder: self.clone(), id, op, completed: false }
    }

    /// A snapshot of the history so far (operations still in flight count as unknown).
    pub fn history(&self) -> History {
        let events = self.with_log(|log| log.events.clone());
        History::from_events(events).expect("the recorder only produces well-formed histories")
    }

    fn with_log<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        // Nothing panics while holding the lock, but a poisoned log is still a valid log.
        f(&mut self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Log {
    fn push(&mut self, id: OpId, kind: EventKind) {
        let time = self.next_time;
        self.next_time += 1;
        debug_assert!(self.events.last().is_none_or(|e| e.time < time), "logical time must increase");
        self.events.push(Event { time, id, kind });
    }
}

/// An invoked operation awaiting its outcome. Complete it with [`ok`](Self::ok),
/// [`fail`](Self::fail) or [`unknown`](Self::unknown); dropping it records `unknown`.
#[derive(Debug)]
#[must_use = "complete the operation with ok(), fail() or unknown(); dropping it records unknown"]
pub struct OpHandle {
    recorder: Recorder,
    id: OpId,
    /// The operation, kept to check the result kind in [`OpHandle::ok`].
    op: Op,
    completed: bool,
}

impl OpHandle {
    /// The operation's id in the history.
    pub fn id(&self) -> OpId {
        self.id
    }

    /// The operation.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// The operation took effect and returned `result`.
    ///
    /// # Panics
    ///
    /// If `result` is the wrong kind for the operation (see [`Op::accepts`]): that is a
    /// bug in the test harness, not in the system under test.
    #[track_caller]
    pub fn ok(mut self, result: OpResult) {
        assert!(self.op.accepts(&result), "{} {} cannot return {result:?}", self.id, self.op);
        self.complete(EventKind::Ok { result });
    }

    /// The operation definitely did not take effect (e.g. the server rejected it before
    /// applying anything). When in doubt, use [`unknown`](Self::unknown).
    pub fn fail(mut self) {
        self.complete(EventKind::Fail);
    }

    /// The outcome is unknown (timeout, connection lost, leader died mid-request): the
    /// operation may take effect at any time after its invocation, or never.
    pub fn unknown(mut self) {
        self.complete(EventKind::Unknown);
    }

    fn complete(&mut self, kind: EventKind) {
        debug_assert!(!self.completed, "an operation completes once");
        self.completed = true;
        let id = self.id;
        self.recorder.with_log(|log| log.push(id, kind));
    }
}

impl Drop for OpHandle {
    fn drop(&mut self) {
        if !self.completed {
            self.complete(EventKind::Unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    /// Events get strictly increasing times in the order the recorder saw them, across
    /// clones, and a dropped handle records an unknown outcome.
    #[test]
    fn events_are_totally_ordered_and_dropped_handles_are_unknown() {
        let recorder = Recorder::new();
        let other = recorder.clone();
        let a = recorder.invoke(1, Op::put("k", "v"));
        let b = other.invoke(2, Op::get("k"));
        a.ok(OpResult::Done);
        drop(b);
        let c = recorder.invoke(3, Op::delete("k"));
        c.fail();

        let history = recorder.history();
        let times: Vec<u64> = history.events().iter().map(|e| e.time).collect();
        assert_eq!(times, [0, 1, 2, 3, 4, 5]);
        let outcomes: Vec<Outcome> = history.operations().into_iter().map(|o| o.outcome).collect();
        assert_eq!(outcomes, [Outcome::Ok(OpResult::Done), Outcome::Unknown, Outcome::Fail]);
    }

    /// Answering a get with a put's result is a harness bug and panics at the call site.
    #[test]
    #[should_panic(expected = "cannot return")]
    fn wrong_result_kind_panics() {
        let recorder = Recorder::new();
        recorder.invoke(1, Op::get("k")).ok(OpResult::Done);
    }
}
