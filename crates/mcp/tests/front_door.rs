//! The front door with real upstream processes (the `mcp-demo-upstream` binary) and an
//! rmcp client over Streamable HTTP: listing, calls through the router, progress,
//! cancellation, replica death and restart, idempotent vs at-most-once calls, management.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use erlmcp_flow::prelude::*;
use erlmcp_flow_mcp::front_door::errors::MAY_HAVE_RUN;
use rmcp::model::{CallToolRequestParams, ClientRequest, Request};
use rmcp::service::PeerRequestOptions;
use serde_json::json;
use support::*;

const DEMO_TOOLS: usize = 7;

/// Every demo tool and every management tool is listed; calls run on the upstream
/// through the router (the node's ledger counts them), structured results pass through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_calls_upstream_tools_through_the_router() {
    let n = TestNode::start(config(vec![demo("demo", 2, 2, &[])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    let c = client(&n.url()).await;
    let tools = c.peer().list_all_tools().await.unwrap();
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for t in ["echo", "add", "sleep", "record", "pid", "fail", "crash", "flow_submit_task", "flow_cluster_status"] {
        assert!(names.contains(&t.to_string()), "{t} missing from {names:?}");
    }
    let before = n.node.stats().flow.completed;
    let r = call(&c, "echo", json!({"text": "hello"})).await.unwrap();
    assert_eq!(text(&r), "hello");
    let r = call(&c, "add", json!({"a": 2, "b": 3.5})).await.unwrap();
    assert_eq!(r.structured_content, Some(json!({"sum": 5.5})));
    let r = call(&c, "fail", json!({"message": "nope"})).await.unwrap();
    assert_eq!(r.is_error, Some(true), "a tool error is a result, passed through");
    assert_eq!(n.node.stats().flow.completed, before + 3);
    // Calls are spread over both replicas.
    let mut pids = std::collections::HashSet::new();
    for _ in 0..20 {
        let r = call(&c, "pid", json!({})).await.unwrap();
        pids.insert(r.structured_content.unwrap()["pid"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 2, "both replicas served calls");
    let s = n.mcp.stats();
    assert_eq!(s.calls, 23);
    assert_eq!(s.calls_completed, 23);
    assert_eq!(s.replica_starts, 2);
    c.cancel().await.unwrap();
    n.stop().await;
}

/// The upstream's progress notifications reach the client; a cancelled call stops on the
/// upstream and frees its lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_cancellation_pass_through() {
    let n = TestNode::start(config(vec![demo("demo", 1, 1, &[])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    let c = client(&n.url()).await;
    let r = call(&c, "sleep", json!({"ms": 100})).await.unwrap();
    assert_eq!(text(&r), "slept 100 ms");
    assert!(c.service().progress.load(Ordering::Relaxed) >= 5, "progress notifications forwarded");

    // A 60 s sleep, cancelled after 200 ms: the only lane must be free again at once.
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("sleep").with_arguments(args(json!({"ms": 60_000}))),
    ));
    let handle = c.peer().send_request_with_option(request, PeerRequestOptions::no_options()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    handle.cancel(Some("test".into())).await.unwrap();
    eventually("the cancellation is counted", async || n.mcp.stats().calls_cancelled == 1).await;
    let started = std::time::Instant::now();
    let r = call(&c, "echo", json!({"text": "after"})).await.unwrap();
    assert_eq!(text(&r), "after");
    assert!(started.elapsed() < Duration::from_secs(10), "the lane was freed by the cancellation");
    c.cancel().await.unwrap();
    n.stop().await;
}

/// A replica that exits mid-call: the non-idempotent call is answered "may have run" (not
/// retried), the replica is restarted, and calls keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_exit_mid_call_is_may_have_run_and_restarts() {
    let n = TestNode::start(config(vec![demo("demo", 1, 2, &[])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    let c = client(&n.url()).await;
    let e = call(&c, "crash", json!({})).await.unwrap_err();
    assert_eq!(code(&e), MAY_HAVE_RUN, "{e}");
    assert!(e.to_string().contains("may have run"), "{e}");
    eventually("the replica restarted", async || n.mcp.stats().replica_starts == 2).await;
    n.wait_tools(DEMO_TOOLS).await;
    let r = call(&c, "echo", json!({"text": "back"})).await.unwrap();
    assert_eq!(text(&r), "back");
    let s = n.mcp.stats();
    assert_eq!(s.replica_exits, 1);
    assert_eq!(s.calls_may_have_run, 1);
    c.cancel().await.unwrap();
    n.stop().await;
}

/// One of two replicas is SIGKILLed under concurrent calls: every idempotent call
/// succeeds (retried on the other replica); every `record` call either succeeded exactly
/// once or was answered "may have run" and ran at most once; none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replica_loses_no_call_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let count_arg = count.to_str().unwrap();
    let n = TestNode::start(config(vec![demo("demo", 2, 4, &["--count-file", count_arg])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    let c = client(&n.url()).await;
    let mut pids = std::collections::HashSet::new();
    while pids.len() < 2 {
        let r = call(&c, "pid", json!({})).await.unwrap();
        pids.insert(r.structured_content.unwrap()["pid"].as_u64().unwrap());
    }
    let victim = *pids.iter().next().unwrap();
    let peer = c.peer().clone();
    let mut calls = Vec::new();
    for i in 0..400 {
        let peer = peer.clone();
        calls.push(tokio::spawn(async move {
            let (tool, a) =
                if i % 2 == 0 { ("sleep", json!({"ms": 20})) } else { ("record", json!({"id": format!("r{i}")})) };
            let r = peer.call_tool(CallToolRequestParams::new(tool).with_arguments(args(a))).await;
            (i, r)
        }));
        if i == 100 {
            let ok = std::process::Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap();
            assert!(ok.success());
        }
    }
    let mut ok_records = Vec::new();
    let mut may_have_run = Vec::new();
    for h in calls {
        let (i, r) = h.await.unwrap();
        match (i % 2 == 0, r) {
            (true, Ok(_)) => {}
            (true, Err(e)) => panic!("idempotent call {i} failed: {e}"),
            (false, Ok(r)) => ok_records.push(text(&r)),
            (false, Err(e)) => {
                assert_eq!(code(&e), MAY_HAVE_RUN, "record {i}: {e}");
                may_have_run.push(format!("r{i}"));
            }
        }
    }
    let lines = std::fs::read_to_string(&count).unwrap();
    let mut runs: HashMap<&str, u32> = HashMap::new();
    for l in lines.lines() {
        *runs.entry(l).or_default() += 1;
    }
    for (id, n) in &runs {
        assert_eq!(*n, 1, "{id} ran {n} times");
    }
    for id in &ok_records {
        assert_eq!(runs.get(id.as_str()), Some(&1), "{id} succeeded but did not run exactly once");
    }
    assert_eq!(ok_records.len() + may_have_run.len(), 200, "every record call answered");
    eventually("the killed replica restarted", async || n.mcp.stats().replica_starts >= 3).await;
    assert_eq!(n.mcp.stats().replica_exits, 1);
    eprintln!(
        "records ok {} may-have-run {}; router retries {} redeliveries {}",
        ok_records.len(),
        may_have_run.len(),
        n.node.stats().flow.retries,
        n.node.stats().flow.redeliveries
    );
    let s = n.node.stats();
    assert!(n.node.wait_idle(DEADLINE).await);
    assert_eq!(s.flow.accepted, s.flow.completed + s.flow.failed + s.flow.dead_lettered + s.flow.in_flight);
    c.cancel().await.unwrap();
    n.stop().await;
}

/// While its only replica is down a tool leaves the listing, and comes back when the
/// replica restarts; sessions are told with `notifications/tools/list_changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_list_follows_replicas() {
    let n = TestNode::start(config(vec![demo("demo", 1, 1, &[])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    let c = client(&n.url()).await;
    assert_eq!(text(&call(&c, "echo", json!({"text": "x"})).await.unwrap()), "x");
    // Make the only replica exit; until it is back, its tools are gone or unavailable.
    let _ = call(&c, "crash", json!({})).await;
    eventually("a list-changed notification arrived", async || c.service().list_changed.load(Ordering::Relaxed) >= 1)
        .await;
    eventually("the tools are back", async || n.mcp.catalog().len() == DEMO_TOOLS).await;
    c.cancel().await.unwrap();
    n.stop().await;
}

/// The management tools: status, listing, strategy switch, task submission by
/// capabilities, task status, dead letters and their replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_tools() {
    let n = TestNode::start(config(vec![demo("demo", 1, 1, &[])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    n.node
        .spawn_agent(AgentSpec::parse("upper-1", ["text"]).unwrap(), || {
            FnAgent::new(|task: &Task| {
                let out = task.payload.to_ascii_uppercase();
                async move { Ok(Bytes::from(out)) }
            })
        })
        .await
        .unwrap();
    let c = client(&n.url()).await;
    let s = call(&c, "flow_cluster_status", json!({})).await.unwrap().structured_content.unwrap();
    assert_eq!(s["node"], "node-1");
    assert!(s["mcp"]["replica_starts"].as_u64().unwrap() >= 1);
    let tools = call(&c, "flow_list_tools", json!({})).await.unwrap().structured_content.unwrap();
    let echo = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == "echo").unwrap().clone();
    assert_eq!(echo["idempotent"], true);
    assert_eq!(echo["replicas_up"], 1);
    let agents = call(&c, "flow_list_agents", json!({"capability": "text"})).await.unwrap().structured_content.unwrap();
    assert_eq!(agents["total"], 1);
    let r = call(&c, "flow_set_strategy", json!({"strategy": "least_connections"})).await.unwrap();
    assert_eq!(r.structured_content.unwrap()["strategy"], "least_connections");
    assert_eq!(n.node.stats().strategy, StrategyKind::LeastConnections);

    let r = call(&c, "flow_submit_task", json!({"capabilities": ["text"], "payload": "abc"})).await.unwrap();
    let id = r.structured_content.unwrap()["task_id"].as_str().unwrap().to_owned();
    let mut status = serde_json::Value::Null;
    eventually("the task completes", async || {
        status = call(&c, "flow_task_status", json!({"task_id": id})).await.unwrap().structured_content.unwrap();
        status["state"] == "completed"
    })
    .await;
    assert_eq!(status["output"], "ABC");

    let r = call(&c, "flow_submit_task", json!({"capabilities": ["nobody-has-this"]})).await.unwrap();
    let id = r.structured_content.unwrap()["task_id"].as_str().unwrap().to_owned();
    eventually("dead-lettered", async || {
        let s = call(&c, "flow_task_status", json!({"task_id": id})).await.unwrap().structured_content.unwrap();
        s["state"] == "dead_lettered"
    })
    .await;
    let dl = call(&c, "flow_dead_letters", json!({})).await.unwrap().structured_content.unwrap();
    assert_eq!(dl["queued"], 1);
    let r = call(&c, "flow_replay_dead_letters", json!({})).await.unwrap();
    assert_eq!(r.structured_content.unwrap()["replayed"], 1);
    let e = call(&c, "flow_set_strategy", json!({"strategy": "fastest"})).await.unwrap_err();
    assert_eq!(code(&e), -32602);
    let e = call(&c, "flow_task_status", json!({"task_id": "not-a-uuid"})).await.unwrap_err();
    assert_eq!(code(&e), -32602);
    c.cancel().await.unwrap();
    n.stop().await;
}
