//! The Q-learning strategy on a real node: it routes, learns, persists its model to
//! `q_learning.model_path`, loads it back on the next start, and starts with a fresh
//! table and a clear warning, never a failure, when the file is unusable.

mod common;

use std::time::Duration;

use common::*;
use erlmcp_flow::prelude::*;
use erlmcp_flow::router::q_learning::persist;

/// A directory of its own for one test.
fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("erlmcp-qlearning-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn q_node(model_path: &std::path::Path) -> FlowNode {
    let path = model_path.to_path_buf();
    let node = node(|c| {
        c.load_balancer.strategy = StrategyKind::QLearning;
        c.q_learning.model_path = Some(path);
    })
    .await;
    spawn(&node, "fast", &["x"], None, Mode::Payload).await;
    spawn(&node, "slow", &["x"], None, Mode::Slow(5)).await;
    node
}

/// A node learns from routed tasks, saves the table when it shuts down, and the next node
/// started on the same file continues from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_is_saved_at_shutdown_and_reloaded_at_start() {
    let dir = temp_dir("reload");
    let path = dir.join("model/q_table.bin");
    let node = q_node(&path).await;
    assert!(!node.q_model().loaded_from_file());
    assert_eq!(node.stats().strategy, StrategyKind::QLearning);
    for _ in 0..100 {
        assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed());
    }
    eventually("feedback applied", || node.q_model().stats().updates >= 100).await;
    let data = node.q_model().with_table(|t| t.to_data());
    node.shutdown(Duration::from_secs(5)).await;
    assert_eq!(node.q_model().stats().saves, 1);
    assert!(path.exists());

    let again = q_node(&path).await;
    assert!(again.q_model().loaded_from_file(), "{:?}", again.q_model().load_warning());
    assert_eq!(again.q_model().with_table(|t| t.to_data()), data);
    assert!(again.route(task(&["x"], "ok")).await.unwrap().is_completed());
    assert_no_loss(&again).await;
    again.shutdown(Duration::from_secs(5)).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// A corrupted, truncated, wrong-version or foreign model file does not stop the node:
/// it starts with a fresh table and a warning that names the file and the problem,
/// routes with Q-learning as usual, and writes a valid model at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_model_file_gives_a_warning_and_a_fresh_table() {
    let dir = temp_dir("unusable");
    // A valid image to damage.
    let seed_path = dir.join("valid.bin");
    let seed = q_node(&seed_path).await;
    for _ in 0..20 {
        seed.route(task(&["x"], "ok")).await.unwrap();
    }
    eventually("feedback applied", || seed.q_model().stats().updates >= 20).await;
    seed.shutdown(Duration::from_secs(5)).await;
    let image = std::fs::read(&seed_path).unwrap();
    let mut flipped = image.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let mut newer = image.clone();
    newer[8..10].copy_from_slice(&(persist::FORMAT_VERSION + 1).to_le_bytes());

    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("corrupted", flipped, "checksum"),
        ("truncated", image[..image.len() - 9].to_vec(), "truncated"),
        ("version", newer, "version"),
        ("foreign", b"{\"not\": \"a model\"}".to_vec(), "magic"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        let node = q_node(&path).await;
        let warning = node.q_model().load_warning().unwrap_or_else(|| panic!("{name}: no warning")).to_owned();
        assert!(warning.contains(needle) && warning.contains("fresh Q-table"), "{name}: {warning}");
        assert!(warning.contains(&path.display().to_string()), "{warning}");
        assert_eq!(node.q_model().stats().updates, 0, "{name}: fresh table");
        for _ in 0..10 {
            assert!(node.route(task(&["x"], "ok")).await.unwrap().is_completed(), "{name}");
        }
        eventually("feedback applied", || node.q_model().stats().updates >= 10).await;
        assert_no_loss(&node).await;
        node.shutdown(Duration::from_secs(5)).await;
        let saved = persist::load(&path, Default::default(), 64).unwrap().expect("a valid model was written");
        assert!(saved.updates() >= 10, "{name}");
        assert_eq!(std::fs::read(dir.join(format!("{name}.bin.corrupt"))).unwrap(), bytes, "{name}: kept aside");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The strategy can be switched to Q-learning at run time and back; the model is the
/// node's, so learning resumes where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_to_q_learning_and_back_keeps_the_model() {
    let dir = temp_dir("switch");
    let node = q_node(&dir.join("q.bin")).await;
    for _ in 0..10 {
        node.route(task(&["x"], "ok")).await.unwrap();
    }
    eventually("feedback applied", || node.q_model().stats().updates >= 10).await;
    node.set_strategy(StrategyKind::RoundRobin).await.unwrap();
    for _ in 0..10 {
        node.route(task(&["x"], "ok")).await.unwrap();
    }
    let during = node.q_model().stats().updates;
    node.set_strategy(StrategyKind::QLearning).await.unwrap();
    for _ in 0..10 {
        node.route(task(&["x"], "ok")).await.unwrap();
    }
    eventually("learning resumed", || node.q_model().stats().updates >= during + 10).await;
    assert_eq!(during, 10, "round-robin does not feed the model");
    assert_no_loss(&node).await;
    node.shutdown(Duration::from_secs(5)).await;
    std::fs::remove_dir_all(dir).unwrap();
}
