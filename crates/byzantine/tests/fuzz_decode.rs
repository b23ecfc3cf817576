//! Fuzzing the Byzantine vote decoder (`wire::decode`, fed by every peer's gateway):
//! arbitrary bytes and mutations of valid signed proposals and votes never panic, never
//! hold more than `MAX_DECODE_ALLOCATION` bytes, and bad input is a typed `WireError`.
//! `FUZZ_CASES=N` runs longer (see erlmcp-flow-fuzzkit).

erlmcp_flow_fuzzkit::install_alloc_probe!();

use erlmcp_flow_byzantine::{KeyRing, MessageKind, SignedBody, SignedMessage, ValueDigest, wire};
use erlmcp_flow_core::NodeName;
use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, measure};
use proptest::prelude::*;

/// A proposal (with its value) and a vote, authenticated for 4 members.
fn seeds() -> Vec<Vec<u8>> {
    let nodes: Vec<NodeName> = (0..4).map(|i| NodeName::new(format!("n{i}")).unwrap()).collect();
    let rings = KeyRing::provision(&nodes, 1).unwrap();
    let value = b"the value".to_vec();
    let digest = ValueDigest::of(&value);
    let proposal = SignedBody { kind: MessageKind::Proposal, sender: nodes[0].clone(), round: 3, nonce: 9, digest };
    let vote = SignedBody { kind: MessageKind::Vote, sender: nodes[1].clone(), round: 3, nonce: 10, digest };
    let p = SignedMessage { auth: rings[&nodes[0]].authenticate(&proposal), body: proposal, value: Some(value) };
    let v = SignedMessage { auth: rings[&nodes[1]].authenticate(&vote), body: vote, value: None };
    vec![wire::encode(&p).unwrap(), wire::encode(&v).unwrap()]
}

fn decode_checked(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, peak) = measure(|| wire::decode(bytes));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "{peak} bytes held decoding {} input bytes", bytes.len());
    if let Ok(m) = result {
        // Whatever passes the shape check re-encodes and decodes to itself.
        let again = wire::encode(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(wire::decode(&again).ok(), Some(m));
    }
    Ok(())
}

/// The seeds decode; and the probe is live.
#[test]
fn seeds_decode_and_probe_is_installed() {
    assert!(erlmcp_flow_fuzzkit::probe_installed());
    for s in seeds() {
        wire::decode(&s).unwrap();
    }
}

erlmcp_flow_fuzzkit::decoder_fuzz_tests!(seeds: seeds(), check: decode_checked);
