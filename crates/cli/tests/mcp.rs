//! The MCP front door with real parts: `flow` node processes on 127.0.0.1 whose upstreams
//! are Python MCP servers (the `mcp` SDK's MCPServer), driven by the Python `mcp` client.
//! The Python environment is created on first use (see `support/python.rs`).
//!
//! * three nodes with the replicated ledger; every node lists every tool of the cluster;
//!   2 000 concurrent calls from Python clients on two nodes while one upstream process is
//!   SIGKILLed and the third node is SIGKILLed: every read-only call succeeds, every other
//!   call either succeeded and ran exactly once or was answered "may have run" and ran at
//!   most once, and every call got an answer; calls running on the killed node (of a tool
//!   only it serves) are answered "may have run";
//! * `flow mcp-stdio` spawned by the Python client, as a desktop MCP host would.

#[path = "../../mcp/tests/support/python.rs"]
mod python;
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Node, eventually};

/// `MAY_HAVE_RUN` of the front door's error codes.
const MAY_HAVE_RUN: i64 = -32010;

/// Writes a node config running `replicas` replicas of the Python upstream as `name`.
fn node_config(dir: &Path, file: &str, name: &str, replicas: u32, count: &Path, extra_tool: Option<&str>) -> String {
    let extra = extra_tool.map(|t| format!(", EXTRA_TOOL = \"{t}\"")).unwrap_or_default();
    let text = format!(
        r#"
[mcp]
ping_interval_ms = 500
ping_timeout_ms = 2000
restart_backoff_base_ms = 100
restart_backoff_max_ms = 1000
catalog_refresh_ms = 100

[[mcp.upstream]]
name = "{name}"
command = "{python}"
args = ["{script}"]
replicas = {replicas}
max_concurrency = 8
call_timeout_ms = 55000
env = {{ COUNT_FILE = "{count}", UPSTREAM_NAME = "{name}"{extra} }}
"#,
        python = python::python().display(),
        script = python::script("upstream.py").display(),
        count = count.display(),
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Tools the node lists, from its `mcp` control command.
fn listed(node: &mut Node) -> Vec<String> {
    let v = node.ask_json("mcp", "MCP");
    v["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

/// The child processes of `pid` (its upstream replicas).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Lines of a child's stdout on a channel.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line starting with `prefix` within `within`.
fn expect_line(rx: &mpsc::Receiver<String>, prefix: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no {prefix} line within {within:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the script exited before a {prefix} line"),
        };
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_owned();
        }
    }
}

/// Three nodes (Raft on), Python upstreams, Python clients on two nodes, 2 000 concurrent
/// calls while an upstream process and then a whole node are SIGKILLed: idempotent calls
/// all succeed, non-idempotent ones succeed exactly once or are answered "may have run"
/// (and ran at most once), no call goes unanswered, and the ledgers close every task.
#[test]
fn python_clients_and_upstreams_on_three_nodes_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("executions");
    let ca = node_config(dir.path(), "a.toml", "py", 2, &count, None);
    let cb = node_config(dir.path(), "b.toml", "py", 2, &count, None);
    let cc = node_config(dir.path(), "c.toml", "extra", 2, &count, Some("c_only"));
    let voters = ["--raft-voters", "a,b,c"];
    let flags = |config: &str| -> Vec<String> {
        ["--config", config, "--mcp-listen", "127.0.0.1:0", voters[0], voters[1]]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let fa = flags(&ca);
    let mut a = Node::start("a", None, &fa.iter().map(String::as_str).collect::<Vec<_>>());
    let fb = flags(&cb);
    let mut b = Node::start("b", Some(&a.listen.clone()), &fb.iter().map(String::as_str).collect::<Vec<_>>());
    let fc = flags(&cc);
    let mut c = Node::start("c", Some(&a.listen.clone()), &fc.iter().map(String::as_str).collect::<Vec<_>>());
    let url_a = a.ready["mcp"].as_str().unwrap().to_owned();
    let url_b = b.ready["mcp"].as_str().unwrap().to_owned();

    // Every node lists every tool, including the one only node c's upstream has.
    for node in [&mut a, &mut b, &mut c] {
        eventually(&format!("{} lists the cluster's tools", node.name), || {
            let tools = listed(node);
            ["echo", "lookup", "increment", "slow", "whoami", "c_only"].iter().all(|t| tools.iter().any(|x| x == t))
        });
    }

    let mut load = Command::new(python::python())
        .arg(python::script("load.py"))
        .args(["2000", "64", "250", &url_a, &url_b, "--pinned", "c_only", "8", "45000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("load.py starts");
    let out = lines_of(load.stdout.take().unwrap());
    let listed_by_clients: Vec<Vec<String>> =
        serde_json::from_str(&expect_line(&out, "LISTED", Duration::from_secs(60))).unwrap();
    for tools in &listed_by_clients {
        for t in ["c_only", "increment", "flow_submit_task"] {
            assert!(tools.iter().any(|x| x == t), "the Python client sees {t}: {tools:?}");
        }
    }
    expect_line(&out, "PROGRESS 200", Duration::from_secs(120));
    let victim = *children(b.pid()).first().expect("node b runs upstream processes");
    assert!(Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap().success());
    expect_line(&out, "PROGRESS 500", Duration::from_secs(120));
    let c_children = children(c.pid());
    c.kill();
    for p in c_children {
        // Orphaned replicas of the killed node exit when their stdin closes; make sure.
        let _ = Command::new("kill").args(["-KILL", &p.to_string()]).stderr(Stdio::null()).status();
    }
    let result: serde_json::Value =
        serde_json::from_str(&expect_line(&out, "RESULT", Duration::from_secs(300))).unwrap();
    assert!(load.wait().unwrap().success());
    let results = result["calls"].as_array().unwrap();

    let executions = std::fs::read_to_string(&count).unwrap();
    // `<tool> <id> <upstream>` per execution; counted by `<tool> <id>`.
    let mut runs: HashMap<String, u32> = HashMap::new();
    let mut on_c = 0;
    for line in executions.lines() {
        let mut w = line.split(' ');
        let key = format!("{} {}", w.next().unwrap(), w.next().unwrap());
        on_c += u32::from(w.next() == Some("extra"));
        *runs.entry(key).or_default() += 1;
    }
    assert!(on_c > 0, "node c's upstream ran calls before it was killed");
    // The long calls of the tool only node c serves were running there when it died.
    for p in result["pinned"].as_array().unwrap() {
        assert_eq!(p["outcome"].as_i64(), Some(MAY_HAVE_RUN), "{p}");
        let id = p["id"].as_str().unwrap();
        assert_eq!(runs.get(format!("c_only {id}").as_str()), Some(&1), "{id} ran once on node c");
    }
    let (mut ok, mut may_have_run, mut resends) = (0, 0, 0);
    for r in results {
        let id = r["id"].as_str().unwrap();
        resends += r["resends"].as_u64().unwrap();
        match (r["tool"].as_str().unwrap(), &r["outcome"]) {
            ("lookup", o) => {
                assert_eq!(o, "ok", "read-only call {id} must succeed: {r}");
                assert!(runs.get(format!("lookup {id}").as_str()).copied().unwrap_or(0) >= 1, "{id} ran");
            }
            ("increment", o) if o == "ok" => {
                ok += 1;
                assert_eq!(
                    runs.get(format!("increment {id}").as_str()),
                    Some(&1),
                    "{id} succeeded, so ran exactly once"
                );
            }
            ("increment", o) if o.as_i64() == Some(MAY_HAVE_RUN) => {
                may_have_run += 1;
                let n = runs.get(format!("increment {id}").as_str()).copied().unwrap_or(0);
                assert!(n <= 1, "{id} answered may-have-run ran {n} times");
            }
            (_, o) => panic!("call {id} lost or failed: {o} ({r})"),
        }
    }
    for (line, n) in &runs {
        if line.starts_with("increment") {
            assert_eq!(*n, 1, "{line} ran {n} times");
        }
    }
    assert_eq!(ok + may_have_run, 1000);
    eprintln!(
        "increment: {ok} ok, {may_have_run} may have run; {resends} resends of calls that did not run; {on_c} executions on node c"
    );
    let b_stats = b.ask_json("mcp", "MCP")["stats"].clone();
    assert_eq!(b_stats["replica_exits"], 1, "the killed upstream process was noticed: {b_stats}");
    assert!(b_stats["replica_starts"].as_u64().unwrap() >= 3, "and restarted: {b_stats}");

    // The survivors' replicated ledgers close every task.
    for node in [&mut a, &mut b] {
        eventually(&format!("{}'s ledger has no open task", node.name), || {
            let l = node.ask_json("ledger", "LEDGER");
            l["open"] == 0
        });
    }
}

/// A desktop-style host (the Python client) spawns `flow mcp-stdio --join`: it lists the
/// cluster's tools, calls one served by another node's Python upstream, gets -32602 for
/// bad arguments, and reads the cluster status; nothing but MCP is written to stdout.
#[test]
fn python_client_drives_flow_mcp_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("executions");
    let ca = node_config(dir.path(), "a.toml", "py", 1, &count, None);
    let mut a = Node::start("a", None, &["--config", &ca]);
    eventually("node a lists its upstream's tools", || listed(&mut a).iter().any(|t| t == "increment"));
    let out = Command::new(python::python())
        .arg(python::script("stdio_client.py"))
        .args([env!("CARGO_BIN_EXE_flow"), &a.listen])
        .stderr(Stdio::inherit())
        .output()
        .expect("stdio_client.py runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).expect("a RESULT line");
    let r: serde_json::Value = serde_json::from_str(result).unwrap();
    let tools: Vec<&str> = r["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tools.contains(&"increment") && tools.contains(&"flow_list_tools"), "{tools:?}");
    assert_eq!(r["echo"], "over stdio");
    assert_eq!(r["increment"], "stdio-1");
    assert_eq!(r["bad_arguments"], -32602);
    assert!(r["status_node"].as_str().unwrap().starts_with("mcp-stdio-"), "{r}");
    assert_eq!(r["peers"], serde_json::json!(["a"]));
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "increment stdio-1 py\n");
}
