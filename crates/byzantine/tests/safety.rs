//! Property tests of agreement against an arbitrary adversary: faulty nodes hold their
//! real keys and send, per honest receiver, any proposal and any set of validly signed
//! votes for values A, B, C, delivered in any order interleaved with honest traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use erlmcp_flow_byzantine::{
    ByzantineCore, KeyRing, MessageKind, Output, SignedBody, SignedMessage, ValueDigest, encode,
};
use erlmcp_flow_core::NodeName;
use erlmcp_flow_core::config::ByzantineConfig;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const VALUES: [&[u8]; 3] = [b"A", b"B", b"C"];

/// What one faulty node sends one honest receiver: proposal value index (or none) and a
/// bit mask of votes.
#[derive(Debug, Clone, Copy)]
struct Action {
    proposal: Option<usize>,
    votes: u8,
}

fn action() -> impl Strategy<Value = Action> {
    (prop::option::of(0usize..3), 0u8..8).prop_map(|(proposal, votes)| Action { proposal, votes })
}

/// Runs one round; returns each honest node's decisions (a node must have at most one).
fn run(
    n: usize,
    faulty: &BTreeSet<usize>,
    round: u64,
    plan: &[Vec<Action>],
    seed: u64,
) -> BTreeMap<usize, Vec<ValueDigest>> {
    let f = (n - 1) / 3;
    let cfg = ByzantineConfig { byzantine_tolerance: f as u32, quorum_size: 2 * f as u32 + 1, ..Default::default() };
    let names: Vec<NodeName> = (0..n).map(|i| NodeName::new(format!("n{i:02}")).unwrap()).collect();
    let rings = KeyRing::provision(&names, 1).unwrap();
    let mut cores: BTreeMap<usize, ByzantineCore> = (0..n)
        .filter(|i| !faulty.contains(i))
        .map(|i| (i, ByzantineCore::new(rings[&names[i]].clone(), &cfg, 0).unwrap()))
        .collect();
    let now = Instant::now();
    let mut queue: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut nonce = 1_000;
    let honest: Vec<usize> = cores.keys().copied().collect();
    for (k, &bad) in faulty.iter().enumerate() {
        for (j, &to) in honest.iter().enumerate() {
            let a = plan[k % plan.len()][j % plan[k % plan.len()].len()];
            let mut send = |kind, v: usize| {
                nonce += 1;
                let body =
                    SignedBody { kind, sender: names[bad].clone(), round, nonce, digest: ValueDigest::of(VALUES[v]) };
                let auth = rings[&names[bad]].authenticate(&body);
                let m =
                    SignedMessage { body, value: (kind == MessageKind::Proposal).then(|| VALUES[v].to_vec()), auth };
                queue.push((to, encode(&m).unwrap()));
            };
            if let Some(v) = a.proposal {
                send(MessageKind::Proposal, v);
            }
            for v in 0..3 {
                if a.votes & (1 << v) != 0 {
                    send(MessageKind::Vote, v);
                }
            }
        }
    }
    let leader = (round % n as u64) as usize;
    let mut decisions: BTreeMap<usize, Vec<ValueDigest>> = BTreeMap::new();
    let mut handle = |from: usize, out: Vec<Output>, queue: &mut Vec<(usize, Vec<u8>)>| {
        for o in out {
            match o {
                Output::Broadcast(m) => {
                    let bytes = encode(&m).unwrap();
                    for &to in &honest {
                        if to != from {
                            queue.push((to, bytes.clone()));
                        }
                    }
                }
                Output::Decided(d) => decisions.entry(from).or_default().push(d.digest),
                _ => {}
            }
        }
    };
    if let Some(core) = cores.get_mut(&leader) {
        let out = core.propose(round, VALUES[0].to_vec(), now).unwrap();
        handle(leader, out, &mut queue);
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    while !queue.is_empty() {
        let (to, bytes) = queue.swap_remove(rng.random_range(0..queue.len()));
        let out = cores.get_mut(&to).unwrap().on_bytes(&bytes, now);
        handle(to, out, &mut queue);
    }
    decisions
}

fn check(decisions: &BTreeMap<usize, Vec<ValueDigest>>) -> Result<(), TestCaseError> {
    let mut all = BTreeSet::new();
    for (node, ds) in decisions {
        prop_assert!(ds.len() <= 1, "node {node} decided {ds:?}");
        all.extend(ds.iter().copied());
    }
    prop_assert!(all.len() <= 1, "honest nodes decided {all:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Agreement with at most f faulty nodes of arbitrary behaviour (including a faulty
    /// leader telling each receiver something different, and faulty voters sending each
    /// receiver any set of votes), for N = 4, 7 and any delivery order: honest nodes never
    /// decide different values and none decides twice. With an honest leader, every honest
    /// node decides the leader's value (liveness).
    #[test]
    fn at_most_f_arbitrary_faulty_never_break_agreement(
        n in prop::sample::select(vec![4usize, 7]),
        faulty_seed in any::<u64>(),
        count in 0usize..=2,
        round in 0u64..20,
        plan in prop::collection::vec(prop::collection::vec(action(), 1..8), 1..4),
        seed in any::<u64>(),
    ) {
        let f = (n - 1) / 3;
        let mut rng = SmallRng::seed_from_u64(faulty_seed);
        let mut faulty = BTreeSet::new();
        while faulty.len() < count.min(f) {
            faulty.insert(rng.random_range(0..n));
        }
        let decisions = run(n, &faulty, round, &plan, seed);
        check(&decisions)?;
        let leader = (round % n as u64) as usize;
        if !faulty.contains(&leader) {
            prop_assert_eq!(decisions.len(), n - faulty.len());
            for ds in decisions.values() {
                prop_assert_eq!(ds[0], ValueDigest::of(VALUES[0]));
            }
        }
    }

    /// Agreement with f+1 (or more, up to 2f) faulty nodes that do not equivocate: each
    /// faulty node sends every receiver the same proposal and at most one vote.
    #[test]
    fn more_than_f_non_equivocating_faulty_never_break_agreement(
        n in prop::sample::select(vec![4usize, 7]),
        faulty_seed in any::<u64>(),
        extra in 1usize..=2,
        round in 0u64..20,
        actions in prop::collection::vec(action(), 1..4),
        seed in any::<u64>(),
    ) {
        let f = (n - 1) / 3;
        let mut rng = SmallRng::seed_from_u64(faulty_seed);
        let mut faulty = BTreeSet::new();
        while faulty.len() < (f + extra).min(2 * f) {
            faulty.insert(rng.random_range(0..n));
        }
        // One action per faulty node, the same towards every receiver, at most one vote.
        let plan: Vec<Vec<Action>> = actions
            .iter()
            .map(|a| vec![Action { proposal: a.proposal, votes: if a.votes == 0 { 0 } else { 1 << (a.votes % 3) } }])
            .collect();
        check(&run(n, &faulty, round, &plan, seed))?;
    }
}
