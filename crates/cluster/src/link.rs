//! [`RemoteAgentLink`]: how the router reaches an agent on another node.
//!
//! One attempt is one `Execute` call to the agent's node's gateway. The call gives up when
//! the node is declared unreachable (session lost, heartbeats stopped, partition), so a
//! frozen node does not hold tasks until their timeout: the router redelivers them
//! elsewhere at once.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{AgentId, Codec, NodeName, RemoteAgent, RemoteDelivery, RemoteReply, Task};
use ractor::rpc::CallResult;

use crate::peers::{ClusterCounters, PeerTable};
use crate::wire::{Envelope, GatewayMsg, Request, Response, decode, encode};

/// A remote agent, as registered in the local registry.
#[derive(Debug, Clone)]
pub struct RemoteAgentLink {
    node: NodeName,
    agent: AgentId,
    from: NodeName,
    peers: Arc<PeerTable>,
    codec: Codec,
}

impl RemoteAgentLink {
    /// Agent `agent` on `node`, reached from `from` through `peers`.
    pub fn new(node: NodeName, agent: AgentId, from: NodeName, peers: Arc<PeerTable>, codec: Codec) -> Self {
        Self { node, agent, from, peers, codec }
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
            let request = Envelope {
                from: this.from.clone(),
                body: Request::Execute {
                    agent: this.agent.clone(),
                    task: Task::clone(&task),
                    timeout_ms: timeout.as_millis() as u64,
                },
            };
            let bytes = match encode(&this.codec, &request) {
                Ok(b) => b,
                // Refused before it can reach (and drop) the link.
                Err(e) => return RemoteReply::Refused(format!("request not sent: {e}")),
            };
            let Some(gateway) = this.peers.gateway(&this.node) else {
                return RemoteReply::Lost;
            };
            let mut down = this.peers.down_signal(&this.node);
            down.borrow_and_update();
            // The remote side bounds its own wait by `timeout`; allow the round trip.
            let call = gateway.call(|reply| GatewayMsg::Call(bytes, reply), Some(timeout + Duration::from_secs(1)));
            tokio::select! {
                r = call => match r {
                    Ok(CallResult::Success(bytes)) => match decode::<Response>(&this.codec, &bytes) {
                        Ok(Response::Executed(reply)) => RemoteReply::Reply(reply),
                        Ok(Response::TimedOut) => RemoteReply::Timeout,
                        Ok(Response::Lost) => RemoteReply::Lost,
                        Ok(Response::Refused(why)) | Ok(Response::Error(why)) => RemoteReply::Refused(why),
                        Ok(other) => RemoteReply::Refused(format!("unexpected response {other:?}")),
                        Err(e) => {
                            ClusterCounters::inc(&this.peers.counters.bad_frames);
                            RemoteReply::Refused(format!("undecodable response: {e}"))
                        }
                    },
                    Ok(CallResult::Timeout) => RemoteReply::Timeout,
                    Ok(CallResult::SenderError) | Err(_) => RemoteReply::Lost,
                },
                _ = down.changed() => {
                    ClusterCounters::inc(&this.peers.counters.abandoned_deliveries);
                    RemoteReply::Lost
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erlmcp_flow_core::CapabilitySet;

    fn link(codec: Codec) -> RemoteAgentLink {
        RemoteAgentLink::new(
            NodeName::new("far").unwrap(),
            AgentId::new("a").unwrap(),
            NodeName::new("near").unwrap(),
            Arc::new(PeerTable::default()),
            codec,
        )
    }

    fn task(payload_bytes: usize) -> Arc<Task> {
        Arc::new(Task::new(CapabilitySet::parse(["c"]).unwrap()).with_payload(vec![7u8; payload_bytes]))
    }

    /// A request over the codec limit is refused before any send: the peer here has no
    /// gateway at all, so reaching the send step would answer `Lost`, not `Refused`.
    #[tokio::test]
    async fn oversized_request_is_refused_before_sending() {
        let reply = link(Codec::new(1024)).deliver(task(4096), Duration::from_secs(1)).await;
        assert!(matches!(reply, RemoteReply::Refused(ref why) if why.contains("not sent")), "{reply:?}");
    }

    /// The same link with a request under the limit gets as far as looking up the gateway:
    /// the control case for the test above.
    #[tokio::test]
    async fn small_request_reaches_the_send_step() {
        let reply = link(Codec::new(1024)).deliver(task(16), Duration::from_secs(1)).await;
        assert!(matches!(reply, RemoteReply::Lost), "{reply:?}");
    }
}
