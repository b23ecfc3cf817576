//! Raft commit latency, throughput and leader failover: 3 in-process nodes (in-memory
//! storage, default timeouts) on the `InProcessTransport`.
//!
//! Targets (DESIGN.md): commit p99 ≤ 5 ms, ≥ 20 000 commits/s, failover ≤ 1 s.
//!
//! `RUST_BACKTRACE=0 cargo bench -p erlmcp-flow-consensus --bench raft_commit`
//!
//! Prints lines starting `RAFT_COMMIT`:
//! - `latency`: one client submitting sequentially on the leader, µs percentiles;
//! - `throughput`: 64 concurrent clients on the leader, commits per second;
//! - `failover`: time from the leader's shutdown until both survivors see a new
//!   leader, over 10 fresh clusters, ms.
//!
//! then a criterion measurement of one sequential commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use erlmcp_flow_consensus::{ConsensusNode, InProcessTransport, LedgerCommand, NodeRole, RaftConfig};
use erlmcp_flow_core::{CapabilitySet, Task};
use hdrhistogram::Histogram;

const LATENCY_SAMPLES: usize = 5_000;
const THROUGHPUT_CLIENTS: usize = 64;
const THROUGHPUT_COMMITS: usize = 64_000;
const FAILOVER_ROUNDS: usize = 10;

struct Cluster {
    net: InProcessTransport,
    nodes: Vec<ConsensusNode>,
}

impl Cluster {
    async fn start(round: usize) -> Self {
        let net = InProcessTransport::new();
        let names: Vec<String> = (1..=3).map(|i| format!("r{round}-n{i}")).collect();
        let mut nodes = Vec::new();
        for name in &names {
            let node = ConsensusNode::start(name, &RaftConfig::default(), net.endpoint(name)).await.unwrap();
            net.register(&node);
            nodes.push(node);
        }
        for n in &nodes {
            n.initialize(&names).await.unwrap();
        }
        for n in &nodes {
            n.wait_for_leader(Duration::from_secs(10)).await.unwrap();
        }
        Self { net, nodes }
    }

    fn leader(&self) -> ConsensusNode {
        let name = self.nodes[0].leader().unwrap().1;
        self.nodes.iter().find(|n| n.name() == name).unwrap().clone()
    }

    async fn stop(self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

fn submit(owner: &str) -> LedgerCommand {
    LedgerCommand::Submit { task: Task::new(CapabilitySet::parse(["bench"]).unwrap()), owner: owner.into() }
}

fn print_hist(label: &str, h: &Histogram<u64>, unit: &str) {
    println!(
        "RAFT_COMMIT {label} n={} p50={}{unit} p90={}{unit} p99={}{unit} p99.9={}{unit} max={}{unit} mean={:.0}{unit}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.mean()
    );
}

async fn latency(c: &Cluster) {
    let leader = c.leader();
    for _ in 0..500 {
        leader.submit(submit(leader.name())).await.unwrap();
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    for _ in 0..LATENCY_SAMPLES {
        let cmd = submit(leader.name());
        let t = Instant::now();
        leader.submit(cmd).await.unwrap();
        h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    print_hist("latency sequential_single_client", &h, "us");
}

async fn throughput(c: &Cluster) {
    let leader = c.leader();
    let per_client = THROUGHPUT_COMMITS / THROUGHPUT_CLIENTS;
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..THROUGHPUT_CLIENTS {
        let node = leader.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_client {
                node.submit(submit(node.name())).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let commits = per_client * THROUGHPUT_CLIENTS;
    println!(
        "RAFT_COMMIT throughput clients={THROUGHPUT_CLIENTS} commits={commits} secs={secs:.3} commits_per_sec={:.0}",
        commits as f64 / secs
    );
}

async fn failover() {
    let mut h = Histogram::<u64>::new(3).unwrap();
    for round in 0..FAILOVER_ROUNDS {
        let c = Cluster::start(round).await;
        let old = c.leader();
        old.submit(submit(old.name())).await.unwrap();
        let survivors: Vec<ConsensusNode> = c.nodes.iter().filter(|n| n.id() != old.id()).cloned().collect();
        c.net.unregister(old.id());
        old.shutdown().await;
        let t = Instant::now();
        for s in &survivors {
            s.raft()
                .wait(Some(Duration::from_secs(10)))
                .metrics(|m| m.current_leader.is_some_and(|l| l != old.id()), "new leader")
                .await
                .unwrap();
        }
        h.record(t.elapsed().as_millis() as u64).unwrap();
        assert!(survivors.iter().any(|s| s.status().state == NodeRole::Leader));
        c.stop().await;
    }
    print_hist("failover leader_shutdown_to_new_leader_seen_by_survivors", &h, "ms");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cluster = rt.block_on(async {
        let c = Cluster::start(1000).await;
        latency(&c).await;
        throughput(&c).await;
        c
    });
    rt.block_on(failover());

    let leader = Arc::new(cluster.leader());
    let mut crit = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    crit.bench_function("raft_commit_sequential_3_nodes", |b| {
        b.iter(|| rt.block_on(leader.submit(submit(leader.name()))).unwrap())
    });
    crit.final_summary();
    rt.block_on(cluster.stop());
}
