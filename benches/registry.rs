//! Registry reads: lookup by id (1 000 and 100 000 agents) and capability AND-queries.
//! Target: lookup p99 ≤ 1 µs.
//!
//! `cargo bench --bench registry`

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use erlmcp_flow::core::{AgentId, CapabilitySet, MonoClock};
use erlmcp_flow::registry::{Registration, Registry, RegistryArgs, RegistryHandle, RegistryView};
use erlmcp_flow::supervision::ActorSlot;
use ractor::Actor;

fn registry_with(rt: &tokio::runtime::Runtime, n: usize) -> RegistryHandle {
    rt.block_on(async {
        let view = Arc::new(RegistryView::new(1_000_000, 4096));
        let slot = ActorSlot::new();
        let args = RegistryArgs {
            view: view.clone(),
            slot: slot.clone(),
            clock: MonoClock::new(),
            bulkhead_capacity: 8,
            seq: Arc::new(AtomicU64::new(0)),
            restart_grace: Duration::from_secs(5),
        };
        Actor::spawn(None, Registry, args).await.unwrap();
        let handle = RegistryHandle::new(view, slot, Duration::from_secs(30));
        let (actor, _) = Actor::spawn(None, support::Nop, ()).await.unwrap();
        for i in 0..n {
            let caps = if i % 2 == 0 { vec!["x", "y"] } else { vec!["x"] };
            handle
                .register(Registration {
                    id: AgentId::new(format!("agent-{i:06}")).unwrap(),
                    capabilities: CapabilitySet::parse(caps).unwrap(),
                    swarms: Vec::new(),
                    weight: 1,
                    actor: actor.clone(),
                })
                .await
                .unwrap();
        }
        handle
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("registry");
    for n in [1_000usize, 100_000] {
        let reg = registry_with(&rt, n);
        let ids: Vec<AgentId> = (0..n).map(|i| AgentId::new(format!("agent-{i:06}")).unwrap()).collect();
        let mut k = 0usize;
        group.bench_with_input(BenchmarkId::new("lookup_by_id", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 7919) % n;
                std::hint::black_box(reg.find(&ids[k]))
            })
        });
        let mut k = 0usize;
        support::percentiles(&format!("registry/lookup_by_id/{n}"), 200_000, || {
            k = (k + 7919) % n;
            std::hint::black_box(reg.find(&ids[k]));
        });

        let xy = CapabilitySet::parse(["x", "y"]).unwrap();
        group.bench_with_input(BenchmarkId::new("and_query_cached", n), &n, |b, _| {
            b.iter(|| std::hint::black_box(reg.query(&xy, None)))
        });
        support::percentiles(&format!("registry/and_query_cached/{n}"), 100_000, || {
            std::hint::black_box(reg.query(&xy, None));
        });
        let samples = if n > 10_000 { 200 } else { 5_000 };
        group.bench_with_input(BenchmarkId::new("and_query_uncached", n), &n, |b, _| {
            b.iter(|| std::hint::black_box(reg.view().query_uncached(&xy, None)))
        });
        support::percentiles(&format!("registry/and_query_uncached/{n}"), samples, || {
            std::hint::black_box(reg.view().query_uncached(&xy, None));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
