//! The Wing & Gong search with Lowe's memoization, for one key.
//!
//! Wing and Gong ("Testing and verifying concurrent objects", JPDC 1993) search for a
//! linearization by walking a list of call and return entries sorted by time: at a call
//! entry, try to linearize that operation next (apply it to the model; if its recorded
//! result matches, remove its call and return entries from the list and restart from
//! the head); at a return entry, the operation it belongs to had to be linearized
//! before now and was not, so backtrack: undo the most recently linearized operation
//! and try the next candidate after it. The history is linearizable once the list is
//! empty; it is not once a return entry is reached with nothing left to undo.
//!
//! Lowe ("Testing for linearizability", CC:PE 2017) adds a memo table of
//! `(set of linearized operations, model state)` configurations already explored: two
//! paths that linearized the same operations and reached the same state have the same
//! future, so the second is cut. This is what makes typical histories fast. The list is
//! a doubly linked list over an array so that removing and restoring an operation's
//! two entries is O(1) (restores happen in reverse order of removals, like dancing links).
//!
//! Operations with an unknown outcome get a return entry at +infinity: they may be
//! linearized at any point after their call, with any result. All of their return
//! entries come after every known return, so reaching one means every operation with a
//! known outcome is linearized, and the rest can be taken never to have happened.
//!
//! Deciding linearizability is NP-complete in general (Gibbons & Korach, SIAM J. Comput.
//! 1997): the search is exponential in the number of mutually concurrent operations, so
//! it counts steps and gives up after a bound.

use std::collections::HashSet;

use crate::model::{Expected, KeyOp, State, step};

/// One operation of a key's sub-history, compiled for the search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SearchOp {
    pub(crate) op: KeyOp,
    pub(crate) expected: Expected,
    pub(crate) call: u64,
    /// `None` = unknown outcome: returns at +infinity.
    pub(crate) ret: Option<u64>,
}

/// How the search ended. Operation indices refer to the input slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SearchOutcome {
    Linearizable {
        steps: u64,
    },
    NotLinearizable {
        steps: u64,
        /// The longest prefix the search linearized, in order.
        prefix: Vec<usize>,
        /// The model state after `prefix`.
        state: State,
        /// The operation whose return entry stopped that prefix.
        stuck: usize,
        /// The operations invoked but not linearized at that point (including `stuck`),
        /// none of which could go next.
        pending: Vec<usize>,
    },
    Inconclusive {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    /// For a call entry, the index of its return entry; `NIL` for a return entry.
    ret_entry: usize,
}

/// Doubly linked list of entries; index 0 is the head sentinel.
struct EntryList {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    fn new(ops: &[SearchOp]) -> Self {
        // (time, is_return, op); times of known events are distinct, unknown returns tie
        // at +infinity and their relative order does not matter.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            debug_assert!(op.ret.is_none_or(|ret| ret > op.call), "an operation returns after its call");
            events.push((op.call, false, i));
            events.push((op.ret.unwrap_or(u64::MAX), true, i));
        }
        events.sort_unstable();
        let n = events.len();
        let mut entries = vec![Entry { op: NIL, ret_entry: NIL }; n + 1];
        let mut ret_entry_of = vec![NIL; ops.len()];
        for (pos, &(_, is_return, op)) in events.iter().enumerate() {
            entries[pos + 1] = Entry { op, ret_entry: NIL };
            if is_return {
                ret_entry_of[op] = pos + 1;
            }
        }
        for (pos, &(_, is_return, op)) in events.iter().enumerate() {
            if !is_return {
                entries[pos + 1].ret_entry = ret_entry_of[op];
            }
        }
        let next = (0..=n).map(|i| if i == n { NIL } else { i + 1 }).collect();
        let prev = (0..=n).map(|i| if i == 0 { NIL } else { i - 1 }).collect();
        EntryList { entries, next, prev }
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        if n != NIL {
            self.prev[n] = x;
        }
    }

    /// Removes a call entry and its return entry.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.entries[call].ret_entry);
    }

    /// Undoes [`lift`](Self::lift); must be called in reverse order of lifts.
    fn unlift(&mut self, call: usize) {
        self.relink(self.entries[call].ret_entry);
        self.relink(call);
    }

    /// Operations of the call entries before `stop`.
    fn calls_before(&self, stop: usize) -> Vec<usize> {
        let mut ops = Vec::new();
        let mut e = self.first();
        while e != stop && e != NIL {
            if self.entries[e].ret_entry != NIL {
                ops.push(self.entries[e].op);
            }
            e = self.next[e];
        }
        ops
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Box<[u64]>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Bitset(vec![0; bits.div_ceil(64)].into_boxed_slice())
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Searches for a linearization of `ops` from `initial`, giving up after `max_steps`
/// iterations (one iteration = one list entry visited).
pub(crate) fn search(ops: &[SearchOp], initial: State, max_steps: u64) -> SearchOutcome {
    let mut list = EntryList::new(ops);
    let mut linearized = Bitset::new(ops.len());
    let mut memo: HashSet<(Bitset, State)> = HashSet::new();
    // (call entry, state before it)
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = initial;
    let mut entry = list.first();
    let mut steps: u64 = 0;
    // The deepest point reached: (prefix, state, stuck op, pending ops).
    let mut deepest: Option<(Vec<usize>, State, usize, Vec<usize>)> = None;

    loop {
        if steps >= max_steps {
            return SearchOutcome::Inconclusive { steps };
        }
        steps += 1;
        if entry == NIL {
            debug_assert!(stack.len() == ops.len(), "empty list means every operation is linearized");
            return SearchOutcome::Linearizable { steps };
        }
        let Entry { op: i, ret_entry } = list.entries[entry];
        if ret_entry != NIL {
            // A call entry: try to linearize operation `i` next.
            let op = &ops[i];
            if let Some(next_state) = step(state, op.op, op.expected) {
                linearized.set(i);
                if memo.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.first();
                    continue;
                }
                linearized.clear(i);
            }
            entry = list.next[entry];
        } else {
            // A return entry: the first one in the list (everything before it is a call).
            if ops[i].ret.is_none() {
                // Only unknown-outcome operations remain: they need not have happened.
                return SearchOutcome::Linearizable { steps };
            }
            if deepest.as_ref().is_none_or(|(prefix, ..)| stack.len() > prefix.len()) {
                let prefix = stack.iter().map(|&(call, _)| list.entries[call].op).collect();
                deepest = Some((prefix, state, i, list.calls_before(entry)));
            }
            let Some((call, previous)) = stack.pop() else {
                let (prefix, state, stuck, pending) = deepest.expect("recorded just above");
                return SearchOutcome::NotLinearizable { steps, prefix, state, stuck, pending };
            };
            linearized.clear(list.entries[call].op);
            state = previous;
            list.unlift(call);
            entry = list.next[call];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: KeyOp, expected: Expected, call: u64, ret: Option<u64>) -> SearchOp {
        SearchOp { op, expected, call, ret }
    }

    /// Put(1) completes, then a get sees nothing: the search reports the get as stuck
    /// after the put, with the register holding 1.
    #[test]
    fn stale_read_reports_the_read_after_the_write() {
        let ops = [op(KeyOp::Put(1), Expected::Done, 1, Some(2)), op(KeyOp::Get, Expected::Value(None), 3, Some(4))];
        let outcome = search(&ops, None, 1000);
        let SearchOutcome::NotLinearizable { prefix, state, stuck, pending, .. } = outcome else {
            panic!("expected a violation, got {outcome:?}");
        };
        assert_eq!((prefix, state, stuck, pending), (vec![0], Some(1), 1, vec![1]));
    }

    /// A get overlapping a put may see it: the search reorders to put, get.
    #[test]
    fn overlapping_operations_are_reordered() {
        let ops = [op(KeyOp::Get, Expected::Value(Some(1)), 1, Some(4)), op(KeyOp::Put(1), Expected::Done, 2, Some(3))];
        assert!(matches!(search(&ops, None, 1000), SearchOutcome::Linearizable { .. }));
    }

    /// The step bound is honoured exactly.
    #[test]
    fn step_bound_gives_inconclusive() {
        let ops = [op(KeyOp::Put(1), Expected::Done, 1, Some(2))];
        assert_eq!(search(&ops, None, 1), SearchOutcome::Inconclusive { steps: 1 });
        assert!(matches!(search(&ops, None, 10), SearchOutcome::Linearizable { .. }));
    }

    /// An empty history is linearizable.
    #[test]
    fn empty_history_is_linearizable() {
        assert!(matches!(search(&[], None, 10), SearchOutcome::Linearizable { steps: 1 }));
    }
}
