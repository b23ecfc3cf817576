//! Per-agent load and health figures, updated lock-free on the routing hot path.
//!
//! * `in_flight`: the load counter (tasks handed to the agent and not yet answered).
//! * peak-EWMA latency (Finagle's "peak EWMA", as in tower's `load::peak_ewma`): a
//!   sample above the estimate replaces it at once; lower samples are blended in with
//!   weight `1 - exp(-Δt/τ)`. Between samples the estimate decays toward zero at read
//!   time (with [`decay_factor`], a cheap `exp(-x)`), so an agent that went quiet gets
//!   tried again.
//! * success EWMA: exponentially weighted success rate (α = 0.1), starting at 1.
//! * `last_seen` (heartbeat) and `busy_since` marks written by the agent actor.
//!
//! Times are nanoseconds from the node's [`MonoClock`](erlmcp_flow_core::MonoClock).
//! Concurrent updates of the EWMAs use compare-and-swap loops, so none is lost.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Weight of a new sample in the success EWMA.
const SUCCESS_ALPHA: f64 = 0.1;

/// Load and health of one agent incarnation.
#[derive(Debug)]
pub struct AgentLoad {
    in_flight: AtomicU32,
    completed: AtomicU64,
    failed: AtomicU64,
    /// f64 bits; 0.0 means "no sample yet".
    latency_ewma_ns: AtomicU64,
    ewma_stamp_ns: AtomicU64,
    /// f64 bits.
    success_ewma: AtomicU64,
    last_seen_ns: AtomicU64,
    busy_since_ns: AtomicU64,
}

impl AgentLoad {
    /// Fresh figures: idle, no latency sample, full success, seen at `now_ns`.
    pub fn new(now_ns: u64) -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency_ewma_ns: AtomicU64::new(0f64.to_bits()),
            ewma_stamp_ns: AtomicU64::new(now_ns),
            success_ewma: AtomicU64::new(1f64.to_bits()),
            last_seen_ns: AtomicU64::new(now_ns),
            busy_since_ns: AtomicU64::new(0),
        }
    }

    /// Tasks in flight (the load counter).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Increments the load counter.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Decrements the load counter.
    pub fn end(&self) {
        let prev = self.in_flight.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(prev > 0, "load counter underflow");
    }

    /// Tasks this incarnation completed.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Attempts this incarnation failed (errors, timeouts, panics).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Records one answered attempt: its round-trip time and whether it succeeded.
    pub fn observe(&self, now_ns: u64, rtt_ns: u64, success: bool, decay_ns: f64) {
        if success {
            self.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let s = if success { 1.0 } else { 0.0 };
        update_f64(&self.success_ewma, |old| old + SUCCESS_ALPHA * (s - old));

        let rtt = rtt_ns as f64;
        let prev_stamp = self.ewma_stamp_ns.swap(now_ns, Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(prev_stamp) as f64;
        let w = (-elapsed / decay_ns).exp();
        update_f64(&self.latency_ewma_ns, |old| if old == 0.0 || rtt > old { rtt } else { old * w + rtt * (1.0 - w) });
    }

    /// Peak-EWMA latency estimate at `now_ns`, decayed since the last sample; `None`
    /// before the first sample.
    pub fn latency_ewma_ns(&self, now_ns: u64, decay_ns: f64) -> Option<f64> {
        self.latency_ewma_ns_per(now_ns, 1.0 / decay_ns)
    }

    /// [`latency_ewma_ns`](Self::latency_ewma_ns) with the decay given as its inverse
    /// (`1 / decay_ns`), for scans over many agents: a multiplication per agent instead
    /// of a division.
    pub fn latency_ewma_ns_per(&self, now_ns: u64, inv_decay_ns: f64) -> Option<f64> {
        let est = f64::from_bits(self.latency_ewma_ns.load(Ordering::Relaxed));
        if est == 0.0 {
            return None;
        }
        let x = now_ns.saturating_sub(self.ewma_stamp_ns.load(Ordering::Relaxed)) as f64 * inv_decay_ns;
        // Busy agents were sampled moments ago: skip the decay (under 1 % anyway).
        Some(if x < 0.01 { est } else { est * decay_factor(x) })
    }

    /// Undecayed latency estimate (ns), 0 before the first sample.
    pub fn latency_ewma_raw_ns(&self) -> f64 {
        f64::from_bits(self.latency_ewma_ns.load(Ordering::Relaxed))
    }

    /// Exponentially weighted success rate in [0, 1].
    pub fn success_rate(&self) -> f64 {
        f64::from_bits(self.success_ewma.load(Ordering::Relaxed))
    }

    /// Records a heartbeat.
    pub fn heartbeat(&self, now_ns: u64) {
        self.last_seen_ns.store(now_ns, Ordering::Relaxed);
    }

    /// Time of the last heartbeat (ns).
    pub fn last_seen_ns(&self) -> u64 {
        self.last_seen_ns.load(Ordering::Relaxed)
    }

    /// Marks the agent busy since `now_ns`, or idle with `0`.
    pub fn set_busy_since(&self, now_ns: u64) {
        self.busy_since_ns.store(now_ns, Ordering::Relaxed);
    }

    /// When the current task started (ns), `None` when idle.
    pub fn busy_since_ns(&self) -> Option<u64> {
        match self.busy_since_ns.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// `e^(-x)` for `x ≥ 0`, as `1 / (1 + x + x²/2 + x³/6)`: within 2 % of the true value
/// for x ≤ 1, monotone, and tending to 0. Decay factors are computed for every candidate
/// of every decision; this is several times cheaper than `f64::exp` and exact enough to
/// rank agents.
pub fn decay_factor(x: f64) -> f64 {
    let x = x.max(0.0);
    1.0 / (1.0 + x + x * x * 0.5 + x * x * x / 6.0)
}

fn update_f64(cell: &AtomicU64, f: impl Fn(f64) -> f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some(f(f64::from_bits(bits)).to_bits()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAU: f64 = 1e9;

    /// A slow sample is taken at once (peak); fast samples pull the estimate down gradually.
    #[test]
    fn peak_ewma_rises_fast_and_falls_slowly() {
        let l = AgentLoad::new(1);
        assert_eq!(l.latency_ewma_ns(1, TAU), None);
        l.observe(1_000, 1_000_000, true, TAU);
        assert_eq!(l.latency_ewma_raw_ns(), 1_000_000.0);
        l.observe(1_000 + 10_000_000, 100_000, true, TAU);
        let est = l.latency_ewma_raw_ns();
        assert!(est < 1_000_000.0 && est > 900_000.0, "{est}");
        l.observe(2_000_000_000, 5_000_000, true, TAU);
        assert_eq!(l.latency_ewma_raw_ns(), 5_000_000.0);
    }

    /// The cheap decay factor stays close to `exp(-x)` where it matters and is monotone.
    #[test]
    fn decay_factor_approximates_exp() {
        let mut prev = 1.0;
        for i in 0..200 {
            let x = i as f64 * 0.05;
            let d = decay_factor(x);
            assert!(d <= prev);
            if x <= 1.0 {
                assert!((d - (-x).exp()).abs() / (-x).exp() < 0.02, "x {x}: {d}");
            }
            prev = d;
        }
        assert!(decay_factor(50.0) < 1e-4);
    }

    /// With no new samples the estimate decays toward zero.
    #[test]
    fn estimate_decays_when_idle() {
        let l = AgentLoad::new(1);
        l.observe(1, 1_000_000, true, TAU);
        let later = l.latency_ewma_ns(1 + 3_000_000_000, TAU).unwrap();
        assert!(later < 100_000.0, "below 10 % after 3 τ: {later}");
    }

    /// Failures lower the success rate; successes raise it back.
    #[test]
    fn success_rate_tracks_outcomes() {
        let l = AgentLoad::new(1);
        for _ in 0..20 {
            l.observe(1, 1, false, TAU);
        }
        let low = l.success_rate();
        assert!(low < 0.2, "{low}");
        for _ in 0..20 {
            l.observe(1, 1, true, TAU);
        }
        assert!(l.success_rate() > 0.8);
        assert_eq!(l.failed(), 20);
        assert_eq!(l.completed(), 20);
    }

    /// The load counter and busy mark round-trip.
    #[test]
    fn counters_and_marks() {
        let l = AgentLoad::new(5);
        l.begin();
        l.begin();
        l.end();
        assert_eq!(l.in_flight(), 1);
        assert_eq!(l.busy_since_ns(), None);
        l.set_busy_since(9);
        assert_eq!(l.busy_since_ns(), Some(9));
        l.heartbeat(11);
        assert_eq!(l.last_seen_ns(), 11);
    }
}
