//! Gossip convergence: 60 nodes, fanout 3, 5 ms rounds. One node writes a key; how many
//! rounds (interval ticks of the writing node) and how much wall time until all 60 hold it?
//! Target: 100% within 2⌈log₂ 60⌉ = 12 rounds and 50 ms.
//!
//! Two variants:
//! * **actors**: 60 `GossipActor`s on a 2-worker tokio runtime, wired by the in-process
//!   transport with every message encoded and decoded by the codec, heartbeats every
//!   100 ms. A fresh cluster per repetition, warmed up for 100 ms, then one `put`;
//!   convergence is the moment the 60th node's `Changed` event is observed.
//! * **simulation**: the same protocol without actors, in lock-step rounds (pure rounds,
//!   no scheduling noise), with and without rumors.
//!
//! `cargo bench --bench gossip_convergence` (repetitions: `GOSSIP_BENCH_REPS`, default 200
//! with actors, 10× that simulated). Prints lines beginning `GOSSIP`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use erlmcp_flow::core::Codec;
use erlmcp_flow_gossip::{GossipConfig, GossipEvent, InProcessNetwork, Simulation};

const NODES: usize = 60;
const INTERVAL_MS: u64 = 5;

fn config() -> GossipConfig {
    GossipConfig { interval_ms: INTERVAL_MS, fanout: 3, heartbeat_interval_ms: 100, ..GossipConfig::default() }
}

fn reps() -> usize {
    std::env::var("GOSSIP_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

fn target_rounds(n: usize) -> u64 {
    2 * (n as f64).log2().ceil() as u64
}

fn pct<T: Copy + Ord>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

/// One convergence with actors: returns (rounds, wall time), or `None` after 2 s.
async fn actor_run(rep: usize) -> Option<(u64, Duration)> {
    let cfg = config();
    let net = InProcessNetwork::with_codec(Codec::new(cfg.max_message_bytes));
    let nodes = net.spawn_cluster("g", NODES, &cfg, rep as u64 * 1_000).await.expect("spawn");
    tokio::time::sleep(Duration::from_millis(100)).await; // timers running, heartbeats flowing
    let key = format!("bench-{rep}");
    let waits: Vec<_> = nodes
        .iter()
        .map(|n| {
            let mut events = n.subscribe();
            let key = key.clone();
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(GossipEvent::Changed(c)) if c.key == key => return Instant::now(),
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return Instant::now() + Duration::from_secs(3600),
                    }
                }
            })
        })
        .collect();
    let origin = &nodes[rep % NODES];
    let r0 = origin.rounds();
    let t0 = Instant::now();
    origin.put(key.clone(), &b"value"[..]).await.expect("put");
    let all = futures::future::join_all(waits);
    let result = match tokio::time::timeout(Duration::from_secs(2), all).await {
        Ok(arrivals) => {
            let last = arrivals.into_iter().map(|a| a.expect("waiter")).max().expect("60 nodes");
            // Rounds the origin started after the put, up to the last arrival.
            let rounds = origin.rounds() - r0;
            Some((rounds, last.saturating_duration_since(t0)))
        }
        Err(_) => None,
    };
    for n in &nodes {
        n.kill();
    }
    result
}

fn actors(rt: &tokio::runtime::Runtime) {
    let reps = reps();
    let mut rounds = Vec::with_capacity(reps);
    let mut wall_us = Vec::with_capacity(reps);
    let mut failed = 0;
    for rep in 0..reps {
        match rt.block_on(actor_run(rep)) {
            Some((r, w)) => {
                rounds.push(r);
                wall_us.push(w.as_micros() as u64);
            }
            None => failed += 1,
        }
    }
    rounds.sort_unstable();
    wall_us.sort_unstable();
    let target = target_rounds(NODES);
    let within = wall_us.iter().zip(&rounds).filter(|(w, r)| **w <= 50_000 && **r <= target).count();
    println!(
        "GOSSIP convergence {NODES} nodes (actors, fanout 3, {INTERVAL_MS} ms interval, {reps} runs): rounds p50 {} p99 {} \
         max {}; wall p50 {:.1} ms p99 {:.1} ms max {:.1} ms; within {target} rounds and 50 ms: {within}/{reps}; \
         not converged in 2 s: {failed}",
        pct(&rounds, 0.5),
        pct(&rounds, 0.99),
        rounds.last().copied().unwrap_or(0),
        pct(&wall_us, 0.5) as f64 / 1000.0,
        pct(&wall_us, 0.99) as f64 / 1000.0,
        wall_us.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
}

fn simulated_rounds(cfg: &GossipConfig, seed: u64) -> u64 {
    let mut sim = Simulation::new(NODES, cfg.clone(), seed).expect("valid config");
    let origin = sim.names()[seed as usize % NODES].clone();
    sim.put(&origin, "k", &b"value"[..]).expect("put");
    sim.run_until(1_000, |s| s.all_have("k")).expect("converges")
}

fn simulation() {
    let runs = reps() * 10;
    for (label, cfg) in
        [("rumors + anti-entropy", config()), ("anti-entropy only", GossipConfig { rumor_ttl: 0, ..config() })]
    {
        let mut rounds: Vec<u64> = (0..runs as u64).map(|seed| simulated_rounds(&cfg, seed)).collect();
        rounds.sort_unstable();
        let target = target_rounds(NODES);
        println!(
            "GOSSIP simulation {NODES} nodes ({label}, fanout 3, {runs} runs): rounds p50 {} p99 {} max {}; \
             within {target} rounds: {}/{runs}",
            pct(&rounds, 0.5),
            pct(&rounds, 0.99),
            rounds.last().copied().unwrap_or(0),
            rounds.iter().filter(|r| **r <= target).count(),
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    simulation();
    actors(&rt);

    let mut group = c.benchmark_group("gossip");
    group.sample_size(20);
    let cfg = config();
    let mut seed = 0u64;
    group.bench_function("simulated_convergence_60_nodes", |b| {
        b.iter(|| {
            seed += 1;
            std::hint::black_box(simulated_rounds(&cfg, seed))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
