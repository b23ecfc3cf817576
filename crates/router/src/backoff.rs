//! Exponential backoff with jitter between retries.
//!
//! The n-th retry waits `cap_n = min(max, base · 2^(n−1))` with "equal jitter": half of
//! `cap_n` fixed plus a uniform random half (AWS Architecture Blog, *Exponential Backoff
//! And Jitter*, 2015). The fixed half keeps the exponential spacing; the random half
//! de-synchronises tasks that failed together. Randomness comes from the caller's seeded
//! RNG.

use std::time::Duration;

use rand::Rng;

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay cap.
    pub base: Duration,
    /// Largest delay cap.
    pub max: Duration,
}

impl Backoff {
    /// The cap for retry number `retry` (1-based).
    pub fn cap(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(32);
        self.base.saturating_mul(1u32 << shift.min(31)).min(self.max)
    }

    /// The delay before retry number `retry` (1-based).
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let cap = self.cap(retry);
        let half = cap / 2;
        let jitter_ns = (cap - half).as_nanos() as u64;
        half + Duration::from_nanos(if jitter_ns == 0 { 0 } else { rng.random_range(0..=jitter_ns) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    const B: Backoff = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5) };

    /// Caps double from the base and stop at the max.
    #[test]
    fn caps_double_then_saturate() {
        let caps: Vec<_> = (1..=8).map(|n| B.cap(n).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(B.cap(1000), Duration::from_secs(5));
    }

    proptest! {
        /// Every delay lies in [cap/2, cap].
        #[test]
        fn delay_within_bounds(n in 1u32..50, seed in any::<u64>()) {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let d = B.delay(n, &mut rng);
            prop_assert!(d >= B.cap(n) / 2 && d <= B.cap(n));
        }
    }
}
