//! Throughput and latency over the last minutes, for the dashboard: a background task
//! samples the node's counters every [`SAMPLE_EVERY`] and keeps the last [`SAMPLES`]
//! intervals (the latency of an interval is the difference of the cumulative histogram).
//! It also counts the Raft leader changes it observes (at that sampling rate).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_flow::FlowNode;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Sampling period.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Intervals kept (5 minutes).
pub(crate) const SAMPLES: usize = 300;

/// One interval.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    /// Seconds since the listener started, at the end of the interval.
    pub(crate) t_s: f64,
    /// Tasks completed per second.
    pub(crate) completed_per_s: f64,
    /// Tasks failed or dead-lettered per second.
    pub(crate) failed_per_s: f64,
    /// Median task latency in the interval, ms (absent without tasks).
    pub(crate) p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub(crate) p99_ms: Option<f64>,
}

/// The samples and the observed leader changes.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: VecDeque<Sample>,
    leader_changes: u64,
}

impl History {
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }

    pub(crate) fn leader_changes(&self) -> u64 {
        self.leader_changes
    }
}

/// Starts the sampler; it stops with `stop`.
pub(crate) fn spawn(node: FlowNode, stop: CancellationToken) -> Arc<Mutex<History>> {
    let history = Arc::new(Mutex::new(History::default()));
    let h = history.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prev_stats = node.stats().flow;
        let mut prev_hist: Histogram<u64> = node.router().parts().tasks.latency_histogram();
        let mut prev_at = Instant::now();
        let mut leader = node.get_leader();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let stats = node.stats().flow;
            let hist = node.router().parts().tasks.latency_histogram();
            let secs = prev_at.elapsed().as_secs_f64().max(1e-3);
            let mut delta = hist.clone();
            let (p50_ms, p99_ms) = if delta.subtract(&prev_hist).is_ok() && !delta.is_empty() {
                (Some(delta.value_at_quantile(0.5) as f64 / 1e3), Some(delta.value_at_quantile(0.99) as f64 / 1e3))
            } else {
                (None, None)
            };
            let sample = Sample {
                t_s: started.elapsed().as_secs_f64(),
                completed_per_s: stats.completed.saturating_sub(prev_stats.completed) as f64 / secs,
                failed_per_s: (stats.failed + stats.dead_lettered)
                    .saturating_sub(prev_stats.failed + prev_stats.dead_lettered) as f64
                    / secs,
                p50_ms,
                p99_ms,
            };
            let now_leader = node.get_leader();
            {
                let mut h = h.lock();
                if now_leader.is_some() && now_leader != leader {
                    h.leader_changes += 1;
                }
                if h.samples.len() == SAMPLES {
                    h.samples.pop_front();
                }
                h.samples.push_back(sample);
            }
            if now_leader.is_some() {
                leader = now_leader;
            }
            (prev_stats, prev_hist, prev_at) = (stats, hist, Instant::now());
        }
    });
    history
}
