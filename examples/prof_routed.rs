use erlmcp_flow::prelude::*;
use std::time::{Duration, Instant};
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut cfg = FlowConfig::default();
    cfg.node.seed = Some(1);
    cfg.router.bulkhead_max_concurrent = 256;
    cfg.router.max_in_flight = 1_000_000;
    if let Ok(v) = std::env::var("CORR") {
        cfg.correlation.max_entries = v.parse().unwrap();
    }
    if let Ok(v) = std::env::var("DEDUP") {
        cfg.router.dedup_window = v.parse().unwrap();
    }
    let node = FlowNode::start(cfg).await.unwrap();
    for i in 0..8 {
        node.spawn_agent(AgentSpec::parse(&format!("noop-{i}"), ["noop"]).unwrap(), || {
            FnAgent::new(|_t: &Task| async { Ok(Bytes::new()) })
        })
        .await
        .unwrap();
    }
    let caps = CapabilitySet::parse(["noop"]).unwrap();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(6) {
        let mut ws = Vec::new();
        for _ in 0..256 {
            let node = node.clone();
            let caps = caps.clone();
            ws.push(tokio::spawn(async move {
                for _ in 0..100 {
                    node.route(Task::new(caps.clone())).await.unwrap();
                }
            }));
        }
        for w in ws {
            w.await.unwrap();
        }
        n += 25600;
    }
    println!("{:.0} tasks/s", n as f64 / start.elapsed().as_secs_f64());
}
