//! The routing pipeline end to end on one node: retries, breakers, bulkheads, fallback
//! swarms, dead letters, timeouts, hung agents, strategies, and bad input. Every test
//! ends by checking the no-loss invariant.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use erlmcp_flow::core::{AttemptError, DeadLetterReason, FailureReason, TraceContextError};
use erlmcp_flow::prelude::*;

/// A task reaches a capable agent, its correlation record names the agent and the
/// terminal state, and the attempt's span continues the submitter's W3C trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_and_correlates_with_incoming_trace() {
    let node = node(|_| {}).await;
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    spawn(&node, "b", &["y"], None, Mode::Payload).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let t = task(&["x"], "ok").with_traceparent(parent).unwrap();
    let id = t.id;
    let outcome = node.route(t).await.unwrap();
    assert_eq!(completed_by(&outcome), "a");
    let rec = node.correlation(&id).unwrap();
    assert_eq!(rec.agent.unwrap().as_str(), "a");
    assert_eq!(rec.terminal, Some(erlmcp_flow::core::TerminalKind::Completed));
    assert_eq!(rec.trace.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    let span = rec.attempt_span.unwrap();
    assert_eq!(span.trace_id, rec.trace.trace_id);
    assert_ne!(span.span_id, rec.trace.span_id);
    assert_no_loss(&node).await;
}

/// A retryable failure is retried on a different agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_is_retried_on_another_agent() {
    let node = node(|c| c.load_balancer.strategy = StrategyKind::RoundRobin).await;
    let broken = spawn(&node, "broken", &["x"], None, Mode::AlwaysFail).await;
    spawn(&node, "good", &["x"], None, Mode::Payload).await;
    for _ in 0..6 {
        let outcome = node.route(task(&["x"], "ok")).await.unwrap();
        assert_eq!(completed_by(&outcome), "good");
    }
    assert!(broken.started() >= 1, "the broken agent was tried");
    let s = assert_no_loss(&node).await;
    assert_eq!(s.flow.completed, 6);
    assert!(s.flow.retries >= 1);
}

/// A panicking agent answers its caller with the panic, is restarted by its supervisor
/// with a fresh value from its factory, and the task completes on another agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_agent_is_restarted_and_task_moves_on() {
    // Breakers out of the way: this test is about restarts.
    let node = node(|c| {
        c.circuit_breaker.failure_threshold = 1000;
        c.circuit_breaker.min_requests = 1000;
        c.circuit_breaker.window_size = 1000;
    })
    .await;
    let a = spawn(&node, "a", &["x"], None, Mode::Payload).await;
    spawn(&node, "b", &["x"], None, Mode::Payload).await;
    let mut moved = 0;
    for _ in 0..4 {
        let outcome = node.route(task(&["x"], "panic")).await.unwrap();
        // "panic" makes every agent panic, so it fails after its attempts.
        assert!(
            matches!(
                outcome,
                TaskOutcome::Failed {
                    reason: FailureReason::RetriesExhausted { last: AttemptError::Panicked { .. } },
                    ..
                }
            ),
            "{outcome:?}"
        );
        moved += 1;
    }
    assert_eq!(moved, 4);
    eventually("agents restarted", || node.stats().agent_restarts >= 4).await;
    assert!(a.incarnations.load(Ordering::SeqCst) >= 2, "a fresh agent value per restart");
    // Both agents are back and serve.
    let outcome = node.route(task(&["x"], "ok")).await.unwrap();
    assert!(matches!(outcome, TaskOutcome::Completed { .. }));
    assert_eq!(node.registry().query(&CapabilitySet::parse(["x"]).unwrap(), None).len(), 2);
    let s = assert_no_loss(&node).await;
    assert!(s.flow.agent_panics >= 4);
}

/// A panic in an agent's synchronous part (an `FnAgent` closure that panics before it
/// returns its future) is caught like one inside the future: the caller gets an
/// `AttemptError::Panicked` answer (not a lost delivery), the agent restarts, and the task
/// completes on the other agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_before_the_future_exists_is_answered() {
    let node = node(|c| c.load_balancer.strategy = StrategyKind::RoundRobin).await;
    node.spawn_agent(AgentSpec::parse("eager", ["x"]).unwrap(), || {
        FnAgent::new(|_: &Task| -> std::future::Ready<Result<Bytes, AgentError>> { panic!("eager panic") })
    })
    .await
    .unwrap();
    spawn(&node, "good", &["x"], None, Mode::Payload).await;
    for _ in 0..4 {
        let outcome = node.route(task(&["x"], "ok")).await.unwrap();
        assert_eq!(completed_by(&outcome), "good");
    }
    eventually("eager restarted", || node.stats().agent_restarts >= 1).await;
    let s = assert_no_loss(&node).await;
    assert!(s.flow.agent_panics >= 1, "the panic was answered as a panic: {s:?}");
}

/// With every capable agent's breaker open, a task waits for the first half-open trial
/// that falls within the routing timeout and completes there, instead of being
/// dead-lettered at once as "refused by circuit breakers" (issue 9 finding 6: that is
/// how a breaker storm turned into mass dead letters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_breakers_open_task_waits_for_the_half_open_trial() {
    let node = node(|c| {
        c.circuit_breaker.failure_threshold = 3;
        c.circuit_breaker.timeout_ms = 300;
        c.timeouts.routing_ms = 5_000;
    })
    .await;
    let only = spawn(&node, "only", &["x"], None, Mode::Payload).await;
    let failed = node.route(task(&["x"], "fail")).await.unwrap();
    assert!(matches!(failed, TaskOutcome::Failed { .. }), "{failed:?}");
    let id = AgentId::new("only").unwrap();
    assert_eq!(node.router().parts().breakers.status(&id), erlmcp_flow::router::BreakerStatus::Open);
    let started = only.started();
    let outcome = node.route(task(&["x"], "ok")).await.unwrap();
    assert_eq!(completed_by(&outcome), "only", "{outcome:?}");
    assert_eq!(only.started(), started + 1, "one trial request");
    let s = assert_no_loss(&node).await;
    assert_eq!(s.flow.dead_lettered, 0);
    assert_eq!(s.flow.breaker_opens, 1);
}

/// An agent that keeps failing trips its breaker; while open it gets no traffic; after
/// the open timeout a half-open probe lets it back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_sheds_traffic_and_probes_later() {
    let node = node(|c| {
        c.circuit_breaker.failure_threshold = 3;
        c.circuit_breaker.timeout_ms = 300;
    })
    .await;
    let broken = spawn(&node, "broken", &["x"], None, Mode::AlwaysFail).await;
    spawn(&node, "good", &["x"], None, Mode::Payload).await;
    for _ in 0..10 {
        node.route(task(&["x"], "ok")).await.unwrap();
    }
    assert_eq!(node.stats().flow.breaker_opens, 1);
    assert_eq!(broken.started(), 3, "exactly failure_threshold attempts before opening");
    let id = AgentId::new("broken").unwrap();
    assert_eq!(node.router().parts().breakers.status(&id), erlmcp_flow::router::BreakerStatus::Open);
    for _ in 0..20 {
        assert_eq!(completed_by(&node.route(task(&["x"], "ok")).await.unwrap()), "good");
    }
    assert_eq!(broken.started(), 3, "no traffic while open");
    // After the timeout, one probe goes through (and fails, reopening the breaker).
    eventually("breaker probe", || {
        let _ = node.try_submit(task(&["x"], "ok"));
        broken.started() > 3
    })
    .await;
    eventually("reopened", || node.stats().flow.breaker_opens == 2).await;
    assert_no_loss(&node).await;
}

/// The bulkhead caps concurrent work per agent; excess tasks wait for a slot instead of
/// being dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulkhead_caps_concurrency_and_excess_waits() {
    let node = node(|c| c.router.bulkhead_max_concurrent = 2).await;
    let probe = spawn(&node, "solo", &["x"], None, Mode::Payload).await;
    let mut handles = Vec::new();
    for _ in 0..20 {
        handles.push(node.submit(task(&["x"], "sleep:5")).await.unwrap());
    }
    for h in handles {
        assert!(h.await.is_completed());
    }
    // Actors run one task at a time; the bulkhead bounds what is queued at the agent.
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 1);
    let entry = node.registry().find(&AgentId::new("solo").unwrap()).unwrap();
    assert_eq!(entry.bulkhead.available_permits(), 2, "every slot returned");
    assert_eq!(assert_no_loss(&node).await.flow.completed, 20);
}

/// With one agent saturated, tasks go to the other instead of queueing behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_bulkhead_sends_work_elsewhere() {
    let node = node(|c| {
        c.router.bulkhead_max_concurrent = 1;
        c.load_balancer.strategy = StrategyKind::ConsistentHash;
    })
    .await;
    let a = spawn(&node, "a", &["x"], None, Mode::Slow(30)).await;
    let b = spawn(&node, "b", &["x"], None, Mode::Slow(30)).await;
    // Same affinity key: consistent hashing prefers one agent; its full bulkhead pushes
    // the overflow to the other.
    let mut handles = Vec::new();
    for _ in 0..6 {
        handles.push(node.submit(task(&["x"], "ok").with_affinity_key("k")).await.unwrap());
    }
    for h in handles {
        assert!(h.await.is_completed());
    }
    assert!(a.started() >= 1 && b.started() >= 1, "a {} b {}", a.started(), b.started());
    assert_no_loss(&node).await;
}

/// When every agent of the task's swarm fails, the fallback swarm gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_swarm_takes_over() {
    let node = node(|_| {}).await;
    spawn(&node, "primary-1", &["x"], Some("blue"), Mode::AlwaysFail).await;
    spawn(&node, "backup-1", &["x"], Some("green"), Mode::Payload).await;
    let t = task(&["x"], "ok")
        .in_swarm(SwarmName::new("blue").unwrap())
        .with_fallback_swarm(SwarmName::new("green").unwrap());
    let outcome = node.route(t).await.unwrap();
    assert_eq!(completed_by(&outcome), "backup-1");
    assert_eq!(outcome.attempts(), 4, "3 primary attempts, then the fallback");
    // The node-wide fallback from config works the same way.
    let node2 = common::node(|c| c.router.fallback_swarm = Some("green".into())).await;
    spawn(&node2, "p", &["x"], Some("blue"), Mode::AlwaysFail).await;
    spawn(&node2, "g", &["x"], Some("green"), Mode::Payload).await;
    let t = task(&["x"], "ok").in_swarm(SwarmName::new("blue").unwrap());
    assert_eq!(completed_by(&node2.route(t).await.unwrap()), "g");
    assert_no_loss(&node).await;
    assert_no_loss(&node2).await;
}

/// A permanent rejection fails the task at once; retryable failures everywhere fail it
/// after the configured attempts with the last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_and_exhausted_failures() {
    let node = node(|_| {}).await;
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    spawn(&node, "b", &["x"], None, Mode::Payload).await;
    let outcome = node.route(task(&["x"], "perm")).await.unwrap();
    assert!(
        matches!(outcome, TaskOutcome::Failed { reason: FailureReason::Permanent { .. }, attempts: 1 }),
        "{outcome:?}"
    );
    let outcome = node.route(task(&["x"], "fail")).await.unwrap();
    match outcome {
        TaskOutcome::Failed {
            reason: FailureReason::RetriesExhausted { last: AttemptError::AgentError { .. } },
            attempts,
        } => {
            assert_eq!(attempts, 3)
        }
        other => panic!("{other:?}"),
    }
    let s = assert_no_loss(&node).await;
    assert_eq!(s.flow.failed, 2);
}

/// A task no agent can take is dead-lettered at once (no hang), is inspectable, and can
/// be replayed once a capable agent exists; the node keeps serving meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capable_agent_dead_letters_and_replays() {
    let node = node(|_| {}).await;
    // Zero agents at all.
    let outcome = node.route(task(&["gpu"], "ok")).await.unwrap();
    assert_eq!(outcome, TaskOutcome::DeadLettered { reason: DeadLetterReason::NoCapableAgent, attempts: 0 });
    spawn(&node, "cpu", &["cpu"], None, Mode::Payload).await;
    let outcome = node.route(task(&["gpu"], "ok")).await.unwrap();
    assert!(matches!(outcome, TaskOutcome::DeadLettered { reason: DeadLetterReason::NoCapableAgent, .. }));
    assert_eq!(completed_by(&node.route(task(&["cpu"], "ok")).await.unwrap()), "cpu");
    let letters = node.dead_letters();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].task.capabilities, CapabilitySet::parse(["gpu"]).unwrap());
    spawn(&node, "gpu", &["gpu"], None, Mode::Payload).await;
    assert_eq!(node.replay_dead_letters().await.unwrap(), 2);
    assert!(node.wait_idle(DEADLINE).await);
    let s = assert_no_loss(&node).await;
    assert_eq!((s.flow.accepted, s.flow.completed, s.flow.dead_lettered), (5, 3, 2));
    assert!(node.dead_letters().is_empty());
}

/// An agent slower than the task timeout times out; the task is retried elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_moves_task_to_another_agent() {
    let node = node(|c| c.load_balancer.strategy = StrategyKind::RoundRobin).await;
    spawn(&node, "slow", &["x"], None, Mode::Slow(2_000)).await;
    spawn(&node, "fast", &["x"], None, Mode::Payload).await;
    for _ in 0..4 {
        let outcome = node.route(task(&["x"], "ok").with_timeout(Duration::from_millis(50))).await.unwrap();
        assert_eq!(completed_by(&outcome), "fast");
    }
    let s = assert_no_loss(&node).await;
    assert!(s.flow.timeouts >= 1);
}

/// An agent stuck on a task past `hung_agent_after_ms` is killed by the failure
/// detector, restarted by its supervisor, and serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_agent_is_killed_and_restarted() {
    let node = node(|c| {
        c.failure_detector.hung_agent_after_ms = 100;
        c.timeouts.execution_ms = 60_000;
    })
    .await;
    let p = spawn(&node, "a", &["x"], None, Mode::Payload).await;
    spawn(&node, "b", &["x"], None, Mode::Payload).await;
    let hung = node.submit(task(&["x"], "hang").with_timeout(Duration::from_secs(60))).await.unwrap();
    eventually("hung agent killed", || node.stats().flow.hung_agents_killed >= 1).await;
    eventually("restarted", || p.incarnations.load(Ordering::SeqCst) >= 2 || node.stats().agent_restarts >= 1).await;
    // The task was lost with the agent and redelivered; on the other agent it hangs too,
    // which gets that one killed as well; it ends when redeliveries run out or it fails.
    let outcome = tokio::time::timeout(DEADLINE, hung).await.expect("the hung task ends");
    assert!(!outcome.is_completed());
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    assert_no_loss(&node).await;
}

/// The strategy can be switched at run time through the Router actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategy_switches_at_run_time() {
    let node = node(|_| {}).await;
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    assert_eq!(node.stats().strategy, StrategyKind::RoundRobin);
    node.set_strategy(StrategyKind::P2cEwma).await.unwrap();
    assert_eq!(node.stats().strategy, StrategyKind::P2cEwma);
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    assert_no_loss(&node).await;
}

/// Consistent hashing keeps a session on one agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_sessions_on_one_agent() {
    let node = node(|c| c.load_balancer.strategy = StrategyKind::ConsistentHash).await;
    for i in 0..5 {
        spawn(&node, &format!("a{i}"), &["x"], None, Mode::Payload).await;
    }
    for session in ["alice", "bob", "carol"] {
        let first = completed_by(&node.route(task(&["x"], "ok").with_affinity_key(session)).await.unwrap()).to_string();
        for _ in 0..5 {
            let o = node.route(task(&["x"], "ok").with_affinity_key(session)).await.unwrap();
            assert_eq!(completed_by(&o), first);
        }
    }
    assert_no_loss(&node).await;
}

/// Bad input at the submit boundary gets a typed error and the node keeps serving:
/// empty capability set, oversized payload, duplicate id, malformed traceparent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_typed_errors() {
    let node = node(|c| c.codec.max_payload_bytes = 1024).await;
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    assert_eq!(node.submit(Task::new(CapabilitySet::empty())).await.unwrap_err(), SubmitError::EmptyCapabilities);
    let big = task(&["x"], &"z".repeat(1025));
    assert_eq!(node.submit(big).await.unwrap_err(), SubmitError::PayloadTooLarge { size: 1025, limit: 1024 });
    let t = task(&["x"], "ok");
    let dup = t.clone();
    assert!(node.route(t).await.unwrap().is_completed());
    assert_eq!(node.submit(dup.clone()).await.unwrap_err(), SubmitError::DuplicateTask(dup.id));
    assert_eq!(
        task(&["x"], "ok").with_traceparent("00-zz").unwrap_err(),
        TraceContextError::BadLength { len: 5, version: 0, expected: "exactly 55" }
    );
    assert!(matches!(
        task(&["x"], "ok").with_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Err(TraceContextError::ZeroTraceId)
    ));
    // Still serving, and none of the refused tasks was accepted.
    assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    let s = assert_no_loss(&node).await;
    assert_eq!(s.flow.accepted, 2);
}

/// At the in-flight limit, `try_submit` refuses with `Overloaded`; `submit` waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_limit_backpressure() {
    let node = node(|c| c.router.max_in_flight = 1).await;
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    let first = node.submit(task(&["x"], "sleep:50")).await.unwrap();
    assert_eq!(node.try_submit(task(&["x"], "ok")).unwrap_err(), SubmitError::Overloaded { limit: 1 });
    let second = node.submit(task(&["x"], "ok"));
    let (a, b) = tokio::join!(first, async { second.await.unwrap().await });
    assert!(a.is_completed() && b.is_completed());
    assert_no_loss(&node).await;
}

/// Shutting down with a task still running dead-letters it as `NodeStopped`, so even a
/// shutdown keeps the invariant; later submissions are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_terminates_open_tasks() {
    let node = node(|_| {}).await;
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    let h = node.submit(task(&["x"], "hang")).await.unwrap();
    assert_eq!(node.shutdown(Duration::from_millis(50)).await, 1);
    assert_eq!(h.await, TaskOutcome::DeadLettered { reason: DeadLetterReason::NodeStopped, attempts: 0 });
    assert_eq!(node.submit(task(&["x"], "ok")).await.unwrap_err(), SubmitError::NodeStopped);
    assert_eq!(node.status(), NodeStatus::Stopped);
    let s = node.stats();
    assert_eq!(s.flow.accepted, s.flow.completed + s.flow.failed + s.flow.dead_lettered);
}

/// Swarm leadership through the facade: the oldest member leads; stopping it for good
/// hands leadership to the next, and the stopped agent leaves the registry at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_leader_is_reelected_when_leader_stops() {
    let node = node(|_| {}).await;
    for n in ["l1", "l2", "l3"] {
        spawn(&node, n, &["x"], Some("team"), Mode::Payload).await;
    }
    let team = SwarmName::new("team").unwrap();
    assert_eq!(node.registry().leader(&team).unwrap().as_str(), "l1");
    node.stop_agent(&AgentId::new("l1").unwrap()).await.unwrap();
    assert_eq!(node.registry().leader(&team).unwrap().as_str(), "l2");
    assert!(node.registry().view().entry(&AgentId::new("l1").unwrap()).is_none());
    assert_eq!(node.agents().len(), 2);
    let outcome = node.route(task(&["x"], "ok").in_swarm(team)).await.unwrap();
    assert_ne!(completed_by(&outcome), "l1");
    assert_no_loss(&node).await;
}
