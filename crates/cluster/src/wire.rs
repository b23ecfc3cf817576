//! What nodes say to each other, and how it is framed.
//!
//! Every cluster message is a [`GatewayMsg`]: a call (request bytes in, response bytes
//! out) or a cast (bytes in). The bytes are our own serde types encoded with the project
//! codec (bincode 2, size-limited). ractor_cluster's own decoding cannot fail
//! (`BytesConvertable::from_bytes` has no error path, and an undecodable remote message is
//! dropped silently), so nothing but raw bytes crosses the wire in ractor's types: decoding
//! happens in our handler, where a bad frame is counted, logged and, for a call, answered
//! with an error.

use erlmcp_flow_core::{AgentId, Codec, CodecError, DeliveryVerdict, NodeName, Task};
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

/// Version of the wire protocol; a peer speaking another version is refused. 2: task
/// deliveries are answered with one [`DeliveryVerdict`].
pub const PROTOCOL_VERSION: u32 = 2;

/// The pg group every node's gateway joins.
pub const GATEWAY_GROUP: &str = "erlmcp_flow.gateway";

/// The one cluster-capable message type.
#[derive(ractor_cluster::RactorClusterMessage)]
pub enum GatewayMsg {
    /// A request expecting a response ([`Request`] → [`Response`]).
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// A one-way message ([`Notice`]).
    Cast(Vec<u8>),
}

impl std::fmt::Debug for GatewayMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayMsg::Call(b, _) => write!(f, "Call({} bytes)", b.len()),
            GatewayMsg::Cast(b) => write!(f, "Cast({} bytes)", b.len()),
        }
    }
}

/// Every payload travels in an envelope naming its sender (the partition fault-injection
/// layer drops traffic from cut-off peers by this name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Sending node.
    pub from: NodeName,
    /// The payload.
    pub body: T,
}

/// A request carried by [`GatewayMsg::Call`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Who are you? Sent once a peer's gateway is discovered.
    Hello(Hello),
    /// Run one attempt of `task` on local agent `agent`, waiting at most `timeout_ms`.
    Execute {
        /// The agent's id on the receiving node.
        agent: AgentId,
        /// The task, with `attempt` and trace span set for this delivery.
        task: Task,
        /// How long the caller waits.
        timeout_ms: u64,
    },
    /// Report membership, reachability and counters (for `flow status`).
    Status,
    /// A Raft RPC (or a client write forwarded to the leader), encoded by the consensus
    /// layer and decoded by its handler on the receiving node.
    Raft(Vec<u8>),
}

/// A response to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The peer's identity.
    Hello(Hello),
    /// How an [`Request::Execute`] ended: the agent's answer, a time-out, a lost agent, or
    /// a refusal (unknown or dead agent, overloaded).
    Delivered(DeliveryVerdict),
    /// The request is not taken here: its sender has no session record, or the feature it
    /// needs is off on this node.
    Refused(String),
    /// A status report.
    Status(Box<crate::status::NodeReport>),
    /// The answer to a [`Request::Raft`], encoded by the consensus layer.
    Raft(Vec<u8>),
    /// The request could not be decoded or is not allowed.
    Error(String),
}

impl Response {
    /// The variant's name, for logs and errors (never the payload).
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Hello(_) => "Hello",
            Response::Delivered(_) => "Delivered",
            Response::Refused(_) => "Refused",
            Response::Status(_) => "Status",
            Response::Raft(_) => "Raft",
            Response::Error(_) => "Error",
        }
    }
}

/// A node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its name.
    pub node: NodeName,
    /// Changes every time the node process starts (a restarted node is a new member).
    pub incarnation: u64,
    /// Where it accepts connections.
    pub listen: String,
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
}

/// A one-way message carried by [`GatewayMsg::Cast`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Notice {
    /// A gossip protocol message, encoded with the gossip codec (directories, load,
    /// addresses and heartbeats all travel as gossip).
    Gossip(Vec<u8>),
    /// A Byzantine quorum-voting message (signed by its sender, verified by the
    /// receiving node's detector).
    Byzantine(Vec<u8>),
}

/// Encodes a wire value with the codec's limit.
pub fn encode<T: Serialize>(codec: &Codec, value: &T) -> Result<Vec<u8>, CodecError> {
    codec.encode(value)
}

/// Decodes a wire value.
pub fn decode<T: serde::de::DeserializeOwned>(codec: &Codec, bytes: &[u8]) -> Result<T, CodecError> {
    codec.decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::CapabilitySet;

    /// Requests and responses round-trip, and garbage decodes to an error, not a panic.
    #[test]
    fn round_trip_and_garbage() {
        let codec = Codec::default();
        let req = Request::Execute {
            agent: AgentId::new("a").unwrap(),
            task: Task::new(CapabilitySet::parse(["x"]).unwrap()),
            timeout_ms: 5,
        };
        let bytes = encode(&codec, &req).unwrap();
        assert_eq!(decode::<Request>(&codec, &bytes).unwrap(), req);
        assert!(decode::<Request>(&codec, &[0xff, 0xfe, 0x01]).is_err());
        assert!(decode::<Request>(&codec, &bytes[..bytes.len() - 3]).is_err());
        let notice = Envelope { from: NodeName::new("n").unwrap(), body: Notice::Gossip(vec![1, 2, 3]) };
        assert_eq!(decode::<Envelope<Notice>>(&codec, &encode(&codec, &notice).unwrap()).unwrap(), notice);
    }
}
