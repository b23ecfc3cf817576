//! The sequential specification of one key, compiled for the search.
//!
//! The checker partitions a history by key, so the model is a single register holding
//! `Option<value>`. Values are interned to `u32` per key ([`Interner`]), which makes a
//! state `Copy` and cheap to hash into the search's memo table.

use std::collections::HashMap;

use crate::history::{Operation, Outcome};
use crate::op::{Op, OpResult};

/// An interned value.
pub(crate) type ValueId = u32;

/// The register's state: absent or an interned value.
pub(crate) type State = Option<ValueId>;

/// An operation on the key, with values interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyOp {
    Put(ValueId),
    Get,
    Cas { expected: State, new: State },
    Delete,
}

/// What the operation must have returned for a linearization to be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    Done,
    Value(State),
    Swapped(bool),
    /// Unknown outcome: any result is acceptable.
    Anything,
}

/// Applies `op` in `state`; `None` if the operation could not have returned `expected`.
pub(crate) fn step(state: State, op: KeyOp, expected: Expected) -> Option<State> {
    match (op, expected) {
        (KeyOp::Put(value), Expected::Done | Expected::Anything) => Some(Some(value)),
        (KeyOp::Delete, Expected::Done | Expected::Anything) => Some(None),
        (KeyOp::Get, Expected::Anything) => Some(state),
        (KeyOp::Get, Expected::Value(seen)) => (seen == state).then_some(state),
        (KeyOp::Cas { expected: want, new }, result) => {
            let swapped = state == want;
            let next = if swapped { new } else { state };
            match result {
                Expected::Anything => Some(next),
                Expected::Swapped(said) => (said == swapped).then_some(next),
                Expected::Done | Expected::Value(_) => None,
            }
        }
        // Result kinds are validated when a history is built; a mismatch cannot linearize.
        (KeyOp::Put(_) | KeyOp::Delete, Expected::Value(_) | Expected::Swapped(_))
        | (KeyOp::Get, Expected::Done | Expected::Swapped(_)) => None,
    }
}

/// Per-key value interning, in both directions.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, ValueId>,
    values: Vec<String>,
}

impl Interner {
    fn intern(&mut self, value: &str) -> ValueId {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = ValueId::try_from(self.values.len()).expect("fewer than 2^32 distinct values per key");
        self.ids.insert(value.to_owned(), id);
        self.values.push(value.to_owned());
        id
    }

    fn intern_opt(&mut self, value: Option<&String>) -> State {
        value.map(|v| self.intern(v))
    }

    /// The value of a state, for reports.
    pub(crate) fn resolve(&self, state: State) -> Option<String> {
        state.map(|id| self.values[id as usize].clone())
    }

    /// Compiles an operation of this key. Failed operations must be filtered out first.
    pub(crate) fn compile(&mut self, operation: &Operation) -> (KeyOp, Expected) {
        let op = match &operation.op {
            Op::Put { value, .. } => KeyOp::Put(self.intern(value)),
            Op::Get { .. } => KeyOp::Get,
            Op::Cas { expected, new, .. } => {
                KeyOp::Cas { expected: self.intern_opt(expected.as_ref()), new: self.intern_opt(new.as_ref()) }
            }
            Op::Delete { .. } => KeyOp::Delete,
        };
        let expected = match &operation.outcome {
            Outcome::Ok(OpResult::Done) => Expected::Done,
            Outcome::Ok(OpResult::Value(seen)) => Expected::Value(self.intern_opt(seen.as_ref())),
            Outcome::Ok(OpResult::Swapped(swapped)) => Expected::Swapped(*swapped),
            Outcome::Unknown => Expected::Anything,
            Outcome::Fail => unreachable!("failed operations are dropped before compiling"),
        };
        (op, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register follows the table in the `op` module docs.
    #[test]
    fn register_follows_the_specification() {
        assert_eq!(step(None, KeyOp::Put(1), Expected::Done), Some(Some(1)));
        assert_eq!(step(Some(1), KeyOp::Get, Expected::Value(Some(1))), Some(Some(1)));
        assert_eq!(step(Some(1), KeyOp::Get, Expected::Value(None)), None);
        assert_eq!(step(Some(1), KeyOp::Delete, Expected::Done), Some(None));
        let cas = KeyOp::Cas { expected: Some(1), new: Some(2) };
        assert_eq!(step(Some(1), cas, Expected::Swapped(true)), Some(Some(2)));
        assert_eq!(step(Some(1), cas, Expected::Swapped(false)), None);
        assert_eq!(step(None, cas, Expected::Swapped(false)), Some(None));
        assert_eq!(step(None, cas, Expected::Anything), Some(None));
        assert_eq!(step(Some(1), cas, Expected::Anything), Some(Some(2)));
    }
}
