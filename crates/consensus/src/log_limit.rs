//! [`LogLimiter`]: at most one log line per key per interval, with a count of what was
//! left out, for errors that repeat once per RPC (a peer that is down fails every
//! replication attempt, several times a second, for as long as it is down).
//!
//! Pure: the caller passes the time, so the limiter is tested without a clock. The table
//! is bounded ([`LogLimiter::MAX_KEYS`]): keys idle for a whole interval are dropped
//! first, and a key that still finds no room is logged every time rather than silenced.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the last line for this key was let through.
    logged_at: Instant,
    /// Occurrences left out since then.
    suppressed: u64,
}

/// One line per key per interval; see the module docs.
#[derive(Debug)]
pub struct LogLimiter<K> {
    interval: Duration,
    table: Mutex<HashMap<K, Window>>,
}

impl<K: Eq + Hash + Clone> LogLimiter<K> {
    /// Most keys tracked at once.
    pub const MAX_KEYS: usize = 1024;

    /// A limiter letting one line per key through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, table: Mutex::new(HashMap::new()) }
    }

    /// An occurrence of `key` at `now`: `Some(left_out)` when it should be logged (with
    /// how many occurrences were left out since the last line for this key), `None` when
    /// it should be left out.
    pub fn admit(&self, key: &K, now: Instant) -> Option<u64> {
        let mut table = self.table.lock();
        if let Some(w) = table.get_mut(key) {
            if now.saturating_duration_since(w.logged_at) < self.interval {
                w.suppressed += 1;
                return None;
            }
            let left_out = w.suppressed;
            *w = Window { logged_at: now, suppressed: 0 };
            return Some(left_out);
        }
        if table.len() >= Self::MAX_KEYS {
            let interval = self.interval;
            table.retain(|_, w| now.saturating_duration_since(w.logged_at) < interval);
            if table.len() >= Self::MAX_KEYS {
                return Some(0);
            }
        }
        table.insert(key.clone(), Window { logged_at: now, suppressed: 0 });
        Some(0)
    }

    /// Forgets `key` (its trouble is over): the next occurrence is logged at once.
    pub fn clear(&self, key: &K) {
        self.table.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first occurrence is logged, repeats within the interval are counted, the first
    /// one after it is logged with the count; keys are independent; `clear` resets.
    #[test]
    fn one_line_per_key_per_interval_with_the_count() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.admit(&"a", t0), Some(0));
        for s in 1..10 {
            assert_eq!(l.admit(&"a", t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(l.admit(&"b", t0 + Duration::from_secs(1)), Some(0), "another key");
        assert_eq!(l.admit(&"a", t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(l.admit(&"a", t0 + Duration::from_secs(11)), None);
        l.clear(&"a");
        assert_eq!(l.admit(&"a", t0 + Duration::from_secs(12)), Some(0));
    }

    /// The table never grows past its bound; keys idle for an interval make room, and a
    /// key that finds none is logged, never silenced.
    #[test]
    fn the_table_is_bounded() {
        let l = LogLimiter::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for k in 0..LogLimiter::<usize>::MAX_KEYS {
            assert_eq!(l.admit(&k, t0), Some(0));
        }
        assert_eq!(l.admit(&usize::MAX, t0), Some(0), "no room: logged");
        assert_eq!(l.admit(&usize::MAX, t0), Some(0), "still no room: still logged");
        assert_eq!(l.admit(&usize::MAX, t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(l.admit(&usize::MAX, t0 + Duration::from_secs(2)), None, "room made: tracked");
        assert!(l.table.lock().len() <= LogLimiter::<usize>::MAX_KEYS);
    }
}
