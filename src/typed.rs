//! Typed tasks and agents: serde values in, serde values out, over the `Bytes` API.
//!
//! * An agent implements [`TypedAgent`] (its `Input` and `Output` types and a `handle`
//!   on decoded values) and is spawned through the ordinary spawn path wrapped in
//!   [`Typed`]: `node.spawn_agent(spec, || Typed(MyAgent))`.
//! * A caller uses [`TypedRoute::route_typed`] (or [`TypedRoute::submit_typed`]) on a
//!   [`FlowNode`]: it encodes the input into the task's payload, routes the task like any
//!   other (discovery, strategy, breakers, retries, the ledger) and decodes the output,
//!   answering a [`TypedError`] that keeps apart what the codec refused, what the agent
//!   said, and how routing ended.
//!
//! # Wire format
//!
//! A typed payload is one version byte naming its [`PayloadCodec`], then the body:
//! `[1] ++ bincode2(value)` for [`PayloadCodec::Bincode2V1`] (bincode 2's standard
//! config: varint integers, little-endian; the whole body must be consumed). The byte
//! makes the format an explicit choice that can change without guessing: a payload
//! with an unknown tag, a truncated body or trailing bytes is a [`PayloadError`], never a
//! panic. bincode is not self-describing, so a payload of another type *can* decode if
//! its bytes happen to fit; the tag checks the format, not the type.
//!
//! An input the agent cannot decode ends the task `Failed` with
//! [`FailureReason::Permanent`] whose message starts with [`INPUT_REJECTED`] (it is not
//! retried elsewhere: every agent would refuse it, and it does not count against the
//! agent's circuit breaker); [`TypedRoute::route_typed`] reports it as
//! [`TypedError::InputRejected`]. The agent keeps serving.

use std::future::Future;
use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};
use erlmcp_flow_core::{
    Agent, AgentError, AgentId, Codec, CodecError, DeadLetterReason, FailureReason, SubmitError, Task, TaskId,
    TaskOutcome,
};
use erlmcp_flow_router::TaskHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::node::FlowNode;

/// The start of the permanent-failure message of a typed agent that could not decode
/// its input.
pub const INPUT_REJECTED: &str = "typed input rejected: ";

/// The encoding of a typed payload, named by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PayloadCodec {
    /// Tag `1`: bincode 2, standard config, through serde.
    #[default]
    Bincode2V1,
}

impl PayloadCodec {
    /// The version byte in front of the body.
    pub const fn tag(self) -> u8 {
        match self {
            PayloadCodec::Bincode2V1 => 1,
        }
    }

    /// The codec a version byte names, if known.
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(PayloadCodec::Bincode2V1),
            _ => None,
        }
    }

    /// Encodes `value` as a tagged payload of at most `max_bytes` (tag included).
    pub fn encode<T: Serialize + ?Sized>(self, value: &T, max_bytes: usize) -> Result<Bytes, PayloadError> {
        let body = Codec::new(max_bytes.saturating_sub(1)).encode(value).map_err(PayloadError::Codec)?;
        let mut out = BytesMut::with_capacity(body.len() + 1);
        out.put_u8(self.tag());
        out.put_slice(&body);
        Ok(out.freeze())
    }

    /// Decodes a tagged payload of at most `max_bytes` (tag included), whatever codec its
    /// tag names.
    pub fn decode<T: DeserializeOwned>(payload: &[u8], max_bytes: usize) -> Result<T, PayloadError> {
        let (&tag, body) = payload.split_first().ok_or(PayloadError::Empty)?;
        match PayloadCodec::from_tag(tag).ok_or(PayloadError::UnknownCodec(tag))? {
            PayloadCodec::Bincode2V1 => {
                Codec::new(max_bytes.saturating_sub(1)).decode(body).map_err(PayloadError::Codec)
            }
        }
    }
}

/// Why a typed payload could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The payload is empty: no codec byte.
    #[error("empty payload (no codec byte)")]
    Empty,
    /// The first byte names no codec this build knows.
    #[error("unknown payload codec byte {0:#04x}")]
    UnknownCodec(u8),
    /// The codec refused the body (not a value of the type, truncated, trailing bytes,
    /// too large).
    #[error(transparent)]
    Codec(CodecError),
}

/// An agent on typed values. Wrap it in [`Typed`] to spawn it.
pub trait TypedAgent: Send + 'static {
    /// What a task carries.
    type Input: DeserializeOwned + Send;
    /// What the agent answers.
    type Output: Serialize + Send;

    /// Handles one decoded input. Errors mean what they mean for any agent:
    /// [`AgentError::Retryable`] is retried on another agent, [`AgentError::Permanent`]
    /// fails the task at once.
    fn handle(&mut self, input: Self::Input) -> impl Future<Output = Result<Self::Output, AgentError>> + Send;
}

/// Runs a [`TypedAgent`] as an [`Agent`]: decodes the task's payload, calls the agent,
/// encodes its output with [`PayloadCodec::Bincode2V1`].
#[derive(Debug, Clone, Default)]
pub struct Typed<A>(pub A);

impl<A: TypedAgent> Agent for Typed<A> {
    async fn handle(&mut self, task: &Task) -> Result<Bytes, AgentError> {
        // The router already refused payloads over `codec.max_payload_bytes`.
        let limit = Codec::default().max_bytes();
        let input = PayloadCodec::decode::<A::Input>(&task.payload, limit)
            .map_err(|e| AgentError::Permanent(format!("{INPUT_REJECTED}{e}")))?;
        let output = self.0.handle(input).await?;
        PayloadCodec::default()
            .encode(&output, limit)
            .map_err(|e| AgentError::Permanent(format!("typed output not encodable: {e}")))
    }
}

/// Why a typed call did not produce an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypedError {
    /// The input could not be encoded (or is over `codec.max_payload_bytes`); nothing
    /// was submitted.
    #[error("input not encodable: {0}")]
    Encode(PayloadError),
    /// The node refused the task (see [`SubmitError`]); nothing was accepted.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The agent could not decode the input (another type, another codec, garbage).
    #[error("agent {agent} rejected the input: {reason}")]
    InputRejected {
        /// The agent.
        agent: AgentId,
        /// Its decoder's message.
        reason: String,
    },
    /// The agent answered with a permanent error of its own.
    #[error("agent {agent} failed the task: {message}")]
    Agent {
        /// The agent.
        agent: AgentId,
        /// Its message.
        message: String,
    },
    /// Routing ended the task `Failed` for another reason (retries or the retry budget
    /// exhausted, an at-most-once task that may have run).
    #[error("task failed after {attempts} attempts: {reason}")]
    Failed {
        /// Why.
        reason: FailureReason,
        /// Delivery attempts used.
        attempts: u32,
    },
    /// No agent could take the task.
    #[error("task dead-lettered after {attempts} attempts: {reason}")]
    DeadLettered {
        /// Why.
        reason: DeadLetterReason,
        /// Delivery attempts used.
        attempts: u32,
    },
    /// The task completed but its output is not a payload of the expected type.
    #[error("output of agent {agent} not decodable: {error}")]
    Decode {
        /// The agent that answered.
        agent: AgentId,
        /// The decoder's message.
        error: PayloadError,
    },
}

/// Turns a task's outcome into a typed result.
pub fn typed_outcome<O: DeserializeOwned>(outcome: TaskOutcome, max_bytes: usize) -> Result<O, TypedError> {
    match outcome {
        TaskOutcome::Completed { agent, output, .. } => {
            PayloadCodec::decode(&output, max_bytes).map_err(|error| TypedError::Decode { agent, error })
        }
        TaskOutcome::Failed { reason: FailureReason::Permanent { agent, message }, .. } => {
            match message.strip_prefix(INPUT_REJECTED) {
                Some(reason) => Err(TypedError::InputRejected { agent, reason: reason.to_string() }),
                None => Err(TypedError::Agent { agent, message }),
            }
        }
        TaskOutcome::Failed { reason, attempts } => Err(TypedError::Failed { reason, attempts }),
        TaskOutcome::DeadLettered { reason, attempts } => Err(TypedError::DeadLettered { reason, attempts }),
    }
}

/// A submitted typed task; await it for its typed result.
#[derive(Debug)]
pub struct TypedHandle<O> {
    handle: TaskHandle,
    max_bytes: usize,
    output: PhantomData<fn() -> O>,
}

impl<O: DeserializeOwned> TypedHandle<O> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.handle.id()
    }

    /// Waits for the outcome and decodes it.
    pub async fn outcome(self) -> Result<O, TypedError> {
        typed_outcome(self.handle.await, self.max_bytes)
    }
}

/// Typed calls on a [`FlowNode`]. The task gives capabilities, swarm, priority and the
/// rest; its payload is replaced by the encoded input.
pub trait TypedRoute {
    /// Routes `input` as `task`'s payload and waits for the typed output (like
    /// [`FlowNode::route`]).
    fn route_typed<I, O>(&self, task: Task, input: &I) -> impl Future<Output = Result<O, TypedError>> + Send
    where
        I: Serialize + Sync + ?Sized,
        O: DeserializeOwned;

    /// Submits `input` as `task`'s payload (like [`FlowNode::submit`]); the handle
    /// resolves to the typed output.
    fn submit_typed<I, O>(
        &self,
        task: Task,
        input: &I,
    ) -> impl Future<Output = Result<TypedHandle<O>, TypedError>> + Send
    where
        I: Serialize + Sync + ?Sized,
        O: DeserializeOwned;
}

fn with_input<I: Serialize + ?Sized>(node: &FlowNode, task: Task, input: &I) -> Result<(Task, usize), TypedError> {
    let max_bytes = node.config().codec.max_payload_bytes;
    let payload = PayloadCodec::default().encode(input, max_bytes).map_err(TypedError::Encode)?;
    Ok((task.with_payload(payload), max_bytes))
}

impl TypedRoute for FlowNode {
    async fn route_typed<I, O>(&self, task: Task, input: &I) -> Result<O, TypedError>
    where
        I: Serialize + Sync + ?Sized,
        O: DeserializeOwned,
    {
        let (task, max_bytes) = with_input(self, task, input)?;
        typed_outcome(self.route(task).await?, max_bytes)
    }

    async fn submit_typed<I, O>(&self, task: Task, input: &I) -> Result<TypedHandle<O>, TypedError>
    where
        I: Serialize + Sync + ?Sized,
        O: DeserializeOwned,
    {
        let (task, max_bytes) = with_input(self, task, input)?;
        let handle = self.submit(task).await?;
        Ok(TypedHandle { handle, max_bytes, output: PhantomData })
    }
}
