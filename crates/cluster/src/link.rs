//! [`RemoteAgentLink`]: how the router reaches an agent on another node.
//!
//! One attempt is one [`Request::Execute`] call over the [`Channel`] to the agent's node.
//! The call gives up when the node is declared unreachable (session lost, heartbeats
//! stopped, partition), so a frozen node does not hold tasks until their timeout: the
//! router redelivers them elsewhere at once.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{AgentId, DeliveryVerdict, NodeName, RemoteAgent, RemoteDelivery, Task};

use crate::channel::{Channel, ChannelError};
use crate::wire::{Request, Response};

/// How much longer than the attempt's own timeout the caller waits for the answer. The
/// agent's node bounds its wait by the timeout itself and answers `TimedOut`; this slack
/// lets an answer produced just before the deadline cross the wire instead of being
/// taken for a timeout (which would redeliver a task that completed).
pub const REMOTE_ANSWER_SLACK: Duration = Duration::from_secs(1);

/// A remote agent, as registered in the local registry.
#[derive(Debug, Clone)]
pub struct RemoteAgentLink {
    node: NodeName,
    agent: AgentId,
    channel: Channel,
}

impl RemoteAgentLink {
    /// Agent `agent` on `node`, reached over `channel`.
    pub fn new(node: NodeName, agent: AgentId, channel: Channel) -> Self {
        Self { node, agent, channel }
    }
}

impl RemoteAgent for RemoteAgentLink {
    fn node(&self) -> &NodeName {
        &self.node
    }

    fn remote_id(&self) -> &AgentId {
        &self.agent
    }

    fn deliver(&self, task: Arc<Task>, timeout: Duration) -> RemoteDelivery {
        let this = self.clone();
        Box::pin(async move {
            let request = Request::Execute {
                agent: this.agent.clone(),
                task: Task::clone(&task),
                timeout_ms: timeout.as_millis() as u64,
            };
            match this.channel.call(&this.node, request, timeout + REMOTE_ANSWER_SLACK).await {
                Ok(Response::Delivered(verdict)) => verdict,
                Ok(other) => DeliveryVerdict::Refused(this.channel.unexpected(&this.node, &other).to_string()),
                Err(ChannelError::Timeout(_)) => DeliveryVerdict::TimedOut,
                Err(ChannelError::Unreachable(_) | ChannelError::Lost(_)) => DeliveryVerdict::Lost,
                // Refused before it can reach (and drop) the link, or refused there.
                Err(e @ (ChannelError::TooLarge(_) | ChannelError::Refused { .. })) => {
                    DeliveryVerdict::Refused(e.to_string())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PeerTable;
    use erlmcp_flow_core::{CapabilitySet, Codec};

    fn link(codec: Codec) -> RemoteAgentLink {
        let channel = Channel::new(NodeName::new("near").unwrap(), Arc::new(PeerTable::default()), codec);
        RemoteAgentLink::new(NodeName::new("far").unwrap(), AgentId::new("a").unwrap(), channel)
    }

    fn task(payload_bytes: usize) -> Arc<Task> {
        Arc::new(Task::new(CapabilitySet::parse(["c"]).unwrap()).with_payload(vec![7u8; payload_bytes]))
    }

    /// A request over the codec limit is refused before any send: the peer here has no
    /// gateway at all, so reaching the send step would answer `Lost`, not `Refused`.
    #[tokio::test]
    async fn oversized_request_is_refused_before_sending() {
        let reply = link(Codec::new(1024)).deliver(task(4096), Duration::from_secs(1)).await;
        assert!(matches!(reply, DeliveryVerdict::Refused(ref why) if why.contains("not sent")), "{reply:?}");
    }

    /// The same link with a request under the limit gets as far as looking up the gateway:
    /// the control case for the test above.
    #[tokio::test]
    async fn small_request_reaches_the_send_step() {
        let reply = link(Codec::new(1024)).deliver(task(16), Duration::from_secs(1)).await;
        assert!(matches!(reply, DeliveryVerdict::Lost), "{reply:?}");
    }
}
