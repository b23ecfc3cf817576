//! Typed tasks and agents: serde values in and out instead of `Bytes`.
//!
//! Shows: a `TypedAgent` with `Input`/`Output` types spawned through the ordinary spawn
//! path (`Typed(..)`), a typed call (`route_typed`) and the typed errors a caller can
//! match on: the agent's own error, and garbage sent through the `Bytes` API, which the
//! agent rejects while the node keeps serving.
//!
//! Run: `cargo run --example typed`. Expect the summary of a sentence, the agent's error
//! for an empty one, the rejection of a raw payload, and
//! `accepted 3 = completed 1 + failed 2 + dead_lettered 0`.

use std::time::Duration;

use erlmcp_flow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Sentence {
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Summary {
    words: usize,
    upper: String,
}

struct Summarizer;

impl TypedAgent for Summarizer {
    type Input = Sentence;
    type Output = Summary;

    async fn handle(&mut self, input: Sentence) -> Result<Summary, AgentError> {
        if input.text.is_empty() {
            return Err(AgentError::Permanent("nothing to summarize".into()));
        }
        Ok(Summary { words: input.text.split_whitespace().count(), upper: input.text.to_uppercase() })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node = FlowNode::builder().start().await?;
    node.spawn_agent(AgentSpec::parse("summarizer-1", ["text"])?, || Typed(Summarizer)).await?;
    let task = || Task::new(CapabilitySet::parse(["text"]).expect("valid capability"));

    let summary: Summary = node.route_typed(task(), &Sentence { text: "typed tasks in rust".into() }).await?;
    println!("summary: {summary:?}");

    match node.route_typed::<_, Summary>(task(), &Sentence { text: String::new() }).await {
        Err(TypedError::Agent { agent, message }) => println!("agent {agent} said: {message}"),
        other => anyhow::bail!("expected the agent's error, got {other:?}"),
    }

    // The Bytes API still works, and a typed agent answers garbage with a failure.
    match node.route(task().with_payload("not a typed payload")).await? {
        TaskOutcome::Failed { reason, .. } => println!("raw payload: {reason}"),
        other => anyhow::bail!("expected a failure, got {other:?}"),
    }

    node.wait_idle(Duration::from_secs(5)).await;
    let s = node.stats().flow;
    println!(
        "accepted {} = completed {} + failed {} + dead_lettered {}",
        s.accepted, s.completed, s.failed, s.dead_lettered
    );
    node.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
