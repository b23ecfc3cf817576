//! The typed layer: typed agents and calls over the `Bytes` API, the versioned payload
//! codec, and every way a typed call can end, each as its own [`TypedError`].

use std::time::Duration;

use erlmcp_flow::prelude::*;
use erlmcp_flow::typed::INPUT_REJECTED;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Sentence {
    text: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    words: u32,
    upper: String,
}

/// Counts words and upper-cases; refuses (permanently) an empty sentence.
struct Summarizer;

impl TypedAgent for Summarizer {
    type Input = Sentence;
    type Output = Summary;

    async fn handle(&mut self, input: Sentence) -> Result<Summary, AgentError> {
        if input.text.is_empty() {
            return Err(AgentError::Permanent("nothing to summarize".into()));
        }
        Ok(Summary { words: input.text.split_whitespace().count() as u32, upper: input.text.to_uppercase() })
    }
}

fn text_task() -> Task {
    Task::new(CapabilitySet::parse(["text"]).unwrap())
}

async fn node_with_summarizer() -> FlowNode {
    let node = FlowNode::builder().config(FlowConfig::for_test()).start().await.unwrap();
    node.spawn_agent(AgentSpec::parse("summarizer", ["text"]).unwrap(), || Typed(Summarizer)).await.unwrap();
    node
}

fn sentence(text: &str) -> Sentence {
    Sentence { text: text.into() }
}

async fn assert_no_loss_and_stop(node: FlowNode) -> NodeStats {
    assert!(node.wait_idle(Duration::from_secs(20)).await);
    let s = node.stats();
    assert_eq!(s.flow.accepted, s.flow.completed + s.flow.failed + s.flow.dead_lettered, "{s:?}");
    node.shutdown(Duration::from_secs(1)).await;
    s
}

/// A typed value goes to a typed agent and its typed output comes back, through
/// `route_typed` and through `submit_typed` + `outcome`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_round_trip() {
    let node = node_with_summarizer().await;
    let out: Summary = node.route_typed(text_task(), &sentence("hello typed world")).await.unwrap();
    assert_eq!(out, Summary { words: 3, upper: "HELLO TYPED WORLD".into() });

    let handle = node.submit_typed::<_, Summary>(text_task(), &sentence("a b")).await.unwrap();
    assert_eq!(handle.outcome().await.unwrap(), Summary { words: 2, upper: "A B".into() });
    let s = assert_no_loss_and_stop(node).await;
    assert_eq!(s.flow.completed, 2);
}

/// The agent's own permanent error reaches the caller as `TypedError::Agent` with the
/// agent and its message, distinct from routing failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_error_is_typed() {
    let node = node_with_summarizer().await;
    let err = node.route_typed::<_, Summary>(text_task(), &sentence("")).await.unwrap_err();
    match err {
        TypedError::Agent { agent, message } => {
            assert_eq!(agent.as_str(), "summarizer");
            assert_eq!(message, "nothing to summarize");
        }
        other => panic!("expected TypedError::Agent, got {other:?}"),
    }
    let s = assert_no_loss_and_stop(node).await;
    assert_eq!(s.flow.failed, 1);
}

/// Garbage sent through the `Bytes` API to a typed agent (no codec byte, an unknown
/// codec byte, a known byte with a truncated body, trailing bytes) is answered with a
/// permanent failure naming the input rejection; the agent is not restarted, is not
/// retried elsewhere, and the node keeps serving typed calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_payload_is_rejected_and_the_node_keeps_serving() {
    let node = node_with_summarizer().await;
    let mut valid = PayloadCodec::Bincode2V1.encode(&sentence("ok"), 1 << 20).unwrap().to_vec();
    valid.push(0);
    let garbage: [&[u8]; 4] = [b"", b"hello", &[1, 200], &valid];
    for payload in garbage {
        let outcome = node.route(text_task().with_payload(payload.to_vec())).await.unwrap();
        match &outcome {
            TaskOutcome::Failed { reason: FailureReason::Permanent { agent, message }, attempts } => {
                assert_eq!(agent.as_str(), "summarizer");
                assert!(message.starts_with(INPUT_REJECTED), "{message}");
                assert_eq!(*attempts, 1, "not retried");
            }
            other => panic!("{payload:?}: expected a permanent failure, got {other:?}"),
        }
    }
    let out: Summary = node.route_typed(text_task(), &sentence("still here")).await.unwrap();
    assert_eq!(out.words, 2);
    let s = assert_no_loss_and_stop(node).await;
    assert_eq!((s.flow.failed, s.flow.completed), (4, 1));
    assert_eq!(s.agent_restarts, 0, "a bad input is not a crash");
}

/// A typed caller that sends the wrong input type gets `InputRejected`; one that expects
/// the wrong output type gets `Decode` (the task itself completed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_are_typed_errors() {
    let node = node_with_summarizer().await;
    // `true` is one byte; a `Sentence` needs a length and that many bytes.
    let err = node.route_typed::<_, Summary>(text_task(), &true).await.unwrap_err();
    assert!(
        matches!(&err, TypedError::InputRejected { agent, .. } if agent.as_str() == "summarizer"),
        "expected InputRejected, got {err:?}"
    );
    // A `Summary` read as a u64 leaves the string behind.
    let err = node.route_typed::<_, u64>(text_task(), &sentence("two words")).await.unwrap_err();
    assert!(matches!(&err, TypedError::Decode { error: PayloadError::Codec(_), .. }), "expected Decode, got {err:?}");
    let s = assert_no_loss_and_stop(node).await;
    assert_eq!((s.flow.failed, s.flow.completed), (1, 1));
}

/// Routing outcomes are typed too: no capable agent is `DeadLettered` with its reason;
/// an input over `codec.max_payload_bytes` is an `Encode` error and nothing is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_outcomes_and_encode_errors_are_typed() {
    let node = node_with_summarizer().await;
    let nobody = Task::new(CapabilitySet::parse(["nobody"]).unwrap());
    let err = node.route_typed::<_, Summary>(nobody, &sentence("x")).await.unwrap_err();
    assert!(
        matches!(err, TypedError::DeadLettered { reason: DeadLetterReason::NoCapableAgent, .. }),
        "expected DeadLettered, got {err:?}"
    );
    let huge = sentence(&"x".repeat(node.config().codec.max_payload_bytes + 1));
    let err = node.route_typed::<_, Summary>(text_task(), &huge).await.unwrap_err();
    assert!(matches!(err, TypedError::Encode(PayloadError::Codec(_))), "expected Encode, got {err:?}");
    let s = assert_no_loss_and_stop(node).await;
    assert_eq!((s.flow.accepted, s.flow.dead_lettered), (1, 1));
}

/// The codec byte: known codecs round-trip, an empty payload or an unknown byte is a
/// typed error, not a panic.
#[test]
fn payload_codec_tags_are_checked() {
    let bytes = PayloadCodec::Bincode2V1.encode(&(7u32, "x"), 64).unwrap();
    assert_eq!(bytes[0], PayloadCodec::Bincode2V1.tag());
    assert_eq!(PayloadCodec::decode::<(u32, String)>(&bytes, 64).unwrap(), (7, "x".to_string()));
    assert_eq!(PayloadCodec::decode::<u32>(&[], 64), Err(PayloadError::Empty));
    assert_eq!(PayloadCodec::decode::<u32>(&[0x7f, 1], 64), Err(PayloadError::UnknownCodec(0x7f)));
    assert!(matches!(PayloadCodec::encode(PayloadCodec::Bincode2V1, &vec![0u8; 100], 64), Err(PayloadError::Codec(_))));
}

proptest::proptest! {
    /// Arbitrary bytes (with a valid codec byte in front, or not) decode to a value or a
    /// `PayloadError`, never a panic, for a struct, a string and a sequence type.
    #[test]
    fn arbitrary_payloads_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), tag in proptest::bool::ANY) {
        if tag && !bytes.is_empty() {
            bytes[0] = PayloadCodec::Bincode2V1.tag();
        }
        let _ = PayloadCodec::decode::<Summary>(&bytes, 1 << 20);
        let _ = PayloadCodec::decode::<String>(&bytes, 1 << 20);
        let _ = PayloadCodec::decode::<Vec<Summary>>(&bytes, 1 << 20);
    }
}
