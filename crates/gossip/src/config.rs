//! [`GossipConfig`]: every knob of the gossip protocol, with its default and its bound.
//!
//! A plain serde struct (`#[serde(default)]`, unknown fields refused) so it can sit in the
//! node's TOML file as a `[gossip]` section; [`GossipConfig::validate`] names the bad
//! field. Every table and message the protocol keeps or sends is bounded by a field here.

use std::time::Duration;

use erlmcp_flow_core::id::MAX_NAME_BYTES;
use serde::{Deserialize, Serialize};

use crate::phi::PhiConfig;
use crate::vector_clock::MAX_CLOCK_ENTRIES;

/// Bytes of every message reserved for its envelope (enum tag, lengths, heartbeat),
/// outside the two halves that digests, deltas, rumors and requests share.
pub const ENVELOPE_RESERVE_BYTES: usize = 1024;

/// ractor_cluster drops the whole connection on a frame over 16 MiB; we stay far below.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 8 * 1024 * 1024;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field is out of range.
    #[error("invalid gossip config: {field} {reason}")]
    Invalid {
        /// The field's name (`gossip.` section relative).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// `[gossip]`: the dissemination protocol and its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GossipConfig {
    /// Time between gossip rounds, ms (1..=60 000). Default 100.
    pub interval_ms: u64,
    /// Peers contacted per round (1..=16). Default 3.
    pub fanout: usize,
    /// Hops a rumor (a fresh update pushed ahead of anti-entropy) travels (0..=16; 0 turns
    /// rumors off and leaves dissemination to anti-entropy). Default 5.
    pub rumor_ttl: u8,
    /// Time between heartbeats sent to every peer, ms (1..=60 000). Default 100.
    pub heartbeat_interval_ms: u64,
    /// Upper bound on one encoded gossip message, bytes (16 KiB..=8 MiB, far below
    /// ractor_cluster's 16 MiB frame limit). Larger deltas are split. Default 1 MiB.
    pub max_message_bytes: usize,
    /// Keys a replica holds, tombstones included (1..=1 000 000). Default 10 000.
    pub max_keys: usize,
    /// Longest key, bytes (1..=1024). Default 256.
    pub max_key_bytes: usize,
    /// Largest value, bytes; one entry must fit in half a message. Default 64 KiB.
    pub max_value_bytes: usize,
    /// Distinct writers in one key's vector clock (1..=256). Default 64.
    pub max_clock_entries: usize,
    /// How long a tombstone is kept after this replica learns of it, ms (≥ 1). A replica
    /// cut off for longer than this can bring a deleted key back, as with Cassandra's
    /// `gc_grace_seconds`. Default 600 000 (10 minutes).
    pub tombstone_ttl_ms: u64,
    /// Peers known at once (1..=4096). Default 1024.
    pub max_peers: usize,
    /// Rumors waiting for the next round; the oldest are dropped past this (anti-entropy
    /// still carries them) (1..=65 536). Default 1024.
    pub max_pending_rumors: usize,
    /// Messages sent in answer to one message (an Ack and its extra delta chunks,
    /// 1..=64); what does not fit waits for the next round. Default 8.
    pub max_reply_messages: usize,
    /// Incoming messages queued for the gossip actor; more are dropped and counted
    /// (1..=1 000 000). Default 4096.
    pub max_inbox_messages: usize,
    /// Capacity of the event broadcast channel; slow subscribers see `Lagged` (1..=1 000 000).
    /// Default 1024.
    pub event_capacity: usize,
    /// Phi-accrual failure detection over heartbeats.
    pub failure_detector: FailureDetectorConfig,
}

/// `[gossip.failure_detector]`: phi-accrual parameters (Akka's names and meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureDetectorConfig {
    /// Phi at or above which a peer is unreachable (> 0). Default 8.
    pub threshold: f64,
    /// Phi at or above which a peer is suspect (> 0, ≤ `threshold`). Default 3.
    pub suspect_threshold: f64,
    /// Inter-arrival intervals kept per peer (2..=10 000). Default 200.
    pub max_sample_size: usize,
    /// Floor on the standard deviation of intervals, ms (≥ 1). Default 100.
    pub min_std_deviation_ms: u64,
    /// Extra silence tolerated before suspicion grows, ms. Default 500.
    pub acceptable_heartbeat_pause_ms: u64,
}

impl Default for FailureDetectorConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            suspect_threshold: 3.0,
            max_sample_size: 200,
            min_std_deviation_ms: 100,
            acceptable_heartbeat_pause_ms: 500,
        }
    }
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            interval_ms: 100,
            fanout: 3,
            rumor_ttl: 5,
            heartbeat_interval_ms: 100,
            max_message_bytes: 1024 * 1024,
            max_keys: 10_000,
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_clock_entries: 64,
            tombstone_ttl_ms: 600_000,
            max_peers: 1024,
            max_pending_rumors: 1024,
            max_reply_messages: 8,
            max_inbox_messages: 4096,
            event_capacity: 1024,
            failure_detector: FailureDetectorConfig::default(),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

fn range<T: PartialOrd + std::fmt::Display>(v: T, field: &'static str, lo: T, hi: T) -> Result<(), ConfigError> {
    if v < lo || v > hi { Err(invalid(field, format!("must be in {lo}..={hi}, got {v}"))) } else { Ok(()) }
}

impl GossipConfig {
    /// Fast settings for tests: 5 ms rounds, 10 ms heartbeats, a tight failure detector
    /// (unreachable after ≈ 100 ms of silence) and 1 s tombstones.
    pub fn for_test() -> Self {
        Self {
            interval_ms: 5,
            heartbeat_interval_ms: 10,
            tombstone_ttl_ms: 1_000,
            failure_detector: FailureDetectorConfig {
                min_std_deviation_ms: 10,
                acceptable_heartbeat_pause_ms: 20,
                ..FailureDetectorConfig::default()
            },
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        range(self.interval_ms, "interval_ms", 1, 60_000)?;
        range(self.fanout, "fanout", 1, 16)?;
        range(self.rumor_ttl, "rumor_ttl", 0, 16)?;
        range(self.heartbeat_interval_ms, "heartbeat_interval_ms", 1, 60_000)?;
        range(self.max_message_bytes, "max_message_bytes", 16 * 1024, MAX_MESSAGE_BYTES_LIMIT)?;
        range(self.max_keys, "max_keys", 1, 1_000_000)?;
        range(self.max_key_bytes, "max_key_bytes", 1, 1024)?;
        range(self.max_clock_entries, "max_clock_entries", 1, MAX_CLOCK_ENTRIES)?;
        if self.max_value_bytes == 0 {
            return Err(invalid("max_value_bytes", "must be > 0"));
        }
        let entry = entry_size_bound(self.max_key_bytes, self.max_value_bytes, self.max_clock_entries);
        if entry > self.part_budget() {
            return Err(invalid(
                "max_value_bytes",
                format!(
                    "with max_key_bytes and max_clock_entries gives entries of up to {entry} bytes, over half a \
                     message ({} bytes of max_message_bytes)",
                    self.part_budget()
                ),
            ));
        }
        if self.tombstone_ttl_ms == 0 {
            return Err(invalid("tombstone_ttl_ms", "must be > 0"));
        }
        range(self.max_peers, "max_peers", 1, 4096)?;
        range(self.max_pending_rumors, "max_pending_rumors", 1, 65_536)?;
        range(self.max_reply_messages, "max_reply_messages", 1, 64)?;
        range(self.max_inbox_messages, "max_inbox_messages", 1, 1_000_000)?;
        range(self.event_capacity, "event_capacity", 1, 1_000_000)?;
        let fd = &self.failure_detector;
        if !(fd.threshold.is_finite() && fd.threshold > 0.0) {
            return Err(invalid(
                "failure_detector.threshold",
                format!("must be a finite number > 0, got {}", fd.threshold),
            ));
        }
        if !(fd.suspect_threshold.is_finite() && fd.suspect_threshold > 0.0 && fd.suspect_threshold <= fd.threshold) {
            return Err(invalid(
                "failure_detector.suspect_threshold",
                format!("must be in (0, threshold = {}], got {}", fd.threshold, fd.suspect_threshold),
            ));
        }
        range(fd.max_sample_size, "failure_detector.max_sample_size", 2, 10_000)?;
        range(fd.min_std_deviation_ms, "failure_detector.min_std_deviation_ms", 1, 3_600_000)?;
        range(fd.acceptable_heartbeat_pause_ms, "failure_detector.acceptable_heartbeat_pause_ms", 0, 3_600_000)?;
        Ok(())
    }

    /// Gossip round interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// Heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Tombstone lifetime.
    pub fn tombstone_ttl(&self) -> Duration {
        Duration::from_millis(self.tombstone_ttl_ms)
    }

    /// Bytes available to each of a message's two parts (digest and rumors, delta and
    /// request).
    pub fn part_budget(&self) -> usize {
        self.max_message_bytes.saturating_sub(ENVELOPE_RESERVE_BYTES) / 2
    }

    /// The phi-accrual detector's parameters; the first-heartbeat estimate is the
    /// heartbeat interval.
    pub fn phi(&self) -> PhiConfig {
        let fd = &self.failure_detector;
        PhiConfig {
            threshold: fd.threshold,
            max_sample_size: fd.max_sample_size,
            min_std_deviation: Duration::from_millis(fd.min_std_deviation_ms),
            acceptable_heartbeat_pause: Duration::from_millis(fd.acceptable_heartbeat_pause_ms),
            first_heartbeat_estimate: self.heartbeat_interval(),
        }
    }
}

/// Worst-case encoded size of one replicated entry (bincode varints take at most 10
/// bytes per integer or length prefix).
pub(crate) fn entry_size_bound(key_bytes: usize, value_bytes: usize, clock_entries: usize) -> usize {
    const INT: usize = 10;
    // key, value option tag + length + bytes, clock length + entries, writer, tags.
    INT + key_bytes
        + 1
        + INT
        + value_bytes
        + INT
        + clock_entries * (INT + MAX_NAME_BYTES + INT)
        + INT
        + MAX_NAME_BYTES
        + 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults and the test settings are valid, and the documented defaults hold.
    #[test]
    fn defaults_are_valid() {
        let c = GossipConfig::default();
        c.validate().unwrap();
        GossipConfig::for_test().validate().unwrap();
        assert_eq!((c.fanout, c.rumor_ttl, c.failure_detector.threshold), (3, 5, 8.0));
        assert!(c.max_message_bytes < 16 * 1024 * 1024);
    }

    /// A bad value is refused with the field's name.
    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(GossipConfig, &str)> = vec![
            (GossipConfig { fanout: 0, ..Default::default() }, "fanout"),
            (GossipConfig { interval_ms: 0, ..Default::default() }, "interval_ms"),
            (GossipConfig { max_message_bytes: 64 * 1024 * 1024, ..Default::default() }, "max_message_bytes"),
            (GossipConfig { max_value_bytes: 900 * 1024, ..Default::default() }, "max_value_bytes"),
            (
                GossipConfig {
                    failure_detector: FailureDetectorConfig { threshold: f64::NAN, ..Default::default() },
                    ..Default::default()
                },
                "failure_detector.threshold",
            ),
            (
                GossipConfig {
                    failure_detector: FailureDetectorConfig { suspect_threshold: 9.0, ..Default::default() },
                    ..Default::default()
                },
                "failure_detector.suspect_threshold",
            ),
        ];
        for (cfg, field) in cases {
            match cfg.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                Ok(()) => panic!("{field} accepted"),
            }
        }
    }
}
