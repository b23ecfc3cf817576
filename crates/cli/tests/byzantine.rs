//! Byzantine quorum voting across four real `flow node` processes on 127.0.0.1 (f = 1):
//! a round decides the leader's value on every node; a vote forged under keys the
//! attacker does not hold, a garbage message and a replayed-style duplicate are rejected
//! and counted by the receiving detector; killing a detector (supervision) leaves voting
//! working. Every node is killed when the test ends.

mod support;

use std::time::Duration;

use erlmcp_flow::byzantine::{KeyRing, MessageKind, SignedBody, SignedMessage, ValueDigest};
use erlmcp_flow::cluster::wire::{Envelope, GatewayMsg, Notice, Request, encode};
use erlmcp_flow::core::{Codec, NodeName};
use support::*;

const MEMBERS: [&str; 4] = ["v1", "v2", "v3", "v4"];

fn voters() -> Vec<Node> {
    let members = MEMBERS.join(",");
    let args = ["--byzantine-members", members.as_str(), "--insecure-byzantine-seed", "7"];
    let mut nodes = vec![Node::start(MEMBERS[0], None, &args)];
    let seed = nodes[0].listen.clone();
    for n in &MEMBERS[1..] {
        nodes.push(Node::start(n, Some(&seed), &args));
    }
    for i in 0..nodes.len() {
        for peer in MEMBERS.iter().filter(|p| **p != MEMBERS[i]) {
            eventually("full mesh", || nodes[i].sees(peer) == Some(true));
        }
    }
    nodes
}

/// Runs round `round` on every node (the leader proposes `value`) and returns each node's
/// `VOTE` answer.
fn round(nodes: &mut [Node], round: u64, value: &str) -> Vec<serde_json::Value> {
    // Followers first: they wait for the round; the leader proposes when asked.
    for n in nodes.iter_mut() {
        n.send(&format!("vote {round} {value}"));
    }
    nodes
        .iter_mut()
        .map(|n| serde_json::from_str(n.expect("VOTE").trim_start_matches("VOTE").trim()).unwrap())
        .collect()
}

fn stats(node: &mut Node) -> serde_json::Value {
    node.ask_json("byz-stats", "BYZ")
}

/// Four voting processes decide the leader's value; a forged vote (tags made with keys
/// that are not v1's), a garbage message and the same forged vote again are rejected and
/// counted at v2, which still takes part in the next round; a killed detector is restarted
/// by its supervisor and votes again.
#[test]
fn four_processes_decide_and_reject_forgeries() {
    let mut nodes = voters();
    for v in round(&mut nodes, 0, "deploy-v2") {
        assert_eq!(v["decided"], "deploy-v2", "{v}");
    }

    // An outsider connects to v2's NodeServer and sends, in v1's name, a vote tagged with
    // keys from another seed, then garbage.
    let v2 = nodes[1].listen.clone();
    with_raw_gateway(&v2, "forger", |gateway| async move {
        let names: Vec<NodeName> = MEMBERS.iter().map(|n| NodeName::new(n).unwrap()).collect();
        let wrong_keys = KeyRing::provision(&names, 8).unwrap().remove(&names[0]).unwrap();
        let body = SignedBody {
            kind: MessageKind::Vote,
            sender: names[0].clone(),
            round: 1,
            nonce: u64::MAX / 2,
            digest: ValueDigest::of(b"evil"),
        };
        let forged = SignedMessage { auth: wrong_keys.authenticate(&body), body, value: None };
        let bytes = erlmcp_flow::byzantine::encode(&forged).unwrap();
        let codec = Codec::default();
        let cast = |body: Notice| {
            let frame = encode(&codec, &Envelope { from: NodeName::new("forger").unwrap(), body }).unwrap();
            gateway.cast(GatewayMsg::Cast(frame)).unwrap();
        };
        // A round trip first (the node records the session meanwhile) and one after (the
        // casts travel on the same ordered link, so they have arrived when it returns).
        let status = || {
            let frame =
                encode(&codec, &Envelope { from: NodeName::new("forger").unwrap(), body: Request::Status }).unwrap();
            let g = gateway.clone();
            async move { g.call(|r| GatewayMsg::Call(frame, r), Some(Duration::from_secs(5))).await.unwrap() }
        };
        status().await;
        cast(Notice::Byzantine(bytes.clone()));
        cast(Notice::Byzantine(vec![0xde, 0xad]));
        cast(Notice::Byzantine(bytes));
        status().await;
    });
    eventually("v2 counted the forgeries and the garbage", || {
        let s = stats(&mut nodes[1]);
        s["rejected"]["Forged"].as_u64().unwrap_or(0) >= 2 && s["rejected"]["Malformed"].as_u64().unwrap_or(0) >= 1
    });
    let s = stats(&mut nodes[1]);
    assert!(s["peers"]["v1"]["blacklisted"] != true, "a forgery in v1's name is not charged to v1: {s}");

    for v in round(&mut nodes, 1, "scale-out") {
        assert_eq!(v["decided"], "scale-out", "{v}");
    }

    // Supervision: kill v3's detector; it is restarted and votes in the next round.
    let line = nodes[2].ask("crash byzantine", "OK");
    assert!(line.contains("restarted"), "{line}");
    for v in round(&mut nodes, 2, "rollback") {
        assert_eq!(v["decided"], "rollback", "{v}");
    }
}
