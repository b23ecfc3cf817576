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
    for s in ["round-robin", "least-connections", "load-aware", "weighted", "consistent-hash", "p2c-ewma"] {
        let v = json(&flow(&["demo", "--tasks", "500", "--agents", "6", "--strategy", s, "--json"]));
        assert_eq!(v["lost"], 0);
        assert_eq!(v["strategy"], s.replace('-', "_"));
    }
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
