//! The retry budget: retries allowed as a share of recent first attempts.
//!
//! Same algorithm and parameters as tower's `TpsBudget` (Finagle's `RetryBudget`): every
//! first attempt deposits one unit into the current bucket of a sliding window of ten
//! buckets spanning `ttl`; a retry withdraws `1 / ratio` units and is refused when the
//! window (plus a reserve of `min_per_sec × ttl` retries) cannot cover it. Retries
//! without a budget turn one failing dependency into a retry storm.
//!
//! This is a lock-free twin of `TpsBudget` rather than a use of it because `TpsBudget`
//! takes a global mutex and reads the clock on every deposit; on the routing hot path
//! (one deposit per task, hundreds of thousands per second) that mutex became a convoy
//! point when the lock holder's core was preempted. Here a deposit is one atomic add into
//! the bucket for `now` (a time the router already has), and bucket rotation is a CAS.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: usize = 10;
/// Fixed-point scale: one deposit is `UNIT`.
const UNIT: i64 = 1000;

#[derive(Debug, Default)]
struct Bucket {
    /// Which window bucket this slot holds (`now / bucket_ns`).
    epoch: AtomicU64,
    balance: AtomicI64,
}

/// See the module docs.
#[derive(Debug)]
pub struct RetryBudget {
    buckets: [Bucket; BUCKETS],
    bucket_ns: u64,
    withdraw_cost: i64,
    reserve: i64,
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per first attempt over `ttl`, plus
    /// `min_per_sec` retries per second regardless.
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f64) -> Self {
        let ttl_ns = ttl.as_nanos().max(BUCKETS as u128) as u64;
        let withdraw_cost = if ratio > 0.0 { ((UNIT as f64) / ratio).round().max(1.0) as i64 } else { i64::MAX / 4 };
        let reserve = i64::from(min_per_sec)
            .saturating_mul((ttl_ns / 1_000_000_000) as i64)
            .saturating_mul(if ratio > 0.0 { withdraw_cost } else { UNIT });
        Self { buckets: Default::default(), bucket_ns: ttl_ns / BUCKETS as u64, withdraw_cost, reserve }
    }

    fn current(&self, now_ns: u64) -> &Bucket {
        let epoch = now_ns / self.bucket_ns + 1;
        let b = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let seen = b.epoch.load(Ordering::Acquire);
        if seen != epoch && b.epoch.compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // This slot held an expired bucket: start it afresh. (A deposit racing with
            // the rotation may be lost; the budget is a statistical bound.)
            b.balance.store(0, Ordering::Release);
        }
        b
    }

    /// Records a first attempt at `now_ns`.
    pub fn deposit(&self, now_ns: u64) {
        self.current(now_ns).balance.fetch_add(UNIT, Ordering::AcqRel);
    }

    /// Asks for one retry at `now_ns`; true if the budget allows it (and charges it).
    pub fn withdraw(&self, now_ns: u64) -> bool {
        let current = self.current(now_ns);
        let epoch = now_ns / self.bucket_ns + 1;
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let available: i64 = self
            .buckets
            .iter()
            .filter(|b| {
                let e = b.epoch.load(Ordering::Acquire);
                e >= oldest && e <= epoch
            })
            .map(|b| b.balance.load(Ordering::Acquire))
            .fold(self.reserve, i64::saturating_add);
        if available >= self.withdraw_cost {
            current.balance.fetch_sub(self.withdraw_cost, Ordering::AcqRel);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// With no reserve, ratio 0.2 allows one retry per five deposits.
    #[test]
    fn ratio_bounds_retries() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
        assert!(!b.withdraw(S));
        for _ in 0..10 {
            b.deposit(S);
        }
        assert!(b.withdraw(S));
        assert!(b.withdraw(S));
        assert!(!b.withdraw(S), "ten deposits pay for two retries");
    }

    /// The reserve allows min_per_sec × ttl retries with no traffic at all.
    #[test]
    fn reserve_allows_a_trickle() {
        let b = RetryBudget::new(Duration::from_secs(2), 3, 0.2);
        let allowed = (0..100).filter(|_| b.withdraw(S)).count();
        assert_eq!(allowed, 6);
    }

    /// Deposits older than the window no longer pay for retries.
    #[test]
    fn deposits_expire_with_the_window() {
        let b = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
        for _ in 0..5 {
            b.deposit(S);
        }
        assert!(b.withdraw(5 * S));
        assert!(!b.withdraw(30 * S), "older than ttl");
    }

    /// Ratio 0 refuses every retry beyond the reserve.
    #[test]
    fn zero_ratio_only_reserve() {
        let b = RetryBudget::new(Duration::from_secs(1), 0, 0.0);
        for _ in 0..100 {
            b.deposit(S);
        }
        assert!(!b.withdraw(S));
    }
}
