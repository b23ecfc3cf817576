//! Tests of the actor shell on the in-process network: calls wait on replies (a decision or
//! a timeout answered by the actor), never on sleeps; no timing assertions.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow_byzantine::{
    Behaviour, ByzantineHandle, InProcessByzantineNet, RejectReason, RoundOutcome, ValueDigest,
};
use erlmcp_flow_core::config::ByzantineConfig;

const WAIT: Duration = Duration::from_secs(10);

fn config(f: u32) -> ByzantineConfig {
    ByzantineConfig { byzantine_tolerance: f, quorum_size: 2 * f + 1, ..ByzantineConfig::default() }
}

fn leader_index(round: u64, n: usize) -> usize {
    (round % n as u64) as usize
}

async fn outcomes(nodes: &[ByzantineHandle], honest: &[usize], round: u64) -> Vec<RoundOutcome> {
    let futures = honest.iter().map(|&i| nodes[i].await_round(round, WAIT));
    futures::future::join_all(futures).await.into_iter().map(|r| r.unwrap()).collect()
}

/// Through the actors, for N = 4, 7, 10 with f wrong-value voters: every round led by an
/// honest node is decided by every honest node with the leader's value, and after those
/// rounds every honest node has blacklisted every wrong-value voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_decide_the_leaders_value_and_blacklist_wrong_voters() {
    for f in [1usize, 2, 3] {
        let n = 3 * f + 1;
        let faulty: Vec<usize> = (0..f).map(|i| 1 + 3 * i).collect();
        let behaviours: Vec<Behaviour> =
            (0..n).map(|i| if faulty.contains(&i) { Behaviour::WrongValue } else { Behaviour::Honest }).collect();
        let honest: Vec<usize> = (0..n).filter(|i| !faulty.contains(i)).collect();
        let net = InProcessByzantineNet::new();
        let nodes = net.spawn_cluster("bz", n, &config(f as u32), &behaviours, 7).await.unwrap();
        let mut decided_rounds = 0;
        for round in 0..(3 * n as u64) {
            let leader = leader_index(round, n);
            if faulty.contains(&leader) {
                continue;
            }
            let value = format!("value {round}");
            nodes[leader].propose(round, value.clone()).await.unwrap();
            let digests: BTreeSet<ValueDigest> = outcomes(&nodes, &honest, round)
                .await
                .into_iter()
                .map(|o| match o {
                    RoundOutcome::Decided(d) => d.digest,
                    other => panic!("N={n} round {round}: {other:?}"),
                })
                .collect();
            assert_eq!(digests, BTreeSet::from([ValueDigest::of(value.as_bytes())]));
            decided_rounds += 1;
        }
        assert!(decided_rounds >= 2 * n);
        for &h in &honest {
            let stats = nodes[h].stats().await.unwrap();
            let blacklisted: BTreeSet<_> = stats.blacklisted().into_iter().collect();
            let expected: BTreeSet<_> = faulty.iter().map(|&i| nodes[i].me().clone()).collect();
            assert_eq!(blacklisted, expected, "N={n} at {}", nodes[h].me());
        }
        net.stop_all();
    }
}

/// Through the actors, with f+1 silent nodes out of 4 the round fails safe: every honest
/// node reports `TimedOut` (answered by the actor's own round timer, with tokio's clock
/// paused and auto-advanced), none decides.
#[tokio::test(start_paused = true)]
async fn actors_time_out_without_a_quorum() {
    let behaviours = [Behaviour::Honest, Behaviour::Silent, Behaviour::Honest, Behaviour::Silent];
    let net = InProcessByzantineNet::new();
    let nodes = net.spawn_cluster("quiet", 4, &config(1), &behaviours, 3).await.unwrap();
    nodes[0].propose(0, "lonely").await.unwrap();
    for o in outcomes(&nodes, &[0, 2], 0).await {
        assert_eq!(o, RoundOutcome::TimedOut);
    }
    net.stop_all();
}

/// Garbage and truncated bytes handed to a detector are rejected and counted as
/// Malformed; the detector keeps running and still decides the next round.
#[tokio::test]
async fn actors_survive_garbage() {
    let net = InProcessByzantineNet::new();
    let nodes = net.spawn_cluster("g", 4, &config(1), &[], 5).await.unwrap();
    for bytes in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff", b"definitely not a vote"] {
        nodes[1].deliver(Bytes::copy_from_slice(bytes)).unwrap();
    }
    let stats = nodes[1].stats().await.unwrap();
    assert_eq!(stats.rejected(RejectReason::Malformed), 4);
    nodes[0].propose(0, "after garbage").await.unwrap();
    for o in outcomes(&nodes, &[0, 1, 2, 3], 0).await {
        assert!(matches!(o, RoundOutcome::Decided(_)), "{o:?}");
    }
    net.stop_all();
}
