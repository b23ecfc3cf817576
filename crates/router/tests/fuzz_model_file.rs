//! Fuzzing the Q-learning model file decoder (`persist::decode`, run on whatever file is
//! at `router.q_learning.model_path` when a node starts): arbitrary bytes, mutations of a
//! valid file, and mutations of its payload under a *valid* header and checksum (so the
//! payload decoder itself is reached) never panic, never hold more than
//! `MAX_DECODE_ALLOCATION` bytes, and bad input is a typed `ModelFileError`.
//! `FUZZ_CASES=N` runs longer (see erlmcp-flow-fuzzkit).

erlmcp_flow_fuzzkit::install_alloc_probe!();

use erlmcp_flow_core::{AgentId, SwarmName};
use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, arbitrary_bytes, huge_length_variants, measure, mutated};
use erlmcp_flow_router::q_learning::persist::{self, HEADER_LEN};
use erlmcp_flow_router::q_learning::{AgentState, QParams, QTable, TdUpdate};
use proptest::prelude::*;

const MAX_ACTIONS: usize = 64;

/// A trained table's file image.
fn image() -> Vec<u8> {
    let mut t = QTable::new(QParams::default(), MAX_ACTIONS);
    let swarms = [SwarmName::new("blue").unwrap()];
    for i in 0..120u64 {
        let agent = AgentId::new(format!("agent-{}", i % 6)).unwrap();
        let state = AgentState { load: (i % 11) as u8, success: (i % 3) as u8, latency: (i % 2) as u8 };
        t.update(&TdUpdate {
            agent: &agent,
            swarms: if i % 2 == 0 { &swarms } else { &[] },
            state,
            next_state: AgentState { load: 0, ..state },
            latency_ns: 1_000_000 + i * 10_000,
            success: i % 7 != 0,
        });
    }
    persist::encode(&t).unwrap()
}

/// `payload` framed with a correct header (length and checksum).
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = image()[..HEADER_LEN].to_vec();
    out[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    out[20..28].copy_from_slice(&persist::checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode_checked(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, peak) = measure(|| persist::decode(bytes, QParams::default(), MAX_ACTIONS));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "{peak} bytes held decoding {} input bytes", bytes.len());
    if let Ok(table) = result {
        // A table that loads saves again and loads back to the same image.
        let again = persist::encode(&table).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back =
            persist::decode(&again, QParams::default(), MAX_ACTIONS).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(persist::encode(&back).ok(), Some(again));
    }
    Ok(())
}

/// The seed decodes; and the probe is live.
#[test]
fn seed_decodes_and_probe_is_installed() {
    assert!(erlmcp_flow_fuzzkit::probe_installed());
    persist::decode(&image(), QParams::default(), MAX_ACTIONS).unwrap();
    let payload = image()[HEADER_LEN..].to_vec();
    assert_eq!(framed(&payload), image());
}

// The whole file: arbitrary bytes, forged lengths and mutations (header damage is caught
// by magic, version, length or checksum).
erlmcp_flow_fuzzkit::decoder_fuzz_tests!(seeds: seeds(), check: decode_checked);

fn seeds() -> Vec<Vec<u8>> {
    vec![image()]
}

/// Forged huge length prefixes at every position of the payload, re-framed so the
/// checksum passes, are typed errors without a large allocation.
#[test]
fn huge_length_prefixes_in_a_framed_payload_allocate_nothing_large() {
    let payload = image()[HEADER_LEN..].to_vec();
    for p in huge_length_variants(&[payload]) {
        decode_checked(&framed(&p)).unwrap();
    }
}

proptest! {
    #![proptest_config(erlmcp_flow_fuzzkit::config())]

    /// Arbitrary bytes behind a valid header.
    #[test]
    fn arbitrary_framed_bytes_never_panic(bytes in arbitrary_bytes()) {
        decode_checked(&framed(&bytes))?;
    }

    /// Mutations of the payload under a valid header: the payload decoder and the
    /// compatibility checks see them.
    #[test]
    fn mutated_payloads_never_panic(payload in mutated(vec![image()[HEADER_LEN..].to_vec()])) {
        decode_checked(&framed(&payload))?;
    }
}
