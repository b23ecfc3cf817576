//! Helpers shared by the integration tests: a scriptable agent, node set-up, polling.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use erlmcp_flow::prelude::*;

/// Upper bound for any wait in a test: generous, so a slow CI machine does not flake;
/// tests poll and return as soon as the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` every millisecond until it holds; panics after [`DEADLINE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "not reached within {DEADLINE:?}: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// What a [`Scripted`] agent does with a task, chosen by the payload:
/// `ok` (or anything else) answers with the agent id, `fail` is a retryable error,
/// `perm` a permanent one, `panic` panics, `sleep:<ms>` sleeps first, `hang` never
/// answers. An agent-wide override applies to every task (flaky or broken agents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Follow the payload.
    Payload,
    /// Fail every task (retryable).
    AlwaysFail,
    /// Panic on every task.
    AlwaysPanic,
    /// Sleep this many ms per task, then succeed.
    Slow(u64),
}

/// Counters shared by every incarnation of a scripted agent.
#[derive(Debug, Default)]
pub struct Probe {
    /// Tasks started.
    pub started: AtomicU64,
    /// Tasks running right now.
    pub running: AtomicUsize,
    /// Highest `running` seen.
    pub max_running: AtomicUsize,
    /// Incarnations created by the factory.
    pub incarnations: AtomicU64,
}

impl Probe {
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }
}

/// A scripted agent; see [`Mode`].
pub struct Scripted {
    pub name: String,
    pub mode: Mode,
    pub probe: Arc<Probe>,
}

impl Agent for Scripted {
    async fn handle(&mut self, task: &Task) -> Result<Bytes, AgentError> {
        self.probe.started.fetch_add(1, Ordering::SeqCst);
        let now = self.probe.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.probe.max_running.fetch_max(now, Ordering::SeqCst);
        let r = self.run(task).await;
        self.probe.running.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

impl Scripted {
    async fn run(&mut self, task: &Task) -> Result<Bytes, AgentError> {
        match self.mode {
            Mode::AlwaysFail => {
                return Err(AgentError::Retryable(format!("{} is broken", self.name)));
            }
            Mode::AlwaysPanic => {
                self.probe.running.fetch_sub(1, Ordering::SeqCst);
                panic!("{} always panics", self.name)
            }
            Mode::Slow(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Mode::Payload => {}
        }
        let p = std::str::from_utf8(&task.payload).unwrap_or("");
        match p {
            "fail" => Err(AgentError::Retryable("asked to fail".into())),
            "perm" => Err(AgentError::Permanent("asked to fail for good".into())),
            "panic" => {
                self.probe.running.fetch_sub(1, Ordering::SeqCst);
                panic!("asked to panic")
            }
            "hang" => std::future::pending().await,
            _ => {
                if let Some(ms) = p.strip_prefix("sleep:").and_then(|v| v.parse().ok()) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Ok(Bytes::from(self.name.clone()))
            }
        }
    }
}

/// Spawns a scripted agent named `name` with `caps` (and `swarm`), returning its probe.
pub async fn spawn(node: &FlowNode, name: &str, caps: &[&str], swarm: Option<&str>, mode: Mode) -> Arc<Probe> {
    let probe = Arc::new(Probe::default());
    let mut spec = AgentSpec::parse(name, caps).unwrap();
    if let Some(s) = swarm {
        spec = spec.in_swarm(SwarmName::new(s).unwrap());
    }
    let (n, p) = (name.to_string(), probe.clone());
    node.spawn_agent(spec, move || {
        p.incarnations.fetch_add(1, Ordering::SeqCst);
        Scripted { name: n.clone(), mode, probe: p.clone() }
    })
    .await
    .unwrap();
    probe
}

/// A node on the fast test config, with `adjust` applied.
pub async fn node(adjust: impl FnOnce(&mut FlowConfig)) -> FlowNode {
    let mut cfg = FlowConfig::for_test();
    adjust(&mut cfg);
    FlowNode::start(cfg).await.unwrap()
}

/// A task needing `caps` with `payload`.
pub fn task(caps: &[&str], payload: &str) -> Task {
    Task::new(CapabilitySet::parse(caps).unwrap()).with_payload(payload.to_string())
}

/// Asserts the no-loss invariant after waiting for quiescence.
pub async fn assert_no_loss(node: &FlowNode) -> erlmcp_flow::NodeStats {
    assert!(node.wait_idle(DEADLINE).await, "tasks still open: {:?}", node.stats());
    let s = node.stats();
    assert_eq!(s.flow.accepted, s.flow.completed + s.flow.failed + s.flow.dead_lettered, "no-loss invariant: {s:?}");
    assert_eq!(s.flow.in_flight, 0);
    s
}

/// The agent that completed `outcome`.
pub fn completed_by(outcome: &TaskOutcome) -> &str {
    match outcome {
        TaskOutcome::Completed { agent, .. } => agent.as_str(),
        other => panic!("expected Completed, got {other:?}"),
    }
}
