//! Supervision under fire: crash every service of the FlowSupervisor tree, one after the
//! other, while tasks keep flowing, and watch the node recover with nothing lost.
//!
//! Run: `cargo run --example supervision_failure`. Expect one line per crashed child
//! ("registry restarted: …"), then the final counts with `lost 0`.

use std::time::Duration;

use erlmcp_flow::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    erlmcp_flow::quiet_agent_panics();
    let node = FlowNode::builder().start().await?;
    for i in 0..8 {
        node.spawn_agent(AgentSpec::parse(&format!("worker-{i}"), ["work"])?, || {
            FnAgent::new(|_task: &Task| async {
                tokio::time::sleep(Duration::from_micros(200)).await;
                Ok(Bytes::from_static(b"done"))
            })
        })
        .await?;
    }

    // Keep tasks flowing in the background.
    let submitter = {
        let node = node.clone();
        tokio::spawn(async move {
            let caps = CapabilitySet::parse(["work"]).expect("valid");
            for _ in 0..20_000 {
                node.submit(Task::new(caps.clone())).await.expect("accepted");
            }
        })
    };

    for child in erlmcp_flow::tree::Child::SINGLE_NODE {
        let before = node.child_actor(child);
        node.kill_child(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while node.child_actor(child).is_none_or(|now| Some(now) == before) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!("{child} restarted: {:?} -> {:?}", before, node.child_actor(child));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    submitter.await?;
    node.wait_idle(Duration::from_secs(30)).await;
    let s = node.stats();
    let lost = s.flow.accepted - (s.flow.completed + s.flow.failed + s.flow.dead_lettered);
    println!(
        "accepted {}, completed {}, failed {}, dead-lettered {}, lost {lost}; service restarts {}, agent restarts {}",
        s.flow.accepted, s.flow.completed, s.flow.failed, s.flow.dead_lettered, s.service_restarts, s.agent_restarts
    );
    node.shutdown(Duration::from_secs(1)).await;
    assert_eq!(lost, 0);
    Ok(())
}
