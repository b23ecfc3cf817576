//! One routing decision per strategy over 1 000 candidates: the strategy alone, and the
//! full dry-run decision (discovery from the registry cache, selection, breaker
//! admission, bulkhead slot). Target: decision p99 ≤ 10 µs.
//!
//! `cargo bench --bench routing_decision`

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use erlmcp_flow::core::{CapabilitySet, StrategyKind, Task};
use erlmcp_flow::prelude::*;
use erlmcp_flow::registry::AgentEntry;
use erlmcp_flow::router::strategy::{self, Selection, StrategyParams};
use ractor::Actor;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const CANDIDATES: usize = 1_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let actor = rt.block_on(async { Actor::spawn(None, support::Nop, ()).await.unwrap().0 });
    let candidates = support::entries(&actor, CANDIDATES);
    // Realistic load figures: some in flight, some latency history.
    for (i, e) in candidates.iter().enumerate() {
        for _ in 0..(i % 5) {
            e.load.begin();
        }
        e.load.observe(1, 100_000 + (i as u64 * 7_919) % 900_000, i % 11 != 0, 1e10);
    }
    let params = StrategyParams { vnodes: 150, ewma_decay_ns: 1e10, default_rtt_ns: 1e6 };
    let tasks: Vec<Task> =
        (0..1024).map(|i| Task::new(CapabilitySet::parse(["x"]).unwrap()).with_affinity_key(format!("s{i}"))).collect();
    // One agent already tried, as the router tracks it (by registration number).
    let tried = [candidates[3].seq];
    let eligible = |e: &AgentEntry| e.is_alive() && !tried.contains(&e.seq);

    let mut group = c.benchmark_group("decision");
    for kind in StrategyKind::ALL {
        let Some(s) = strategy::build(kind, params) else { continue };
        let mut rng = SmallRng::seed_from_u64(1);
        let mut k = 0usize;
        group.bench_with_input(BenchmarkId::new("strategy", kind.as_str()), &kind, |b, _| {
            b.iter(|| {
                k = (k + 1) & 1023;
                let sel = Selection { task: &tasks[k], now_ns: 2, eligible: &eligible };
                std::hint::black_box(s.select(&candidates, &sel, &mut rng))
            })
        });
        let mut k = 0usize;
        support::percentiles(&format!("decision/strategy/{kind}/{CANDIDATES}"), 50_000, || {
            k = (k + 1) & 1023;
            let sel = Selection { task: &tasks[k], now_ns: 2, eligible: &eligible };
            std::hint::black_box(s.select(&candidates, &sel, &mut rng));
        });
    }

    // The full dry-run decision through a running node's router.
    let node = rt.block_on(async {
        let mut cfg = FlowConfig::default();
        cfg.node.seed = Some(1);
        let node = FlowNode::start(cfg).await.unwrap();
        for i in 0..CANDIDATES {
            node.spawn_agent(AgentSpec::parse(&format!("a{i:04}"), ["x"]).unwrap(), || {
                FnAgent::new(|_t: &Task| async { Ok(Bytes::new()) })
            })
            .await
            .unwrap();
        }
        node
    });
    for kind in StrategyKind::ALL {
        if rt.block_on(node.set_strategy(kind)).is_err() {
            continue;
        }
        let mut k = 0usize;
        group.bench_with_input(BenchmarkId::new("full", kind.as_str()), &kind, |b, _| {
            b.iter(|| {
                k = (k + 1) & 1023;
                std::hint::black_box(node.router().decide(&tasks[k]))
            })
        });
        let mut k = 0usize;
        support::percentiles(&format!("decision/full/{kind}/{CANDIDATES}"), 50_000, || {
            k = (k + 1) & 1023;
            std::hint::black_box(node.router().decide(&tasks[k]));
        });
    }
    group.finish();
    rt.block_on(node.shutdown(Duration::from_secs(1)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
