//! Agent crash → the task runs on another agent. Target (DESIGN.md): p99 ≤ 5 ms.
//!
//! Seven agents; every task is a "crash once" task: the first agent that gets it records
//! the instant and panics; the next agent that gets it records the instant it starts the
//! task and completes it. The figure is the gap between the two instants, i.e. the panic
//! being caught and answered, the breaker and ledger bookkeeping, the strategy's next pick
//! and the delivery to a healthy agent (no backoff: a panic is the agent's fault, not the
//! task's). Tasks go one at a time so the figure is the recovery path, not queueing.
//!
//! `RUST_BACKTRACE=0 cargo bench --bench crash_redelivery`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use erlmcp_flow::core::TaskId;
use erlmcp_flow::prelude::*;
use parking_lot::Mutex;

/// Odd on purpose. Round-robin moves one step per attempt and every task takes two
/// attempts (crash, then success), so with an even count the same half of the agents would
/// get every first attempt and fail 100 % of the time, and their breakers would open
/// after a full window. An odd count gives each agent both roles in turn.
const AGENTS: usize = 7;
const SAMPLES: usize = 5_000;

/// Instants per task: when its first agent panicked, when a second agent started it.
#[derive(Default)]
struct Marks {
    crashed: HashMap<TaskId, Instant>,
    resumed: HashMap<TaskId, Instant>,
}

async fn start(marks: Arc<Mutex<Marks>>) -> FlowNode {
    let mut cfg = FlowConfig::default();
    // Every task crashes an agent once: allow the storm, and keep breakers out of the
    // figure (they would only steer picks; a tripped breaker is not the path measured).
    cfg.supervision.agents.max_restarts = 10_000_000;
    cfg.supervision.flow.max_restarts = 10_000_000;
    cfg.circuit_breaker.failure_threshold = 1_000_000;
    cfg.circuit_breaker.failure_rate_threshold = 1.0;
    // A rate of 1.0 is reachable over a short window (a freshly restarted agent that is
    // handed only first attempts fails every one of them): judge only full, long windows.
    cfg.circuit_breaker.window_size = 1024;
    cfg.circuit_breaker.min_requests = 1024;
    let node = FlowNode::start(cfg).await.unwrap();
    for i in 0..AGENTS {
        let marks = marks.clone();
        node.spawn_agent(AgentSpec::parse(&format!("crashy-{i}"), ["work"]).unwrap(), move || {
            let marks = marks.clone();
            FnAgent::new(move |task: &Task| {
                let now = Instant::now();
                let first = {
                    let mut m = marks.lock();
                    match m.crashed.entry(task.id) {
                        std::collections::hash_map::Entry::Occupied(_) => {
                            m.resumed.entry(task.id).or_insert(now);
                            false
                        }
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(now);
                            true
                        }
                    }
                };
                if first {
                    panic!("injected crash");
                }
                async move { Ok(Bytes::new()) }
            })
        })
        .await
        .unwrap();
    }
    node
}

fn bench(c: &mut Criterion) {
    erlmcp_flow::quiet_agent_panics();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let marks = Arc::new(Mutex::new(Marks::default()));
    let node = rt.block_on(start(marks.clone()));
    let caps = CapabilitySet::parse(["work"]).unwrap();

    rt.block_on(async {
        for _ in 0..SAMPLES / 10 {
            assert!(node.route(Task::new(caps.clone())).await.unwrap().is_completed());
        }
    });
    {
        let mut m = marks.lock();
        m.crashed.clear();
        m.resumed.clear();
    }
    rt.block_on(async {
        for _ in 0..SAMPLES {
            let outcome = node.route(Task::new(caps.clone())).await.unwrap();
            assert!(outcome.is_completed(), "{outcome:?}");
        }
    });
    let m = marks.lock();
    let mut gaps: Vec<u64> =
        m.crashed.iter().map(|(id, t)| m.resumed[id].duration_since(*t).as_nanos() as u64).collect();
    drop(m);
    gaps.sort_unstable();
    let q = |p: f64| gaps[((gaps.len() as f64 * p) as usize).min(gaps.len() - 1)] as f64 / 1000.0;
    println!(
        "CRASH_REDELIVERY agent panic -> task started on another agent: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us ({} samples; target p99 <= 5000 us)",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        gaps.len()
    );
    let stats = node.stats();
    println!(
        "CRASH_REDELIVERY agent restarts {}, breaker opens {}, lost {}",
        stats.agent_restarts,
        stats.flow.breaker_opens,
        stats.flow.accepted - stats.flow.completed - stats.flow.failed - stats.flow.dead_lettered
    );

    let mut group = c.benchmark_group("crash_redelivery");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("route a task whose first agent panics", |b| {
        b.iter(|| rt.block_on(async { assert!(node.route(Task::new(caps.clone())).await.unwrap().is_completed()) }))
    });
    group.finish();
    rt.block_on(node.shutdown(Duration::from_secs(1)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
