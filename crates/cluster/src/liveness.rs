//! Per-peer liveness from heartbeat arrivals (phi accrual).
//!
//! Hayashibara et al., *The φ Accrual Failure Detector* (2004), as used by Akka and
//! Cassandra: keep a bounded window of heartbeat inter-arrival times; φ(now) is
//! `-log10(P(an interval at least this long))` under a normal distribution fitted to the
//! window (with a floor on the standard deviation and an acceptable pause added to the
//! mean, so scheduling jitter does not read as failure). φ = 8 means the silence would
//! occur by chance about once in 10⁸ heartbeats.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use erlmcp_flow_core::NodeName;

const WINDOW: usize = 200;

#[derive(Debug, Clone)]
struct Arrivals {
    last_ns: u64,
    intervals: VecDeque<f64>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Liveness {
    threshold: f64,
    expected_ms: f64,
    min_std_ms: f64,
    pause_ms: f64,
    peers: HashMap<NodeName, Arrivals>,
}

impl Liveness {
    /// A detector with `threshold` for heartbeats every `interval`.
    pub fn new(threshold: f64, interval: Duration) -> Self {
        let expected_ms = interval.as_secs_f64() * 1000.0;
        Self {
            threshold,
            expected_ms,
            // Tolerate the scheduling hiccups of a loaded 2-core machine: a pause of five
            // intervals is normal; detection of a frozen peer then takes about 0.9 s at
            // 100 ms heartbeats (well inside the 2 s target).
            min_std_ms: (expected_ms / 2.0).max(10.0),
            pause_ms: expected_ms * 5.0,
            peers: HashMap::new(),
        }
    }

    /// Records a heartbeat from `node` at `now_ns`.
    pub fn heard(&mut self, node: &NodeName, now_ns: u64) {
        match self.peers.get_mut(node) {
            Some(a) => {
                let dt = now_ns.saturating_sub(a.last_ns) as f64 / 1e6;
                a.last_ns = now_ns;
                if a.intervals.len() == WINDOW {
                    a.intervals.pop_front();
                }
                a.intervals.push_back(dt);
            }
            None => {
                let mut intervals = VecDeque::with_capacity(WINDOW);
                // Seed with the expected interval so the first silence is judged sensibly.
                intervals.push_back(self.expected_ms);
                self.peers.insert(node.clone(), Arrivals { last_ns: now_ns, intervals });
            }
        }
    }

    /// Treats `now_ns` as `node`'s last arrival without recording an interval (used when
    /// this node itself was paused, so the silence is ours, not theirs).
    pub fn restart_clock(&mut self, node: &NodeName, now_ns: u64) {
        if let Some(a) = self.peers.get_mut(node) {
            a.last_ns = now_ns;
        }
    }

    /// Forgets `node` (its next heartbeat starts a fresh history).
    pub fn forget(&mut self, node: &NodeName) {
        self.peers.remove(node);
    }

    /// φ for `node` at `now_ns`, and how long it has been silent.
    pub fn phi(&self, node: &NodeName, now_ns: u64) -> (f64, Option<Duration>) {
        let Some(a) = self.peers.get(node) else { return (0.0, None) };
        let elapsed_ms = now_ns.saturating_sub(a.last_ns) as f64 / 1e6;
        let n = a.intervals.len() as f64;
        let mean = a.intervals.iter().sum::<f64>() / n;
        let var = a.intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt().max(self.min_std_ms);
        (phi(elapsed_ms, mean + self.pause_ms, std), Some(Duration::from_nanos(now_ns.saturating_sub(a.last_ns))))
    }

    /// True when φ is over the threshold.
    pub fn is_suspect(&self, node: &NodeName, now_ns: u64) -> bool {
        self.phi(node, now_ns).0 >= self.threshold
    }
}

/// φ for a silence of `elapsed` given mean and standard deviation of intervals (Akka's
/// logistic approximation of the normal CDF).
fn phi(elapsed: f64, mean: f64, std: f64) -> f64 {
    let y = (elapsed - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if elapsed > mean { -(e / (1.0 + e)).log10() } else { -(1.0 - 1.0 / (1.0 + e)).log10() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn node() -> NodeName {
        NodeName::new("peer").unwrap()
    }

    /// Regular 100 ms heartbeats keep φ low; silence makes it cross 8 between 0.5 and 2 s.
    #[test]
    fn silence_crosses_threshold_within_two_seconds() {
        let mut l = Liveness::new(8.0, Duration::from_millis(100));
        for i in 0..50 {
            l.heard(&node(), i * 100 * MS);
        }
        let last = 49 * 100 * MS;
        assert!(l.phi(&node(), last + 100 * MS).0 < 1.0);
        let crossing = (0..400u64).map(|k| last + k * 10 * MS).find(|t| l.is_suspect(&node(), *t)).unwrap();
        let after_ms = (crossing - last) / MS;
        assert!((500..2000).contains(&after_ms), "crossed after {after_ms} ms");
    }

    /// A peer never heard from has φ 0, and forgetting resets history.
    #[test]
    fn unknown_and_forgotten_peers() {
        let mut l = Liveness::new(8.0, Duration::from_millis(100));
        assert_eq!(l.phi(&node(), 5).0, 0.0);
        l.heard(&node(), 0);
        l.forget(&node());
        assert!(!l.is_suspect(&node(), 100_000 * MS));
    }
}
