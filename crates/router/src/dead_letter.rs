//! The dead-letter queue: tasks no agent could take, kept for inspection and replay.
//!
//! Bounded by `router.dead_letter_capacity`: past it the oldest letter is dropped from
//! the *queue* (and counted in [`DeadLetterQueue::evicted`]); the task's terminal state
//! and the ledger counts are never affected.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use erlmcp_flow_core::{DeadLetterReason, Task};
use parking_lot::Mutex;

/// One dead-lettered task.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The task as submitted.
    pub task: Arc<Task>,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
    /// Attempts made.
    pub attempts: u32,
    /// When (node clock, ns).
    pub at_ns: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct DeadLetterQueue {
    letters: Mutex<VecDeque<DeadLetter>>,
    capacity: usize,
    total: AtomicU64,
    evicted: AtomicU64,
}

impl DeadLetterQueue {
    /// A queue holding at most `capacity` letters.
    pub fn new(capacity: usize) -> Self {
        Self {
            letters: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            total: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Adds a letter, evicting the oldest when full.
    pub fn push(&self, letter: DeadLetter) {
        let mut q = self.letters.lock();
        if q.len() == self.capacity {
            q.pop_front();
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(letter);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the queued letters, oldest first.
    pub fn snapshot(&self) -> Vec<DeadLetter> {
        self.letters.lock().iter().cloned().collect()
    }

    /// Takes every queued letter (to replay them).
    pub fn drain(&self) -> Vec<DeadLetter> {
        self.letters.lock().drain(..).collect()
    }

    /// Letters queued now.
    pub fn len(&self) -> usize {
        self.letters.lock().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.letters.lock().is_empty()
    }

    /// Letters ever queued.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Letters dropped from the queue because it was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::CapabilitySet;

    /// The queue keeps the newest `capacity` letters and counts what it dropped.
    #[test]
    fn bounded_fifo() {
        let q = DeadLetterQueue::new(2);
        let t = Arc::new(Task::new(CapabilitySet::parse(["x"]).unwrap()));
        for i in 0..3 {
            q.push(DeadLetter { task: t.clone(), reason: DeadLetterReason::NoCapableAgent, attempts: i, at_ns: 0 });
        }
        assert_eq!(q.snapshot().iter().map(|l| l.attempts).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((q.total(), q.evicted()), (3, 1));
        assert_eq!(q.drain().len(), 2);
        assert!(q.is_empty());
    }
}
