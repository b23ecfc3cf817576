//! Queueing that users control: the bounded admission queue and its discard policies,
//! queue TTLs, the rate limit, the discard handler and counters, draining, and agent
//! pools resized at runtime, through the `FlowNode` facade.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{DEADLINE, Mode, completed_by, eventually, spawn, task};
use erlmcp_flow::core::config::DiscardPolicy;
use erlmcp_flow::prelude::*;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// An agent that runs a task only once the test lets it (one semaphore permit per task),
/// so a test decides exactly when admission slots free up.
struct Gated {
    name: String,
    gate: Arc<Semaphore>,
    started: Arc<AtomicU64>,
}

impl Agent for Gated {
    async fn handle(&mut self, _task: &Task) -> Result<Bytes, AgentError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.expect("gate open").forget();
        Ok(Bytes::from(self.name.clone()))
    }
}

/// A gated agent `name` with capability `gated`; returns its gate and started counter.
async fn spawn_gated(node: &FlowNode, name: &str) -> (Arc<Semaphore>, Arc<AtomicU64>) {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let (g, s, n) = (gate.clone(), started.clone(), name.to_string());
    node.spawn_agent(AgentSpec::parse(name, ["gated"]).unwrap(), move || Gated {
        name: n.clone(),
        gate: g.clone(),
        started: s.clone(),
    })
    .await
    .unwrap();
    (gate, started)
}

type Seen = Arc<Mutex<Vec<(TaskId, DiscardReason)>>>;

/// A node with one admission slot, the given queue, and a handler recording discards.
async fn node_with_queue(capacity: u32, discard: DiscardPolicy, ttl_ms: Option<u64>) -> (FlowNode, Seen) {
    let mut cfg = FlowConfig::for_test();
    cfg.router.max_in_flight = 1;
    cfg.router.queue.capacity = capacity;
    cfg.router.queue.discard = discard;
    cfg.router.queue.ttl_ms = ttl_ms;
    // Gated tasks wait as long as the test says: no attempt timeout nor hung-agent kill
    // in the way.
    cfg.timeouts.execution_ms = 120_000;
    cfg.failure_detector.hung_agent_after_ms = 600_000;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let node = FlowNode::builder()
        .config(cfg)
        .on_discard(move |t: &Task, r: DiscardReason| s.lock().push((t.id, r)))
        .start()
        .await
        .unwrap();
    (node, seen)
}

fn gated_task() -> Task {
    task(&["gated"], "")
}

async fn until_waiting(node: &FlowNode, n: u64) {
    eventually(&format!("{n} submitters waiting for admission"), || node.stats().admission.waiting == n).await;
}

/// Submits `t` on a new task (it will wait for admission).
fn submit_in_background(node: &FlowNode, t: Task) -> tokio::task::JoinHandle<Result<TaskOutcome, SubmitError>> {
    let node = node.clone();
    tokio::spawn(async move { node.route(t).await })
}

fn discarded(reason: DiscardReason) -> SubmitError {
    SubmitError::Discarded { reason }
}

/// With `discard = "reject"`, a submitter arriving at a full wait queue is discarded with
/// `QueueFull` (typed error, handler, counter) while the waiter keeps its place and is
/// admitted when the slot frees; submitted = accepted + discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_policy_turns_newcomer_away() {
    let (node, seen) = node_with_queue(1, DiscardPolicy::Reject, None).await;
    let (gate, started) = spawn_gated(&node, "g").await;
    let first = submit_in_background(&node, gated_task());
    eventually("first task running", || started.load(Ordering::SeqCst) == 1).await;
    let second = submit_in_background(&node, gated_task());
    until_waiting(&node, 1).await;

    let third = gated_task();
    let id = third.id;
    assert_eq!(node.submit(third).await.unwrap_err(), discarded(DiscardReason::QueueFull));
    assert_eq!(*seen.lock(), [(id, DiscardReason::QueueFull)]);

    gate.add_permits(2);
    assert_eq!(completed_by(&first.await.unwrap().unwrap()), "g");
    assert_eq!(completed_by(&second.await.unwrap().unwrap()), "g");
    let s = common::assert_no_loss(&node).await;
    assert_eq!(s.admission.discarded.queue_full, 1);
    assert_eq!(3, s.flow.accepted + s.admission.discarded.total(), "submitted = accepted + discarded");
    node.shutdown(Duration::from_secs(1)).await;
}

/// With `discard = "oldest"` a newcomer at a full queue pushes out the oldest waiter
/// (`EvictedOldest` to its submitter and the handler) and takes its place; with
/// `"newest"` it pushes out the newest waiter of a lower priority, and is itself turned
/// away (`QueueFull`) when no waiter has a lower priority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_policies_push_out_a_waiter() {
    // oldest
    let (node, seen) = node_with_queue(1, DiscardPolicy::Oldest, None).await;
    let (gate, started) = spawn_gated(&node, "g").await;
    let running = submit_in_background(&node, gated_task());
    eventually("first task running", || started.load(Ordering::SeqCst) == 1).await;
    let old = gated_task();
    let old_id = old.id;
    let old = submit_in_background(&node, old);
    until_waiting(&node, 1).await;
    let newcomer = submit_in_background(&node, gated_task());
    assert_eq!(old.await.unwrap().unwrap_err(), discarded(DiscardReason::EvictedOldest));
    assert_eq!(*seen.lock(), [(old_id, DiscardReason::EvictedOldest)]);
    gate.add_permits(2);
    completed_by(&running.await.unwrap().unwrap());
    completed_by(&newcomer.await.unwrap().unwrap());
    let s = common::assert_no_loss(&node).await;
    assert_eq!((s.flow.accepted, s.admission.discarded.evicted_oldest), (2, 1));
    node.shutdown(Duration::from_secs(1)).await;

    // newest
    let (node, seen) = node_with_queue(1, DiscardPolicy::Newest, None).await;
    let (gate, started) = spawn_gated(&node, "g").await;
    let running = submit_in_background(&node, gated_task());
    eventually("first task running", || started.load(Ordering::SeqCst) == 1).await;
    let low = gated_task().with_priority(Priority::Low);
    let low_id = low.id;
    let low = submit_in_background(&node, low);
    until_waiting(&node, 1).await;
    let high = submit_in_background(&node, gated_task().with_priority(Priority::High));
    assert_eq!(low.await.unwrap().unwrap_err(), discarded(DiscardReason::EvictedNewest));
    until_waiting(&node, 1).await;
    let same = gated_task().with_priority(Priority::High);
    let same_id = same.id;
    assert_eq!(node.route(same).await.unwrap_err(), discarded(DiscardReason::QueueFull));
    assert_eq!(*seen.lock(), [(low_id, DiscardReason::EvictedNewest), (same_id, DiscardReason::QueueFull)]);
    gate.add_permits(2);
    completed_by(&running.await.unwrap().unwrap());
    completed_by(&high.await.unwrap().unwrap());
    let s = common::assert_no_loss(&node).await;
    assert_eq!((s.admission.discarded.evicted_newest, s.admission.discarded.queue_full), (1, 1));
    assert_eq!(4, s.flow.accepted + s.admission.discarded.total(), "submitted = accepted + discarded");
    node.shutdown(Duration::from_secs(1)).await;
}

/// A task that waits for admission longer than its queue TTL (its own, or the config's
/// default) is discarded with `Ttl`, without ever being accepted; the slot it waited for
/// goes to the next waiter. Paused time: the TTLs expire exactly when time says so.
#[tokio::test(start_paused = true)]
async fn queue_ttl_discards_a_waiting_task() {
    let (node, seen) = node_with_queue(10, DiscardPolicy::Reject, Some(60_000)).await;
    let (gate, started) = spawn_gated(&node, "g").await;
    let running = submit_in_background(&node, gated_task());
    eventually("first task running", || started.load(Ordering::SeqCst) == 1).await;

    let short = gated_task().with_queue_ttl(Duration::from_millis(100));
    let short_id = short.id;
    let patient = submit_in_background(&node, gated_task().with_queue_ttl(Duration::from_secs(3600)));
    let by_default = gated_task();
    let default_id = by_default.id;
    let by_default = submit_in_background(&node, by_default);
    until_waiting(&node, 2).await;
    // The task's own TTL.
    assert_eq!(node.submit(short).await.unwrap_err(), discarded(DiscardReason::Ttl));
    // The config's default (60 s) for a task without one.
    assert_eq!(by_default.await.unwrap().unwrap_err(), discarded(DiscardReason::Ttl));
    assert_eq!(*seen.lock(), [(short_id, DiscardReason::Ttl), (default_id, DiscardReason::Ttl)]);

    gate.add_permits(2);
    completed_by(&running.await.unwrap().unwrap());
    completed_by(&patient.await.unwrap().unwrap());
    let s = common::assert_no_loss(&node).await;
    assert_eq!((s.flow.accepted, s.admission.discarded.ttl), (2, 2));
    node.shutdown(Duration::from_secs(1)).await;
}

/// The rate limit admits a burst, then `per_second`; a task arriving with no token is
/// discarded with `RateLimited`, from `submit`, `route` and `try_submit` alike. Paused
/// time: the bucket refills exactly when time advances.
#[tokio::test(start_paused = true)]
async fn rate_limit_discards_over_the_rate() {
    let mut cfg = FlowConfig::for_test();
    // One token per 100 s: timers the node runs meanwhile cannot refill the bucket by
    // accident.
    cfg.router.rate_limit = Some(erlmcp_flow::core::config::RateLimitConfig { per_second: 0.01, burst: 2 });
    let limited = Arc::new(AtomicU64::new(0));
    let l = limited.clone();
    let node = FlowNode::builder()
        .config(cfg)
        .on_discard(move |_: &Task, r: DiscardReason| {
            assert_eq!(r, DiscardReason::RateLimited);
            l.fetch_add(1, Ordering::SeqCst);
        })
        .start()
        .await
        .unwrap();
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    completed_by(&node.route(task(&["x"], "ok")).await.unwrap());
    completed_by(&node.submit(task(&["x"], "ok")).await.unwrap().await);
    assert_eq!(node.route(task(&["x"], "ok")).await.unwrap_err(), discarded(DiscardReason::RateLimited));
    assert_eq!(node.try_submit(task(&["x"], "ok")).unwrap_err(), discarded(DiscardReason::RateLimited));
    tokio::time::advance(Duration::from_secs(100)).await;
    completed_by(&node.route(task(&["x"], "ok")).await.unwrap());
    assert_eq!(node.submit(task(&["x"], "ok")).await.unwrap_err(), discarded(DiscardReason::RateLimited));
    let s = common::assert_no_loss(&node).await;
    assert_eq!((s.flow.accepted, s.admission.discarded.rate_limited), (3, 3));
    assert_eq!(limited.load(Ordering::SeqCst), 3);
    node.shutdown(Duration::from_secs(1)).await;
}

/// `drain` refuses new tasks (`Draining`), discards the submitters waiting for admission
/// (`Discarded { Draining }`), lets the accepted tasks finish and reports them; a drain
/// that times out reports what is still open, dead-letters nothing, and the later
/// `shutdown` finds nothing left to dead-letter once those tasks finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_and_discards_waiters() {
    let (node, seen) = node_with_queue(10, DiscardPolicy::Reject, None).await;
    let (gate, started) = spawn_gated(&node, "g").await;
    let running = submit_in_background(&node, gated_task());
    eventually("first task running", || started.load(Ordering::SeqCst) == 1).await;
    let waiting = gated_task();
    let waiting_id = waiting.id;
    let waiting = submit_in_background(&node, waiting);
    until_waiting(&node, 1).await;

    let n = node.clone();
    let drain = tokio::spawn(async move { n.drain(DEADLINE).await });
    // The drain discards the waiter once it has counted the open tasks.
    assert_eq!(waiting.await.unwrap().unwrap_err(), discarded(DiscardReason::Draining));
    assert_eq!(*seen.lock(), [(waiting_id, DiscardReason::Draining)]);
    assert_eq!(node.submit(gated_task()).await.unwrap_err(), SubmitError::Draining);
    assert_eq!(node.try_submit(gated_task()).unwrap_err(), SubmitError::Draining);

    // A second drain that gives up: the open task is held at the gate.
    let report = node.drain(Duration::from_millis(20)).await;
    assert_eq!(report, DrainReport { finished: 0, still_open: 1, discarded_waiters: 0 });
    assert_eq!(node.stats().flow.dead_lettered, 0, "a drain dead-letters nothing");

    // The first drain sees the task finish.
    gate.add_permits(1);
    assert_eq!(drain.await.unwrap(), DrainReport { finished: 1, still_open: 0, discarded_waiters: 1 });
    assert_eq!(completed_by(&running.await.unwrap().unwrap()), "g");
    let s = common::assert_no_loss(&node).await;
    assert_eq!((s.flow.accepted, s.admission.discarded.draining), (1, 1));
    assert_eq!(node.shutdown(Duration::from_secs(1)).await, 0);
}

/// Shutting down discards the submitters waiting for admission (`Draining`) rather than
/// leaving them waiting, and dead-letters (`NodeStopped`) the accepted tasks still open
/// after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_discards_waiters() {
    let (node, _seen) = node_with_queue(10, DiscardPolicy::Reject, None).await;
    let (gate, started) = spawn_gated(&node, "g").await;
    // `submit`: the handle hears of the dead-lettering at once (`route` would first wait
    // for its inline driver, i.e. for the agent).
    let running = node.submit(gated_task()).await.unwrap();
    eventually("first task running", || started.load(Ordering::SeqCst) == 1).await;
    let waiting = submit_in_background(&node, gated_task());
    until_waiting(&node, 1).await;
    let n = node.clone();
    let shutdown = tokio::spawn(async move { n.shutdown(Duration::from_millis(10)).await });
    assert_eq!(waiting.await.unwrap().unwrap_err(), discarded(DiscardReason::Draining));
    assert!(matches!(running.await, TaskOutcome::DeadLettered { reason: DeadLetterReason::NodeStopped, .. }));
    // Let the agent return, so the tree stops without waiting for it.
    gate.add_permits(1);
    assert_eq!(shutdown.await.unwrap(), 1);
    let s = node.stats();
    assert_eq!((s.flow.accepted, s.flow.dead_lettered, s.admission.discarded.draining), (1, 1, 1));
}

/// What `stop_agent` does with the tasks an agent holds: the one it is running finishes
/// there; the ones queued in its mailbox are handed back and redelivered to another
/// capable agent (no attempt spent). None is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_agent_hands_back_queued_tasks() {
    let mut cfg = FlowConfig::for_test();
    cfg.timeouts.execution_ms = 120_000;
    let node = FlowNode::builder().config(cfg).start().await.unwrap();
    let (gate, started) = spawn_gated(&node, "a").await;
    let handles: Vec<_> = (0..3).map(|_| submit_in_background(&node, gated_task())).collect();
    let a = node.registry().find(&AgentId::new("a").unwrap()).unwrap();
    eventually("three tasks delivered to a", || a.load.in_flight() == 3 && started.load(Ordering::SeqCst) == 1).await;

    spawn_gated_free(&node, "b").await;
    let n = node.clone();
    let stop = tokio::spawn(async move { n.stop_agent(&AgentId::new("a").unwrap()).await });
    eventually("a out of the pool", || node.agents().iter().all(|s| s.id.as_str() != "a")).await;
    gate.add_permits(1);
    stop.await.unwrap().unwrap();

    let mut by = Vec::new();
    for h in handles {
        by.push(completed_by(&h.await.unwrap().unwrap()).to_string());
    }
    by.sort();
    assert_eq!(by, ["a", "b", "b"], "the running task finished on a, the queued ones on b");
    let s = common::assert_no_loss(&node).await;
    assert!(s.flow.redeliveries >= 2, "{s:?}");
    assert_eq!(s.flow.failed + s.flow.dead_lettered, 0);
    node.shutdown(Duration::from_secs(1)).await;
}

/// An agent `name` with capability `gated` that runs tasks at once.
async fn spawn_gated_free(node: &FlowNode, name: &str) {
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    let n = name.to_string();
    node.spawn_agent(AgentSpec::parse(name, ["gated"]).unwrap(), move || Gated {
        name: n.clone(),
        gate: gate.clone(),
        started: Arc::default(),
    })
    .await
    .unwrap();
}

/// `scale_agents` grows a pool of identical agents and shrinks it while they hold tasks:
/// the retired agents leave routing, finish what they hold, then stop; every task
/// completes and the pool has the asked-for members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_agents_grows_and_shrinks_without_loss() {
    let mut cfg = FlowConfig::for_test();
    cfg.timeouts.execution_ms = 120_000;
    let node = FlowNode::builder().config(cfg).start().await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let (g, s) = (gate.clone(), started.clone());
    let factory = move || Gated { name: "pool".into(), gate: g.clone(), started: s.clone() };
    let template = AgentSpec::parse("w", ["gated"]).unwrap();

    let members = node.scale_agents(&template, factory.clone(), 3).await.unwrap();
    let names: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["w-0", "w-1", "w-2"]);
    assert_eq!(node.scale_agents(&template, factory.clone(), 3).await.unwrap().len(), 3, "idempotent");

    let handles: Vec<_> = (0..9).map(|_| submit_in_background(&node, gated_task())).collect();
    eventually("every agent running a task", || started.load(Ordering::SeqCst) == 3).await;
    let n = node.clone();
    let f = factory.clone();
    let t = template.clone();
    let shrink = tokio::spawn(async move { n.scale_agents(&t, f, 1).await });
    // Retired agents leave routing at once, and stop only once their tasks are done.
    eventually("w-1 and w-2 out of routing", || {
        ["w-1", "w-2"].iter().all(|id| node.registry().find(&AgentId::new(id).unwrap()).is_none_or(|e| !e.is_alive()))
    })
    .await;
    gate.add_permits(9);
    let members = shrink.await.unwrap().unwrap();
    assert_eq!(members, [AgentId::new("w-0").unwrap()]);
    for h in handles {
        assert!(completed_by(&h.await.unwrap().unwrap()).starts_with("w-"));
    }
    let s = common::assert_no_loss(&node).await;
    assert_eq!((s.flow.completed, s.agents), (9, 1));

    // And back up: the missing members are spawned again.
    let members = node.scale_agents(&template, factory, 2).await.unwrap();
    assert_eq!(members.len(), 2);
    gate.add_permits(1);
    assert!(completed_by(&node.route(gated_task()).await.unwrap()).starts_with("w-"));
    node.shutdown(Duration::from_secs(1)).await;
}

/// The no-loss invariant with discards, under concurrent load with every discard
/// mechanism at work: every submitted task ends exactly once, accepted (then completed,
/// failed or dead-lettered) or discarded with one reason; the node's counts per reason
/// equal what the submitters were told, and what the handler was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_submitted_task_is_accepted_or_discarded_once() {
    let mut cfg = FlowConfig::for_test();
    cfg.router.max_in_flight = 2;
    cfg.router.queue.capacity = 4;
    cfg.router.queue.discard = DiscardPolicy::Oldest;
    cfg.router.rate_limit = Some(erlmcp_flow::core::config::RateLimitConfig { per_second: 5_000.0, burst: 16 });
    let handled: Arc<Mutex<Vec<DiscardReason>>> = Arc::default();
    let h = handled.clone();
    let node = FlowNode::builder()
        .config(cfg)
        .on_discard(move |_: &Task, r: DiscardReason| h.lock().push(r))
        .start()
        .await
        .unwrap();
    spawn(&node, "a", &["x"], None, Mode::Payload).await;
    spawn(&node, "b", &["x"], None, Mode::Payload).await;
    const SUBMITTERS: u64 = 16;
    const EACH: u64 = 20;
    let mut joins = Vec::new();
    for i in 0..SUBMITTERS {
        let node = node.clone();
        joins.push(tokio::spawn(async move {
            let mut told = Vec::new();
            for j in 0..EACH {
                let mut t = task(&["x"], if (i + j).is_multiple_of(5) { "sleep:2" } else { "ok" });
                if (i * EACH + j).is_multiple_of(7) {
                    t = t.with_queue_ttl(Duration::from_micros(200));
                }
                match node.route(t).await {
                    Ok(_) => told.push(None),
                    Err(SubmitError::Discarded { reason }) => told.push(Some(reason)),
                    Err(e) => panic!("unexpected refusal {e}"),
                }
            }
            told
        }));
    }
    let mut told = Vec::new();
    for j in joins {
        told.extend(j.await.unwrap());
    }
    let s = common::assert_no_loss(&node).await;
    let accepted = told.iter().filter(|t| t.is_none()).count() as u64;
    assert_eq!(told.len() as u64, SUBMITTERS * EACH);
    assert_eq!(s.flow.accepted, accepted);
    assert_eq!(SUBMITTERS * EACH, s.flow.accepted + s.admission.discarded.total(), "{s:?}");
    for reason in DiscardReason::ALL {
        let n = told.iter().filter(|t| **t == Some(reason)).count() as u64;
        assert_eq!(s.admission.discarded.get(reason), n, "{reason:?}");
        assert_eq!(handled.lock().iter().filter(|r| **r == reason).count() as u64, n, "{reason:?}");
    }
    assert_eq!((s.admission.waiting, s.admission.cancelled), (0, 0));
    node.shutdown(Duration::from_secs(1)).await;
}
