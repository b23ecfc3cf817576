//! One node, a few agents, a handful of tasks: the shortest tour of erlmcp-flow.
//!
//! Shows: starting a node, spawning agents with capabilities and swarms, routing tasks
//! (completed, failed permanently, dead-lettered), reading the registry, swarm leaders
//! and the no-loss counters.
//!
//! Run: `cargo run --example single_node`. Expect three outcomes printed, the leader of
//! swarm "text", and `accepted 3 = completed 1 + failed 1 + dead_lettered 1`.

use std::time::Duration;

use erlmcp_flow::prelude::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node = FlowNode::builder().config(FlowConfig::default()).start().await?;

    // Two text agents in swarm "text"; one refuses empty input for good.
    for name in ["upper-1", "upper-2"] {
        let spec = AgentSpec::parse(name, ["text"])?.in_swarm(SwarmName::new("text")?);
        node.spawn_agent(spec, || {
            FnAgent::new(|task: &Task| {
                let input = task.payload.clone();
                async move {
                    if input.is_empty() {
                        return Err(AgentError::Permanent("nothing to upper-case".into()));
                    }
                    Ok(Bytes::from(input.to_ascii_uppercase()))
                }
            })
        })
        .await?;
    }

    let text = CapabilitySet::parse(["text"])?;
    let tasks = [
        Task::new(text.clone()).with_payload("hello, flow"),
        Task::new(text.clone()),
        Task::new(CapabilitySet::parse(["gpu"])?).with_payload("no gpu agent here"),
    ];
    for task in tasks {
        let outcome = node.route(task).await?;
        match &outcome {
            TaskOutcome::Completed { agent, output, attempts } => {
                println!("completed by {agent} after {attempts} attempt(s): {}", String::from_utf8_lossy(output))
            }
            TaskOutcome::Failed { reason, .. } => println!("failed: {reason}"),
            TaskOutcome::DeadLettered { reason, .. } => println!("dead-lettered: {reason}"),
        }
    }

    let swarm = SwarmName::new("text")?;
    println!("leader of swarm text: {:?}", node.registry().leader(&swarm).map(|a| a.to_string()));
    let s = node.stats();
    println!(
        "accepted {} = completed {} + failed {} + dead_lettered {}",
        s.flow.accepted, s.flow.completed, s.flow.failed, s.flow.dead_lettered
    );
    node.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
