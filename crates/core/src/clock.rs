//! A node-local monotonic clock in nanoseconds.
//!
//! Hot-path statistics (heartbeats, EWMA stamps, busy-since marks) live in atomics, so
//! they need time as a plain `u64`. [`MonoClock`] counts nanoseconds from its creation
//! using `tokio::time::Instant`, so tests that pause and advance tokio time move it too.

use std::time::Duration;

use tokio::time::Instant;

/// Nanoseconds since the clock was created.
#[derive(Debug, Clone, Copy)]
pub struct MonoClock {
    epoch: Instant,
}

impl Default for MonoClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonoClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            // Start one second "in the past" so 0 can mean "never".
            epoch: Instant::now().checked_sub(Duration::from_secs(1)).unwrap_or_else(Instant::now),
        }
    }

    /// Nanoseconds since the epoch (never 0).
    pub fn now_ns(&self) -> u64 {
        (Instant::now() - self.epoch).as_nanos().max(1) as u64
    }

    /// The instant a reading corresponds to.
    pub fn instant_of(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}
