//! Q-learning inference on the routing hot path: `QLearningStrategy::select` over 8, 16,
//! 100 and 1 000 candidates with a trained model (target: average ≤ 1 µs), the hot-path
//! feedback (`observe`: a non-blocking push into the bounded queue), and the actor-side
//! TD update per sample.
//!
//! `cargo bench --bench q_learning`

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use erlmcp_flow::core::{CapabilitySet, Task};
use erlmcp_flow::registry::{AgentEntry, Candidates};
use erlmcp_flow::router::q_learning::{QLearningStrategy, QModel, QModelSettings, QParams};
use erlmcp_flow::router::strategy::{AttemptFeedback, LoadFigures, Selection, Strategy};
use ractor::Actor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DECAY_NS: f64 = 1e10;

/// Gives every candidate load and latency history, then trains `model` with samples of
/// every candidate in a spread of states and publishes the snapshot.
fn train(model: &Arc<QModel>, candidates: &Candidates, rng: &mut SmallRng) {
    let strategy = QLearningStrategy::new(model.clone());
    for (i, e) in candidates.iter().enumerate() {
        e.load.observe(1, 500_000 + (i as u64 * 7_919) % 4_000_000, i % 11 != 0, DECAY_NS);
    }
    for round in 0..20u64 {
        for e in candidates.iter() {
            let dispatch = LoadFigures {
                in_flight: rng.random_range(0..8),
                success_rate: if rng.random::<f64>() < 0.9 { 1.0 } else { 0.6 },
                latency_ewma_ns: Some(rng.random_range(300_000.0..5_000_000.0)),
            };
            strategy.observe(&AttemptFeedback {
                agent: e,
                candidates,
                latency_ns: rng.random_range(300_000..5_000_000),
                success: rng.random::<f64>() < 0.95,
                now_ns: 2 + round,
                dispatch,
            });
        }
        model.pump(2 + round);
    }
    model.publish();
    // Realistic in-flight counts at decision time.
    for (i, e) in candidates.iter().enumerate() {
        for _ in 0..(i % 5) {
            e.load.begin();
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let actor = rt.block_on(async { Actor::spawn(None, support::Nop, ()).await.unwrap().0 });
    let tasks: Vec<Task> = (0..1024).map(|_| Task::new(CapabilitySet::parse(["x"]).unwrap())).collect();
    let mut rng = SmallRng::seed_from_u64(7);

    let mut group = c.benchmark_group("q_learning");
    for n in [8usize, 16, 100, 1_000] {
        let candidates = support::entries(&actor, n);
        let settings = QModelSettings { queue_capacity: 1 << 20, ..QModelSettings::default() };
        let model = QModel::in_memory(QParams::default(), settings);
        train(&model, &candidates, &mut rng);
        let strategy = QLearningStrategy::new(model.clone());
        // One candidate already tried, as in the router.
        let tried = [candidates[3 % n].seq];
        let eligible = |e: &AgentEntry| e.is_alive() && !tried.contains(&e.seq);
        let mut k = 0usize;
        group.bench_with_input(BenchmarkId::new("select", n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) & 1023;
                let sel = Selection { task: &tasks[k], now_ns: 30, eligible: &eligible };
                std::hint::black_box(strategy.select(&candidates, &sel, &mut rng))
            })
        });
        let mut k = 0usize;
        support::percentiles(&format!("q_learning/select/{n}"), 100_000, || {
            k = (k + 1) & 1023;
            let sel = Selection { task: &tasks[k], now_ns: 30, eligible: &eligible };
            std::hint::black_box(strategy.select(&candidates, &sel, &mut rng));
        });
    }

    // Feedback on the hot path: one non-blocking push. The queue is drained every 4 096
    // pushes (the actor's job); that drain is not part of this figure.
    let candidates = support::entries(&actor, 16);
    let settings = QModelSettings { queue_capacity: 8_192, ..QModelSettings::default() };
    let model = QModel::in_memory(QParams::default(), settings);
    let strategy = QLearningStrategy::new(model.clone());
    let dispatch = LoadFigures { in_flight: 2, success_rate: 1.0, latency_ewma_ns: Some(1e6) };
    let feedback = |i: usize| AttemptFeedback {
        agent: &candidates[i & 15],
        candidates: &candidates,
        latency_ns: 900_000,
        success: true,
        now_ns: 40,
        dispatch,
    };
    let mut i = 0usize;
    group.bench_function("observe", |b| {
        b.iter(|| {
            i += 1;
            if i.is_multiple_of(4_096) {
                model.pump(40);
            }
            strategy.observe(std::hint::black_box(&feedback(i)))
        })
    });
    model.pump(40);
    let mut i = 0usize;
    support::percentiles("q_learning/observe", 4_000, || {
        i += 1;
        strategy.observe(std::hint::black_box(&feedback(i)));
    });
    let stats = model.stats();
    println!("q_learning/observe: {} recorded, {} dropped (queue full)", stats.recorded, stats.dropped);

    // Actor side: TD updates per sample, in batches of 4 096 (discretisation + update).
    group.bench_function("td_update_batch_4096", |b| {
        b.iter(|| {
            for i in 0..4_096 {
                strategy.observe(&feedback(i));
            }
            std::hint::black_box(model.pump(40))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
