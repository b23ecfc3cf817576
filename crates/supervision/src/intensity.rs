//! Restart intensity: OTP's `intensity` / `period` as a pure tracker.
//!
//! A supervisor may restart children at most `max_restarts` times within any `window`.
//! One more restart inside the window is a *meltdown*: the supervisor stops its children
//! and fails, so its own supervisor decides (escalation), instead of looping forever on a
//! child that cannot stay up. Time is an input, so the rule is tested without a clock.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The rule: at most `max_restarts` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartIntensity {
    /// Restarts tolerated in the window.
    pub max_restarts: u32,
    /// The sliding window.
    pub window: Duration,
}

impl RestartIntensity {
    /// `max_restarts` in `window`.
    pub fn new(max_restarts: u32, window: Duration) -> Self {
        Self { max_restarts, window }
    }
}

impl Default for RestartIntensity {
    /// OTP's default for dynamic supervisors in this project: 5 restarts in 60 s.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(60))
    }
}

/// Verdict on one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartVerdict {
    /// Within the intensity: restart.
    Allowed,
    /// Over the intensity: give up and escalate.
    Exceeded,
}

/// Sliding-window restart counter. Holds at most `max_restarts + 1` timestamps.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    rule: RestartIntensity,
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    /// A tracker for `rule`.
    pub fn new(rule: RestartIntensity) -> Self {
        Self { rule, recent: VecDeque::with_capacity(rule.max_restarts as usize + 1) }
    }

    /// Records a restart at `now` and says whether it is allowed.
    pub fn record(&mut self, now: Instant) -> RestartVerdict {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.rule.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        if self.recent.len() > self.rule.max_restarts as usize {
            // Keep the buffer bounded even if the caller keeps recording.
            while self.recent.len() > self.rule.max_restarts as usize + 1 {
                self.recent.pop_front();
            }
            RestartVerdict::Exceeded
        } else {
            RestartVerdict::Allowed
        }
    }

    /// Restarts currently inside the window (as of the last record).
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max_restarts` restarts in the window are allowed; one more is a meltdown.
    #[test]
    fn exceeding_within_window_is_a_meltdown() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(RestartIntensity::new(3, Duration::from_secs(10)));
        for i in 0..3 {
            assert_eq!(t.record(t0 + Duration::from_secs(i)), RestartVerdict::Allowed);
        }
        assert_eq!(t.record(t0 + Duration::from_secs(3)), RestartVerdict::Exceeded);
    }

    /// Restarts spread wider than the window never accumulate.
    #[test]
    fn old_restarts_leave_the_window() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(RestartIntensity::new(2, Duration::from_secs(10)));
        for i in 0..100 {
            assert_eq!(t.record(t0 + Duration::from_secs(6 * i)), RestartVerdict::Allowed, "restart {i}");
        }
        assert!(t.recent() <= 2);
    }

    /// Zero tolerated restarts means the first restart escalates.
    #[test]
    fn zero_intensity_escalates_at_once() {
        let mut t = RestartTracker::new(RestartIntensity::new(0, Duration::from_secs(1)));
        assert_eq!(t.record(Instant::now()), RestartVerdict::Exceeded);
    }
}
