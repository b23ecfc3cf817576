//! Node configuration: the seeds' `sys.config` sections as a TOML file.
//!
//! Every field has a default (written in its doc) so an empty file is a valid config.
//! [`FlowConfig::validate`] refuses bad values with an error that names the field,
//! e.g. `circuit_breaker.failure_rate_threshold must be in (0, 1], got 1.5`. Unknown
//! keys are refused too, so a typo does not silently fall back to a default.
//!
//! The defaults touch no file: every path (`q_learning.model_path`, `raft.path`,
//! `byzantine.keys_file`) is absent unless set, so a node reads
//! and writes files only where its config names them.
//!
//! ```
//! use erlmcp_flow_core::config::FlowConfig;
//! let cfg = FlowConfig::from_toml_str(r#"
//!     [load_balancer]
//!     strategy = "least_connections"
//!     [circuit_breaker]
//!     timeout_ms = 1000
//! "#).unwrap();
//! assert_eq!(cfg.circuit_breaker.timeout_ms, 1000);
//! assert!(FlowConfig::from_toml_str("[circuit_breaker]\nmin_requests = 0").is_err());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest payload the codec will ever allow: comfortably under ractor_cluster's 16 MiB
/// frame limit, past which one message drops the whole link.
pub const PAYLOAD_HARD_LIMIT_BYTES: usize = 15 * 1024 * 1024;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not valid TOML for this schema (syntax, type, or unknown key).
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("invalid config: {field} {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `router.max_in_flight`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// The offending field, when the error is about one value.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// The whole node configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Node identity and randomness.
    pub node: NodeConfig,
    /// Q-learning router (seed `q_learning`).
    pub q_learning: QLearningConfig,
    /// Strategy selection (seed `load_balancer`).
    pub load_balancer: LoadBalancerConfig,
    /// Per-agent circuit breakers (seed `circuit_breaker`).
    pub circuit_breaker: CircuitBreakerConfig,
    /// Retries and agent liveness (seed `failure_detector`).
    pub failure_detector: FailureDetectorConfig,
    /// Byzantine quorum voting (seed `byzantine`).
    pub byzantine: ByzantineConfig,
    /// Timeouts (seed `timeouts`).
    pub timeouts: TimeoutsConfig,
    /// Router limits: admission, bulkheads, retry budget, fallback, dead letters.
    pub router: RouterConfig,
    /// Correlation tracker bounds.
    pub correlation: CorrelationConfig,
    /// Supervisor restart intensities.
    pub supervision: SupervisionConfig,
    /// Wire payload limits.
    pub codec: CodecConfig,
    /// Registry bounds.
    pub registry: RegistryConfig,
    /// Clustering over ractor_cluster (off by default).
    pub cluster: ClusterConfig,
    /// Raft control plane (openraft): storage and timing.
    pub raft: RaftConfig,
    /// The MCP front door and upstream MCP servers (the `erlmcp-flow-mcp` crate).
    pub mcp: McpConfig,
    /// The node's HTTP listener for operators: `/metrics`, `/healthz`, `/readyz`, the
    /// dashboard (the `flow` binary; off by default).
    pub http: HttpConfig,
}

/// `[http]`: the operators' HTTP listener of `flow node` (Prometheus `/metrics`, health
/// probes, the dashboard). Off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `IP:PORT` to listen on, or a bare port for `127.0.0.1:PORT`. Default absent (no
    /// listener).
    pub listen: Option<String>,
}

impl HttpConfig {
    /// The socket address `listen` names (a bare port means loopback), `None` when off.
    pub fn listen_addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let Some(l) = self.listen.as_deref() else { return Ok(None) };
        if let Ok(port) = l.parse::<u16>() {
            return Ok(Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))));
        }
        l.parse().map(Some).map_err(|_| invalid("http.listen", format!("must be IP:PORT or a port, got {l:?}")))
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name, unique in a cluster. Default `"node-1"`.
    pub name: String,
    /// Seed for every routing random choice (p2c sampling, jitter, exploration). Absent:
    /// seeded from the OS. Default absent.
    pub seed: Option<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { name: "node-1".into(), seed: None }
    }
}

/// `[q_learning]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QLearningConfig {
    /// Exploration rate ε in [0, 1]. Default 0.1.
    pub epsilon: f64,
    /// Multiplicative ε decay per update, in (0, 1]. Default 0.999.
    pub epsilon_decay: f64,
    /// Floor for ε, in [0, epsilon]. Default 0.01.
    pub epsilon_min: f64,
    /// Learning rate α in (0, 1]. Default 0.1.
    pub alpha: f64,
    /// Discount factor γ in [0, 1). Default 0.9.
    pub gamma: f64,
    /// Where the Q-table is persisted: loaded at start (an unusable file is moved aside to
    /// `<path>.corrupt` and the table starts fresh), saved every `persist_interval_ms` and
    /// at shutdown. Absent: the table lives in memory only and the node reads and writes
    /// no file. Must not be empty when set. Default absent.
    pub model_path: Option<PathBuf>,
    /// How often the table is written when `model_path` is set, ms (0 = only at
    /// shutdown). Default 10000.
    pub persist_interval_ms: u64,
}

impl Default for QLearningConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.1,
            epsilon_decay: 0.999,
            epsilon_min: 0.01,
            alpha: 0.1,
            gamma: 0.9,
            model_path: None,
            persist_interval_ms: 10_000,
        }
    }
}

/// Agent selection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Rotate through candidates.
    #[default]
    RoundRobin,
    /// Fewest tasks in flight.
    LeastConnections,
    /// Lowest `0.5*load/10 + 0.3*latency_ms/1000 + 0.2*(1-success_rate)*10`.
    LoadAware,
    /// Proportional to each agent's weight.
    Weighted,
    /// Consistent hashing of the task's affinity key (session affinity).
    ConsistentHash,
    /// Power of two random choices on peak-EWMA latency × (in-flight + 1).
    P2cEwma,
    /// Q-learning over load/success/latency states.
    QLearning,
}

impl StrategyKind {
    /// All strategies.
    pub const ALL: [StrategyKind; 7] = [
        StrategyKind::RoundRobin,
        StrategyKind::LeastConnections,
        StrategyKind::LoadAware,
        StrategyKind::Weighted,
        StrategyKind::ConsistentHash,
        StrategyKind::P2cEwma,
        StrategyKind::QLearning,
    ];

    /// The snake_case name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round_robin",
            StrategyKind::LeastConnections => "least_connections",
            StrategyKind::LoadAware => "load_aware",
            StrategyKind::Weighted => "weighted",
            StrategyKind::ConsistentHash => "consistent_hash",
            StrategyKind::P2cEwma => "p2c_ewma",
            StrategyKind::QLearning => "q_learning",
        }
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StrategyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.replace('-', "_");
        StrategyKind::ALL.into_iter().find(|k| k.as_str() == norm).ok_or_else(|| {
            let names: Vec<_> = StrategyKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown strategy {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// `[load_balancer]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// Strategy. Default `"round_robin"`.
    pub strategy: StrategyKind,
    /// Virtual nodes per agent on the consistent-hash ring, 1..=1000. Default 150.
    pub consistent_hash_vnodes: u32,
    /// Peak-EWMA decay time constant, ms (> 0). Default 10000 (Finagle's default).
    pub ewma_decay_ms: u64,
    /// Latency assumed for an agent with no samples yet, µs (> 0). Default 1000.
    pub ewma_default_rtt_us: u64,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::RoundRobin,
            consistent_hash_vnodes: 150,
            ewma_decay_ms: 10_000,
            ewma_default_rtt_us: 1_000,
        }
    }
}

/// `[circuit_breaker]`: closed → open → half_open → closed, per agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker regardless of rate, ≥ 1. Default 10
    /// (the seeds' 5 opens by chance once per ~60 000 results on an agent that fails 11 %
    /// of the time; 10 once per ~5·10⁹: see docs/benchmarks.md, "Steady crash load").
    pub failure_threshold: u32,
    /// Failure rate over the window that opens the breaker, in (0, 1]. Default 0.5.
    pub failure_rate_threshold: f64,
    /// Requests in the window before the rate is judged, ≥ 1. Default 20 (seeds: 10).
    pub min_requests: u32,
    /// Size of the rolling window of recent results, ≥ min_requests, ≤ 1024. Default 100
    /// (seeds: 20, which an 11 % failure rate pushes to 50 % by chance about once per
    /// 100 000 results).
    pub window_size: u32,
    /// Time open before trying half_open, ms (> 0). Default 30000.
    pub timeout_ms: u64,
    /// Successes in half_open that close the breaker, ≥ 1. Default 3.
    pub half_open_successes: u32,
    /// Concurrent trial requests allowed in half_open, ≥ 1. Default 1.
    pub half_open_max_probes: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            failure_rate_threshold: 0.5,
            min_requests: 20,
            window_size: 100,
            timeout_ms: 30_000,
            half_open_successes: 3,
            half_open_max_probes: 1,
        }
    }
}

/// `[failure_detector]`: retries and agent liveness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureDetectorConfig {
    /// Delivery attempts per phase (primary candidates, then fallback swarm), 1..=100.
    /// Default 3.
    pub max_retry_attempts: u32,
    /// First retry delay, ms. Default 100.
    pub base_retry_delay_ms: u64,
    /// Retry delay cap, ms (≥ base). Default 5000.
    pub max_retry_delay_ms: u64,
    /// Redeliveries of a task whose agent died before running it, per task, ≤ 1000.
    /// These do not use attempts: the task never ran. Default 16.
    pub max_redeliveries: u32,
    /// An agent busy on one task for longer than this is presumed hung and killed
    /// (its supervisor restarts it), ms. Default 60000.
    pub hung_agent_after_ms: u64,
    /// How often the detector sweeps agents and orphaned tasks, ms (> 0). Default 100.
    pub sweep_interval_ms: u64,
    /// Times a task may lose its routing driver (a router bug or abort) before it is
    /// failed as internal, 1..=100. Default 3.
    pub max_orphan_recoveries: u32,
    /// Phi-accrual suspicion threshold for peer nodes (> 0). Default 8.
    pub phi_threshold: f64,
}

impl Default for FailureDetectorConfig {
    fn default() -> Self {
        Self {
            max_retry_attempts: 3,
            base_retry_delay_ms: 100,
            max_retry_delay_ms: 5_000,
            max_redeliveries: 16,
            hung_agent_after_ms: 60_000,
            sweep_interval_ms: 100,
            max_orphan_recoveries: 3,
            phi_threshold: 8.0,
        }
    }
}

/// `[byzantine]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ByzantineConfig {
    /// Run the ByzantineDetector on this cluster node (needs `cluster.enabled` and keys:
    /// `keys_file`, or `members` with `insecure_test_keys_seed`). Default false.
    pub enabled: bool,
    /// This node's pairwise keys: one `<node> <node> <64 hex digits>` line per pair it is
    /// part of (a distinct key per pair, so no node can forge another's vote). Default
    /// absent.
    pub keys_file: Option<PathBuf>,
    /// The voting members' node names, when keys are derived from
    /// `insecure_test_keys_seed`. Default empty.
    pub members: Vec<String>,
    /// Derive every pair's key from this seed. Anyone who knows the seed can forge any
    /// vote: for tests and demos only. Default absent.
    pub insecure_test_keys_seed: Option<u64>,
    /// Faulty nodes tolerated, f ≥ 1. Default 1.
    pub byzantine_tolerance: u32,
    /// Matching votes needed; must equal 2f + 1. Default 3.
    pub quorum_size: u32,
    /// Only `"hmac_sha256"`. Default `"hmac_sha256"`.
    pub signature_algorithm: String,
    /// Time to collect a quorum, ms (> 0). Default 500.
    pub round_timeout_ms: u64,
    /// Share of dishonest votes above which a node is blacklisted, in (0, 1). Default 0.3.
    pub blacklist_threshold: f64,
}

impl Default for ByzantineConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            keys_file: None,
            members: Vec::new(),
            insecure_test_keys_seed: None,
            byzantine_tolerance: 1,
            quorum_size: 3,
            signature_algorithm: "hmac_sha256".into(),
            round_timeout_ms: 500,
            blacklist_threshold: 0.3,
        }
    }
}

/// `[timeouts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Longest wait for a usable agent (breaker closed, bulkhead permit) per attempt, ms.
    /// Default 5000.
    pub routing_ms: u64,
    /// Default per-attempt execution timeout, ms (tasks may set their own). Default 30000.
    pub execution_ms: u64,
    /// Agent heartbeat interval, ms. Default 5000.
    pub heartbeat_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self { routing_ms: 5_000, execution_ms: 30_000, heartbeat_ms: 5_000 }
    }
}

/// `[router]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Accepted but unfinished tasks allowed on this node; submitters wait (or get
    /// `Overloaded` from `try_submit`) beyond it. 1..=10_000_000. Default 10000.
    pub max_in_flight: u32,
    /// Bulkhead: tasks queued or running per agent, 1..=65536. Default 8.
    pub bulkhead_max_concurrent: u32,
    /// Retry budget: retries allowed per first attempt (0.2 = one retry per five tasks),
    /// in [0, 10]. Crash redeliveries are not budgeted. Default 0.2.
    pub retry_budget_ratio: f64,
    /// Retry budget floor: retries per second always allowed, ≤ 1 000 000. Default 10.
    pub retry_budget_min_per_sec: u32,
    /// Retry budget window, ms, 1000..=60000. Default 10000.
    pub retry_budget_ttl_ms: u64,
    /// Swarm tried after the primary candidates fail. Default none.
    pub fallback_swarm: Option<String>,
    /// Dead letters kept for inspection (the counts are never dropped), ≥ 1. Default 10000.
    pub dead_letter_capacity: u32,
    /// Recently finished task ids remembered to refuse duplicate submissions (ids still
    /// open are always refused), ≤ 10 000 000 (about 50 bytes each); 0 remembers none.
    /// Default 10000.
    pub dedup_window: u32,
    /// `[router.queue]`: the bounded queue of submitters waiting for admission.
    pub queue: QueueConfig,
    /// `[router.rate_limit]`: an admission rate limit. Absent (the default): no limit.
    pub rate_limit: Option<RateLimitConfig>,
}

/// What a full admission queue does with one task too many (`router.queue.discard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardPolicy {
    /// Turn the newcomer away (`QueueFull`); waiters keep their places. The default.
    #[default]
    Reject,
    /// Queue the newcomer and push out the oldest waiter of the lowest priority present
    /// (`EvictedOldest`); a newcomer below every waiter's priority is turned away.
    Oldest,
    /// Queue the newcomer and push out the newest waiter of the lowest priority present
    /// (`EvictedNewest`); when that is the newcomer itself, it is turned away (`QueueFull`).
    Newest,
}

/// `[router.queue]`: submitters waiting for an admission slot when the node is at
/// `router.max_in_flight`.
///
/// The defaults keep the behaviour of earlier versions, where waiters were unbounded, as
/// far as a bound allows: a large queue, and `reject` so that nobody already waiting loses
/// their place; no TTL (a waiter waits until admitted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Waiters kept at most, 0..=10_000_000 (0: no waiting; a submitter at the limit is
    /// turned away at once). Default 100000.
    pub capacity: u32,
    /// What a full queue does: `"reject"` (default), `"oldest"` or `"newest"`.
    pub discard: DiscardPolicy,
    /// Default longest wait for admission, ms, for tasks without their own
    /// (`Task::with_queue_ttl`). Absent (default): no limit.
    pub ttl_ms: Option<u64>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { capacity: 100_000, discard: DiscardPolicy::Reject, ttl_ms: None }
    }
}

/// `[router.rate_limit]`: a token bucket on admissions. A task arriving when the bucket
/// is empty is discarded (`RateLimited`), not queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Tokens added per second, in (0, 10_000_000].
    pub per_second: f64,
    /// Bucket size: the most tasks admitted in a burst, 1..=10_000_000. Default 1.
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 10_000,
            bulkhead_max_concurrent: 8,
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 10,
            retry_budget_ttl_ms: 10_000,
            fallback_swarm: None,
            dead_letter_capacity: 10_000,
            dedup_window: 10_000,
            queue: QueueConfig::default(),
            rate_limit: None,
        }
    }
}

/// `[correlation]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationConfig {
    /// How long a correlation record lives, ms (> 0). Default 3600000 (1 h, seed).
    pub ttl_ms: u64,
    /// Records kept at most; the oldest go first, ≥ 1. Default 100000 (seed).
    pub max_entries: u32,
    /// Expiry sweep interval, ms (> 0). Default 1000.
    pub sweep_interval_ms: u64,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self { ttl_ms: 3_600_000, max_entries: 100_000, sweep_interval_ms: 1_000 }
    }
}

/// Restart intensity: more than `max_restarts` restarts within `window_ms` and the
/// supervisor gives up and fails itself (escalating to its parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntensityConfig {
    /// Restarts tolerated in the window.
    pub max_restarts: u32,
    /// The window, ms (> 0).
    pub window_ms: u64,
}

impl Default for IntensityConfig {
    fn default() -> Self {
        Self { max_restarts: 5, window_ms: 60_000 }
    }
}

impl IntensityConfig {
    /// The window as a duration.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
}

/// `[supervision]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// FlowSupervisor (the node's services). Default 10 restarts in 60 s.
    pub flow: IntensityConfig,
    /// AgentSupervisor (the agents). Default 5 restarts in 60 s (OTP's default).
    pub agents: IntensityConfig,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self { flow: IntensityConfig { max_restarts: 10, window_ms: 60_000 }, agents: IntensityConfig::default() }
    }
}

/// `[codec]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodecConfig {
    /// Largest task payload accepted, bytes, 1..=15 MiB. Default 1 MiB.
    pub max_payload_bytes: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self { max_payload_bytes: 1024 * 1024 }
    }
}

/// `[registry]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Agents a node's registry holds at most, ≥ 1. Default 1000000.
    pub max_agents: u32,
    /// Distinct capability/swarm queries whose candidate lists are cached, ≥ 1. Default 4096.
    pub candidate_cache_entries: u32,
    /// How long a dead agent's entry waits (marked down, skipped by routing) for its
    /// supervisor's new incarnation before it is removed, ms (> 0). Default 5000.
    pub restart_grace_ms: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { max_agents: 1_000_000, candidate_cache_entries: 4096, restart_grace_ms: 5_000 }
    }
}

/// `[cluster]`: joining other nodes over ractor_cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Run as a cluster node. Default false (a single, local node).
    pub enabled: bool,
    /// Address to listen on for other nodes; port 0 picks a free one. Default
    /// `"127.0.0.1:0"`.
    pub listen: String,
    /// Shared secret; a peer with another cookie is refused. Non-empty. Default
    /// `"erlmcp-flow"`.
    pub cookie: String,
    /// Addresses of nodes to join (`host:port`). Default none.
    pub seeds: Vec<String>,
    /// First re-dial delay after a lost or failed connection, ms (> 0). Default 100.
    pub reconnect_base_ms: u64,
    /// Re-dial delay cap, ms (≥ base). Default 5000.
    pub reconnect_max_ms: u64,
    /// Heartbeat period between nodes, ms (> 0). Default 100.
    pub heartbeat_interval_ms: u64,
    /// Gossip round period, ms (> 0). Default 100.
    pub gossip_interval_ms: u64,
    /// Peers contacted per gossip round, 1..=16. Default 3.
    pub gossip_fanout: u32,
    /// Hops a fresh rumor travels, 1..=32. Default 5.
    pub rumor_ttl: u32,
    /// How often a node republishes its agent directory and load, ms (> 0). Default 250.
    pub directory_interval_ms: u64,
    /// Remote deliveries a node executes for other nodes at once; beyond it, deliveries
    /// are refused (and retried elsewhere by the caller), 1..=1000000. Default 10000.
    pub max_remote_in_flight: u32,
    /// Longest time a connection (accepted on the cluster port, or dialled by this node)
    /// may take to complete ractor_cluster's cookie handshake; then it is closed and
    /// counted (`handshake_timeouts` in `flow status`). ractor_cluster has no such limit of
    /// its own: idle connections would otherwise stay open for good. 10..=600000. Default
    /// 5000.
    pub handshake_timeout_ms: u64,
    /// Incoming connections that may wait for their handshake at once; beyond it, new
    /// ones are closed at once and counted (`handshakes_rejected`), so idle or slow
    /// connections cannot exhaust the process's file descriptors. Keep it well under the
    /// descriptor limit (`ulimit -n`). 1..=65536. Default 64.
    pub max_pending_handshakes: u32,
    /// How long the greeting of a newly connected node (its name, incarnation and listen
    /// address, exchanged once the handshake is done) waits for the answer before it is
    /// retried, ms (> 0). Default 2000.
    pub hello_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:0".into(),
            cookie: "erlmcp-flow".into(),
            seeds: Vec::new(),
            reconnect_base_ms: 100,
            reconnect_max_ms: 5_000,
            heartbeat_interval_ms: 100,
            gossip_interval_ms: 100,
            gossip_fanout: 3,
            rumor_ttl: 5,
            directory_interval_ms: 250,
            max_remote_in_flight: 10_000,
            handshake_timeout_ms: 5_000,
            max_pending_handshakes: 64,
            hello_timeout_ms: 2_000,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

fn check(ok: bool, field: &'static str, reason: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(invalid(field, reason())) }
}

macro_rules! range {
    ($value:expr, $field:literal, $lo:expr, $hi:expr) => {{
        let v = $value;
        check(($lo..=$hi).contains(&v), $field, || format!("must be in [{}, {}], got {}", $lo, $hi, v))
    }};
}

macro_rules! positive {
    ($value:expr, $field:literal) => {{
        let v = $value;
        check(v > 0, $field, || format!("must be > 0, got {v}"))
    }};
}

/// `[mcp]`: the MCP front door and the upstream MCP servers run as agents (used by the
/// `erlmcp-flow-mcp` crate; a node without it ignores this section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Serve MCP over Streamable HTTP on this address (`host:port`). Absent: no HTTP front
    /// door. A non-loopback address needs `auth_token`. Default absent.
    pub listen: Option<String>,
    /// HTTP path of the MCP endpoint, starting with `/`. Default `"/mcp"`.
    pub path: String,
    /// Bearer token every HTTP request must carry (`Authorization: Bearer <token>`); the
    /// `FLOW_MCP_TOKEN` environment variable is used when absent. Default absent (no token).
    pub auth_token: Option<String>,
    /// `Host` header values accepted (DNS-rebinding protection), with or without port.
    /// Default `["localhost", "127.0.0.1", "::1"]`.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted (`scheme://host:port`, `:*` for any port); a request with
    /// any other `Origin` header is refused. Default empty: every `Origin` is refused.
    pub allowed_origins: Vec<String>,
    /// Open MCP sessions per node; a new session beyond it is refused (HTTP 503).
    /// 1..=100000. Default 256.
    pub max_sessions: u32,
    /// A session idle for this long is closed, ms (> 0). Default 300000 (5 min).
    pub session_idle_timeout_ms: u64,
    /// Tool calls in flight through this front door; beyond it a call is refused with an
    /// "overloaded" error. 1..=1000000. Default 1024.
    pub max_calls_in_flight: u32,
    /// Largest HTTP request body, bytes, 1..=`codec.max_payload_bytes`. Default 1048576.
    pub max_body_bytes: u64,
    /// List the management tools (`flow_submit_task`, `flow_task_status`, ...). Default true.
    pub management_tools: bool,
    /// How often the tool catalog is rebuilt from the agent directory, ms (> 0). Default 200.
    pub catalog_refresh_ms: u64,
    /// Heartbeat `ping` period per upstream replica, ms (> 0). Default 5000.
    pub ping_interval_ms: u64,
    /// A replica that does not answer a ping within this is restarted, ms (> 0). Default 3000.
    pub ping_timeout_ms: u64,
    /// First restart delay of a failed replica, ms (> 0). Default 200.
    pub restart_backoff_base_ms: u64,
    /// Restart delay cap, ms (≥ base). Default 30000.
    pub restart_backoff_max_ms: u64,
    /// Upstream MCP servers (`[[mcp.upstream]]`). Default none.
    pub upstream: Vec<McpUpstreamConfig>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            path: "/mcp".into(),
            auth_token: None,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            max_sessions: 256,
            session_idle_timeout_ms: 300_000,
            max_calls_in_flight: 1024,
            max_body_bytes: 1024 * 1024,
            management_tools: true,
            catalog_refresh_ms: 200,
            ping_interval_ms: 5_000,
            ping_timeout_ms: 3_000,
            restart_backoff_base_ms: 200,
            restart_backoff_max_ms: 30_000,
            upstream: Vec::new(),
        }
    }
}

/// `[[mcp.upstream]]`: one upstream MCP server, run as `replicas` child processes (or
/// connections to `url`), each an agent per concurrent call slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpUpstreamConfig {
    /// Server name, unique on the node: 1 to 48 of `[A-Za-z0-9_-]`. Required.
    pub name: String,
    /// Program to run as a child process speaking MCP on stdio. Exactly one of `command`
    /// and `url`. Default absent.
    pub command: Option<String>,
    /// Arguments of `command`. Default none.
    pub args: Vec<String>,
    /// Extra environment variables of `command`. Default none.
    pub env: BTreeMap<String, String>,
    /// Working directory of `command`. Default: the node's.
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint of a running MCP server. Default absent.
    pub url: Option<String>,
    /// Processes (or connections) to run, 1..=64. Default 1.
    pub replicas: u32,
    /// Calls one replica serves at once (one agent each), 1..=256. Default 4.
    pub max_concurrency: u32,
    /// Only these tools are served (empty: all). Default empty.
    pub allow_tools: Vec<String>,
    /// These tools are not served. Default empty.
    pub deny_tools: Vec<String>,
    /// Tools safe to retry although they do not declare `idempotentHint` or
    /// `readOnlyHint`. Default empty.
    pub idempotent_tools: Vec<String>,
    /// Per-call timeout, ms, 1..`failure_detector.hung_agent_after_ms`. Default 30000.
    pub call_timeout_ms: u64,
    /// Time for a replica to start, answer `initialize` and list its tools, ms (> 0).
    /// Default 10000.
    pub startup_timeout_ms: u64,
}

impl Default for McpUpstreamConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            replicas: 1,
            max_concurrency: 4,
            allow_tools: Vec::new(),
            deny_tools: Vec::new(),
            idempotent_tools: Vec::new(),
            call_timeout_ms: 30_000,
            startup_timeout_ms: 10_000,
        }
    }
}

impl McpConfig {
    /// Checks the section on its own; [`FlowConfig::validate`] adds the checks against
    /// other sections (call timeouts under the hung-agent limit, body under the codec limit).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(l) = &self.listen {
            l.parse::<std::net::SocketAddr>()
                .map_err(|e| invalid("mcp.listen", format!("must be host:port, got {l:?} ({e})")))?;
        }
        check(self.path.starts_with('/') && !self.path.contains(char::is_whitespace), "mcp.path", || {
            format!("must start with / and hold no spaces, got {:?}", self.path)
        })?;
        if let Some(t) = &self.auth_token {
            check(!t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()), "mcp.auth_token", || {
                "must be non-empty printable ASCII without spaces".into()
            })?;
        }
        range!(self.max_sessions, "mcp.max_sessions", 1, 100_000)?;
        positive!(self.session_idle_timeout_ms, "mcp.session_idle_timeout_ms")?;
        range!(self.max_calls_in_flight, "mcp.max_calls_in_flight", 1, 1_000_000)?;
        positive!(self.max_body_bytes, "mcp.max_body_bytes")?;
        positive!(self.catalog_refresh_ms, "mcp.catalog_refresh_ms")?;
        positive!(self.ping_interval_ms, "mcp.ping_interval_ms")?;
        positive!(self.ping_timeout_ms, "mcp.ping_timeout_ms")?;
        positive!(self.restart_backoff_base_ms, "mcp.restart_backoff_base_ms")?;
        range!(self.restart_backoff_max_ms, "mcp.restart_backoff_max_ms", self.restart_backoff_base_ms, 3_600_000)?;
        let mut names = std::collections::BTreeSet::new();
        for u in &self.upstream {
            let n = &u.name;
            check(
                (1..=48).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "mcp.upstream.name",
                || format!("must be 1 to 48 of [A-Za-z0-9_-], got {n:?}"),
            )?;
            check(names.insert(n.clone()), "mcp.upstream.name", || format!("{n:?} is used twice"))?;
            check(u.command.is_some() != u.url.is_some(), "mcp.upstream.command", || {
                format!("upstream {n}: set exactly one of command and url")
            })?;
            if let Some(c) = &u.command {
                check(!c.is_empty(), "mcp.upstream.command", || format!("upstream {n}: must not be empty"))?;
            }
            if let Some(url) = &u.url {
                check(url.starts_with("http://") || url.starts_with("https://"), "mcp.upstream.url", || {
                    format!("upstream {n}: must be an http:// or https:// URL, got {url:?}")
                })?;
            }
            range!(u.replicas, "mcp.upstream.replicas", 1, 64)?;
            range!(u.max_concurrency, "mcp.upstream.max_concurrency", 1, 256)?;
            positive!(u.call_timeout_ms, "mcp.upstream.call_timeout_ms")?;
            positive!(u.startup_timeout_ms, "mcp.upstream.startup_timeout_ms")?;
        }
        Ok(())
    }
}

/// `[raft]`: the Raft control plane (openraft) that replicates the task ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Replicate the task ledger through Raft (needs `cluster.enabled` and `voters`): a
    /// submit is acknowledged only once its entry commits. Default false.
    pub enabled: bool,
    /// Where the Raft log, vote and snapshots live: `"memory"` (lost on restart) or
    /// `"redb"` (one redb file at `path`). Default `"memory"`.
    pub storage: String,
    /// The redb file; required (non-empty) when `storage = "redb"`, ignored otherwise.
    /// Default absent.
    pub path: Option<PathBuf>,
    /// Leader heartbeat period, ms (> 0, < election_timeout_min_ms). Default 50.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout, ms (> heartbeat_interval_ms).
    /// Default 100.
    ///
    /// openraft 0.9 waits `election_timeout_max_ms` (the leader lease) plus a random
    /// election timeout after the last heartbeat before a follower campaigns, and twice
    /// `election_timeout_max_ms` more when its log is behind another voter's; the defaults
    /// keep a failover that needs two elections under 1 s.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, ms (> election_timeout_min_ms).
    /// Default 200.
    pub election_timeout_max_ms: u64,
    /// Most log entries in one AppendEntries request, 1..=100000. Default 300.
    pub max_payload_entries: u64,
    /// Applied entries since the last snapshot that trigger a new one, ≥ 1. Default 5000.
    pub snapshot_after_logs: u64,
    /// Node names of the voters. Empty means "the nodes in `cluster.seeds` plus this
    /// node" (resolved by the cluster layer). Default empty.
    pub voters: Vec<String>,
    /// How long a client write or linearizable read may take, including waiting out an
    /// election and forwarding to the leader, ms (> 0). Default 2000.
    pub client_timeout_ms: u64,
    /// Pre-vote (Raft thesis §9.6): a node campaigns only after a majority of voters said
    /// they would vote for it, so a paused, partitioned or restarted node does not unseat
    /// a healthy leader. Default true.
    pub pre_vote: bool,
}

impl Default for RaftConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            storage: "memory".into(),
            path: None,
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 100,
            election_timeout_max_ms: 200,
            max_payload_entries: 300,
            snapshot_after_logs: 5_000,
            voters: Vec::new(),
            client_timeout_ms: 2_000,
            pre_vote: true,
        }
    }
}

impl RaftConfig {
    /// Whether the log lives in a redb file.
    pub fn is_durable(&self) -> bool {
        self.storage == "redb"
    }

    /// The client timeout as a duration.
    pub fn client_timeout(&self) -> Duration {
        Duration::from_millis(self.client_timeout_ms)
    }

    /// Checks the section on its own (used by [`FlowConfig::validate`] and by the
    /// consensus crate when it is handed a bare `RaftConfig`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(self.storage == "memory" || self.storage == "redb", "raft.storage", || {
            format!("must be \"memory\" or \"redb\", got {:?}", self.storage)
        })?;
        if self.is_durable() {
            check(self.path.as_ref().is_some_and(|p| !p.as_os_str().is_empty()), "raft.path", || {
                "is required when raft.storage = \"redb\"".into()
            })?;
        }
        positive!(self.heartbeat_interval_ms, "raft.heartbeat_interval_ms")?;
        check(self.election_timeout_min_ms > self.heartbeat_interval_ms, "raft.election_timeout_min_ms", || {
            format!(
                "must be > raft.heartbeat_interval_ms ({}), got {}",
                self.heartbeat_interval_ms, self.election_timeout_min_ms
            )
        })?;
        check(self.election_timeout_max_ms > self.election_timeout_min_ms, "raft.election_timeout_max_ms", || {
            format!(
                "must be > raft.election_timeout_min_ms ({}), got {}",
                self.election_timeout_min_ms, self.election_timeout_max_ms
            )
        })?;
        range!(self.max_payload_entries, "raft.max_payload_entries", 1, 100_000)?;
        positive!(self.snapshot_after_logs, "raft.snapshot_after_logs")?;
        for v in &self.voters {
            crate::id::NodeName::new(v).map_err(|e| invalid("raft.voters", format!("{v:?}: {e}")))?;
        }
        positive!(self.client_timeout_ms, "raft.client_timeout_ms")?;
        Ok(())
    }
}

impl FlowConfig {
    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: FlowConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string().trim().to_owned()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Self::from_toml_str(&text)
    }

    /// The config as TOML text.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("config always serialises")
    }

    /// Fast timeouts for tests: short breaker timeout and retry delays, so fault tests
    /// finish in milliseconds.
    pub fn for_test() -> Self {
        let mut cfg = Self::default();
        cfg.node.seed = Some(7);
        cfg.circuit_breaker.timeout_ms = 200;
        cfg.failure_detector.base_retry_delay_ms = 1;
        cfg.failure_detector.max_retry_delay_ms = 20;
        cfg.failure_detector.sweep_interval_ms = 10;
        cfg.timeouts.routing_ms = 1_000;
        cfg.timeouts.execution_ms = 2_000;
        cfg.timeouts.heartbeat_ms = 100;
        cfg.router.retry_budget_ratio = 10.0;
        cfg.router.retry_budget_min_per_sec = 1_000;
        cfg
    }

    /// Checks every value; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // node
        crate::id::NodeName::new(&self.node.name).map_err(|e| invalid("node.name", e.to_string()))?;

        // q_learning
        let q = &self.q_learning;
        range!(q.epsilon, "q_learning.epsilon", 0.0, 1.0)?;
        check(q.epsilon_decay > 0.0 && q.epsilon_decay <= 1.0, "q_learning.epsilon_decay", || {
            format!("must be in (0, 1], got {}", q.epsilon_decay)
        })?;
        range!(q.epsilon_min, "q_learning.epsilon_min", 0.0, q.epsilon)?;
        check(q.alpha > 0.0 && q.alpha <= 1.0, "q_learning.alpha", || format!("must be in (0, 1], got {}", q.alpha))?;
        check(q.gamma >= 0.0 && q.gamma < 1.0, "q_learning.gamma", || format!("must be in [0, 1), got {}", q.gamma))?;
        check(q.model_path.as_ref().is_none_or(|p| !p.as_os_str().is_empty()), "q_learning.model_path", || {
            "must not be empty when set (leave it out to keep the table in memory)".into()
        })?;

        // load_balancer
        let lb = &self.load_balancer;
        range!(lb.consistent_hash_vnodes, "load_balancer.consistent_hash_vnodes", 1, 1000)?;
        positive!(lb.ewma_decay_ms, "load_balancer.ewma_decay_ms")?;
        positive!(lb.ewma_default_rtt_us, "load_balancer.ewma_default_rtt_us")?;

        // circuit_breaker
        let cb = &self.circuit_breaker;
        positive!(cb.failure_threshold, "circuit_breaker.failure_threshold")?;
        check(
            cb.failure_rate_threshold > 0.0 && cb.failure_rate_threshold <= 1.0,
            "circuit_breaker.failure_rate_threshold",
            || format!("must be in (0, 1], got {}", cb.failure_rate_threshold),
        )?;
        positive!(cb.min_requests, "circuit_breaker.min_requests")?;
        range!(cb.window_size, "circuit_breaker.window_size", cb.min_requests, 1024)?;
        positive!(cb.timeout_ms, "circuit_breaker.timeout_ms")?;
        positive!(cb.half_open_successes, "circuit_breaker.half_open_successes")?;
        positive!(cb.half_open_max_probes, "circuit_breaker.half_open_max_probes")?;

        // failure_detector
        let fd = &self.failure_detector;
        range!(fd.max_retry_attempts, "failure_detector.max_retry_attempts", 1, 100)?;
        range!(fd.max_retry_delay_ms, "failure_detector.max_retry_delay_ms", fd.base_retry_delay_ms, 3_600_000)?;
        check(fd.max_redeliveries <= 1000, "failure_detector.max_redeliveries", || {
            format!("must be at most 1000, got {}", fd.max_redeliveries)
        })?;
        positive!(fd.hung_agent_after_ms, "failure_detector.hung_agent_after_ms")?;
        positive!(fd.sweep_interval_ms, "failure_detector.sweep_interval_ms")?;
        range!(fd.max_orphan_recoveries, "failure_detector.max_orphan_recoveries", 1, 100)?;
        check(fd.phi_threshold > 0.0 && fd.phi_threshold.is_finite(), "failure_detector.phi_threshold", || {
            format!("must be a finite number > 0, got {}", fd.phi_threshold)
        })?;

        // byzantine
        let bz = &self.byzantine;
        positive!(bz.byzantine_tolerance, "byzantine.byzantine_tolerance")?;
        check(bz.quorum_size == 2 * bz.byzantine_tolerance + 1, "byzantine.quorum_size", || {
            format!(
                "must be 2f+1 = {} for byzantine_tolerance f = {}, got {}",
                2 * bz.byzantine_tolerance + 1,
                bz.byzantine_tolerance,
                bz.quorum_size
            )
        })?;
        check(bz.signature_algorithm == "hmac_sha256", "byzantine.signature_algorithm", || {
            format!("must be \"hmac_sha256\", got {:?}", bz.signature_algorithm)
        })?;
        positive!(bz.round_timeout_ms, "byzantine.round_timeout_ms")?;
        check(bz.blacklist_threshold > 0.0 && bz.blacklist_threshold < 1.0, "byzantine.blacklist_threshold", || {
            format!("must be in (0, 1), got {}", bz.blacklist_threshold)
        })?;

        // timeouts
        let t = &self.timeouts;
        positive!(t.routing_ms, "timeouts.routing_ms")?;
        positive!(t.execution_ms, "timeouts.execution_ms")?;
        positive!(t.heartbeat_ms, "timeouts.heartbeat_ms")?;

        // router
        let r = &self.router;
        range!(r.max_in_flight, "router.max_in_flight", 1, 10_000_000)?;
        range!(r.bulkhead_max_concurrent, "router.bulkhead_max_concurrent", 1, 65_536)?;
        range!(r.retry_budget_ratio, "router.retry_budget_ratio", 0.0, 10.0)?;
        range!(r.retry_budget_ttl_ms, "router.retry_budget_ttl_ms", 1_000, 60_000)?;
        range!(r.retry_budget_min_per_sec, "router.retry_budget_min_per_sec", 0, 1_000_000)?;
        range!(r.dedup_window, "router.dedup_window", 0, 10_000_000)?;
        if let Some(s) = &r.fallback_swarm {
            crate::id::SwarmName::new(s).map_err(|e| invalid("router.fallback_swarm", e.to_string()))?;
        }
        positive!(r.dead_letter_capacity, "router.dead_letter_capacity")?;
        range!(r.queue.capacity, "router.queue.capacity", 0, 10_000_000)?;
        if let Some(ttl) = r.queue.ttl_ms {
            positive!(ttl, "router.queue.ttl_ms")?;
        }
        if let Some(rl) = &r.rate_limit {
            check(rl.per_second > 0.0 && rl.per_second <= 1e7, "router.rate_limit.per_second", || {
                format!("must be in (0, 10000000], got {}", rl.per_second)
            })?;
            range!(rl.burst, "router.rate_limit.burst", 1, 10_000_000)?;
        }

        // correlation
        let c = &self.correlation;
        positive!(c.ttl_ms, "correlation.ttl_ms")?;
        positive!(c.max_entries, "correlation.max_entries")?;
        positive!(c.sweep_interval_ms, "correlation.sweep_interval_ms")?;

        // supervision
        positive!(self.supervision.flow.window_ms, "supervision.flow.window_ms")?;
        positive!(self.supervision.agents.window_ms, "supervision.agents.window_ms")?;

        // registry
        positive!(self.registry.max_agents, "registry.max_agents")?;
        positive!(self.registry.candidate_cache_entries, "registry.candidate_cache_entries")?;
        positive!(self.registry.restart_grace_ms, "registry.restart_grace_ms")?;

        // cluster
        let cl = &self.cluster;
        cl.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid("cluster.listen", format!("must be host:port, got {:?} ({e})", cl.listen)))?;
        check(!cl.cookie.is_empty(), "cluster.cookie", || "must not be empty".into())?;
        for seed in &cl.seeds {
            seed.parse::<std::net::SocketAddr>()
                .map_err(|e| invalid("cluster.seeds", format!("{seed:?} is not host:port ({e})")))?;
        }
        positive!(cl.reconnect_base_ms, "cluster.reconnect_base_ms")?;
        range!(cl.reconnect_max_ms, "cluster.reconnect_max_ms", cl.reconnect_base_ms, 3_600_000)?;
        positive!(cl.heartbeat_interval_ms, "cluster.heartbeat_interval_ms")?;
        positive!(cl.gossip_interval_ms, "cluster.gossip_interval_ms")?;
        range!(cl.gossip_fanout, "cluster.gossip_fanout", 1, 16)?;
        range!(cl.rumor_ttl, "cluster.rumor_ttl", 1, 32)?;
        positive!(cl.directory_interval_ms, "cluster.directory_interval_ms")?;
        range!(cl.max_remote_in_flight, "cluster.max_remote_in_flight", 1, 1_000_000)?;
        range!(cl.handshake_timeout_ms, "cluster.handshake_timeout_ms", 10, 600_000)?;
        range!(cl.max_pending_handshakes, "cluster.max_pending_handshakes", 1, 65_536)?;
        positive!(cl.hello_timeout_ms, "cluster.hello_timeout_ms")?;

        if bz.enabled {
            check(self.cluster.enabled, "byzantine.enabled", || "needs cluster.enabled = true".into())?;
            let seeded = bz.insecure_test_keys_seed.is_some();
            check(bz.keys_file.is_some() || seeded, "byzantine.keys_file", || {
                "is required when byzantine.enabled = true (or set insecure_test_keys_seed and members)".into()
            })?;
            if seeded {
                let n = bz.members.len() as u32;
                check(n > 3 * bz.byzantine_tolerance, "byzantine.members", || {
                    format!("needs at least 3f+1 = {} members, got {n}", 3 * bz.byzantine_tolerance + 1)
                })?;
            }
        }
        for m in &bz.members {
            crate::id::NodeName::new(m).map_err(|e| invalid("byzantine.members", format!("{m:?}: {e}")))?;
        }
        // raft
        self.raft.validate()?;
        if self.raft.enabled {
            check(self.cluster.enabled, "raft.enabled", || "needs cluster.enabled = true".into())?;
            check(!self.raft.voters.is_empty(), "raft.voters", || {
                "must list the voters' node names when raft.enabled = true".into()
            })?;
        }

        // codec
        range!(self.codec.max_payload_bytes, "codec.max_payload_bytes", 1, PAYLOAD_HARD_LIMIT_BYTES)?;

        // mcp
        self.mcp.validate()?;
        self.http.listen_addr()?;
        // A body becomes one task payload; checked only where MCP is on, so a node without it
        // may lower the payload limit without touching `[mcp]`.
        if self.mcp.listen.is_some() || !self.mcp.upstream.is_empty() {
            range!(self.mcp.max_body_bytes, "mcp.max_body_bytes", 1, self.codec.max_payload_bytes as u64)?;
        }
        for u in &self.mcp.upstream {
            // The failure detector kills an agent busy for longer than this.
            range!(u.call_timeout_ms, "mcp.upstream.call_timeout_ms", 1, fd.hung_agent_after_ms - 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are valid and match the seeds' `sys.config`.
    #[test]
    fn defaults_are_valid_and_match_seeds() {
        let cfg = FlowConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.q_learning.epsilon, 0.1);
        assert_eq!(cfg.q_learning.alpha, 0.1);
        assert_eq!(cfg.q_learning.gamma, 0.9);
        assert_eq!(cfg.load_balancer.consistent_hash_vnodes, 150);
        // The seeds' 5 / 10 / 20 open breakers of healthy agents by chance at high
        // throughput (issue 9 finding 6); see CircuitBreakerConfig.
        assert_eq!(cfg.circuit_breaker.failure_threshold, 10);
        assert_eq!(cfg.circuit_breaker.min_requests, 20);
        assert_eq!(cfg.circuit_breaker.window_size, 100);
        assert_eq!(cfg.circuit_breaker.timeout_ms, 30_000);
        assert_eq!(cfg.failure_detector.max_retry_attempts, 3);
        assert_eq!(cfg.failure_detector.base_retry_delay_ms, 100);
        assert_eq!(cfg.failure_detector.max_retry_delay_ms, 5_000);
        assert_eq!(cfg.byzantine.quorum_size, 3);
        assert_eq!(cfg.timeouts.routing_ms, 5_000);
        assert_eq!(cfg.timeouts.execution_ms, 30_000);
        assert_eq!(cfg.timeouts.heartbeat_ms, 5_000);
        assert_eq!(cfg.supervision.agents.max_restarts, 5);
        assert_eq!(cfg.raft.storage, "memory");
        assert_eq!(cfg.raft.heartbeat_interval_ms, 50);
        assert_eq!(cfg.raft.client_timeout_ms, 2_000);
        let redb = FlowConfig::from_toml_str("[raft]\nstorage = \"redb\"\npath = \"data/raft.redb\"").unwrap();
        assert!(redb.raft.is_durable());
        FlowConfig::for_test().validate().unwrap();
    }

    /// An empty file is the default config, and the default survives a TOML round trip.
    #[test]
    fn empty_text_is_default_and_round_trips() {
        assert_eq!(FlowConfig::from_toml_str("").unwrap(), FlowConfig::default());
        let text = FlowConfig::default().to_toml_string();
        assert_eq!(FlowConfig::from_toml_str(&text).unwrap(), FlowConfig::default());
    }

    /// The admission queue and rate limit parse from TOML; the defaults are a bounded
    /// `reject` queue without TTL and no rate limit.
    #[test]
    fn queue_and_rate_limit_sections_parse() {
        let d = FlowConfig::default().router;
        assert_eq!(
            (d.queue.capacity, d.queue.discard, d.queue.ttl_ms, d.rate_limit),
            (100_000, DiscardPolicy::Reject, None, None)
        );
        let cfg = FlowConfig::from_toml_str(
            "[router.queue]\ncapacity = 5\ndiscard = \"oldest\"\nttl_ms = 100\n[router.rate_limit]\nper_second = 50.0\nburst = 5",
        )
        .unwrap();
        assert_eq!(cfg.router.queue, QueueConfig { capacity: 5, discard: DiscardPolicy::Oldest, ttl_ms: Some(100) });
        assert_eq!(cfg.router.rate_limit, Some(RateLimitConfig { per_second: 50.0, burst: 5 }));
        assert!(FlowConfig::from_toml_str("[router.queue]\ndiscard = \"random\"").is_err());
    }

    /// Out-of-range values are refused with the dotted name of the field.
    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            ("[q_learning]\nepsilon = 1.5", "q_learning.epsilon"),
            ("[q_learning]\ngamma = 1.0", "q_learning.gamma"),
            ("[circuit_breaker]\nfailure_rate_threshold = 0.0", "circuit_breaker.failure_rate_threshold"),
            ("[circuit_breaker]\nmin_requests = 0", "circuit_breaker.min_requests"),
            ("[circuit_breaker]\nwindow_size = 5", "circuit_breaker.window_size"),
            ("[failure_detector]\nmax_retry_attempts = 0", "failure_detector.max_retry_attempts"),
            ("[failure_detector]\nmax_retry_delay_ms = 10", "failure_detector.max_retry_delay_ms"),
            ("[byzantine]\nquorum_size = 4", "byzantine.quorum_size"),
            ("[byzantine]\nsignature_algorithm = \"md5\"", "byzantine.signature_algorithm"),
            ("[router]\nmax_in_flight = 0", "router.max_in_flight"),
            ("[router]\nretry_budget_min_per_sec = 4000000000", "router.retry_budget_min_per_sec"),
            ("[router]\ndedup_window = 4000000000", "router.dedup_window"),
            ("[router]\nfallback_swarm = \"has space\"", "router.fallback_swarm"),
            ("[router.queue]\ncapacity = 20000000", "router.queue.capacity"),
            ("[router.queue]\nttl_ms = 0", "router.queue.ttl_ms"),
            ("[router.rate_limit]\nper_second = 0.0", "router.rate_limit.per_second"),
            ("[router.rate_limit]\nper_second = 5.0\nburst = 0", "router.rate_limit.burst"),
            ("[codec]\nmax_payload_bytes = 999999999", "codec.max_payload_bytes"),
            ("[node]\nname = \"\"", "node.name"),
            ("[timeouts]\nexecution_ms = 0", "timeouts.execution_ms"),
            ("[cluster]\nlisten = \"localhost\"", "cluster.listen"),
            ("[cluster]\ncookie = \"\"", "cluster.cookie"),
            ("[cluster]\nseeds = [\"nowhere\"]", "cluster.seeds"),
            ("[cluster]\ngossip_fanout = 0", "cluster.gossip_fanout"),
            ("[cluster]\nhandshake_timeout_ms = 0", "cluster.handshake_timeout_ms"),
            ("[cluster]\nmax_pending_handshakes = 0", "cluster.max_pending_handshakes"),
            ("[cluster]\nhello_timeout_ms = 0", "cluster.hello_timeout_ms"),
            ("[raft]\nstorage = \"sqlite\"", "raft.storage"),
            ("[raft]\nstorage = \"redb\"", "raft.path"),
            ("[raft]\nheartbeat_interval_ms = 0", "raft.heartbeat_interval_ms"),
            ("[raft]\nelection_timeout_min_ms = 50", "raft.election_timeout_min_ms"),
            ("[raft]\nelection_timeout_max_ms = 100", "raft.election_timeout_max_ms"),
            ("[raft]\nmax_payload_entries = 0", "raft.max_payload_entries"),
            ("[raft]\nsnapshot_after_logs = 0", "raft.snapshot_after_logs"),
            ("[raft]\nvoters = [\"\"]", "raft.voters"),
            ("[raft]\nclient_timeout_ms = 0", "raft.client_timeout_ms"),
            ("[cluster]\nenabled = true\n[raft]\nenabled = true", "raft.voters"),
            ("[raft]\nenabled = true\nvoters = [\"a\"]", "raft.enabled"),
            ("[byzantine]\nenabled = true", "byzantine.enabled"),
            ("[mcp]\nlisten = \"nowhere\"", "mcp.listen"),
            ("[mcp]\npath = \"mcp\"", "mcp.path"),
            ("[mcp]\nmax_sessions = 0", "mcp.max_sessions"),
            ("[mcp]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 99999999", "mcp.max_body_bytes"),
            ("[mcp]\nrestart_backoff_max_ms = 1", "mcp.restart_backoff_max_ms"),
            ("[[mcp.upstream]]\nname = \"a b\"\ncommand = \"x\"", "mcp.upstream.name"),
            ("[[mcp.upstream]]\nname = \"a\"", "mcp.upstream.command"),
            ("[[mcp.upstream]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://h\"", "mcp.upstream.command"),
            ("[[mcp.upstream]]\nname = \"a\"\nurl = \"ftp://h\"", "mcp.upstream.url"),
            ("[[mcp.upstream]]\nname = \"a\"\ncommand = \"x\"\nreplicas = 0", "mcp.upstream.replicas"),
            (
                "[[mcp.upstream]]\nname = \"a\"\ncommand = \"x\"\ncall_timeout_ms = 60000",
                "mcp.upstream.call_timeout_ms",
            ),
            (
                "[[mcp.upstream]]\nname = \"a\"\ncommand = \"x\"\n[[mcp.upstream]]\nname = \"a\"\ncommand = \"y\"",
                "mcp.upstream.name",
            ),
            ("[cluster]\nenabled = true\n[byzantine]\nenabled = true", "byzantine.keys_file"),
            (
                "[cluster]\nenabled = true\n[byzantine]\nenabled = true\ninsecure_test_keys_seed = 1\nmembers = [\"a\", \"b\"]",
                "byzantine.members",
            ),
        ];
        for (text, field) in cases {
            let err = FlowConfig::from_toml_str(text).unwrap_err();
            assert_eq!(err.field(), Some(field), "{text}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    /// Unknown keys, wrong types and broken syntax are parse errors that say what is wrong.
    #[test]
    fn unknown_keys_and_bad_types_are_refused() {
        let err = FlowConfig::from_toml_str("[router]\nmax_inflight = 3").unwrap_err();
        assert!(err.to_string().contains("max_inflight"), "{err}");
        let err = FlowConfig::from_toml_str("[load_balancer]\nstrategy = \"fastest\"").unwrap_err();
        assert!(err.to_string().contains("fastest"), "{err}");
        let err = FlowConfig::from_toml_str("[timeouts]\nrouting_ms = \"soon\"").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
        assert!(matches!(FlowConfig::from_toml_str("[router"), Err(ConfigError::Parse(_))));
        let err = FlowConfig::from_file("/nonexistent/flow.toml").unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
    }

    /// Strategy names parse from config spelling and CLI spelling, and unknown ones list
    /// the valid names.
    #[test]
    fn strategy_names_parse() {
        assert_eq!("p2c-ewma".parse::<StrategyKind>(), Ok(StrategyKind::P2cEwma));
        assert_eq!("q_learning".parse::<StrategyKind>(), Ok(StrategyKind::QLearning));
        assert!("best".parse::<StrategyKind>().unwrap_err().contains("round_robin"));
    }
}
