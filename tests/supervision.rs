//! Supervision-failure tests: each child of the FlowSupervisor is made to crash while
//! tasks flow; the service must recover (the child comes back, with the state it needs)
//! and the no-loss invariant must hold. Restart storms beyond the intensity must escalate
//! instead of looping.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use erlmcp_flow::core::DeadLetterReason;
use erlmcp_flow::prelude::*;
use erlmcp_flow::supervision::Restart;
use erlmcp_flow::tree::Child;

const TASKS: usize = 300;

/// Starts `TASKS` tasks in the background (each sleeps 1 ms on its agent); returns their
/// outcomes when all have ended.
fn background_traffic(node: &FlowNode) -> tokio::task::JoinHandle<Vec<TaskOutcome>> {
    let node = node.clone();
    tokio::spawn(async move {
        let mut handles = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            handles.push(node.submit(task(&["x"], "sleep:1")).await.expect("accepted"));
        }
        let mut out = Vec::with_capacity(TASKS);
        for h in handles {
            out.push(h.await);
        }
        out
    })
}

async fn node_with_agents(adjust: impl FnOnce(&mut FlowConfig)) -> FlowNode {
    let node = node(adjust).await;
    for i in 0..6 {
        spawn(&node, &format!("agent-{i}"), &["x"], None, Mode::Payload).await;
    }
    node
}

/// Crashes `child` once traffic is flowing, waits for its new incarnation, and checks
/// that every task still ended and the node serves afterwards.
async fn crash_under_traffic(node: &FlowNode, child: Child) {
    let before = node.child_actor(child).expect("child running");
    let traffic = background_traffic(node);
    eventually("traffic started", || node.stats().flow.accepted >= 30).await;
    assert!(node.kill_child(child), "{child} took the fault");
    eventually("child restarted", || node.child_actor(child).is_some_and(|a| a != before)).await;
    let outcomes = tokio::time::timeout(DEADLINE, traffic).await.expect("traffic ends").unwrap();
    assert_eq!(outcomes.len(), TASKS);
    let completed = outcomes.iter().filter(|o| o.is_completed()).count();
    assert_eq!(completed, TASKS, "every task completed: {:?}", outcomes.iter().find(|o| !o.is_completed()));
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed(), "serves after the restart");
    let s = assert_no_loss(node).await;
    assert!(s.service_restarts >= 1, "{s:?}");
    assert_eq!(node.status(), NodeStatus::Running);
}

/// Registry crash: routing goes on (reads never touch its mailbox); the new incarnation
/// re-monitors live agents, so an agent killed afterwards is still noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_crash_recovers_and_resumes_monitoring() {
    let node = node_with_agents(|_| {}).await;
    crash_under_traffic(&node, Child::Registry).await;
    // A temporary agent (never restarted) killed outright: only the registry's monitor
    // can notice, since a kill skips the agent's own cleanup.
    let spec = AgentSpec::parse("temp", ["y"]).unwrap().with_restart(Restart::Temporary);
    node.spawn_agent(spec, || common::Scripted { name: "temp".into(), mode: Mode::Payload, probe: Arc::default() })
        .await
        .unwrap();
    let temp = node.registry().find(&AgentId::new("temp").unwrap()).unwrap();
    temp.actor().expect("local").kill();
    eventually("killed agent out of the registry", || node.registry().find(&AgentId::new("temp").unwrap()).is_none())
        .await;
    assert_eq!(node.registry().view().len(), 6);
}

/// Circuit-breaker actor crash: breaker state lives in the node's table, so an open
/// breaker stays open across the restart and keeps shedding traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_actor_crash_keeps_breaker_state() {
    let node = node_with_agents(|c| {
        c.circuit_breaker.failure_threshold = 2;
        c.circuit_breaker.timeout_ms = 60_000;
    })
    .await;
    let broken = spawn(&node, "broken", &["x"], None, Mode::AlwaysFail).await;
    eventually("breaker opened", || {
        let _ = node.try_submit(task(&["x"], "ok"));
        node.stats().flow.breaker_opens >= 1
    })
    .await;
    crash_under_traffic(&node, Child::CircuitBreakers).await;
    let tried = broken.started();
    for _ in 0..20 {
        node.route(task(&["x"], "ok")).await.unwrap();
    }
    assert_eq!(broken.started(), tried, "still shed after the restart");
    assert_eq!(
        node.router().parts().breakers.status(&AgentId::new("broken").unwrap()),
        erlmcp_flow::router::BreakerStatus::Open
    );
}

/// Correlation-tracker crash: records survive (shared table) and the new incarnation
/// resumes TTL sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_tracker_crash_resumes_sweeping() {
    let node = node_with_agents(|c| {
        c.correlation.ttl_ms = 300;
        c.correlation.sweep_interval_ms = 10;
    })
    .await;
    let t = task(&["x"], "ok");
    let id = t.id;
    node.route(t).await.unwrap();
    crash_under_traffic(&node, Child::CorrelationTracker).await;
    eventually("record expired by the new incarnation", || node.correlation(&id).is_none()).await;
}

/// Failure-detector crash: tasks that lost their routing driver while no detector ran
/// are picked up by the new incarnation and completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_detector_crash_then_orphans_are_recovered() {
    let node = node_with_agents(|_| {}).await;
    crash_under_traffic(&node, Child::FailureDetector).await;
    // Stop the detector for good for a moment: crash it and, before it is back, orphan a
    // task (accepted with no driver, as if its driver had been lost).
    let before = node.child_actor(Child::FailureDetector).unwrap();
    assert!(node.kill_child(Child::FailureDetector));
    let tasks = node.router().parts().tasks.clone();
    let orphan = Arc::new(task(&["x"], "ok"));
    let rx = tasks.accept(orphan.clone(), None, node.clock().now_ns()).unwrap();
    tasks.mark_orphan(orphan.id);
    eventually("detector restarted", || node.child_actor(Child::FailureDetector).is_some_and(|a| a != before)).await;
    let outcome = tokio::time::timeout(DEADLINE, rx).await.unwrap().unwrap();
    assert!(outcome.is_completed(), "{outcome:?}");
    assert!(node.stats().flow.orphan_recoveries >= 1);
    assert_no_loss(&node).await;
}

/// Router-actor crash: routing never passes through it, so traffic flows on; control
/// requests work again on the new incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_crash_keeps_routing_and_control() {
    let node = node_with_agents(|_| {}).await;
    crash_under_traffic(&node, Child::Router).await;
    node.set_strategy(StrategyKind::LeastConnections).await.unwrap();
    assert_eq!(node.stats().strategy, StrategyKind::LeastConnections);
}

/// QLearning actor crash while tasks are routed by the q_learning strategy: routing never
/// waits on the actor (it reads the model's snapshot), so traffic flows on; the model
/// (table, feedback queue, snapshot) belongs to the node, so the new incarnation goes on
/// applying feedback to the same table, nothing learned is lost, and the model is saved
/// at shutdown and loads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_learning_crash_keeps_routing_and_the_model() {
    let dir = std::env::temp_dir().join(format!("erlmcp-sup-qlearning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("q_table.bin");
    let node = node_with_agents(|c| {
        c.load_balancer.strategy = StrategyKind::QLearning;
        c.q_learning.model_path = Some(path.clone());
    })
    .await;
    for _ in 0..50 {
        assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    }
    eventually("feedback applied", || node.q_model().stats().updates >= 50).await;
    let learned = node.q_model().stats().updates;
    crash_under_traffic(&node, Child::QLearning).await;
    let expected = learned + TASKS as u64 + 1;
    eventually("the new incarnation applies feedback", || node.q_model().stats().updates >= expected).await;
    assert_eq!(node.q_model().stats().dropped, 0);
    let config = node.config().clone();
    node.shutdown(std::time::Duration::from_secs(5)).await;
    let reloaded = erlmcp_flow::router::q_learning::QModel::open(&config);
    assert!(reloaded.loaded_from_file(), "{:?}", reloaded.load_warning());
    assert!(reloaded.stats().updates >= expected);
    let _ = std::fs::remove_dir_all(dir);
}

/// AgentSupervisor crash: all agents die with it; the FlowSupervisor restarts it and it
/// brings every agent in the pool back; tasks caught in the crash are redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_supervisor_crash_brings_agents_back() {
    let node = node_with_agents(|_| {}).await;
    crash_under_traffic(&node, Child::AgentSupervisor).await;
    eventually("all agents back", || node.registry().view().len() == 6).await;
    assert_eq!(node.agents().len(), 6);
}

/// One agent crashing more often than `supervision.agents` allows (5 in 60 s) melts the
/// AgentSupervisor down; it escalates to the FlowSupervisor, which restarts it, and the
/// pool comes back whole. The node keeps serving and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_storm_escalates_to_flow_supervisor() {
    let node = node_with_agents(|c| {
        c.circuit_breaker.failure_threshold = 1000;
        c.circuit_breaker.min_requests = 1000;
        c.circuit_breaker.window_size = 1000;
    })
    .await;
    spawn(&node, "bomb", &["boom"], None, Mode::AlwaysPanic).await;
    let agent_sup = node.child_actor(Child::AgentSupervisor).unwrap();
    let mut outcomes = Vec::new();
    while node.stats().meltdowns == 0 {
        outcomes.push(node.route(task(&["boom"], "ok")).await.unwrap());
        assert!(outcomes.len() < 50, "no meltdown after {} panics", outcomes.len());
    }
    assert!(outcomes.iter().all(|o| !o.is_completed()));
    eventually("agent supervisor replaced", || {
        node.child_actor(Child::AgentSupervisor).is_some_and(|a| a != agent_sup)
    })
    .await;
    eventually("pool back", || node.registry().view().len() == 7).await;
    let s = node.stats();
    assert_eq!(s.meltdowns, 1);
    assert!(s.service_restarts >= 1);
    assert_eq!(node.status(), NodeStatus::Running);
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    assert_no_loss(&node).await;
}

/// A service that keeps crashing melts the FlowSupervisor down after
/// `supervision.flow.max_restarts`: the node stops (status Failed, no restart loop),
/// refuses new work with a typed error, and every task it accepted still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_restart_storm_fails_the_node_without_losing_tasks() {
    let node = node_with_agents(|c| c.supervision.flow.max_restarts = 3).await;
    let stuck = node.submit(task(&["x"], "hang")).await.unwrap();
    for _ in 0..4 {
        let Some(before) = node.child_actor(Child::Registry) else {
            break;
        };
        assert!(node.kill_child(Child::Registry));
        eventually("registry restarted or node failed", || {
            node.child_actor(Child::Registry).is_some_and(|a| a != before) || node.status() != NodeStatus::Running
        })
        .await;
    }
    let status = node.wait_not_running(DEADLINE).await;
    assert!(matches!(&status, NodeStatus::Failed(why) if why.contains("exceeded 3 restarts")), "{status:?}");
    assert!(node.flow_supervisor().is_none(), "the supervisor is gone, not looping");
    assert_eq!(node.submit(task(&["x"], "ok")).await.unwrap_err(), SubmitError::NodeStopped);
    let outcome = tokio::time::timeout(DEADLINE, stuck).await.unwrap();
    assert_eq!(outcome, TaskOutcome::DeadLettered { reason: DeadLetterReason::NodeStopped, attempts: 0 });
    assert_no_loss(&node).await;
    assert!(node.stats().meltdowns >= 1);
}

/// Each agent incarnation comes from the factory: state does not leak across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_uses_a_fresh_agent_value() {
    let node = node(|c| c.circuit_breaker.failure_threshold = 1000).await;
    let p = spawn(&node, "a", &["x"], None, Mode::Payload).await;
    for _ in 0..3 {
        node.route(task(&["x"], "panic")).await.unwrap();
    }
    eventually("three restarts", || p.incarnations.load(Ordering::SeqCst) >= 4).await;
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    assert_no_loss(&node).await;
}

/// The tree's children, as the FlowSupervisor lists them, are the typed [`Child`] names
/// in start order; every name parses back to its child and a misspelt one is refused
/// with the valid names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_the_typed_child_names() {
    let node = node(|_| {}).await;
    let sup = node.flow_supervisor().expect("supervisor up");
    let ids: Vec<String> = erlmcp_flow::supervision::Supervisor::which_children(&sup, DEADLINE)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let names: Vec<&str> = Child::SINGLE_NODE.iter().map(|c| c.name()).collect();
    assert_eq!(ids, names);
    for child in Child::ALL {
        assert_eq!(child.name().parse::<Child>(), Ok(child));
    }
    let err = "routr".parse::<Child>().unwrap_err();
    assert_eq!(err.name, "routr");
    assert!(err.to_string().contains("router, gossip, cluster, gateway"), "{err}");
    node.shutdown(Duration::from_secs(1)).await;
}

/// Once the tree has stopped, no child's slot hands out a dead actor: the gossip slot
/// of a cluster node included, which once kept the stopped actor's handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_childs_slot_reads_as_empty() {
    let node = node(|c| c.cluster.enabled = true).await;
    for child in [Child::Gossip, Child::Cluster, Child::Gateway, Child::Router] {
        assert!(node.child_actor(child).is_some(), "{child} running");
    }
    node.shutdown(Duration::from_secs(1)).await;
    for child in Child::ALL {
        assert_eq!(node.child_actor(child), None, "{child} slot still set after shutdown");
    }
    assert!(!node.kill_child(Child::Gossip), "nothing left to kill");
}
