//! Every kind of bad input at the MCP boundaries, each answered with a standard JSON-RPC
//! or HTTP error, counted, and followed by a good call that still works: malformed
//! JSON-RPC, unknown method and tool, arguments violating the schema, an oversized body,
//! too many sessions and calls, a wrong token, a bad Host or Origin, and upstreams that
//! exit at start, answer garbage, hang at start or mid-life, or answer malformed results.

mod support;

use erlmcp_flow_mcp::front_door::errors::{MAY_HAVE_RUN, NO_REPLICA, OVERLOADED, UNAUTHORIZED, UPSTREAM_PROTOCOL};
use rmcp::ServiceExt;
use rmcp::model::{ClientRequest, CustomRequest};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use support::*;

const DEMO_TOOLS: usize = 7;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn post(url: &str) -> reqwest::RequestBuilder {
    http().post(url).header("content-type", "application/json").header("accept", "application/json, text/event-stream")
}

/// Malformed JSON-RPC and an unknown method get JSON-RPC errors; an unknown tool and
/// arguments violating the schema get -32602 with a message naming the problem; the
/// node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_unknown_methods_tools_and_arguments() {
    let n = TestNode::start(config(vec![demo("demo", 1, 1, &[])])).await;
    n.wait_tools(DEMO_TOOLS).await;
    for body in
        ["not json at all", "{\"jsonrpc\": \"2.0\", \"id\": 1}", "[1, 2", "{\"jsonrpc\": \"1.0\", \"method\": 3}"]
    {
        let r = post(&n.url()).body(body).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_client_error(), "{body:?}: {status} {text}");
    }
    assert!(n.mcp.stats().http_rejected >= 4);

    let c = client(&n.url()).await;
    let e = c.peer().send_request(ClientRequest::CustomRequest(CustomRequest::new("no/such/method", None))).await;
    assert_eq!(code(&e.unwrap_err()), -32601);
    let e = call(&c, "no_such_tool", json!({})).await.unwrap_err();
    assert_eq!(code(&e), -32602);
    assert!(e.to_string().contains("unknown tool"), "{e}");
    let e = call(&c, "add", json!({"a": "one", "b": 2})).await.unwrap_err();
    assert_eq!(code(&e), -32602);
    assert!(e.to_string().contains("/a: expected \"number\", got string"), "{e}");
    let e = call(&c, "echo", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("missing required property \"text\""), "{e}");
    let s = n.mcp.stats();
    assert_eq!((s.unknown_tool, s.invalid_arguments, s.calls), (1, 2, 0), "refused before routing");
    assert_eq!(text(&call(&c, "echo", json!({"text": "still here"})).await.unwrap()), "still here");
    c.cancel().await.unwrap();
    n.stop().await;
}

/// A body over `mcp.max_body_bytes` is refused (413) without being read whole; a bad
/// `Host` or any `Origin` is refused (DNS-rebinding protection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_bad_host_and_origin() {
    let mut cfg = config(vec![demo("demo", 1, 1, &[])]);
    cfg.mcp.max_body_bytes = 4096;
    let n = TestNode::start(cfg).await;
    n.wait_tools(DEMO_TOOLS).await;
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"x\":\"{}\"}}}}",
        "a".repeat(10_000)
    );
    let r = post(&n.url()).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    .to_string();
    let r = post(&n.url()).header("host", "evil.example").body(init.clone()).send().await.unwrap();
    assert!(r.status().is_client_error(), "bad Host: {}", r.status());
    let r = post(&n.url()).header("origin", "http://evil.example").body(init.clone()).send().await.unwrap();
    assert!(r.status().is_client_error(), "foreign Origin: {}", r.status());
    assert!(n.mcp.stats().http_rejected >= 3);
    let r = post(&n.url()).body(init).send().await.unwrap();
    assert!(r.status().is_success(), "a plain initialize still works: {}", r.status());
    n.stop().await;
}

/// Sessions beyond `mcp.max_sessions` are refused with 503 and a JSON-RPC error; calls
/// beyond `mcp.max_calls_in_flight` with the "overloaded" error. Both recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_sessions_and_calls_in_flight() {
    let mut cfg = config(vec![demo("demo", 1, 2, &[])]);
    cfg.mcp.max_sessions = 2;
    cfg.mcp.max_calls_in_flight = 1;
    let n = TestNode::start(cfg).await;
    n.wait_tools(DEMO_TOOLS).await;
    let a = client(&n.url()).await;
    let b = client(&n.url()).await;
    let third = ().serve(StreamableHttpClientTransport::from_uri(n.url())).await;
    assert!(third.is_err(), "a third session is refused");
    let r = post(&n.url()).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains(&OVERLOADED.to_string()));
    assert!(n.mcp.stats().sessions_refused >= 2);

    let peer = a.peer().clone();
    let long = tokio::spawn(async move {
        peer.call_tool(rmcp::model::CallToolRequestParams::new("sleep").with_arguments(args(json!({"ms": 1500})))).await
    });
    eventually("the long call is in flight", async || n.mcp.stats().calls == 1).await;
    let e = call(&b, "echo", json!({"text": "x"})).await.unwrap_err();
    assert_eq!(code(&e), OVERLOADED, "{e}");
    assert!(long.await.unwrap().is_ok());
    assert_eq!(text(&call(&b, "echo", json!({"text": "x"})).await.unwrap()), "x");

    b.cancel().await.unwrap();
    eventually("a session slot is free again", async || {
        let c = ().serve(StreamableHttpClientTransport::from_uri(n.url())).await;
        c.is_ok()
    })
    .await;
    a.cancel().await.unwrap();
    n.stop().await;
}

/// With a bearer token configured, a request without it or with another one is refused
/// with 401 and a JSON-RPC error; with it, everything works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_refused() {
    let mut cfg = config(vec![demo("demo", 1, 1, &[])]);
    cfg.mcp.auth_token = Some("s3cret-token".into());
    let n = TestNode::start(cfg).await;
    n.wait_tools(DEMO_TOOLS).await;
    for auth in [None, Some("Bearer wrong"), Some("s3cret-token"), Some("Bearer s3cret-token-and-more")] {
        let mut req = post(&n.url()).body("{}");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(r.text().await.unwrap().contains(&UNAUTHORIZED.to_string()));
    }
    assert_eq!(n.mcp.stats().unauthorized, 4);
    assert!(().serve(StreamableHttpClientTransport::from_uri(n.url())).await.is_err());
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(n.url()).auth_header("s3cret-token"),
    );
    let c = Recorder::default().serve(transport).await.expect("the token opens a session");
    assert_eq!(text(&call(&c, "echo", json!({"text": "in"})).await.unwrap()), "in");
    c.cancel().await.unwrap();
    n.stop().await;
}

/// Upstreams that exit at start, answer garbage, or never answer `initialize` are counted
/// as failed starts and retried with backoff, while the node serves its good upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upstreams_at_start_leave_the_node_serving() {
    let mut hang = demo("hangs", 1, 1, &["--mode", "hang"]);
    hang.startup_timeout_ms = 300;
    let cfg = config(vec![
        demo("good", 1, 1, &[]),
        demo("exits", 1, 1, &["--mode", "exit"]),
        demo("garbage", 1, 1, &["--mode", "garbage"]),
        hang,
    ]);
    let n = TestNode::start(cfg).await;
    n.wait_tools(DEMO_TOOLS).await;
    eventually("each broken upstream failed to start twice", async || n.mcp.stats().replica_start_failures >= 6).await;
    let c = client(&n.url()).await;
    assert_eq!(text(&call(&c, "echo", json!({"text": "fine"})).await.unwrap()), "fine");
    let s = n.mcp.stats();
    assert_eq!(s.replica_starts, 1, "only the good upstream started");
    assert_eq!(n.mcp.catalog().len(), DEMO_TOOLS, "nothing listed from broken upstreams");
    c.cancel().await.unwrap();
    n.stop().await;
}

/// An upstream answering a result that is not a `CallToolResult` gets a protocol error;
/// one answering a line that is not JSON makes its (non-idempotent) call "may have run";
/// a replica frozen with SIGSTOP stops answering pings and is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_results_and_frozen_replicas() {
    let mut bad = demo("bad", 1, 1, &["--mode", "bad-result"]);
    bad.call_timeout_ms = 1_000;
    let n = TestNode::start(config(vec![bad, demo("demo", 1, 1, &[])])).await;
    // demo's echo requires `text`, bad's takes nothing: the schemas disagree, so both are
    // namespaced.
    eventually("tools listed", async || {
        n.mcp.catalog().get("bad.echo").is_some() && n.mcp.catalog().get("pid").is_some()
    })
    .await;
    let c = client(&n.url()).await;
    let e = call(&c, "bad.echo", json!({})).await.unwrap_err();
    assert_eq!(code(&e), UPSTREAM_PROTOCOL, "{e}");
    let e = call(&c, "garbage", json!({})).await.unwrap_err();
    assert_eq!(code(&e), MAY_HAVE_RUN, "{e}");
    assert!(n.mcp.stats().upstream_protocol_errors >= 1);

    let pid = call(&c, "pid", json!({})).await.unwrap().structured_content.unwrap()["pid"].as_u64().unwrap();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
    eventually("the frozen replica is detected and restarted", async || n.mcp.stats().replica_hangs >= 1).await;
    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    // Until the restarted replica is up its calls are refused as "no replica" (not run).
    let mut refused = 0;
    eventually("the restarted replica answers", async || {
        match call(&c, "demo.echo", json!({"text": "thawed"})).await {
            Ok(r) => text(&r) == "thawed",
            Err(e) => {
                assert!([NO_REPLICA, -32602].contains(&code(&e)), "{e}");
                refused += 1;
                false
            }
        }
    })
    .await;
    eprintln!("calls refused while the replica restarted: {refused}");
    c.cancel().await.unwrap();
    n.stop().await;
}
