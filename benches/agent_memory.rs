//! Resident memory per idle agent: 10 000 agents on one node, registered and supervised,
//! against 10 000 bare ractor actors. Target: ≤ 16 KiB per idle agent, all included.
//!
//! `cargo bench --bench agent_memory` (plain `main`, prints one line per measurement)

use std::time::Duration;

use erlmcp_flow::prelude::*;
use ractor::{Actor, ActorProcessingErr, ActorRef};

const AGENTS: usize = 10_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

struct Bare;
impl Actor for Bare {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn main() {
    // criterion passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        // Warm the allocator and runtime so the first measurement is not charged for them.
        let warm: Vec<_> = futures_join(100).await;
        drop(warm);
        tokio::time::sleep(Duration::from_millis(100)).await;

        let before = rss_bytes();
        let bare = futures_join(AGENTS).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = rss_bytes();
        let bare_per = (after - before) as f64 / AGENTS as f64;
        println!("MEMORY bare ractor actor: {:.1} KiB per idle actor ({AGENTS} actors, RSS +{:.1} MiB)", bare_per / 1024.0, (after - before) as f64 / 1048576.0);
        for a in &bare {
            a.stop(None);
        }
        drop(bare);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut cfg = FlowConfig::default();
        cfg.registry.candidate_cache_entries = 16;
        let node = FlowNode::start(cfg).await.unwrap();
        let before = rss_bytes();
        for i in 0..AGENTS {
            node.spawn_agent(
                AgentSpec::parse(&format!("idle-{i:05}"), ["idle"]).unwrap().in_swarm(SwarmName::new(format!("s{}", i % 10)).unwrap()),
                || FnAgent::new(|_t: &Task| async { Ok(Bytes::new()) }),
            )
            .await
            .unwrap();
        }
        // One heartbeat round and a routed task, so every lazily built structure exists.
        node.route(Task::new(CapabilitySet::parse(["idle"]).unwrap())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = rss_bytes();
        let per = (after - before) as f64 / AGENTS as f64;
        println!(
            "MEMORY erlmcp-flow agent: {:.1} KiB per idle agent ({AGENTS} agents, RSS +{:.1} MiB; actor, registry entry, supervisor child, pool spec)",
            per / 1024.0,
            (after - before) as f64 / 1048576.0
        );
        node.shutdown(Duration::from_secs(5)).await;
    });
}

async fn futures_join(n: usize) -> Vec<ActorRef<()>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Actor::spawn(None, Bare, ()).await.unwrap().0);
    }
    v
}
