//! An ordinary ractor application that also depends on erlmcp-flow.
//!
//! Depending on erlmcp-flow turns on ractor's `cluster` feature (ractor_cluster needs it),
//! which removes ractor's blanket `impl<T: Any + Send> Message for T`. This file is what a
//! user's existing ractor code looks like after adding the dependency: a local actor whose
//! message enum cannot be serialised (it carries an `RpcReplyPort` and a boxed closure)
//! compiles with the one line `impl ractor::Message for CounterMsg {}` and nothing else,
//! and runs next to a `FlowNode` in the same process.

use std::time::Duration;

use erlmcp_flow::prelude::*;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, call};

/// A plain local message type: not `Serialize`, not `BytesConvertable`.
enum CounterMsg {
    Add(i64),
    /// Applies a caller-supplied function to the count.
    Map(Box<dyn FnOnce(i64) -> i64 + Send>),
    Get(RpcReplyPort<i64>),
}

// The one line erlmcp-flow's `cluster` feature asks of a local message type.
impl ractor::Message for CounterMsg {}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = i64;
    type Arguments = i64;

    async fn pre_start(&self, _: ActorRef<CounterMsg>, start: i64) -> Result<i64, ActorProcessingErr> {
        Ok(start)
    }

    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        count: &mut i64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n) => *count += n,
            CounterMsg::Map(f) => *count = f(*count),
            CounterMsg::Get(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// A local ractor actor with a non-serialisable message enum compiles with erlmcp-flow
/// as a dependency given only `impl ractor::Message for CounterMsg {}`, and works:
/// spawned, sent casts and a call, it answers the expected value, while a `FlowNode`
/// routes a task in the same runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ractor_actor_runs_next_to_a_flow_node() {
    let (counter, handle) = Actor::spawn(None, Counter, 40).await.unwrap();
    counter.cast(CounterMsg::Add(1)).unwrap();
    counter.cast(CounterMsg::Map(Box::new(|n| n + 1))).unwrap();
    let count = call!(counter, CounterMsg::Get).unwrap();
    assert_eq!(count, 42);

    let node = FlowNode::builder().start().await.unwrap();
    node.spawn_agent(AgentSpec::parse("echo", ["echo"]).unwrap(), || {
        FnAgent::new(|task: &Task| {
            let out = task.payload.clone();
            async move { Ok(out) }
        })
    })
    .await
    .unwrap();
    let task = Task::new(CapabilitySet::parse(["echo"]).unwrap()).with_payload("hi");
    match node.route(task).await.unwrap() {
        TaskOutcome::Completed { output, .. } => assert_eq!(&output[..], b"hi"),
        other => panic!("not completed: {other:?}"),
    }
    node.shutdown(Duration::from_secs(1)).await;

    counter.stop(None);
    handle.await.unwrap();
}
