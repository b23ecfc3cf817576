//! [`check`]: partition a history by key and search each key for a linearization.
//!
//! Linearizability is compositional (Herlihy & Wing, TOPLAS 1990, "locality"): a
//! history of several objects is linearizable iff each object's sub-history is. Every
//! key-value operation touches exactly one key, so each key is a register checked on its
//! own. This is what makes checking a KV store practical: the search is exponential in
//! concurrency per key, not across the whole store (Horn & Kroening, "Faster
//! linearizability checking via P-compositionality", FORTE 2015).
//!
//! Before the search, failed operations are dropped (they definitely did not happen)
//! and so are gets with an unknown outcome (a read that returned nothing constrains
//! nothing and changes nothing). Keys are checked in sorted order; the first key that is
//! not linearizable is reported. A key whose search exceeds
//! [`CheckConfig::max_steps_per_key`] makes the result [`CheckResult::Inconclusive`],
//! unless another key is definitely not linearizable.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{History, Operation, Outcome};
use crate::model::{Interner, KeyOp};
use crate::op::Op;
use crate::wgl::{SearchOp, SearchOutcome, search};

/// Checker settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckConfig {
    /// Search steps allowed per key before giving up with
    /// [`CheckResult::Inconclusive`]. One step visits one entry of the search list and
    /// adds at most one memo entry, so this bounds time and memory alike. Default:
    /// 1,000,000 (about 0.2 s in a test build).
    pub max_steps_per_key: u64,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig { max_steps_per_key: 1_000_000 }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// This key's sub-history has none.
    NotLinearizable {
        /// The key.
        key: String,
        /// What went wrong.
        violation: Violation,
    },
    /// No key was found non-linearizable, but this key's search hit the step bound.
    Inconclusive {
        /// The (first) key whose search gave up.
        key: String,
        /// Steps spent on it.
        steps: u64,
    },
}

impl CheckResult {
    /// Whether the verdict is [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Linearizable => f.write_str("linearizable"),
            CheckResult::NotLinearizable { key, violation } => {
                write!(f, "not linearizable on key {key:?}: {violation}")
            }
            CheckResult::Inconclusive { key, steps } => {
                write!(f, "inconclusive: gave up on key {key:?} after {steps} search steps")
            }
        }
    }
}

/// Why a key's sub-history is not linearizable: the deepest point the search reached.
///
/// The search linearized [`linearized`](Self::linearized) (in that order, leaving the key
/// at [`state`](Self::state)), then reached the return of [`stuck`](Self::stuck) without
/// being able to place it: neither it nor any other operation in
/// [`pending`](Self::pending) could take effect next, and every other order was worse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The longest prefix the search could linearize, in linearization order.
    pub linearized: Vec<Operation>,
    /// The key's value after that prefix.
    pub state: Option<String>,
    /// The operation whose return came before it could be linearized.
    pub stuck: Operation,
    /// Every operation invoked but not linearized at that point (including `stuck`).
    pub pending: Vec<Operation>,
}

/// How many linearized operations a [`Violation`]'s `Display` shows.
const SHOWN_PREFIX: usize = 5;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.linearized.len().min(SHOWN_PREFIX);
        write!(f, "after linearizing {} operation(s)", self.linearized.len())?;
        if shown > 0 {
            let skipped = self.linearized.len() - shown;
            f.write_str(if skipped > 0 { " (last: " } else { " (" })?;
            for (n, op) in self.linearized[skipped..].iter().enumerate() {
                write!(f, "{}{}", if n > 0 { "; " } else { "" }, op)?;
            }
            f.write_str(")")?;
        }
        match &self.state {
            Some(value) => write!(f, " the key holds {value:?}")?,
            None => f.write_str(" the key is absent")?,
        }
        write!(f, "; {} cannot be linearized before it returns", self.stuck)?;
        let others: Vec<&Operation> = self.pending.iter().filter(|op| op.id != self.stuck.id).collect();
        if !others.is_empty() {
            f.write_str(", and no other pending operation can go first (")?;
            for (n, op) in others.iter().enumerate() {
                write!(f, "{}{}", if n > 0 { "; " } else { "" }, op)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Checks `history` with the default [`CheckConfig`].
pub fn check(history: &History) -> CheckResult {
    check_with(history, &CheckConfig::default())
}

/// Checks `history`: [`CheckResult::Linearizable`] iff there is a total order of its
/// operations that respects real time (an operation that returned before another was
/// invoked comes first), is legal for a sequential key-value store starting empty, and
/// gives every `ok` operation the result it recorded. Failed operations are excluded;
/// unknown-outcome operations may be placed anywhere after their invocation, or left out.
pub fn check_with(history: &History, config: &CheckConfig) -> CheckResult {
    let mut by_key: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
    for operation in history.operations() {
        let dropped = match (&operation.outcome, &operation.op) {
            (Outcome::Fail, _) | (Outcome::Unknown, Op::Get { .. }) => true,
            (Outcome::Ok(_) | Outcome::Unknown, _) => false,
        };
        if !dropped {
            by_key.entry(operation.op.key().to_owned()).or_default().push(operation);
        }
    }

    let mut inconclusive = None;
    for (key, operations) in by_key {
        let mut interner = Interner::default();
        let ops: Vec<SearchOp> = operations
            .iter()
            .map(|operation| {
                let (op, expected) = interner.compile(operation);
                let ret = match operation.outcome {
                    Outcome::Unknown => None,
                    _ => operation.completed_at,
                };
                debug_assert!(
                    !matches!(operation.outcome, Outcome::Ok(_)) || ret.is_some(),
                    "an ok operation has a return time"
                );
                debug_assert!(!matches!(op, KeyOp::Get) || ret.is_some(), "unknown gets were dropped");
                SearchOp { op, expected, call: operation.invoked_at, ret }
            })
            .collect();
        match search(&ops, None, config.max_steps_per_key) {
            SearchOutcome::Linearizable { .. } => {}
            SearchOutcome::NotLinearizable { prefix, state, stuck, pending, .. } => {
                let pick = |i: usize| operations[i].clone();
                let violation = Violation {
                    linearized: prefix.into_iter().map(pick).collect(),
                    state: interner.resolve(state),
                    stuck: pick(stuck),
                    pending: pending.into_iter().map(pick).collect(),
                };
                return CheckResult::NotLinearizable { key, violation };
            }
            SearchOutcome::Inconclusive { steps } => {
                inconclusive.get_or_insert(CheckResult::Inconclusive { key, steps });
            }
        }
    }
    inconclusive.unwrap_or(CheckResult::Linearizable)
}
