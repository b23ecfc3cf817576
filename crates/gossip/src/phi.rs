//! [`PhiAccrualDetector`]: the phi-accrual failure detector (Hayashibara, Défago, Yared and
//! Katayama, "The φ Accrual Failure Detector", SRDS 2004), in the form Akka and Cassandra use.
//!
//! Instead of a yes/no verdict after a fixed timeout, the detector outputs a suspicion
//! level φ that grows continuously while a peer is silent:
//!
//! ```text
//! φ(t) = -log10( P(next heartbeat arrives later than t) )
//! ```
//!
//! where the arrival distribution is estimated from the last `max_sample_size`
//! inter-arrival intervals, modelled as a normal distribution with the sample mean plus
//! an `acceptable_heartbeat_pause`, and the sample standard deviation floored at
//! `min_std_deviation` (so perfectly regular heartbeats do not make the detector hair-
//! triggered). φ = 8 means the model gives the silence odds of 10⁻⁸. The normal tail is
//! computed with the logistic approximation Akka uses,
//! `P(X > t) ≈ 1 / (1 + e^{y(1.5976 + 0.070566 y²)})` with `y = (t − mean) / stddev`
//! (Bowling et al. 2009, max error 1.4·10⁻⁴), rewritten as `φ = log10(1 + e^{k})` so that
//! it stays finite and accurate for any silence.
//!
//! Before the first heartbeat the history is seeded with two intervals around
//! `first_heartbeat_estimate` (Akka's trick), so a peer that never answers becomes
//! suspect too. The first interval after the detector considered the peer unavailable is
//! not recorded: a long pause (a partition, a stopped process) would otherwise inflate the
//! mean and slow down the detection of the next failure.
//!
//! Time is an input (`Instant`): the detector never reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Parameters of a [`PhiAccrualDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhiConfig {
    /// φ at or above which the peer is considered unavailable. Default 8.
    pub threshold: f64,
    /// Intervals kept (≥ 2). Default 200.
    pub max_sample_size: usize,
    /// Floor on the standard deviation. Default 100 ms.
    pub min_std_deviation: Duration,
    /// Added to the mean: silence tolerated before suspicion rises. Default 500 ms.
    pub acceptable_heartbeat_pause: Duration,
    /// Expected interval before any was measured. Default 100 ms.
    pub first_heartbeat_estimate: Duration,
}

impl Default for PhiConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            max_sample_size: 200,
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_millis(500),
            first_heartbeat_estimate: Duration::from_millis(100),
        }
    }
}

/// φ for a silence of `elapsed_ms` under a normal model with `mean_ms` and `std_ms`.
pub fn phi_of(elapsed_ms: f64, mean_ms: f64, std_ms: f64) -> f64 {
    let y = (elapsed_ms - mean_ms) / std_ms;
    let k = y * (1.5976 + 0.070566 * y * y);
    // φ = -log10(e^{-k} / (1 + e^{-k})) = log10(1 + e^{k}), evaluated without overflow.
    let ln = if k > 0.0 { k + (-k).exp().ln_1p() } else { k.exp().ln_1p() };
    ln / std::f64::consts::LN_10
}

/// Heartbeat inter-arrival history of one peer. See the module docs.
#[derive(Debug, Clone)]
pub struct PhiAccrualDetector {
    config: PhiConfig,
    /// Intervals in ms, oldest first.
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    last: Option<Instant>,
}

impl PhiAccrualDetector {
    /// A detector with no history (φ = 0 until the first heartbeat).
    pub fn new(config: PhiConfig) -> Self {
        let cap = config.max_sample_size.max(2);
        Self { config, intervals: VecDeque::with_capacity(cap), sum: 0.0, sum_sq: 0.0, last: None }
    }

    /// The parameters.
    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    /// Records a heartbeat arrival at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        match self.last {
            None => {
                let mean = ms(self.config.first_heartbeat_estimate);
                let std = mean / 4.0;
                self.push(mean - std);
                self.push(mean + std);
            }
            Some(last) => {
                // Akka: the first heartbeat after a failure does not enter the history.
                if self.is_available(now) {
                    self.push(ms(now.saturating_duration_since(last)));
                }
            }
        }
        self.last = Some(now.max(self.last.unwrap_or(now)));
    }

    /// Suspicion level at `now`: 0 before the first heartbeat, then growing with silence.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else { return 0.0 };
        let elapsed = ms(now.saturating_duration_since(last));
        phi_of(elapsed, self.mean_ms() + ms(self.config.acceptable_heartbeat_pause), self.std_deviation_ms())
    }

    /// True while φ is below the threshold.
    pub fn is_available(&self, now: Instant) -> bool {
        self.phi(now) < self.config.threshold
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    /// Intervals in the history.
    pub fn sample_count(&self) -> usize {
        self.intervals.len()
    }

    /// Mean interval, ms (0 without history).
    pub fn mean_ms(&self) -> f64 {
        if self.intervals.is_empty() { 0.0 } else { self.sum / self.intervals.len() as f64 }
    }

    /// Standard deviation of intervals, ms, floored at `min_std_deviation`.
    pub fn std_deviation_ms(&self) -> f64 {
        let n = self.intervals.len() as f64;
        let raw = if n == 0.0 {
            0.0
        } else {
            let mean = self.sum / n;
            (self.sum_sq / n - mean * mean).max(0.0).sqrt()
        };
        raw.max(ms(self.config.min_std_deviation))
    }

    /// The first `t ≥ 0` after the last heartbeat at which φ reaches the threshold,
    /// under the current model (`None` before the first heartbeat). φ is increasing in
    /// the silence, so this is a bisection.
    pub fn time_to_threshold(&self) -> Option<Duration> {
        let last = self.last?;
        let (mut lo, mut hi) = (0u64, 1u64);
        while self.phi(last + Duration::from_micros(hi)) < self.config.threshold {
            lo = hi;
            hi = hi.checked_mul(2)?;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.phi(last + Duration::from_micros(mid)) < self.config.threshold {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(Duration::from_micros(hi))
    }

    /// Forgets the history (a reconnect or a restarted peer): the next heartbeat starts over.
    pub fn reset(&mut self) {
        self.intervals.clear();
        self.sum = 0.0;
        self.sum_sq = 0.0;
        self.last = None;
    }

    fn push(&mut self, interval_ms: f64) {
        if self.intervals.len() >= self.config.max_sample_size.max(2)
            && let Some(old) = self.intervals.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.intervals.push_back(interval_ms);
        self.sum += interval_ms;
        self.sum_sq += interval_ms * interval_ms;
        debug_assert!(self.intervals.len() <= self.config.max_sample_size.max(2));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_millis(100);

    /// A detector with default settings fed `n` heartbeats exactly 100 ms apart,
    /// returning it and the last arrival.
    fn regular(n: u32) -> (PhiAccrualDetector, Instant) {
        let mut d = PhiAccrualDetector::new(PhiConfig::default());
        let t0 = Instant::now();
        for i in 0..n {
            d.heartbeat(t0 + HB * i);
        }
        (d, t0 + HB * (n - 1))
    }

    /// The y at which the logistic tail gives φ = `phi`, by bisection on the formula
    /// itself, independently of the detector.
    fn y_for(phi: f64) -> f64 {
        let (mut lo, mut hi) = (0.0f64, 20.0f64);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            let k = mid * (1.5976 + 0.070566 * mid * mid);
            if (1.0 + k.exp()).log10() < phi {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }

    /// With regular 100 ms heartbeats φ stays near zero at every arrival and is below
    /// 1 even a whole interval late.
    #[test]
    fn phi_stays_low_with_regular_heartbeats() {
        let mut d = PhiAccrualDetector::new(PhiConfig::default());
        let t0 = Instant::now();
        for i in 0..100u32 {
            let t = t0 + HB * i;
            assert!(d.phi(t) < 0.1, "phi {} at heartbeat {i}", d.phi(t));
            d.heartbeat(t);
        }
        let last = t0 + HB * 99;
        assert!(d.phi(last + 2 * HB) < 1.0);
        assert!(d.is_available(last + 2 * HB));
    }

    /// Hayashibara §3 with Akka's parameters: after regular 100 ms heartbeats, silence
    /// reaches φ = 8 at mean + pause + y₈·σ = 100 + 500 + y₈·100 ms (y₈ ≈ 5.22, so
    /// ≈ 1.12 s), well under the 2 s target for a frozen node; φ grows monotonically.
    #[test]
    fn silence_crosses_threshold_at_the_modelled_time() {
        let (d, last) = regular(50);
        assert!((d.mean_ms() - 100.0).abs() < 1e-6);
        assert_eq!(d.std_deviation_ms(), 100.0); // the floor: intervals are exact
        let expected_ms = 100.0 + 500.0 + y_for(8.0) * 100.0;
        let crossing = d.time_to_threshold().unwrap();
        let crossing_ms = crossing.as_secs_f64() * 1000.0;
        assert!((crossing_ms - expected_ms).abs() < 0.01, "crossing {crossing_ms} ms, model {expected_ms} ms");
        assert!(crossing < Duration::from_secs(2));
        assert!(d.is_available(last + crossing - Duration::from_micros(1)));
        assert!(!d.is_available(last + crossing));
        let mut prev = 0.0;
        for step in 0..300u32 {
            let p = d.phi(last + Duration::from_millis(10) * step);
            assert!(p >= prev && p.is_finite());
            prev = p;
        }
        // An hour of silence: huge but finite.
        assert!(d.phi(last + Duration::from_secs(3600)).is_finite());
    }

    /// After a failure, resumed heartbeats bring φ back under the threshold at once and the
    /// long gap is not learned (the mean stays 100 ms), so the next failure is detected as
    /// fast as the first.
    #[test]
    fn recovers_when_heartbeats_resume() {
        let (mut d, last) = regular(50);
        let before = d.time_to_threshold().unwrap();
        let back = last + Duration::from_secs(10);
        assert!(!d.is_available(back));
        d.heartbeat(back);
        assert!(d.phi(back) < 0.1);
        for i in 1..20u32 {
            assert!(d.is_available(back + HB * i));
            d.heartbeat(back + HB * i);
        }
        assert!((d.mean_ms() - 100.0).abs() < 1e-6);
        assert_eq!(d.time_to_threshold().unwrap(), before);
    }

    /// Jittery arrivals widen the standard deviation, so a late-but-normal heartbeat is
    /// not suspected; the history window never grows past its bound.
    #[test]
    fn adapts_to_jitter_and_stays_bounded() {
        let mut d = PhiAccrualDetector::new(PhiConfig { max_sample_size: 50, ..PhiConfig::default() });
        let mut t = Instant::now();
        for i in 0..1000u64 {
            t += Duration::from_millis(if i % 2 == 0 { 20 } else { 380 });
            d.heartbeat(t);
        }
        assert_eq!(d.sample_count(), 50);
        assert!(d.std_deviation_ms() > 150.0);
        assert!(d.phi(t + Duration::from_millis(380)) < 1.0);
    }

    /// Before the first heartbeat φ is 0; after it, the seeded estimate makes a peer that
    /// never sends again unreachable in bounded time.
    #[test]
    fn first_heartbeat_seeds_the_model() {
        let mut d = PhiAccrualDetector::new(PhiConfig::default());
        let t0 = Instant::now();
        assert_eq!(d.phi(t0 + Duration::from_secs(100)), 0.0);
        d.heartbeat(t0);
        assert!(d.time_to_threshold().unwrap() < Duration::from_secs(2));
    }
}
