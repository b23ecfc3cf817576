//! Full Byzantine round latency through the actor shells on the in-process network: the
//! leader's `propose` until every node has decided (`await_round` answered), for N = 4, 7,
//! 10, all honest, one tokio runtime. Prints `BYZANTINE_ROUND n=… p50_us=… p99_us=…` per N
//! (target: p99 ≤ 5 ms at N = 7), then runs the same as a criterion benchmark.
//!
//! `RUST_BACKTRACE=0 cargo bench -p erlmcp-flow-byzantine --bench byzantine_round`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use erlmcp_flow_byzantine::{ByzantineHandle, InProcessByzantineNet, RoundOutcome};
use erlmcp_flow_core::config::ByzantineConfig;

const SAMPLES: u64 = 1000;

/// The largest f each N allows (N = 3f + 1), quorum 2f + 1.
fn config_for(n: usize) -> ByzantineConfig {
    let f = ((n - 1) / 3) as u32;
    ByzantineConfig { byzantine_tolerance: f, quorum_size: 2 * f + 1, ..ByzantineConfig::default() }
}

async fn one_round(nodes: &[ByzantineHandle], round: u64) -> Duration {
    let leader = &nodes[(round % nodes.len() as u64) as usize];
    let start = Instant::now();
    leader.propose(round, format!("value {round}")).await.expect("propose");
    let waits = nodes.iter().map(|n| n.await_round(round, Duration::from_secs(5)));
    for outcome in futures::future::join_all(waits).await {
        assert!(matches!(outcome, Ok(RoundOutcome::Decided(_))), "{outcome:?}");
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("byzantine_round");
    for n in [4usize, 7, 10] {
        let net = InProcessByzantineNet::new();
        let nodes = rt.block_on(net.spawn_cluster("bench", n, &config_for(n), &[], 1)).expect("spawn");
        let mut round = 0u64;
        // Warm-up, then the reported sample.
        rt.block_on(async {
            for _ in 0..100 {
                one_round(&nodes, round).await;
                round += 1;
            }
        });
        let mut lat: Vec<Duration> = rt.block_on(async {
            let mut v = Vec::with_capacity(SAMPLES as usize);
            for _ in 0..SAMPLES {
                v.push(one_round(&nodes, round).await);
                round += 1;
            }
            v
        });
        lat.sort();
        println!(
            "BYZANTINE_ROUND n={n} f={} samples={SAMPLES} p50_us={} p99_us={} max_us={}",
            (n - 1) / 3,
            percentile(&lat, 0.50).as_micros(),
            percentile(&lat, 0.99).as_micros(),
            lat[lat.len() - 1].as_micros()
        );
        group.bench_function(format!("n={n}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += one_round(&nodes, round).await;
                        round += 1;
                    }
                    total
                })
            })
        });
        net.stop_all();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
