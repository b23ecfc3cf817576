//! Fuzzing the gateway's envelope decoder (`wire::decode`, the first thing a node does
//! with every cluster message): arbitrary bytes and mutations of valid requests,
//! notices and responses never panic, never hold more than `MAX_DECODE_ALLOCATION`
//! bytes, and bad input is a typed `CodecError`. Written against the public
//! `wire::{encode, decode}` and message types only, so it follows the wire module when
//! it moves. `FUZZ_CASES=N` runs longer (see erlmcp-flow-fuzzkit).

erlmcp_flow_fuzzkit::install_alloc_probe!();

use bytes::Bytes;
use erlmcp_flow_cluster::wire::{Envelope, Hello, Notice, Request, Response, decode, encode};
use erlmcp_flow_core::{AgentError, AgentId, AgentReplyError, CapabilitySet, Codec, DeliveryVerdict, NodeName, Task};
use erlmcp_flow_fuzzkit::{MAX_DECODE_ALLOCATION, measure};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn from() -> NodeName {
    NodeName::new("node-7").unwrap()
}

fn envelope<T: Serialize>(body: T) -> Vec<u8> {
    encode(&Codec::default(), &Envelope { from: from(), body }).unwrap()
}

fn hello() -> Hello {
    Hello { node: from(), incarnation: 42, listen: "127.0.0.1:4000".into(), version: 1 }
}

/// Valid requests (what a gateway's `Call` carries).
fn requests() -> Vec<Vec<u8>> {
    let task = Task::new(CapabilitySet::parse(["compute", "erlang"]).unwrap())
        .with_payload(&b"payload bytes"[..])
        .with_affinity_key("session-1");
    vec![
        envelope(Request::Hello(hello())),
        envelope(Request::Execute { agent: AgentId::new("agent-1").unwrap(), task, timeout_ms: 500 }),
        envelope(Request::Status),
        envelope(Request::Raft(vec![1, 2, 3, 4, 5])),
    ]
}

/// Valid notices (what a gateway's `Cast` carries).
fn notices() -> Vec<Vec<u8>> {
    vec![envelope(Notice::Gossip(vec![9; 40])), envelope(Notice::Byzantine(vec![7; 90]))]
}

/// Valid responses (what comes back from a `Call`).
fn responses() -> Vec<Vec<u8>> {
    let codec = Codec::default();
    [
        Response::Hello(hello()),
        Response::Delivered(DeliveryVerdict::Answered(Ok(Bytes::from_static(b"output")))),
        Response::Delivered(DeliveryVerdict::Answered(Err(AgentReplyError::Agent(AgentError::Retryable(
            "busy".into(),
        ))))),
        Response::Delivered(DeliveryVerdict::Refused("no such agent".into())),
        Response::Delivered(DeliveryVerdict::TimedOut),
        Response::Delivered(DeliveryVerdict::Lost),
        Response::Refused("the Raft ledger is off".into()),
        Response::Raft(vec![0; 16]),
        Response::Error("bad frame".into()),
    ]
    .iter()
    .map(|r| encode(&codec, r).unwrap())
    .collect()
}

/// Decodes `bytes` as `T` under the allocation probe; what decodes re-encodes to the
/// same value.
fn decode_checked<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    let codec = Codec::default();
    let (result, peak) = measure(|| decode::<T>(&codec, bytes));
    prop_assert!(peak <= MAX_DECODE_ALLOCATION, "{peak} bytes held decoding {} input bytes", bytes.len());
    if let Ok(v) = result {
        let again = encode(&codec, &v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode::<T>(&codec, &again).ok(), Some(v));
    }
    Ok(())
}

fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_checked::<Envelope<Request>>(bytes)?;
    decode_checked::<Envelope<Notice>>(bytes)?;
    decode_checked::<Response>(bytes)
}

/// The seeds decode as what they are; and the probe is live.
#[test]
fn seeds_decode_and_probe_is_installed() {
    assert!(erlmcp_flow_fuzzkit::probe_installed());
    let codec = Codec::default();
    for s in requests() {
        decode::<Envelope<Request>>(&codec, &s).unwrap();
    }
    for s in notices() {
        decode::<Envelope<Notice>>(&codec, &s).unwrap();
    }
    for s in responses() {
        decode::<Response>(&codec, &s).unwrap();
    }
}

/// Every valid encoding: requests, notices, responses.
fn seeds() -> Vec<Vec<u8>> {
    [requests(), notices(), responses()].concat()
}

erlmcp_flow_fuzzkit::decoder_fuzz_tests!(seeds: seeds(), check: decode_all);
