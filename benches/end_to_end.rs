//! End-to-end routed tasks on one node with no-op agents, next to a raw ractor
//! request/reply baseline in the same run, same runtime, same concurrency: at 16 and at
//! 256 concurrent callers, with the DEFAULT configuration (bulkhead 8 per agent,
//! in-flight limit 10 000; only the seed is set). Target: routed ≥ 0.5 × raw.
//!
//! `cargo bench --bench end_to_end` prints one `RATIO` line per concurrency, measured
//! interleaved (raw, routed, raw, routed, …) so machine drift hits both alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use erlmcp_flow::prelude::*;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

const AGENTS: usize = 8;
const CONCURRENCY: [usize; 2] = [16, 256];
const TASKS: usize = 20_480;
const ROUNDS: usize = 7;

enum PingMsg {
    Ping(RpcReplyPort<Bytes>),
}
impl ractor::Message for PingMsg {}

struct Pong;
impl Actor for Pong {
    type Msg = PingMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<PingMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, _: ActorRef<PingMsg>, msg: PingMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        let PingMsg::Ping(reply) = msg;
        let _ = reply.send(Bytes::new());
        Ok(())
    }
}

async fn raw_batch(actors: &Arc<Vec<ActorRef<PingMsg>>>, concurrency: usize) -> Duration {
    let start = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let actors = actors.clone();
        workers.push(tokio::spawn(async move {
            for j in 0..TASKS / concurrency {
                let a = &actors[(w + j) % AGENTS];
                let r = a.call(PingMsg::Ping, Some(Duration::from_secs(10))).await.unwrap();
                assert!(r.is_success());
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    start.elapsed()
}

async fn routed_batch(node: &FlowNode, caps: &CapabilitySet, concurrency: usize) -> Duration {
    let start = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let node = node.clone();
        let caps = caps.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..TASKS / concurrency {
                let outcome = node.route(Task::new(caps.clone())).await.unwrap();
                assert!(outcome.is_completed());
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let actors = Arc::new(rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..AGENTS {
            v.push(Actor::spawn(None, Pong, ()).await.unwrap().0);
        }
        v
    }));
    let caps = CapabilitySet::parse(["noop"]).unwrap();
    let node = rt.block_on(async {
        let mut cfg = FlowConfig::default();
        cfg.node.seed = Some(1);
        let node = FlowNode::start(cfg).await.unwrap();
        for i in 0..AGENTS {
            node.spawn_agent(AgentSpec::parse(&format!("noop-{i}"), ["noop"]).unwrap(), || {
                FnAgent::new(|_t: &Task| async { Ok(Bytes::new()) })
            })
            .await
            .unwrap();
        }
        node
    });

    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.sample_size(10);
    for n in CONCURRENCY {
        group.bench_function(format!("raw_ractor_call/{n}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(raw_batch(&actors, n))).sum())
        });
        group.bench_function(format!("routed_task/{n}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(routed_batch(&node, &caps, n))).sum())
        });
    }
    group.finish();

    // The ratios, measured back to back (interleaved), defaults throughout.
    for n in CONCURRENCY {
        let (mut raw, mut routed) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            raw += rt.block_on(raw_batch(&actors, n));
            routed += rt.block_on(routed_batch(&node, &caps, n));
        }
        let total = (ROUNDS * TASKS) as f64;
        let (raw_tps, routed_tps) = (total / raw.as_secs_f64(), total / routed.as_secs_f64());
        println!(
            "RATIO end_to_end: routed {routed_tps:.0} tasks/s, raw ractor call {raw_tps:.0} req/s, routed/raw = {:.2} ({AGENTS} agents, {n} concurrent callers, default config)",
            routed_tps / raw_tps
        );
    }
    let s = node.stats();
    assert_eq!(s.flow.accepted, s.flow.completed, "every routed task completed: {s:?}");
    rt.block_on(node.shutdown(Duration::from_secs(1)));
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
