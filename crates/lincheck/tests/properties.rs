//! Property tests: histories generated from a real sequential execution.
//!
//! Each planned operation gets a linearization point `1000 + 100 * i`; the operations that take
//! effect are executed against a `HashMap` in that order, which gives their true
//! results. Each then gets a random interval around its point (invoked up to `spread`
//! before it, completing up to `spread` after it), so operations overlap at random; the
//! invoke and completion events are replayed into a [`Recorder`] in time order. Some
//! operations fail (and are not executed), some have an unknown outcome (executed or
//! not, their completion recorded as unknown or never).
//!
//! Such a history is linearizable by construction (the points are a witness), so the
//! checker must accept it; changing one get's result to a value never written makes it
//! non-linearizable, so the checker must reject it.

use std::collections::HashMap;

use erlmcp_flow_lincheck::{CheckResult, EventKind, History, Op, OpHandle, OpResult, Recorder, check};
use proptest::prelude::*;

const KEYS: [&str; 3] = ["a", "b", "c"];
const VALUES: [&str; 4] = ["0", "1", "2", "3"];
const NEVER_WRITTEN: &str = "never-written";

/// How an operation ends in the generated history.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Takes effect; its true result is recorded.
    Ok,
    /// Does not take effect; recorded as failed.
    Fail,
    /// Takes effect; recorded as unknown (or never completed, if `completes` is false).
    UnknownApplied { completes: bool },
    /// Does not take effect; recorded as unknown.
    UnknownLost { completes: bool },
}

#[derive(Clone, Debug)]
struct Planned {
    op: Op,
    fate: Fate,
    /// How long before its linearization point it is invoked (1..=spread).
    lead: u64,
    /// How long after its linearization point it completes (1..=spread).
    lag: u64,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(&KEYS[..]);
    let value = prop::sample::select(&VALUES[..]);
    let opt_value = prop::option::of(value.clone());
    prop_oneof![
        3 => (key.clone(), value).prop_map(|(k, v)| Op::put(k, v)),
        4 => key.clone().prop_map(Op::get),
        2 => (key.clone(), opt_value.clone(), opt_value).prop_map(|(k, e, n)| Op::cas(k, e, n)),
        1 => key.prop_map(Op::delete),
    ]
}

fn fate_strategy() -> impl Strategy<Value = Fate> {
    prop_oneof![
        12 => Just(Fate::Ok),
        1 => Just(Fate::Fail),
        1 => any::<bool>().prop_map(|completes| Fate::UnknownApplied { completes }),
        1 => any::<bool>().prop_map(|completes| Fate::UnknownLost { completes }),
    ]
}

/// Up to 40 operations; `spread` up to 350 means up to ~7 overlapping operations.
fn plan_strategy() -> impl Strategy<Value = Vec<Planned>> {
    (1u64..=350).prop_flat_map(|spread| {
        prop::collection::vec(
            (op_strategy(), fate_strategy(), 1..=spread, 1..=spread).prop_map(|(op, fate, lead, lag)| Planned {
                op,
                fate,
                lead,
                lag,
            }),
            0..40,
        )
    })
}

/// Executes the plan sequentially and replays its events into a recorder.
fn record(plan: &[Planned]) -> History {
    let mut store: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(plan.len());
    for planned in plan {
        let applied = matches!(planned.fate, Fate::Ok | Fate::UnknownApplied { .. });
        results.push(if applied { apply(&mut store, &planned.op) } else { None });
    }

    // (time, is_completion, op index); op i's linearization point is 1000 + 100 * i, and
    // lead <= 350 keeps every time positive. Ties between a completion and an invocation
    // are fine in either order: no linearization point lies between them.
    let mut events = Vec::with_capacity(2 * plan.len());
    for (i, planned) in plan.iter().enumerate() {
        let point = 1000 + 100 * i as u64;
        events.push((point - planned.lead, false, i));
        let completes =
            !matches!(planned.fate, Fate::UnknownApplied { completes: false } | Fate::UnknownLost { completes: false });
        if completes {
            events.push((point + planned.lag, true, i));
        }
    }
    events.sort_unstable();

    let recorder = Recorder::new();
    let mut handles: Vec<Option<OpHandle>> = (0..plan.len()).map(|_| None).collect();
    for (_, is_completion, i) in events {
        if !is_completion {
            handles[i] = Some(recorder.invoke(i as u64, plan[i].op.clone()));
            continue;
        }
        let handle = handles[i].take().expect("invoked before completing");
        match plan[i].fate {
            Fate::Ok => handle.ok(results[i].clone().expect("applied")),
            Fate::Fail => handle.fail(),
            Fate::UnknownApplied { .. } | Fate::UnknownLost { .. } => handle.unknown(),
        }
    }
    // Operations that never complete: still in flight when the history is taken.
    let history = recorder.history();
    drop(handles);
    history
}

fn apply(store: &mut HashMap<String, String>, op: &Op) -> Option<OpResult> {
    Some(match op {
        Op::Put { key, value } => {
            store.insert(key.clone(), value.clone());
            OpResult::Done
        }
        Op::Get { key } => OpResult::Value(store.get(key).cloned()),
        Op::Cas { key, expected, new } => {
            let swapped = store.get(key) == expected.as_ref();
            if swapped {
                match new {
                    Some(v) => store.insert(key.clone(), v.clone()),
                    None => store.remove(key),
                };
            }
            OpResult::Swapped(swapped)
        }
        Op::Delete { key } => {
            store.remove(key);
            OpResult::Done
        }
    })
}

/// Positions of the events that complete a get with `ok`.
fn ok_gets(history: &History) -> Vec<(usize, String)> {
    let ops = history.operations();
    history
        .events()
        .iter()
        .enumerate()
        .filter_map(|(index, event)| {
            let EventKind::Ok { result: OpResult::Value(_) } = event.kind else { return None };
            let op = ops.iter().find(|o| o.id == event.id).expect("invoked");
            Some((index, op.op.key().to_owned()))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Soundness on real executions: every history with a linearization witness (random
    /// overlapping intervals around a sequential execution, with failed and
    /// unknown-outcome operations) is accepted.
    #[test]
    fn histories_of_sequential_executions_are_linearizable(plan in plan_strategy()) {
        let history = record(&plan);
        let result = check(&history);
        prop_assert!(result.is_linearizable(), "{result}\n{}", history.to_json_pretty());
    }

    /// Completeness for impossible reads: changing one successful get's result to a value
    /// no operation ever wrote makes the history rejected, on that get's key.
    #[test]
    fn a_get_of_a_value_never_written_is_rejected(plan in plan_strategy(), pick in any::<prop::sample::Index>()) {
        let history = record(&plan);
        let gets = ok_gets(&history);
        prop_assume!(!gets.is_empty());
        let (index, key) = gets[pick.index(gets.len())].clone();
        let mut events = history.into_events();
        events[index].kind = EventKind::Ok { result: OpResult::value(Some(NEVER_WRITTEN)) };
        let mutated = History::from_events(events).expect("still well formed");
        match check(&mutated) {
            CheckResult::NotLinearizable { key: k, .. } => prop_assert_eq!(k, key),
            other => prop_assert!(false, "accepted: {}\n{}", other, mutated.to_json_pretty()),
        }
    }

    /// Save and replay: any generated history survives a JSON round trip unchanged.
    #[test]
    fn json_round_trip_is_lossless(plan in plan_strategy()) {
        let history = record(&plan);
        prop_assert_eq!(History::from_json(&history.to_json()).unwrap(), history);
    }
}
