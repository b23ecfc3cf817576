//! The operators' HTTP listener of `flow node --http-listen`, against real node processes:
//! `/metrics` parsed by a real Prometheus text parser (Python `prometheus_client`) and
//! checked against the node's own `status`; `/healthz` and `/readyz` (ready and not);
//! `/status.json` and the dashboard page; bad input and slow clients at the boundary.

#[path = "../../mcp/tests/support/python.rs"]
mod python;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{DEADLINE, Node};

/// One HTTP/1.1 exchange (`Connection: close`): status code and body.
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // A refused request may be answered before the body is read; the write may then fail.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status =
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, b"")
}

fn http_addr(node: &Node) -> String {
    node.ready["http"].as_str().unwrap_or_else(|| panic!("READY without http: {}", node.ready)).to_string()
}

/// `/metrics` parsed by prometheus_client: `{family: {type, samples: [[name, labels, value]]}}`.
fn scrape(addr: &str) -> Value {
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/observability/parse_metrics.py");
    let mut child = Command::new(python::python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of sample `name` with exactly these labels, if present.
fn sample(m: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m.as_object()?.values().flat_map(|f| f["samples"].as_array().cloned().unwrap_or_default()).find_map(|s| {
        let l = s[1].as_object()?;
        let same = s[0] == name
            && l.len() == labels.len()
            && labels.iter().all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v));
        if same { s[2].as_f64() } else { None }
    })
}

fn value(m: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(m, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in /metrics"))
}

/// Polls `f` until it returns `Some`, up to [`DEADLINE`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two clustered nodes; after a workload on `a`, its `/metrics` parses with the real
/// Prometheus parser, every task counter equals the node's own `status` ledger (and the
/// workload's size), the latency histogram counted every terminal task, and the peer
/// series agree with the status report's membership.
#[test]
fn metrics_parse_and_match_status() {
    let mut a = Node::start("obs-a", None, &["--http-listen", "127.0.0.1:0", "--agents", "4"]);
    let mut b = Node::start("obs-b", Some(&a.listen.clone()), &["--agents", "4"]);
    let addr = http_addr(&a);
    assert!(b.ready["http"].is_null(), "no listener unless asked: {}", b.ready);
    a.ask("wait-agents 8 20000", "OK");
    let run = a.ask_json("run 300 compute 16 7", "RESULT");
    let status = a.status();
    let m = scrape(&addr);

    let ledger: Vec<f64> = status["ledger"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(ledger[0], 300.0, "run {run}");
    for (i, name) in ["accepted", "completed", "failed", "dead_lettered"].iter().enumerate() {
        assert_eq!(value(&m, &format!("erlmcp_flow_tasks_{name}_total"), &[]), ledger[i], "{name}");
    }
    assert_eq!(value(&m, "erlmcp_flow_tasks_in_flight", &[]), 0.0);
    let terminal = ledger[1] + ledger[2] + ledger[3];
    assert_eq!(value(&m, "erlmcp_flow_task_latency_seconds_count", &[]), terminal);
    assert_eq!(value(&m, "erlmcp_flow_task_latency_seconds_bucket", &[("le", "+Inf")]), terminal);
    assert!(value(&m, "erlmcp_flow_task_attempts_total", &[]) >= ledger[1]);
    assert_eq!(
        value(&m, "erlmcp_flow_registry_agents", &[("location", "local")]),
        status["local_agents"].as_f64().unwrap()
    );
    assert_eq!(
        value(&m, "erlmcp_flow_registry_agents", &[("location", "remote")]),
        status["remote_agents"].as_f64().unwrap()
    );
    assert_eq!(value(&m, "erlmcp_flow_up", &[]), 1.0);
    assert_eq!(value(&m, "erlmcp_flow_ready", &[]), 1.0);
    assert_eq!(value(&m, "erlmcp_flow_breakers", &[("state", "closed")]), 8.0);
    let peers = status["peers"].as_array().unwrap();
    assert_eq!(value(&m, "erlmcp_flow_peers", &[]), peers.len() as f64);
    for p in peers {
        let name = p["node"].as_str().unwrap();
        assert_eq!(
            value(&m, "erlmcp_flow_peer_reachable", &[("peer", name)]),
            f64::from(u8::from(p["reachable"].as_bool().unwrap()))
        );
        assert!(sample(&m, "erlmcp_flow_peer_phi", &[("peer", name)]).is_some());
    }
    assert!(sample(&m, "erlmcp_flow_raft_term", &[]).is_none(), "no Raft series without Raft");
    // The counter families carry `_total` and a counter type after parsing.
    assert_eq!(m["erlmcp_flow_tasks_accepted"]["type"], "counter");
    assert_eq!(m["erlmcp_flow_task_latency_seconds"]["type"], "histogram");
    b.kill();
    // The peer turns unreachable in the series too.
    eventually("obs-b unreachable in /metrics", || {
        (sample(&scrape(&addr), "erlmcp_flow_peer_reachable", &[("peer", "obs-b")]) == Some(0.0)).then_some(())
    });
}

/// `/healthz` answers while `/readyz` says 503 with the reason for a Raft voter alone
/// (no quorum, no leader); once a second voter joins, a leader is elected and `/readyz`
/// turns 200, and the Raft series show it.
#[test]
fn readyz_waits_for_a_raft_leader() {
    let voters = ["--raft-voters", "rdy-a,rdy-b,rdy-c", "--http-listen", "127.0.0.1:0"];
    let a = Node::start("rdy-a", None, &voters);
    let addr = http_addr(&a);
    assert_eq!(get(&addr, "/healthz"), (200, r#"{"up":true}"#.to_string()));
    let (status, body) = get(&addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(v["reasons"].to_string().contains("raft has no leader"), "{body}");
    let _b = Node::start("rdy-b", Some(&a.listen.clone()), &voters[..2]);
    eventually("rdy-a ready", || (get(&addr, "/readyz").0 == 200).then_some(()));
    let m = scrape(&addr);
    assert_eq!(value(&m, "erlmcp_flow_raft_has_leader", &[]), 1.0);
    assert!(value(&m, "erlmcp_flow_raft_term", &[]) >= 1.0);
    let roles: f64 = ["leader", "follower", "candidate", "learner", "shutdown"]
        .iter()
        .map(|r| value(&m, "erlmcp_flow_raft_role", &[("role", r)]))
        .sum();
    assert_eq!(roles, 1.0, "one role at a time");
}

/// `/status.json` has the dashboard's shape (peers with phi, agents with node and breaker,
/// task counts, a filling history) and `/` serves one self-contained page that polls it.
#[test]
fn status_json_and_dashboard() {
    let mut a = Node::start("dash-a", None, &["--http-listen", "127.0.0.1:0", "--agents", "2"]);
    let _b = Node::start("dash-b", Some(&a.listen.clone()), &["--agents", "3"]);
    let addr = http_addr(&a);
    a.ask("wait-agents 5 20000", "OK");
    a.ask_json("run 50 compute 4 1", "RESULT");
    let s: Value = eventually("status.json with history", || {
        let (code, body) = get(&addr, "/status.json");
        assert_eq!(code, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        (v["history"].as_array().is_some_and(|h| h.len() >= 2)).then_some(v)
    });
    assert_eq!(s["node"], "dash-a");
    assert_eq!(s["status"], "running");
    assert_eq!(s["ready"]["ready"], true);
    assert_eq!(s["tasks"]["accepted"], 50);
    assert!(s["strategy"].is_string());
    let peers = s["peers"].as_array().unwrap();
    assert!(peers.iter().any(|p| p["node"] == "dash-b" && p["reachable"] == true && p["phi"].is_number()), "{s}");
    assert_eq!(s["agents_total"], 5);
    let agents = s["agents"].as_array().unwrap();
    assert_eq!(agents.iter().filter(|a| a["node"] == "dash-b").count(), 3, "{s}");
    assert!(agents.iter().all(|a| a["breaker"] == "closed" && a["alive"] == true));
    assert!(s["raft"].is_null());
    let h = &s["history"][0];
    assert!(h["completed_per_s"].is_number() && h["t_s"].is_number(), "{h}");

    let (code, page) = get(&addr, "/");
    assert_eq!(code, 200);
    assert!(page.starts_with("<!doctype html>") && page.contains("status.json"));
    for external in ["src=\"http", "href=\"http", "@import", "<link"] {
        assert!(!page.contains(external), "the page loads nothing from outside ({external})");
    }
}

/// Bad input at the boundary gets typed HTTP errors and leaves the node serving: unknown
/// paths (404 JSON), other methods (405 JSON, a large body unread), garbage bytes (400),
/// a client that stalls mid-request is disconnected, and more idle connections than the
/// bound are held without taking the listener down.
#[test]
fn bad_input_and_slow_clients() {
    let mut a = Node::start("bad-a", None, &["--http-listen", "127.0.0.1:0"]);
    let addr = http_addr(&a);
    let (code, body) = get(&addr, "/nope");
    assert_eq!(code, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "not_found");
    let (code, body) = http(&addr, "POST", "/metrics", &vec![b'x'; 4 << 20]);
    assert_eq!(code, 405, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "method_not_allowed");
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"\x00\x01\x02 garbage \xff\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 400"), "{text}");
    }
    // A slow client: half a request, then nothing. The listener closes it.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    // More idle connections than the bound (64).
    let idle: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    if let Err(e) = &closed {
        // A read timeout here means the listener kept the stalled client.
        assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the stalled client was not disconnected: {e}"
        );
    }
    assert!(!String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200"), "a half request is not answered 200");
    // Served again once the idle ones timed out; the node never stopped.
    eventually("listener serves after idle clients", || (get(&addr, "/healthz").0 == 200).then_some(()));
    drop(idle);
    assert_eq!(a.ask_json("status", "STATUS")["node"], "bad-a");
}
