//! Fuzzing the gossip message decoder (`GossipMessage::decode`, fed by every peer's
//! gateway): arbitrary bytes and mutations of valid Syn/Ack/Ack2/Heartbeat/Leave
//! encodings never panic, never hold more than `MAX_DECODE_ALLOCATION` bytes, and bad
//! input is a typed `CodecError`. `FUZZ_CASES=N` runs longer (see erlmcp-flow-fuzzkit).

erlmcp_flow_fuzzkit::install_alloc_probe!();

use std::time::Instant;

use erlmcp_flow_core::{Codec, NodeName};
use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, measure};
use erlmcp_flow_gossip::{GossipMessage, GossipState, Heartbeat, Rumor, StateLimits};
use proptest::prelude::*;

fn codec() -> Codec {
    Codec::new(erlmcp_flow_gossip::GossipConfig::default().max_message_bytes)
}

/// Valid encodings of every variant, with populated digests and deltas.
fn seeds() -> Vec<Vec<u8>> {
    let mut state = GossipState::new(NodeName::new("n1").unwrap(), StateLimits::default());
    let now = Instant::now();
    for i in 0..5 {
        state.put(format!("agents/n1/a{i}"), format!("value-{i}").into_bytes(), now).unwrap();
    }
    state.delete("agents/n1/a3", now).unwrap();
    let digest = state.digest();
    let delta = state.delta_for(&erlmcp_flow_gossip::Digest::default()).into_iter().next().unwrap_or_default();
    let rumor = Rumor { entry: state.delta_entry("agents/n1/a1").unwrap(), ttl: 3 };
    let codec = codec();
    [
        GossipMessage::Syn { digest, rumors: vec![rumor] },
        GossipMessage::Ack { delta: delta.clone(), request: vec!["agents/n2/x".into()] },
        GossipMessage::Ack2 { delta },
        GossipMessage::Heartbeat(Heartbeat { incarnation: 7, seq: 99 }),
        GossipMessage::Leave,
    ]
    .iter()
    .map(|m| m.encode(&codec).unwrap())
    .collect()
}

/// Decodes `bytes` under the allocation probe; a decoded message must re-encode to a
/// message that decodes equal (no state the encoder cannot represent).
fn decode_checked(bytes: &[u8]) -> Result<(), TestCaseError> {
    let codec = codec();
    let (result, peak) = measure(|| GossipMessage::decode(&codec, bytes));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "{peak} bytes held decoding {} input bytes", bytes.len());
    if let Ok(m) = result {
        let again = m.encode(&codec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(GossipMessage::decode(&codec, &again).ok(), Some(m));
    }
    Ok(())
}

/// The seeds decode; and the probe is live (so the allocation bound means something).
#[test]
fn seeds_decode_and_probe_is_installed() {
    assert!(erlmcp_flow_fuzzkit::probe_installed());
    for s in seeds() {
        GossipMessage::decode(&codec(), &s).unwrap();
    }
}

erlmcp_flow_fuzzkit::decoder_fuzz_tests!(seeds: seeds(), check: decode_checked);
