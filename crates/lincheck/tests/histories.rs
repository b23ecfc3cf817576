//! Classic hand-written histories, each a known linearizable or non-linearizable case.
//!
//! Histories are written with a [`Recorder`] in the order events happen: whatever is
//! invoked before another operation's completion overlaps it.

use erlmcp_flow_lincheck::{
    CheckConfig, CheckResult, ClientId, History, Op, OpResult, Outcome, Recorder, check, check_with,
};

fn put(recorder: &Recorder, client: u64, key: &str, value: &str) {
    recorder.invoke(client, Op::put(key, value)).ok(OpResult::Done);
}

fn get(recorder: &Recorder, client: u64, key: &str, seen: Option<&str>) {
    recorder.invoke(client, Op::get(key)).ok(OpResult::value(seen));
}

#[track_caller]
fn assert_linearizable(recorder: &Recorder) {
    let result = check(&recorder.history());
    assert!(result.is_linearizable(), "{result}");
}

/// Asserts a violation on `key` and returns the stuck operation.
#[track_caller]
fn assert_violation(recorder: &Recorder, key: &str) -> Op {
    match check(&recorder.history()) {
        CheckResult::NotLinearizable { key: k, violation } => {
            assert_eq!(k, key, "{violation}");
            violation.stuck.op
        }
        other => panic!("expected a violation on {key:?}, got {other}"),
    }
}

/// A read that begins after a write completed must see it: seeing the old value
/// (here: nothing) is a stale read.
#[test]
fn stale_read_after_completed_write_is_not_linearizable() {
    let r = Recorder::new();
    put(&r, 1, "x", "1");
    get(&r, 2, "x", None);
    assert_eq!(assert_violation(&r, "x"), Op::get("x"));

    // Also with an older value rather than none.
    let r = Recorder::new();
    put(&r, 1, "x", "1");
    put(&r, 1, "x", "2");
    get(&r, 2, "x", Some("1"));
    assert_violation(&r, "x");
}

/// A read concurrent with a write may return the old or the new value: both
/// histories are linearizable (the read goes before or after the write).
#[test]
fn concurrent_write_and_read_may_see_either_value() {
    for seen in [None, Some("1")] {
        let r = Recorder::new();
        let w = r.invoke(1, Op::put("x", "1"));
        let g = r.invoke(2, Op::get("x"));
        g.ok(OpResult::value(seen));
        w.ok(OpResult::Done);
        assert_linearizable(&r);
    }
}

/// Once a concurrent read has returned the new value, a later read may not return the
/// old one, even while the write is still in flight (no "flickering").
#[test]
fn reads_may_not_go_back_in_time_during_a_write() {
    let r = Recorder::new();
    let w = r.invoke(1, Op::put("x", "1"));
    get(&r, 2, "x", Some("1"));
    get(&r, 3, "x", None);
    w.ok(OpResult::Done);
    assert_violation(&r, "x");
}

/// Lost update: two clients read 0 and both CAS 0 -> their value, and both are told
/// they swapped. Only one CAS can have found 0, so this is not linearizable; with one
/// of them told it did not swap, it is.
#[test]
fn lost_update_via_cas_is_not_linearizable() {
    for second_swapped in [true, false] {
        let r = Recorder::new();
        put(&r, 0, "x", "0");
        let a = r.invoke(1, Op::cas("x", Some("0"), Some("1")));
        let b = r.invoke(2, Op::cas("x", Some("0"), Some("2")));
        a.ok(OpResult::Swapped(true));
        b.ok(OpResult::Swapped(second_swapped));
        if second_swapped {
            assert!(matches!(assert_violation(&r, "x"), Op::Cas { .. }));
        } else {
            assert_linearizable(&r);
        }
    }
}

/// A CAS must see the latest completed write: a failed CAS whose expectation was true
/// by then is not linearizable.
#[test]
fn cas_reporting_mismatch_against_current_value_is_not_linearizable() {
    let r = Recorder::new();
    put(&r, 1, "x", "a");
    r.invoke(2, Op::cas("x", Some("a"), Some("b"))).ok(OpResult::Swapped(false));
    assert_violation(&r, "x");
}

/// A read cannot observe a write that had not even been invoked when the read returned.
#[test]
fn read_of_a_write_not_yet_invoked_is_not_linearizable() {
    let r = Recorder::new();
    get(&r, 1, "x", Some("1"));
    put(&r, 2, "x", "1");
    assert_eq!(assert_violation(&r, "x"), Op::get("x"));
}

/// A write whose outcome is unknown may have taken effect or not: a later read may
/// see it or not. Its effect may even land long after the client gave up.
#[test]
fn unknown_outcome_write_may_be_observed_or_not() {
    for seen in [None, Some("1")] {
        let r = Recorder::new();
        r.invoke(1, Op::put("x", "1")).unknown();
        get(&r, 2, "x", seen);
        assert_linearizable(&r);
    }
    // Not seen at first, seen later: it took effect between the two reads.
    let r = Recorder::new();
    r.invoke(1, Op::put("x", "1")).unknown();
    get(&r, 2, "x", None);
    get(&r, 2, "x", Some("1"));
    assert_linearizable(&r);
}

/// An unknown write takes effect at most once: seen, then unseen (with nothing else
/// writing) is not linearizable.
#[test]
fn unknown_outcome_write_takes_effect_at_most_once() {
    let r = Recorder::new();
    r.invoke(1, Op::put("x", "1")).unknown();
    get(&r, 2, "x", Some("1"));
    get(&r, 2, "x", None);
    assert_violation(&r, "x");
}

/// A handle dropped without completing (the client crashed) counts as unknown.
#[test]
fn dropped_handle_counts_as_unknown() {
    let r = Recorder::new();
    drop(r.invoke(1, Op::put("x", "1")));
    get(&r, 2, "x", Some("1"));
    assert_linearizable(&r);
    let ops = r.history().operations();
    assert_eq!(ops[0].outcome, Outcome::Unknown);
}

/// A failed write definitely did not happen: observing its value is not linearizable.
#[test]
fn failed_write_must_not_be_observed() {
    let r = Recorder::new();
    r.invoke(1, Op::put("x", "1")).fail();
    get(&r, 2, "x", None);
    assert_linearizable(&r);

    let r = Recorder::new();
    r.invoke(1, Op::put("x", "1")).fail();
    get(&r, 2, "x", Some("1"));
    assert_violation(&r, "x");
}

/// Delete removes the key: reading the old value after a completed delete is stale,
/// and a CAS "only if absent" succeeds after it.
#[test]
fn delete_removes_the_key() {
    let r = Recorder::new();
    put(&r, 1, "x", "1");
    r.invoke(1, Op::delete("x")).ok(OpResult::Done);
    r.invoke(2, Op::cas("x", None, Some("2"))).ok(OpResult::Swapped(true));
    get(&r, 3, "x", Some("2"));
    r.invoke(2, Op::cas("x", Some("2"), None)).ok(OpResult::Swapped(true));
    get(&r, 3, "x", None);
    assert_linearizable(&r);

    let r = Recorder::new();
    put(&r, 1, "x", "1");
    r.invoke(1, Op::delete("x")).ok(OpResult::Done);
    get(&r, 2, "x", Some("1"));
    assert_violation(&r, "x");
}

/// Keys are checked independently: a violation on one key is reported on that key
/// even when the other keys' operations interleave with it and are fine.
#[test]
fn violation_is_reported_on_its_own_key() {
    let r = Recorder::new();
    put(&r, 1, "a", "1");
    put(&r, 1, "b", "1");
    get(&r, 2, "a", Some("1"));
    get(&r, 2, "b", None);
    put(&r, 1, "c", "1");
    let stuck = assert_violation(&r, "b");
    assert_eq!(stuck, Op::get("b"));
}

/// The violation names the deepest partial linearization and the operations that
/// could not go next, and says so in its `Display`.
#[test]
fn violation_explains_itself() {
    let r = Recorder::new();
    put(&r, 1, "x", "1");
    let w = r.invoke(2, Op::put("x", "2"));
    get(&r, 3, "x", Some("3"));
    w.ok(OpResult::Done);
    let CheckResult::NotLinearizable { violation, .. } = check(&r.history()) else { panic!("expected a violation") };
    assert_eq!(violation.stuck.op, Op::get("x"));
    assert_eq!(violation.stuck.client, ClientId(3));
    // The search got furthest by linearizing both puts before the get's return.
    assert_eq!(violation.linearized.len(), 2);
    assert_eq!(violation.state.as_deref(), Some("2"));
    assert!(violation.pending.iter().any(|op| op.id == violation.stuck.id));
    let text = violation.to_string();
    assert!(text.contains("the key holds \"2\""), "{text}");
    assert!(text.contains("get(\"x\") -> \"3\""), "{text}");
}

/// Many mutually concurrent unknown writes with reads of values never written blow up
/// the search; a small step bound gives `Inconclusive` instead of hanging, and the same
/// history is decided with a large enough bound.
#[test]
fn step_bound_gives_inconclusive() {
    let r = Recorder::new();
    for i in 0..12 {
        r.invoke(i, Op::put("x", i.to_string())).unknown();
    }
    get(&r, 100, "x", Some("never"));
    let result = check_with(&r.history(), &CheckConfig { max_steps_per_key: 50 });
    assert!(matches!(&result, CheckResult::Inconclusive { key, steps: 50 } if key == "x"), "{result}");
    assert!(matches!(check(&r.history()), CheckResult::NotLinearizable { .. }));
}

/// A history survives a JSON round trip unchanged, and so does its verdict.
#[test]
fn json_round_trip_preserves_history_and_verdict() {
    let r = Recorder::new();
    put(&r, 1, "x", "1");
    r.invoke(2, Op::cas("x", Some("1"), None)).ok(OpResult::Swapped(true));
    r.invoke(3, Op::put("y", "v")).fail();
    r.invoke(4, Op::delete("y")).unknown();
    let _in_flight = r.invoke(5, Op::get("x"));
    get(&r, 6, "x", Some("1"));
    let history = r.history();

    let back = History::from_json(&history.to_json()).unwrap();
    assert_eq!(back, history);
    assert_eq!(History::from_json(&history.to_json_pretty()).unwrap(), history);
    assert_eq!(check(&back), check(&history));
    assert!(!check(&back).is_linearizable());
}

/// Many threads share one recorder around a mutex-protected map: a correct store,
/// recorded concurrently, is linearizable.
#[test]
fn concurrent_clients_of_a_locked_map_are_linearizable() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let recorder = Recorder::new();
    let store: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let threads: Vec<_> = (0..4u64)
        .map(|client| {
            let (recorder, store) = (recorder.clone(), store.clone());
            std::thread::spawn(move || {
                let mut seed = client.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for _ in 0..100 {
                    let key = format!("k{}", next() % 3);
                    let value = format!("v{}", next() % 4);
                    let op = match next() % 4 {
                        0 => Op::put(&key, &value),
                        1 => Op::get(&key),
                        2 => Op::cas(&key, Some(&value), Some(&format!("v{}", next() % 4))),
                        _ => Op::delete(&key),
                    };
                    let handle = recorder.invoke(client, op.clone());
                    let result = {
                        let mut map = store.lock().unwrap();
                        match op {
                            Op::Put { key, value } => {
                                map.insert(key, value);
                                OpResult::Done
                            }
                            Op::Get { key } => OpResult::Value(map.get(&key).cloned()),
                            Op::Cas { key, expected, new } => {
                                let swapped = map.get(&key) == expected.as_ref();
                                if swapped {
                                    match new {
                                        Some(v) => map.insert(key, v),
                                        None => map.remove(&key),
                                    };
                                }
                                OpResult::Swapped(swapped)
                            }
                            Op::Delete { key } => {
                                map.remove(&key);
                                OpResult::Done
                            }
                        }
                    };
                    handle.ok(result);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let history = recorder.history();
    assert_eq!(history.operations().len(), 400);
    let result = check(&history);
    assert!(result.is_linearizable(), "{result}");
}
