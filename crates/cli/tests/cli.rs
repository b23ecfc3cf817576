//! The `flow` binary: the demo's JSON report and no-loss exit status, and bad command-line
//! and config input answered with clear errors.

use std::process::{Command, Output};

fn flow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flow")).args(args).env("RUST_BACKTRACE", "0").output().expect("flow runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "flow failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// `flow demo --json` prints one object with the required fields, loses nothing, and
/// its counts add up, for several seeds and crash rates of 0.1 and above.
#[test]
fn demo_json_reports_zero_lost_across_seeds_and_crash_rates() {
    for (seed, crash) in [("1", "0.1"), ("2", "0.1"), ("3", "0.3"), ("4", "0.5")] {
        let o = flow(&["demo", "--tasks", "3000", "--agents", "12", "--crash-rate", crash, "--seed", seed, "--json"]);
        let v = json(&o);
        for field in [
            "accepted",
            "completed",
            "failed",
            "dead_lettered",
            "lost",
            "retries",
            "breaker_opens",
            "restarts",
            "throughput_per_s",
            "p50_us",
            "p99_us",
            "strategy",
            "agents",
        ] {
            assert!(v.get(field).is_some(), "missing {field} in {v}");
        }
        assert_eq!(v["lost"], 0, "{v}");
        assert_eq!(v["accepted"], 3000);
        let sum =
            v["completed"].as_u64().unwrap() + v["failed"].as_u64().unwrap() + v["dead_lettered"].as_u64().unwrap();
        assert_eq!(sum, 3000, "{v}");
        assert!(v["restarts"].as_u64().unwrap() > 0, "crashes were injected: {v}");
    }
}

/// Every strategy runs the demo to a clean finish.
#[test]
fn demo_runs_every_strategy() {
    for s in ["round-robin", "least-connections", "load-aware", "weighted", "consistent-hash", "p2c-ewma", "q-learning"]
    {
        let v = json(&flow(&["demo", "--tasks", "500", "--agents", "6", "--strategy", s, "--json"]));
        assert_eq!(v["lost"], 0);
        assert_eq!(v["strategy"], s.replace('-', "_"));
    }
}

/// `flow bench routing --json` prints one object per (workload, strategy) with the
/// documented fields, every strategy on every preset workload, and Q-learning's mean
/// compared with round-robin's.
#[test]
fn bench_routing_json_covers_every_workload_and_strategy() {
    let o = flow(&["bench", "routing", "--tasks", "2000", "--json"]);
    let v = json(&o);
    let runs = v.as_array().expect("an array");
    assert_eq!(runs.len(), 4 * 7, "{v}");
    for r in runs {
        for field in ["workload", "strategy", "mean_us", "p50_us", "p99_us", "success_rate", "throughput_per_s"] {
            assert!(r.get(field).is_some(), "missing {field} in {r}");
        }
        assert_eq!(r["mode"], "sim");
        assert_eq!(r["completed"].as_u64().unwrap() + r["failed"].as_u64().unwrap(), 2000, "{r}");
        assert!(r["mean_vs_round_robin"].as_f64().is_some(), "{r}");
    }
    for w in ["homogeneous", "heterogeneous", "degrading", "bursty"] {
        for s in ["round_robin", "least_connections", "p2c_ewma", "q_learning"] {
            assert!(runs.iter().any(|r| r["workload"] == w && r["strategy"] == s), "{w} / {s}");
        }
    }
}

/// The table mode prints the comparison and the Q-learning verdicts; the actors mode runs
/// a real node (tiny run); round-robin is always included as the reference.
#[test]
fn bench_routing_table_and_actor_mode() {
    let o = flow(&["bench", "routing", "--tasks", "1000", "--workload", "heterogeneous", "--strategy", "q-learning"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("vs RR") && out.contains("q_learning vs round_robin, heterogeneous"), "{out}");

    let o = flow(&[
        "bench",
        "routing",
        "--mode",
        "actors",
        "--tasks",
        "100",
        "--workload",
        "homogeneous",
        "--strategy",
        "q-learning",
        "--json",
    ]);
    let v = json(&o);
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["mode"] == "actors" && r["completed"] == 100), "{v}");
    assert!(runs.iter().any(|r| r["strategy"] == "round_robin"));
}

/// `flow bench cluster` at a tiny scale runs end to end on real processes: both paths
/// are measured, the routed throughput run loses nothing, and one killed node is noticed
/// (a detection time is reported; its value is not asserted: timing belongs to benches).
#[test]
fn bench_cluster_json_reports_both_paths_and_a_detection() {
    let o = flow(&[
        "bench",
        "cluster",
        "--calls",
        "500",
        "--tasks",
        "300",
        "--concurrency",
        "8",
        "--kills",
        "1",
        "--freezes",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["raw"]["samples"], 500);
    assert_eq!(r["routed"]["samples"], 500);
    assert!(r["raw"]["p50_us"].as_f64().unwrap() > 0.0);
    assert!(r["routed"]["p99_us"].as_f64().unwrap() >= r["routed"]["p50_us"].as_f64().unwrap());
    assert_eq!(r["routed_lost"], 0);
    assert!(r["routed_tasks_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(r["killed"]["runs_ms"].as_array().unwrap().len(), 1);
    assert!(r["frozen"]["runs_ms"].as_array().unwrap().is_empty());
}

/// Bad `bench` arguments are refused with the problem named.
#[test]
fn bench_bad_arguments_are_refused() {
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "routing", "--workload", "tsunami"], "unknown workload"),
        (&["bench", "routing", "--mode", "warp"], "invalid value"),
        (&["bench", "routing", "--tasks", "0"], "tasks"),
        (&["bench", "routing", "--strategy", "best"], "unknown strategy"),
        (&["bench", "routing", "--time-scale", "0"], "not a time scale"),
        (&["bench", "cluster", "--calls", "10"], "calls"),
        (&["bench", "cluster", "--concurrency", "0"], "concurrency"),
        (&["bench"], "Usage"),
    ];
    for (args, needle) in cases {
        let o = flow(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

/// The demo with the q_learning strategy from a config file uses the config's model path:
/// the model is saved at the end, and a second demo run starts from it (an unusable file
/// would have been moved aside to `.corrupt`).
#[test]
fn demo_with_q_learning_config_saves_and_reloads_the_model() {
    let dir = std::env::temp_dir().join(format!("flow-cli-qlearning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("q_table.bin");
    let cfg = dir.join("flow.toml");
    std::fs::write(
        &cfg,
        format!(
            "[load_balancer]\nstrategy = \"q_learning\"\n[q_learning]\nmodel_path = {:?}\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let v = json(&flow(&["demo", "--config", cfg.to_str().unwrap(), "--tasks", "300", "--agents", "4", "--json"]));
        assert_eq!(v["lost"], 0);
        assert_eq!(v["strategy"], "q_learning");
        assert!(model.exists(), "model saved");
    }
    assert!(!dir.join("q_table.bin.corrupt").exists(), "the saved model loaded cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Zero agents: every task is dead-lettered, nothing is lost, the demo still succeeds.
#[test]
fn demo_with_zero_agents_dead_letters_everything() {
    let v = json(&flow(&["demo", "--tasks", "200", "--agents", "0", "--json"]));
    assert_eq!(v["dead_lettered"], 200);
    assert_eq!(v["lost"], 0);
}

/// Bad arguments are refused by the parser with a message naming the problem.
#[test]
fn bad_arguments_are_refused() {
    let cases: &[(&[&str], &str)] = &[
        (&["demo", "--crash-rate", "1.5"], "not a probability"),
        (&["demo", "--crash-rate=-0.1"], "not a probability"),
        (&["demo", "--tasks", "many"], "invalid digit"),
        (&["demo", "--strategy", "best"], "unknown strategy"),
        (&["demo", "--swarms", "0"], "swarms"),
        (&["demo", "--frobnicate"], "unexpected argument"),
        (&["launch"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let o = flow(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

/// A missing or invalid config file is an error that says which file or field is wrong.
#[test]
fn bad_config_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("flow-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[circuit_breaker]\nfailure_rate_threshold = 2.0\n").unwrap();
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[router]\nmax_inflight = 3\n").unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "[load_balancer]\nstrategy = \"p2c_ewma\"\n").unwrap();

    let o = flow(&["demo", "--config", bad.to_str().unwrap(), "--tasks", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("circuit_breaker.failure_rate_threshold"), "{}", stderr(&o));

    let o = flow(&["config", "check", typo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("max_inflight"), "{}", stderr(&o));

    let o = flow(&["config", "check", "/nonexistent/flow.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/flow.toml"), "{}", stderr(&o));

    let o = flow(&["config", "check", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&flow(&["demo", "--config", good.to_str().unwrap(), "--tasks", "100", "--json"]));
    assert_eq!(v["strategy"], "p2c_ewma");

    let o = flow(&["config", "defaults"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("[circuit_breaker]"));
    let _ = std::fs::remove_dir_all(&dir);
}
