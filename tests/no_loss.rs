//! The no-loss invariant under random fault schedules (proptest).
//!
//! Each case starts a node with 1–6 agents of random behaviour (crash probability,
//! failure probability, latency), a random strategy and restart intensity, submits a
//! random number of tasks, and fires random faults while they run: agents killed,
//! panicked or stopped, node services panicked, agents added. After quiescence:
//!
//! * `accepted = completed + failed + dead_lettered` (ledger),
//! * every submitted task's handle resolved, and the outcome kinds the submitters saw
//!   add up to exactly the ledger's counts (nothing finished twice, nothing unseen).

mod common;

use std::time::Duration;

use common::DEADLINE;
use erlmcp_flow::core::{AgentMsg, TerminalKind};
use erlmcp_flow::prelude::*;
use erlmcp_flow::registry::splitmix64;
use erlmcp_flow::supervision::Restart;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
struct AgentPlan {
    crash: f64,
    fail: f64,
    latency_ms: u64,
    temporary: bool,
}

#[derive(Debug, Clone)]
enum Fault {
    KillAgent(usize),
    PanicAgent(usize),
    StopAgent(usize),
    PanicService(usize),
    AddAgent,
}

#[derive(Debug, Clone)]
struct Plan {
    agents: Vec<AgentPlan>,
    tasks: usize,
    strategy: usize,
    agent_intensity: u32,
    faults: Vec<(usize, Fault)>,
    seed: u64,
}

struct ChaosAgent {
    rng: SmallRng,
    plan: AgentPlan,
}

impl Agent for ChaosAgent {
    async fn handle(&mut self, _task: &Task) -> Result<Bytes, AgentError> {
        if self.plan.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.plan.latency_ms)).await;
        }
        if self.rng.random::<f64>() < self.plan.crash {
            panic!("chaos crash");
        }
        if self.rng.random::<f64>() < self.plan.fail {
            return Err(AgentError::Retryable("chaos failure".into()));
        }
        Ok(Bytes::new())
    }

    /// The `PanicAgent` fault: the agent's own code panics (between tasks).
    async fn on_broadcast(&mut self, message: &Bytes) {
        if &message[..] == b"panic" {
            panic!("chaos panic");
        }
    }
}

fn agent_plan() -> impl Strategy<Value = AgentPlan> {
    (
        prop_oneof![Just(0.0), Just(0.05), Just(0.3)],
        prop_oneof![Just(0.0), Just(0.1), Just(0.5)],
        0u64..3,
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(crash, fail, latency_ms, temporary)| AgentPlan { crash, fail, latency_ms, temporary })
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (0usize..8).prop_map(Fault::KillAgent),
        (0usize..8).prop_map(Fault::PanicAgent),
        (0usize..8).prop_map(Fault::StopAgent),
        (0usize..6).prop_map(Fault::PanicService),
        Just(Fault::AddAgent),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(agent_plan(), 1..6),
        10usize..120,
        0usize..6,
        prop_oneof![Just(5u32), Just(1000u32)],
        proptest::collection::vec((0usize..120, fault()), 0..6),
        any::<u64>(),
    )
        .prop_map(|(agents, tasks, strategy, agent_intensity, faults, seed)| Plan {
            agents,
            tasks,
            strategy,
            agent_intensity,
            faults,
            seed,
        })
}

async fn spawn_chaos(node: &FlowNode, i: usize, p: &AgentPlan, seed: u64) {
    let mut spec = AgentSpec::parse(&format!("chaos-{i}"), ["work"]).unwrap();
    if p.temporary {
        spec = spec.with_restart(Restart::Temporary);
    }
    let plan = p.clone();
    let counter = std::sync::atomic::AtomicU64::new(0);
    let _ = node
        .spawn_agent(spec, move || ChaosAgent {
            rng: SmallRng::seed_from_u64(splitmix64(
                seed ^ (i as u64) << 40 ^ counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            )),
            plan: plan.clone(),
        })
        .await;
}

async fn run(plan: Plan) {
    let mut cfg = FlowConfig::for_test();
    cfg.node.seed = Some(plan.seed);
    cfg.load_balancer.strategy = StrategyKind::ALL[plan.strategy];
    cfg.supervision.agents.max_restarts = plan.agent_intensity;
    cfg.timeouts.execution_ms = 500;
    let node = FlowNode::start(cfg).await.unwrap();
    for (i, a) in plan.agents.iter().enumerate() {
        spawn_chaos(&node, i, a, plan.seed).await;
    }
    let mut handles = Vec::new();
    let mut extra = plan.agents.len();
    for n in 0..plan.tasks {
        for (_, f) in plan.faults.iter().filter(|(at, _)| *at == n) {
            let id = |i: usize| AgentId::new(format!("chaos-{}", i % extra.max(1))).unwrap();
            match f {
                Fault::KillAgent(i) => {
                    if let Some(e) = node.registry().find(&id(*i)) {
                        e.actor().expect("local").kill();
                    }
                }
                Fault::PanicAgent(i) => {
                    if let Some(e) = node.registry().find(&id(*i)) {
                        let _ =
                            e.actor().expect("local").send_message(AgentMsg::Broadcast(Bytes::from_static(b"panic")));
                    }
                }
                Fault::StopAgent(i) => {
                    let _ = node.stop_agent(&id(*i)).await;
                }
                Fault::PanicService(c) => {
                    node.kill_child(erlmcp_flow::tree::Child::SINGLE_NODE[*c]);
                }
                Fault::AddAgent => {
                    spawn_chaos(&node, extra, &plan.agents[0], plan.seed).await;
                    extra += 1;
                }
            }
        }
        match node.submit(Task::new(CapabilitySet::parse(["work"]).unwrap())).await {
            Ok(h) => handles.push(h),
            // A node whose FlowSupervisor melted down refuses new work; fine.
            Err(SubmitError::NodeStopped) => {}
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    let mut seen = [0u64; 3];
    for h in handles.drain(..) {
        let outcome = tokio::time::timeout(DEADLINE, h).await.expect("every handle resolves");
        let k = match outcome.kind() {
            TerminalKind::Completed => 0,
            TerminalKind::Failed => 1,
            TerminalKind::DeadLettered => 2,
        };
        seen[k] += 1;
    }
    assert!(node.wait_idle(DEADLINE).await, "quiescence");
    let s = node.stats().flow;
    assert_eq!(s.accepted, s.completed + s.failed + s.dead_lettered, "ledger invariant {s:?}");
    assert_eq!([s.completed, s.failed, s.dead_lettered], seen, "submitters saw the ledger's outcomes");
    node.shutdown(Duration::from_secs(1)).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// accepted = completed + failed + dead_lettered after any fault schedule, and every
    /// outcome reached its submitter exactly once.
    #[test]
    fn no_task_is_ever_lost(plan in plan()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(plan));
    }
}
