//! The operations of the key-value store under test, and their results.
//!
//! The store maps `String` keys to `String` values and starts empty. Its sequential
//! specification, which the checker holds every history to, is:
//!
//! | operation                        | effect                                   | result                 |
//! |----------------------------------|------------------------------------------|------------------------|
//! | [`Op::Put`]`{key, value}`        | `key := Some(value)`                     | [`OpResult::Done`]     |
//! | [`Op::Get`]`{key}`               | none                                     | [`OpResult::Value`]    |
//! | [`Op::Cas`]`{key, expected, new}`| if `key == expected` then `key := new`   | [`OpResult::Swapped`]  |
//! | [`Op::Delete`]`{key}`            | `key := None`                            | [`OpResult::Done`]     |
//!
//! `expected: None` in a CAS means "only if absent", and `new: None` deletes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The client that issued an operation (a thread, a connection, a simulated node).
///
/// The checker does not need it (real-time order comes from the timestamps); it is kept
/// so a reported violation can say who did what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub u64);

impl From<u64> for ClientId {
    fn from(id: u64) -> Self {
        ClientId(id)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}", self.0)
    }
}

/// One operation of a history, numbered in invocation order by the recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A key-value store operation, as invoked by a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    /// Set `key` to `value`. Returns [`OpResult::Done`].
    Put {
        /// The key written.
        key: String,
        /// The value written.
        value: String,
    },
    /// Read `key`. Returns [`OpResult::Value`].
    Get {
        /// The key read.
        key: String,
    },
    /// Compare-and-set: if `key` currently holds `expected` (`None` = absent), set it to
    /// `new` (`None` = delete). Returns [`OpResult::Swapped`] saying whether it did.
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold for the swap to happen; `None` = absent.
        expected: Option<String>,
        /// The value to store; `None` deletes the key.
        new: Option<String>,
    },
    /// Remove `key`. Returns [`OpResult::Done`].
    Delete {
        /// The key removed.
        key: String,
    },
}

impl Op {
    /// `Put { key, value }`.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        Op::Put { key: key.into(), value: value.into() }
    }

    /// `Get { key }`.
    pub fn get(key: impl Into<String>) -> Self {
        Op::Get { key: key.into() }
    }

    /// `Cas { key, expected, new }`.
    pub fn cas(key: impl Into<String>, expected: Option<&str>, new: Option<&str>) -> Self {
        Op::Cas { key: key.into(), expected: expected.map(str::to_owned), new: new.map(str::to_owned) }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// The key this operation touches (every operation touches exactly one).
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Cas { key, .. } | Op::Delete { key } => key,
        }
    }

    /// The operation's name: `"put"`, `"get"`, `"cas"` or `"delete"`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::Get { .. } => "get",
            Op::Cas { .. } => "cas",
            Op::Delete { .. } => "delete",
        }
    }

    /// Whether `result` is the kind of result this operation returns
    /// (`Done` for put and delete, `Value` for get, `Swapped` for CAS).
    pub fn accepts(&self, result: &OpResult) -> bool {
        matches!(
            (self, result),
            (Op::Put { .. } | Op::Delete { .. }, OpResult::Done)
                | (Op::Get { .. }, OpResult::Value(_))
                | (Op::Cas { .. }, OpResult::Swapped(_))
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put({key:?}, {value:?})"),
            Op::Get { key } => write!(f, "get({key:?})"),
            Op::Cas { key, expected, new } => write!(f, "cas({key:?}, {expected:?} -> {new:?})"),
            Op::Delete { key } => write!(f, "delete({key:?})"),
        }
    }
}

/// What a completed operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpResult {
    /// A put or delete was applied.
    Done,
    /// A get saw this value (`None` = key absent).
    Value(Option<String>),
    /// Whether a CAS swapped.
    Swapped(bool),
}

impl OpResult {
    /// `Value(value)`, from a borrowed string.
    pub fn value(value: Option<&str>) -> Self {
        OpResult::Value(value.map(str::to_owned))
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Done => f.write_str("ok"),
            OpResult::Value(Some(v)) => write!(f, "{v:?}"),
            OpResult::Value(None) => f.write_str("absent"),
            OpResult::Swapped(swapped) => write!(f, "{}", if *swapped { "swapped" } else { "not swapped" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each operation accepts exactly the result kind of its sequential specification.
    #[test]
    fn result_kinds_match_the_specification() {
        assert!(Op::put("k", "v").accepts(&OpResult::Done));
        assert!(Op::delete("k").accepts(&OpResult::Done));
        assert!(Op::get("k").accepts(&OpResult::value(None)));
        assert!(Op::cas("k", None, Some("v")).accepts(&OpResult::Swapped(true)));
        assert!(!Op::get("k").accepts(&OpResult::Done));
        assert!(!Op::put("k", "v").accepts(&OpResult::Swapped(false)));
        assert!(!Op::cas("k", None, None).accepts(&OpResult::value(Some("v"))));
    }
}
