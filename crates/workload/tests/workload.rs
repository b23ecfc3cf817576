//! The workload harness: the simulation is deterministic, loses no task under any
//! strategy, and shows Q-learning learning what it should; the real-actor mode runs a
//! workload end to end on a real node.

use erlmcp_flow::core::StrategyKind;
use erlmcp_flow_workload::{
    ActorSettings, AgentProfile, RunReport, ServiceTime, SimSettings, Workload, bench_config, idle_actor, run_actors,
    simulate,
};

fn settings(tasks: u64, seed: u64) -> SimSettings {
    SimSettings { tasks, seed, config: bench_config() }
}

fn strip_wall(mut r: RunReport) -> RunReport {
    r.wall_ms = 0;
    r
}

/// The same seed replays the same run exactly (every strategy, Q-learning included); a
/// different seed gives a different one.
#[tokio::test]
async fn simulation_is_deterministic_for_a_seed() {
    let actor = idle_actor().await;
    let w = Workload::heterogeneous();
    for kind in StrategyKind::ALL {
        let a = strip_wall(simulate(&w, kind, &settings(3_000, 5), &actor));
        let b = strip_wall(simulate(&w, kind, &settings(3_000, 5), &actor));
        assert_eq!(a, b, "{kind}");
        let c = strip_wall(simulate(&w, kind, &settings(3_000, 6), &actor));
        assert_ne!(a.mean_us, c.mean_us, "{kind}");
    }
}

/// Every task ends (completed or failed after its retries) for every preset workload and
/// every strategy, and the attempt shares add up.
#[tokio::test]
async fn every_task_ends_under_every_strategy() {
    let actor = idle_actor().await;
    for w in Workload::presets() {
        for kind in StrategyKind::ALL {
            let r = simulate(&w, kind, &settings(2_000, 1), &actor);
            assert_eq!(r.completed + r.failed, 2_000, "{} / {kind}", w.name);
            assert!(r.success_rate > 0.99, "{} / {kind}: {}", w.name, r.success_rate);
            let shares: f64 = r.agent_share.values().sum();
            assert!((shares - 1.0).abs() < 1e-9);
            assert!(r.p50_us <= r.p99_us && r.mean_us > 0.0);
            assert_eq!(r.q_learning.is_some(), kind == StrategyKind::QLearning);
        }
    }
}

/// With one fast (1 ms) and one slow (8 ms) agent at light load, Q-learning converges to
/// sending almost everything to the fast one (round-robin splits evenly), and its mean
/// latency is far lower.
#[tokio::test]
async fn q_learning_converges_to_the_fast_agent() {
    let actor = idle_actor().await;
    let w = Workload {
        name: "two-speeds".into(),
        description: "one fast, one slow agent".into(),
        agents: vec![
            AgentProfile {
                name: "fast".into(),
                service: ServiceTime::Shifted { mean_us: 1_000.0 },
                failure_rate: 0.0,
                degrade: None,
            },
            AgentProfile {
                name: "slow".into(),
                service: ServiceTime::Shifted { mean_us: 8_000.0 },
                failure_rate: 0.0,
                degrade: None,
            },
        ],
        utilisation: 0.2,
        capacity: 8,
        burst: None,
    };
    let ql = simulate(&w, StrategyKind::QLearning, &settings(5_000, 3), &actor);
    let rr = simulate(&w, StrategyKind::RoundRobin, &settings(5_000, 3), &actor);
    assert!(ql.agent_share["fast"] > 0.85, "{:?}", ql.agent_share);
    assert!((rr.agent_share["fast"] - 0.5).abs() < 0.01, "{:?}", rr.agent_share);
    assert!(ql.mean_us < 0.5 * rr.mean_us, "q_learning {} vs round_robin {}", ql.mean_us, rr.mean_us);
    let stats = ql.q_learning.unwrap();
    assert_eq!(stats.updates, stats.applied);
    assert!(stats.updates >= 5_000 && stats.dropped == 0, "{stats:?}");
}

/// When one of eight agents turns 8× slower and starts failing a third into the run,
/// Q-learning moves work away from it: over the run it gets little more than its share of
/// the first third, while round-robin keeps feeding it (up to its bulkhead) and pays for
/// it in mean latency.
#[tokio::test]
async fn q_learning_moves_work_away_from_a_degrading_agent() {
    let actor = idle_actor().await;
    let w = Workload::degrading();
    let ql = simulate(&w, StrategyKind::QLearning, &settings(20_000, 2), &actor);
    let rr = simulate(&w, StrategyKind::RoundRobin, &settings(20_000, 2), &actor);
    // Before the change every agent's fair share is 1/8, i.e. 1/24 of the whole run.
    let (q0, r0) = (ql.agent_share["agent-0"], rr.agent_share["agent-0"]);
    assert!(q0 < 1.0 / 24.0 + 0.01, "q_learning {q0}, round_robin {r0}");
    assert!(r0 > q0 + 0.01, "q_learning {q0}, round_robin {r0}");
    assert!(ql.mean_us < 0.75 * rr.mean_us, "q_learning {} vs round_robin {}", ql.mean_us, rr.mean_us);
}

/// The real-actor mode routes a workload through a real node with the Q-learning
/// strategy: every task ends, the QLearning actor applied the feedback, and every agent's
/// execution times were measured for the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_mode_runs_a_workload_on_a_real_node() {
    erlmcp_flow::quiet_agent_panics();
    let dir = std::env::temp_dir().join(format!("erlmcp-workload-actors-{}", std::process::id()));
    let s = ActorSettings {
        tasks: 300,
        seed: 4,
        config: bench_config(),
        model_dir: dir.clone(),
        time_scale: 2.0,
        sleep_overshoot: None,
    };
    let w = Workload::heterogeneous();
    let r = run_actors(&w, StrategyKind::QLearning, &s).await.unwrap();
    assert_eq!((r.mode.as_str(), r.workload.as_str(), r.strategy.as_str()), ("actors", "heterogeneous", "q_learning"));
    assert_eq!(r.completed + r.failed, 300);
    let stats = r.q_learning.as_ref().unwrap();
    assert!(stats.updates >= 300, "{stats:?}");
    assert!(r.sleep_overshoot_us.is_some());
    // Every agent's executions were measured (what they took is reported, not judged:
    // no timing assertions in tests).
    assert_eq!(r.agent_mean_service_us.len(), w.agents.len());
    assert!(r.agent_mean_service_us.values().all(|&us| us > 0.0), "{:?}", r.agent_mean_service_us);
    let _ = std::fs::remove_dir_all(dir);
}
