//! Rate-limited logging of repeated events: one line per key per interval, with a count.
//!
//! A peer that is down makes every dial, every RPC and every heartbeat fail the same way,
//! many times a second; logged one by one, that buries everything else (a nemesis run saw
//! 1 250 ERROR and 4 143 WARN lines per node, mostly one message repeated). A
//! [`LogLimiter`] lets the first occurrence of an event for a key (a peer, an address)
//! through, suppresses the repeats for `interval`, and lets the next one after that
//! through with the number it suppressed meanwhile, the way Linux's `printk_ratelimit`
//! reports "N callbacks suppressed":
//!
//! ```text
//! WARN dial failed peer=127.0.0.1:7001 suppressed=0 error=connection refused
//! WARN dial failed peer=127.0.0.1:7001 suppressed=41 error=connection refused
//! ```
//!
//! The limiter is a pure state machine (time is an input, in nanoseconds of a
//! [`MonoClock`]); [`SharedLogLimiter`] wraps it in a mutex with a clock for use from
//! several tasks. Its table is bounded: beyond `max_keys` live keys, newcomers share one
//! overflow window, so a flood of distinct keys (addresses an adversary picks) still
//! yields at most one line per interval for all of them together. A window whose interval
//! ended with nothing suppressed is reclaimed when room is needed; one that ended with
//! repeats still unreported is reported by the next occurrence of its key or by
//! [`LogLimiter::flush`], which a periodic task should call so counts are not left
//! pending when a key goes quiet.
//!
//! ```
//! use std::time::Duration;
//! use erlmcp_flow_core::LogLimiter;
//!
//! let mut limiter: LogLimiter<String> = LogLimiter::new(Duration::from_secs(1), 64);
//! assert_eq!(limiter.check("peer-a", 0), Some(0)); // first: logged
//! assert_eq!(limiter.check("peer-a", 10), None); // repeat: suppressed
//! assert_eq!(limiter.check("peer-b", 20), Some(0)); // another key: logged
//! assert_eq!(limiter.check("peer-a", 1_000_000_000), Some(1)); // next interval: logged, 1 suppressed
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::MonoClock;

/// The default interval between two lines for one key.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The default bound on keys tracked at once.
pub const DEFAULT_LOG_KEYS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Window {
    started_ns: u64,
    suppressed: u64,
}

impl Window {
    fn open(now_ns: u64) -> Self {
        Self { started_ns: now_ns, suppressed: 0 }
    }

    fn ended(&self, now_ns: u64, interval_ns: u64) -> bool {
        now_ns.saturating_sub(self.started_ns) >= interval_ns
    }

    /// One occurrence: `Some(suppressed)` if it is to be logged.
    fn occur(&mut self, now_ns: u64, interval_ns: u64) -> Option<u64> {
        if self.ended(now_ns, interval_ns) {
            let suppressed = self.suppressed;
            *self = Window::open(now_ns);
            Some(suppressed)
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Decides which occurrences of a repeated event are logged. See the module docs.
#[derive(Debug)]
pub struct LogLimiter<K> {
    interval_ns: u64,
    max_keys: usize,
    windows: HashMap<K, Window>,
    /// Shared by keys that found the table full; `None` until first used.
    overflow: Option<Window>,
}

impl<K: Eq + Hash + Clone> LogLimiter<K> {
    /// At most one line per key per `interval`, tracking at most `max_keys` keys (at
    /// least 1) on their own.
    pub fn new(interval: Duration, max_keys: usize) -> Self {
        Self {
            interval_ns: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX).max(1),
            max_keys: max_keys.max(1),
            windows: HashMap::new(),
            overflow: None,
        }
    }

    /// One occurrence of the event for `key` at `now_ns`: `Some(suppressed)` when it is to
    /// be logged (naming the `suppressed` repeats since the key's previous line), `None`
    /// when it is suppressed (and counted).
    pub fn check<Q>(&mut self, key: &Q, now_ns: u64) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let interval_ns = self.interval_ns;
        if let Some(w) = self.windows.get_mut(key) {
            return w.occur(now_ns, interval_ns);
        }
        if self.windows.len() >= self.max_keys {
            // Reclaim windows that ended with nothing left to report.
            self.windows.retain(|_, w| !(w.suppressed == 0 && w.ended(now_ns, interval_ns)));
        }
        if self.windows.len() < self.max_keys {
            self.windows.insert(key.to_owned(), Window::open(now_ns));
            return Some(0);
        }
        match &mut self.overflow {
            Some(w) => w.occur(now_ns, interval_ns),
            None => {
                self.overflow = Some(Window::open(now_ns));
                Some(0)
            }
        }
    }

    /// Reports and closes every window whose interval has ended with suppressed repeats:
    /// `(key, count)`, `None` for the shared overflow window. Windows that ended with
    /// nothing to report are dropped too, so calling this periodically keeps the table
    /// down to the keys active in the last interval.
    pub fn flush(&mut self, now_ns: u64) -> Vec<(Option<K>, u64)> {
        let interval_ns = self.interval_ns;
        let mut pending = Vec::new();
        self.windows.retain(|k, w| {
            if !w.ended(now_ns, interval_ns) {
                return true;
            }
            if w.suppressed > 0 {
                pending.push((Some(k.clone()), w.suppressed));
            }
            false
        });
        if let Some(w) = self.overflow.filter(|w| w.ended(now_ns, interval_ns)) {
            if w.suppressed > 0 {
                pending.push((None, w.suppressed));
            }
            self.overflow = None;
        }
        pending
    }

    /// Keys tracked on their own now (at most `max_keys`).
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// A [`LogLimiter`] behind a mutex, reading time from a [`MonoClock`]: for events seen by
/// several tasks (transport errors of one node).
#[derive(Debug)]
pub struct SharedLogLimiter<K> {
    clock: MonoClock,
    inner: Mutex<LogLimiter<K>>,
}

impl<K: Eq + Hash + Clone> SharedLogLimiter<K> {
    /// See [`LogLimiter::new`].
    pub fn new(clock: MonoClock, interval: Duration, max_keys: usize) -> Self {
        Self { clock, inner: Mutex::new(LogLimiter::new(interval, max_keys)) }
    }

    /// See [`LogLimiter::check`], at the clock's time.
    pub fn check<Q>(&self, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.clock.now_ns();
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).check(key, now)
    }

    /// See [`LogLimiter::flush`], at the clock's time.
    pub fn flush(&self) -> Vec<(Option<K>, u64)> {
        let now = self.clock.now_ns();
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).flush(now)
    }
}

impl<K: Eq + Hash + Clone> Default for SharedLogLimiter<K> {
    /// [`DEFAULT_LOG_INTERVAL`], [`DEFAULT_LOG_KEYS`], a fresh clock.
    fn default() -> Self {
        Self::new(MonoClock::new(), DEFAULT_LOG_INTERVAL, DEFAULT_LOG_KEYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    fn limiter(max_keys: usize) -> LogLimiter<String> {
        LogLimiter::new(Duration::from_secs(1), max_keys)
    }

    /// The first occurrence is logged, repeats within the interval are suppressed, and
    /// the first one after it is logged with the count of those it suppressed.
    #[test]
    fn one_line_per_interval_with_the_suppressed_count() {
        let mut l = limiter(8);
        assert_eq!(l.check("a", 0), Some(0));
        for t in 1..=99 {
            assert_eq!(l.check("a", t * SEC / 100), None, "at {t}");
        }
        assert_eq!(l.check("a", SEC), Some(99));
        assert_eq!(l.check("a", SEC + 1), None);
        assert_eq!(l.check("a", 5 * SEC), Some(1));
        // Nothing in between: the next line reports 0.
        assert_eq!(l.check("a", 7 * SEC), Some(0));
    }

    /// Keys are limited independently.
    #[test]
    fn keys_are_independent() {
        let mut l = limiter(8);
        assert_eq!(l.check("a", 0), Some(0));
        assert_eq!(l.check("b", 1), Some(0));
        assert_eq!(l.check("a", 2), None);
        assert_eq!(l.check("b", 3), None);
        assert_eq!(l.check("c", 4), Some(0));
    }

    /// The table never holds more than `max_keys` keys: newcomers beyond it share one
    /// overflow window (one line per interval for all of them), and windows that ended
    /// with nothing to report make room again.
    #[test]
    fn the_table_is_bounded() {
        let mut l = limiter(2);
        assert_eq!(l.check("a", 0), Some(0));
        assert_eq!(l.check("b", 0), Some(0));
        assert_eq!(l.check("c", 1), Some(0), "first overflow line");
        assert_eq!(l.check("d", 2), None, "shares the overflow window");
        assert_eq!(l.check("e", 3), None);
        assert_eq!(l.len(), 2);
        // After the interval, a and b ended silently: reclaimed for f.
        assert_eq!(l.check("f", 2 * SEC), Some(0));
        assert_eq!(l.len(), 1);
        for i in 0..10_000 {
            l.check(&format!("k{i}"), 2 * SEC + i);
        }
        assert!(l.len() <= 2);
    }

    /// `flush` reports the repeats a quiet key left pending, once, and forgets the key.
    #[test]
    fn flush_reports_pending_counts_once() {
        let mut l = limiter(1);
        l.check("a", 0);
        l.check("a", 1);
        l.check("a", 2);
        l.check("z", 3); // overflow line
        l.check("y", 4); // overflow, suppressed
        assert!(l.flush(SEC / 2).is_empty(), "nothing has ended yet");
        let mut f = l.flush(SEC + 3);
        f.sort();
        assert_eq!(f, vec![(None, 1), (Some("a".to_string()), 2)]);
        assert!(l.flush(10 * SEC).is_empty());
        assert!(l.is_empty());
        assert_eq!(l.check("a", 10 * SEC), Some(0));
    }

    proptest! {
        /// Nothing is lost: every occurrence is either logged or counted in exactly one
        /// later report (a logged line's `suppressed` or a flush), and a key gets at most
        /// one line per interval.
        #[test]
        fn every_occurrence_is_logged_or_counted(
            events in proptest::collection::vec((0u8..6, 0u64..3 * SEC), 1..400),
            max_keys in 1usize..8,
        ) {
            let mut events = events;
            events.sort_by_key(|e| e.1);
            let mut l = limiter(max_keys);
            let mut accounted = 0u64;
            let mut own_lines: HashMap<String, Vec<u64>> = HashMap::new();
            for (k, t) in &events {
                let key = format!("k{k}");
                let own_window = l.windows.contains_key(&key);
                if let Some(suppressed) = l.check(&key, *t) {
                    accounted += 1 + suppressed;
                    if own_window {
                        own_lines.entry(key).or_default().push(*t);
                    }
                }
                prop_assert!(l.len() <= max_keys);
            }
            accounted += l.flush(u64::MAX).iter().map(|(_, n)| n).sum::<u64>();
            prop_assert_eq!(accounted, events.len() as u64);
            for lines in own_lines.values() {
                for pair in lines.windows(2) {
                    prop_assert!(pair[1] - pair[0] >= SEC);
                }
            }
        }
    }
}
