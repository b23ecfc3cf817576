//! Scenario tests on the pure core ([`Simulation`]): time is driven explicitly, message
//! order comes from a seed, so every run is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use erlmcp_flow_byzantine::{
    Behaviour, ByzantineCore, KeyRing, MessageKind, Output, ROUND_WINDOW, RejectReason, SignedBody, SignedMessage,
    Simulation, ValueDigest, encode,
};
use erlmcp_flow_core::NodeName;
use erlmcp_flow_core::config::ByzantineConfig;

fn config(f: u32) -> ByzantineConfig {
    ByzantineConfig { byzantine_tolerance: f, quorum_size: 2 * f + 1, ..ByzantineConfig::default() }
}

fn value(round: u64) -> Vec<u8> {
    format!("decision #{round}").into_bytes()
}

/// Faulty node indices spread over the member list so that they lead rounds in between
/// honest leaders.
fn spread(n: usize, count: usize) -> Vec<usize> {
    (0..count).map(|i| i * n / count).collect()
}

fn behaviours(n: usize, faulty: &[usize], b: Behaviour) -> Vec<Behaviour> {
    (0..n).map(|i| if faulty.contains(&i) { b } else { Behaviour::Honest }).collect()
}

/// No honest node emitted two decisions for one round.
fn assert_at_most_one_decision_per_round(sim: &Simulation) {
    for ((node, round), ds) in sim.all_decisions() {
        assert_eq!(ds.len(), 1, "{node} decided round {round} {} times", ds.len());
    }
}

/// With N = 3f+1 (4, 7, 10) and f faulty nodes of each behaviour, over 4N rounds with
/// rotating leaders: in every round all honest deciders decide the same digest; in every
/// round with an honest leader every honest node decides exactly the leader's value; faulty
/// nodes whose misbehaviour is attributable (equivocation, wrong-value votes) end up
/// blacklisted at every honest node; no honest node is ever blacklisted by an honest node.
#[test]
fn f_faulty_of_each_behaviour_honest_nodes_agree_and_liars_are_blacklisted() {
    for f in [1usize, 2, 3] {
        let n = 3 * f + 1;
        for b in Behaviour::FAULTY {
            let faulty = spread(n, f);
            let mut sim = Simulation::new(n, &config(f as u32), &behaviours(n, &faulty, b), 11 + n as u64).unwrap();
            let honest = sim.honest();
            for round in 0..(4 * n as u64) {
                let report = sim.run_round(round, &value(round)).unwrap();
                let digests: BTreeSet<ValueDigest> = report.decisions.values().map(|d| d.digest).collect();
                assert!(digests.len() <= 1, "N={n} {b:?} round {round}: honest nodes decided {digests:?}");
                let leader = report.leader.clone().unwrap();
                if sim.behaviour(&leader) == Behaviour::Honest {
                    assert_eq!(report.decisions.len(), honest.len(), "N={n} {b:?} round {round}: {report:?}");
                    assert_eq!(digests.into_iter().next(), Some(ValueDigest::of(&value(round))));
                    for d in report.decisions.values() {
                        assert_eq!(d.value.as_deref(), Some(&value(round)[..]));
                    }
                }
            }
            assert_at_most_one_decision_per_round(&sim);
            let names = sim.names();
            for h in &honest {
                let core = sim.core(h).unwrap();
                for other in &honest {
                    assert!(!core.is_blacklisted(other), "N={n} {b:?}: honest {other} blacklisted at {h}");
                }
                for i in &faulty {
                    let bad = &names[*i];
                    assert_eq!(
                        core.is_blacklisted(bad),
                        b.is_attributable(),
                        "N={n} {b:?}: {bad} at {h}: {:?}",
                        core.stats().peers[bad]
                    );
                }
                if matches!(b, Behaviour::Forge) {
                    assert!(core.stats().rejected(RejectReason::Forged) > 0);
                }
                if matches!(b, Behaviour::Replay) {
                    assert!(core.stats().rejected(RejectReason::Replay) > 0);
                }
            }
        }
    }
}

/// With f+1 faulty nodes (beyond the tolerance) of every non-equivocating behaviour the
/// protocol fails safe. Silent, forging and wrong-value nodes withhold their genuine votes:
/// no honest node decides anything, and in rounds with an honest leader every honest node
/// times out. Replayers still vote genuinely and their replays are refused, so rounds
/// decide the leader's value. In every case honest nodes never decide different values and
/// no node decides twice: non-equivocating faulty nodes tell every node the same thing,
/// so two quorums for different values would need 4f+2 > N distinct voters.
#[test]
fn f_plus_one_non_equivocating_faulty_fail_safe() {
    for f in [1usize, 2, 3] {
        let n = 3 * f + 1;
        for b in [Behaviour::Silent, Behaviour::Forge, Behaviour::Replay, Behaviour::WrongValue] {
            for seed in 0..3 {
                let faulty = spread(n, f + 1);
                let mut sim = Simulation::new(n, &config(f as u32), &behaviours(n, &faulty, b), seed).unwrap();
                let honest = sim.honest();
                for round in 0..(2 * n as u64) {
                    let report = sim.run_round(round, &value(round)).unwrap();
                    let digests: BTreeSet<ValueDigest> = report.decisions.values().map(|d| d.digest).collect();
                    assert!(digests.len() <= 1, "N={n} {b:?} f+1 faulty, round {round}: {report:?}");
                    if b.withholds_votes() {
                        assert!(report.decisions.is_empty(), "N={n} {b:?} f+1 faulty, round {round}: {report:?}");
                        if sim.behaviour(report.leader.as_ref().unwrap()) == Behaviour::Honest {
                            assert_eq!(report.timed_out.len(), honest.len(), "{report:?}");
                        }
                    } else {
                        assert_eq!(report.decisions.len(), honest.len(), "N={n} {b:?} round {round}: {report:?}");
                    }
                }
                assert_at_most_one_decision_per_round(&sim);
            }
        }
    }
}

/// With f+1 equivocators (beyond the tolerance): no honest node ever decides twice for a
/// round, and in rounds with an honest leader no honest node decides anything but the
/// leader's value (every decision needs an honest vote, and honest nodes vote only for
/// the leader's proposal). Agreement in rounds led by an equivocator is NOT asserted: it
/// cannot be guaranteed beyond f (see the next test).
#[test]
fn f_plus_one_equivocators_never_decide_twice_and_honest_leaders_win() {
    for f in [1usize, 2, 3] {
        let n = 3 * f + 1;
        for seed in 0..3 {
            let faulty = spread(n, f + 1);
            let mut sim =
                Simulation::new(n, &config(f as u32), &behaviours(n, &faulty, Behaviour::Equivocate), seed).unwrap();
            for round in 0..(2 * n as u64) {
                let report = sim.run_round(round, &value(round)).unwrap();
                if sim.behaviour(report.leader.as_ref().unwrap()) == Behaviour::Honest {
                    for d in report.decisions.values() {
                        assert_eq!(d.digest, ValueDigest::of(&value(round)), "N={n} round {round}: {report:?}");
                    }
                }
            }
            assert_at_most_one_decision_per_round(&sim);
        }
    }
}

fn craft(ring: &KeyRing, kind: MessageKind, round: u64, nonce: u64, v: &[u8]) -> SignedMessage {
    let body = SignedBody { kind, sender: ring.me().clone(), round, nonce, digest: ValueDigest::of(v) };
    let auth = ring.authenticate(&body);
    SignedMessage { body, value: (kind == MessageKind::Proposal).then(|| v.to_vec()), auth }
}

fn cores(
    n: usize,
    f: u32,
    seed: u64,
) -> (Vec<NodeName>, BTreeMap<NodeName, KeyRing>, BTreeMap<NodeName, ByzantineCore>) {
    let names: Vec<NodeName> = (0..n).map(|i| NodeName::new(format!("n{i}")).unwrap()).collect();
    let rings = KeyRing::provision(&names, seed).unwrap();
    let cores = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), ByzantineCore::new(rings[name].clone(), &config(f), i as u64 * 1000).unwrap()))
        .collect();
    (names, rings, cores)
}

fn decided(out: &[Output]) -> Option<ValueDigest> {
    out.iter().find_map(|o| if let Output::Decided(d) = o { Some(d.digest) } else { None })
}

/// Documents the limit, not a bug: with f+1 faulty nodes that collude (the leader tells
/// half the honest nodes A and the other half B, and every faulty node votes accordingly
/// towards each half), two honest nodes decide different values. Quorums of 2f+1 among
/// 3f+1 overlap in only f+1 nodes, and per-receiver MACs cannot reveal what a node told
/// others, so no protocol with these quorums survives f+1 equivocators: the tolerance f
/// is a deployment obligation.
#[test]
fn f_plus_one_colluding_equivocators_can_split_the_bound_is_tight() {
    let (names, rings, mut cores) = cores(4, 1, 77);
    let round = 0; // led by n0
    let (l, y, h1, h2) = (&names[0], &names[1], &names[2], &names[3]);
    let now = Instant::now();
    let (a, b) = (b"A".to_vec(), b"B".to_vec());
    let mut outcome = BTreeMap::new();
    for (h, v) in [(h1, &a), (h2, &b)] {
        let core = cores.get_mut(h).unwrap();
        let mut out = core.on_message(craft(&rings[l], MessageKind::Proposal, round, 1, v), now);
        out.extend(core.on_message(craft(&rings[l], MessageKind::Vote, round, 2, v), now));
        out.extend(core.on_message(craft(&rings[y], MessageKind::Vote, round, 1, v), now));
        outcome.insert(h.clone(), decided(&out));
    }
    assert_eq!(outcome[h1], Some(ValueDigest::of(&a)));
    assert_eq!(outcome[h2], Some(ValueDigest::of(&b)));
}

/// Bad input is refused, counted by reason, and does not disturb a round: a vote with a bad
/// MAC (Forged), a replayed proposal and vote (Replay), garbage and truncated bytes
/// (Malformed), a stranger's message (UnknownSender), a message claiming to be from the
/// receiver itself (Forged), a round far ahead (FutureRound), a proposal from a non-leader
/// (NotLeader, charged). None panics; the round still decides the leader's value.
#[test]
fn bad_input_is_rejected_and_counted_without_panic() {
    let (names, rings, mut cores) = cores(4, 1, 3);
    let now = Instant::now();
    let target = names[1].clone();
    let leader = &names[0];
    let proposal = craft(&rings[leader], MessageKind::Proposal, 0, 10, b"ok");
    let core = cores.get_mut(&target).unwrap();
    let out = core.on_message(proposal.clone(), now);
    assert!(out.iter().any(|o| matches!(o, Output::Broadcast(m) if m.body.kind == MessageKind::Vote)));

    // Bad MAC: n2's vote with n2's tag for n1 flipped.
    let mut forged = craft(&rings[&names[2]], MessageKind::Vote, 0, 11, b"ok");
    for t in &mut forged.auth.0 {
        t.tag[0] ^= 1;
    }
    core.on_message(forged, now);
    // Replays.
    core.on_message(proposal.clone(), now);
    core.on_bytes(&encode(&proposal).unwrap(), now);
    // Garbage and truncation.
    core.on_bytes(b"\xff\x00garbage", now);
    let bytes = encode(&craft(&rings[&names[2]], MessageKind::Vote, 0, 12, b"ok")).unwrap();
    core.on_bytes(&bytes[..bytes.len() / 2], now);
    core.on_bytes(&[], now);
    // A stranger.
    let stranger = KeyRing::provision(&[NodeName::new("zz").unwrap(), NodeName::new("n1").unwrap()], 3).unwrap();
    core.on_message(craft(&stranger[&NodeName::new("zz").unwrap()], MessageKind::Vote, 0, 1, b"ok"), now);
    // Claims to be the receiver.
    core.on_message(craft(&rings[&target], MessageKind::Vote, 0, 99, b"ok"), now);
    // Far future.
    core.on_message(craft(&rings[&names[2]], MessageKind::Vote, 10 * ROUND_WINDOW, 13, b"ok"), now);
    // Non-leader proposal.
    core.on_message(craft(&rings[&names[3]], MessageKind::Proposal, 0, 14, b"mine"), now);

    let stats = core.stats().clone();
    assert_eq!(stats.rejected(RejectReason::Forged), 2, "{stats:?}");
    assert_eq!(stats.rejected(RejectReason::Replay), 2);
    assert_eq!(stats.rejected(RejectReason::Malformed), 3);
    assert_eq!(stats.rejected(RejectReason::UnknownSender), 1);
    assert_eq!(stats.rejected(RejectReason::FutureRound), 1);
    assert_eq!(stats.rejected(RejectReason::NotLeader), 1);
    assert_eq!(stats.peers[&names[3]].dishonest, 1);
    assert_eq!(stats.peers[&names[2]].dishonest, 0, "a bad MAC is not charged to the claimed sender");

    // The round still decides with genuine votes.
    let mut out = core.on_message(craft(&rings[leader], MessageKind::Vote, 0, 20, b"ok"), now);
    out.extend(core.on_message(craft(&rings[&names[2]], MessageKind::Vote, 0, 21, b"ok"), now));
    assert_eq!(decided(&out), Some(ValueDigest::of(b"ok")));
}

/// A vote arriving after the round timeout does not decide: the round has timed out and
/// stays undecided (decisions only before `round_timeout_ms`).
#[test]
fn no_decision_after_the_round_timeout() {
    let (names, rings, mut cores) = cores(4, 1, 8);
    let now = Instant::now();
    let core = cores.get_mut(&names[1]).unwrap();
    core.on_message(craft(&rings[&names[0]], MessageKind::Proposal, 0, 1, b"v"), now);
    core.on_message(craft(&rings[&names[0]], MessageKind::Vote, 0, 2, b"v"), now);
    let later = now + Duration::from_millis(500);
    let out = core.on_tick(later);
    assert_eq!(out, vec![Output::TimedOut { round: 0 }]);
    let out = core.on_message(craft(&rings[&names[2]], MessageKind::Vote, 0, 3, b"v"), later);
    assert_eq!(decided(&out), None);
    assert!(core.decision(0).is_none() && core.timed_out(0));
}

/// Memory is bounded: over 3 × ROUND_WINDOW rounds a core keeps at most ROUND_WINDOW
/// rounds, and a message for a forgotten round is refused as Stale.
#[test]
fn rounds_are_kept_in_a_bounded_window() {
    let mut sim = Simulation::new(4, &config(1), &[], 1).unwrap();
    let mut first = None;
    for round in 0..(3 * ROUND_WINDOW) {
        sim.run_round(round, &value(round)).unwrap();
        if round == 0 {
            first = Some(sim.names()[0].clone());
        }
    }
    for name in sim.names() {
        assert!(sim.core(&name).unwrap().rounds_kept() <= ROUND_WINDOW as usize);
    }
    let names = sim.names();
    let rings = KeyRing::provision(&names, 1).unwrap();
    let stale = craft(&rings[&first.unwrap()], MessageKind::Vote, 0, 1, b"old");
    let now = sim.now();
    let core = sim.core_mut(&names[1]).unwrap();
    core.on_message(stale, now);
    assert_eq!(core.stats().rejected(RejectReason::Stale), 1);
}
