//! A library writes no file and touches no global state unless configured to.
//!
//! The node under test runs in a child process (this test binary, re-run on an ignored
//! test) whose working directory is a fresh temporary directory, so "no file written"
//! is checked on the directory a default node would write into, not on the repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use erlmcp_flow::prelude::*;

/// Set in the child's environment: the child test runs only then.
const CHILD_ENV: &str = "ERLMCP_FLOW_SIDE_EFFECTS_CHILD";
/// What a pre-existing model file in the child's working directory holds.
const PLANTED: &[u8] = b"not a q-table";

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("erlmcp-side-effects-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Runs [`child_runs_default_nodes`] in a child process with `cwd` as its working directory.
fn run_child(cwd: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_runs_default_nodes", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .current_dir(cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child test did not run:\n{stdout}");
}

/// The child: a node with the default config, and one that only switches to the
/// q_learning strategy (which learns, so it would have a model to save), each routing
/// tasks and shutting down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by default_nodes_write_no_file in a child process"]
async fn child_runs_default_nodes() {
    assert!(std::env::var_os(CHILD_ENV).is_some(), "run by default_nodes_write_no_file, not on its own");
    for strategy in [None, Some(StrategyKind::QLearning)] {
        let mut builder = FlowNode::builder();
        if let Some(kind) = strategy {
            builder = builder.strategy(kind);
        }
        let node = builder.start().await.unwrap();
        assert!(node.q_model().path().is_none(), "no model path by default");
        assert!(!node.q_model().loaded_from_file() && node.q_model().load_warning().is_none(), "no file read");
        for i in 0..2 {
            node.spawn_agent(AgentSpec::parse(&format!("echo-{i}"), ["x"]).unwrap(), || {
                FnAgent::new(|t: &Task| {
                    let p = t.payload.clone();
                    async move { Ok(p) }
                })
            })
            .await
            .unwrap();
        }
        for _ in 0..50 {
            let task = Task::new(CapabilitySet::parse(["x"]).unwrap()).with_payload("ok");
            assert!(node.route(task).await.unwrap().is_completed());
        }
        node.shutdown(Duration::from_secs(2)).await;
    }
}

/// A node started with the default config (round-robin, and q_learning, whose model used
/// to be saved to `data/q_table.bin`) writes no file in its working directory: the
/// directory is empty after the run.
#[test]
fn default_nodes_write_no_file() {
    let dir = fresh_dir("empty");
    run_child(&dir);
    assert_eq!(files_under(&dir), Vec::<PathBuf>::new(), "files appeared in the working directory");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A default node does not read, move aside or overwrite a `data/q_table.bin` it finds in
/// its working directory (it used to load it, or rename an unusable one to `.corrupt`).
#[test]
fn default_nodes_leave_a_found_model_file_alone() {
    let dir = fresh_dir("planted");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/q_table.bin"), PLANTED).unwrap();
    run_child(&dir);
    assert_eq!(files_under(&dir), vec![PathBuf::from("data"), PathBuf::from("data/q_table.bin")]);
    assert_eq!(std::fs::read(dir.join("data/q_table.bin")).unwrap(), PLANTED);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A set model path is validated: an empty one is refused with the field's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_model_path_is_refused() {
    let mut config = FlowConfig::default();
    config.q_learning.model_path = Some(PathBuf::new());
    let err = FlowNode::builder().config(config).start().await.unwrap_err();
    assert!(err.to_string().contains("q_learning.model_path"), "{err}");
}
