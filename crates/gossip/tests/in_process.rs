//! In-process clusters of gossip actors: dissemination, partitions and failure detection
//! through the real actor shell, timers and (codec-checked) transport.
//!
//! Every test runs on a paused tokio clock: timers fire in virtual time, so the tests are
//! fast and never depend on the machine's speed. Waits are on events, or polls with a
//! (virtual) deadline that only bounds how long a failure takes to report.

use std::future::Future;
use std::time::Duration;

use erlmcp_flow_core::{AgentId, CapabilitySet};
use erlmcp_flow_core::{Codec, NodeName};
use erlmcp_flow_gossip::directory::{AgentRecord, Directory, encode_agents};
use erlmcp_flow_gossip::{
    GossipConfig, GossipEvent, GossipHandle, GossipMessage, Heartbeat, InProcessNetwork, Reachability,
    ReachabilityKind, UnreachableCause,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn network() -> InProcessNetwork {
    InProcessNetwork::with_codec(Codec::new(GossipConfig::for_test().max_message_bytes))
}

/// Polls `check` every 5 ms of virtual time until it holds; panics after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn all_have(nodes: &[GossipHandle], key: &str) -> bool {
    for n in nodes {
        if n.get(key).await.unwrap().is_none() {
            return false;
        }
    }
    true
}

async fn none_has(nodes: &[GossipHandle], key: &str) -> bool {
    for n in nodes {
        if n.get(key).await.unwrap().is_some() {
            return false;
        }
    }
    true
}

/// True when every node in `observers` sees every node in `targets` as `kind`.
async fn all_see(observers: &[GossipHandle], targets: &[GossipHandle], kind: ReachabilityKind) -> bool {
    for o in observers {
        let report = o.report().await.unwrap();
        for t in targets.iter().filter(|t| t.me() != o.me()) {
            if report.peer(t.me()).map(|p| p.reachability.kind()) != Some(kind) {
                return false;
            }
        }
    }
    true
}

fn names(nodes: &[GossipHandle]) -> Vec<NodeName> {
    nodes.iter().map(|n| n.me().clone()).collect()
}

/// A value written on one node (its agent directory entry) reaches every node of the
/// cluster, where it decodes to the same directory; a later delete reaches every node too.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn value_put_on_one_node_reaches_all() {
    let net = network();
    let nodes = net.spawn_cluster("n", 8, &GossipConfig::for_test(), 1).await.unwrap();
    let codec = Codec::default();
    let record = AgentRecord {
        id: AgentId::new("agent-1").unwrap(),
        node: nodes[3].me().clone(),
        capabilities: CapabilitySet::parse(["erlang", "testing"]).unwrap(),
        swarms: Vec::new(),
        weight: 1,
        alive: true,
    };
    let (key, value) = encode_agents(&codec, nodes[3].me(), std::slice::from_ref(&record)).unwrap();
    nodes[3].put(key.clone(), value).await.unwrap();
    eventually("every node has the value", || all_have(&nodes, &key)).await;
    for n in &nodes {
        let snapshot = n.snapshot().await.unwrap();
        let dir = Directory::from_entries(snapshot.iter().map(|(k, v)| (k.as_str(), v)), &codec);
        assert_eq!(dir.find(&CapabilitySet::parse(["erlang"]).unwrap()), vec![&record]);
    }
    nodes[5].delete(key.clone()).await.unwrap();
    eventually("the delete reached every node", || none_has(&nodes, &key)).await;
    assert!(nodes[0].rounds() > 0);
    for n in &nodes {
        n.kill();
    }
}

/// While the network is split in two halves, each half converges on its own writes and
/// not the other's, and each sees the other half unreachable; after the heal every node
/// holds every write, concurrent writes to one key resolve to the same value everywhere,
/// and every node sees every other Up.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn partitioned_halves_diverge_and_converge_after_heal() {
    let net = network();
    let nodes = net.spawn_cluster("p", 8, &GossipConfig::for_test(), 2).await.unwrap();
    let (left, right) = nodes.split_at(4);
    net.partition(&[names(left), names(right)]);
    eventually("each half sees the other unreachable", || async {
        all_see(left, right, ReachabilityKind::Unreachable).await
            && all_see(right, left, ReachabilityKind::Unreachable).await
    })
    .await;
    assert!(all_see(left, left, ReachabilityKind::Up).await);

    left[0].put("left", &b"L"[..]).await.unwrap();
    right[0].put("right", &b"R"[..]).await.unwrap();
    left[1].put("shared", &b"from-left"[..]).await.unwrap();
    right[1].put("shared", &b"from-right"[..]).await.unwrap();
    eventually("each half converged on its side", || async {
        all_have(left, "left").await && all_have(right, "right").await
    })
    .await;
    // The halves diverge: no message crosses the partition.
    assert!(none_has(left, "right").await && none_has(right, "left").await);
    assert_eq!(left[2].get("shared").await.unwrap().unwrap().as_ref(), b"from-left");
    assert_eq!(right[2].get("shared").await.unwrap().unwrap().as_ref(), b"from-right");

    net.heal();
    eventually("every node has every write", || async {
        all_have(&nodes, "left").await && all_have(&nodes, "right").await
    })
    .await;
    eventually("views agree", || async {
        let first = nodes[0].snapshot().await.unwrap();
        for n in &nodes[1..] {
            if n.snapshot().await.unwrap() != first {
                return false;
            }
        }
        true
    })
    .await;
    // Equal histories: the larger writer name wins ("p-05" > "p-01").
    assert_eq!(nodes[0].get("shared").await.unwrap().unwrap().as_ref(), b"from-right");
    eventually("every node sees every other up", || all_see(&nodes, &nodes, ReachabilityKind::Up)).await;
    for n in &nodes {
        n.kill();
    }
}

/// A node that stops heartbeating (its actor is gone, without a word to anyone) is
/// reported unreachable by φ on every other node; the others stay up.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn silent_node_is_marked_unreachable_by_the_others() {
    let net = network();
    let nodes = net.spawn_cluster("s", 5, &GossipConfig::for_test(), 3).await.unwrap();
    // Let heartbeats establish a history.
    eventually("heartbeats have arrived", || async {
        let r = nodes[0].report().await.unwrap();
        r.peers.iter().all(|p| p.heartbeats >= 10)
    })
    .await;
    let victim = nodes[4].me().clone();
    let mut watchers: Vec<_> = nodes[..4].iter().map(|n| n.subscribe()).collect();
    nodes[4].kill();
    for events in &mut watchers {
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(GossipEvent::Membership(c))
                        if c.peer == victim && c.to == Some(Reachability::Unreachable(UnreachableCause::Phi)) =>
                    {
                        return;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("event channel closed: {e}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait).await.expect("the silent node was declared unreachable");
    }
    assert!(all_see(&nodes[..4], &nodes[..4], ReachabilityKind::Up).await);
    for n in &nodes[..4] {
        n.kill();
    }
}

/// A transport disconnect makes the peer unreachable at once (no φ needed); a reconnect
/// brings it back Up.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn session_events_drive_reachability() {
    let net = network();
    let nodes = net.spawn_cluster("d", 3, &GossipConfig::for_test(), 4).await.unwrap();
    let peer = nodes[1].me().clone();
    nodes[0].peer_disconnected(peer.clone()).unwrap();
    let report = nodes[0].report().await.unwrap();
    assert_eq!(report.peer(&peer).unwrap().reachability, Reachability::Unreachable(UnreachableCause::Disconnected));
    nodes[0].peer_connected(peer.clone()).unwrap();
    assert_eq!(nodes[0].report().await.unwrap().peer(&peer).unwrap().reachability.kind(), ReachabilityKind::Up);
    for n in &nodes {
        n.kill();
    }
}

/// The actor's inbox is bounded: deliveries past `max_inbox_messages` are refused and
/// counted instead of growing the mailbox.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn inbox_is_bounded() {
    let net = InProcessNetwork::new();
    let config = GossipConfig { max_inbox_messages: 4, ..GossipConfig::for_test() };
    let nodes = net.spawn_cluster("i", 2, &config, 5).await.unwrap();
    let from = nodes[1].me().clone();
    // No await between deliveries: the single-threaded actor cannot drain in between.
    let results: Vec<_> = (1..=10u64)
        .map(|seq| nodes[0].deliver(from.clone(), GossipMessage::Heartbeat(Heartbeat { incarnation: 9, seq })))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(nodes[0].inbox_dropped(), 6);
    // Once drained, it accepts again.
    nodes[0].report().await.unwrap();
    assert!(nodes[0].deliver(from, GossipMessage::Heartbeat(Heartbeat { incarnation: 9, seq: 11 })).is_ok());
    for n in &nodes {
        n.kill();
    }
}
