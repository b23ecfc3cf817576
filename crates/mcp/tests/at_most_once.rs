//! The router's at-most-once tasks ([`Task::at_most_once`]), through the facade: once an
//! attempt may have run the task (timeout, panic, agent lost mid-task, delivered by a
//! node that died) it is not delivered again and fails with `MayHaveRun`; an agent's own
//! retryable error is still retried. At-least-once tasks (the default) keep being retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use erlmcp_flow::core::outcome::FailureReason;
use erlmcp_flow::prelude::*;

async fn node() -> FlowNode {
    erlmcp_flow::quiet_agent_panics();
    FlowNode::start(FlowConfig::for_test()).await.unwrap()
}

/// Spawns `n` agents with capability `cap` running `behaviour`, counting executions.
async fn spawn<F, Fut>(node: &FlowNode, cap: &str, n: usize, runs: Arc<AtomicU32>, behaviour: F)
where
    F: Fn(u32) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Bytes, AgentError>> + Send + 'static,
{
    for i in 0..n {
        let runs = runs.clone();
        let behaviour = behaviour.clone();
        node.spawn_agent(AgentSpec::parse(&format!("{cap}-{i}"), [cap]).unwrap(), move || {
            let runs = runs.clone();
            let behaviour = behaviour.clone();
            FnAgent::new(move |_: &Task| behaviour(runs.fetch_add(1, Ordering::SeqCst) + 1))
        })
        .await
        .unwrap();
    }
}

fn task(cap: &str) -> Task {
    Task::new(CapabilitySet::parse([cap]).unwrap()).with_timeout(Duration::from_millis(200))
}

fn is_may_have_run(o: &TaskOutcome) -> bool {
    matches!(o, TaskOutcome::Failed { reason: FailureReason::MayHaveRun { .. }, attempts: 1 })
}

/// A timed-out attempt is not retried for an at-most-once task; it is for a default task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_final_for_at_most_once() {
    let node = node().await;
    let runs = Arc::new(AtomicU32::new(0));
    spawn(&node, "slow", 3, runs.clone(), |_| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Bytes::new())
    })
    .await;
    let o = node.route(task("slow").with_at_most_once()).await.unwrap();
    assert!(is_may_have_run(&o), "{o:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "delivered once");
    let o = node.route(task("slow")).await.unwrap();
    assert!(o.attempts() > 1, "an at-least-once task is retried: {o:?}");
    node.shutdown(Duration::from_secs(2)).await;
}

/// A panic is final for an at-most-once task; an agent's retryable error is not (it is
/// the agent's word that the task did not run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_final_retryable_error_is_retried() {
    let node = node().await;
    let runs = Arc::new(AtomicU32::new(0));
    spawn(&node, "panics", 2, runs.clone(), |_| async { panic!("boom") }).await;
    let o = node.route(task("panics").with_at_most_once()).await.unwrap();
    assert!(is_may_have_run(&o), "{o:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let runs = Arc::new(AtomicU32::new(0));
    spawn(&node, "flaky", 2, runs.clone(), |run| async move {
        if run == 1 { Err(AgentError::Retryable("not sent".into())) } else { Ok(Bytes::from_static(b"ok")) }
    })
    .await;
    let o = node.route(task("flaky").with_at_most_once()).await.unwrap();
    assert!(matches!(o, TaskOutcome::Completed { attempts: 2, .. }), "{o:?}");
    node.shutdown(Duration::from_secs(2)).await;
}

/// An agent killed while running an at-most-once task: the task may have run, so it is
/// failed, not redelivered; a default task is redelivered and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_lost_mid_task_is_final_for_at_most_once() {
    let node = node().await;
    for (cap, at_most_once) in [("victim-a", true), ("victim-b", false)] {
        let runs = Arc::new(AtomicU32::new(0));
        spawn(&node, cap, 2, runs.clone(), |run| async move {
            if run == 1 {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(Bytes::from_static(b"done"))
        })
        .await;
        let mut t = task(cap).with_timeout(Duration::from_secs(60));
        if at_most_once {
            t = t.with_at_most_once();
        }
        let handle = node.submit(t).await.unwrap();
        // Kill the agent running it.
        let busy = loop {
            let busy = node
                .registry()
                .view()
                .all()
                .into_iter()
                .find(|e| e.capabilities.iter().any(|c| c.as_str() == cap) && e.load.busy_since_ns().is_some());
            if let Some(e) = busy {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        busy.actor().unwrap().kill();
        let o = handle.await;
        if at_most_once {
            assert!(is_may_have_run(&o), "{o:?}");
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        } else {
            let TaskOutcome::Completed { agent, .. } = &o else { panic!("{o:?}") };
            assert_ne!(agent, &busy.id, "redelivered to the other agent");
            assert_eq!(runs.load(Ordering::SeqCst), 2);
        }
    }
    node.shutdown(Duration::from_secs(2)).await;
}

/// A task delivered before this submission (`attempt > 0`: adopted from a node that died)
/// fails at once as "may have run" when at-most-once, without being delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopted_at_most_once_task_is_not_delivered_again() {
    let node = node().await;
    let runs = Arc::new(AtomicU32::new(0));
    spawn(&node, "fast", 1, runs.clone(), |_| async { Ok(Bytes::new()) }).await;
    let mut t = task("fast").with_at_most_once();
    t.attempt = 1;
    let o = node.route(t).await.unwrap();
    assert!(
        matches!(o, TaskOutcome::Failed { reason: FailureReason::MayHaveRun { agent: None, .. }, attempts: 0 }),
        "{o:?}"
    );
    let mut t = task("fast");
    t.attempt = 1;
    assert!(node.route(t).await.unwrap().is_completed());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let s = node.stats();
    assert_eq!(s.flow.accepted, s.flow.completed + s.flow.failed + s.flow.dead_lettered);
    node.shutdown(Duration::from_secs(2)).await;
}
