//! The gateway: a node's only cluster-message actor.
//!
//! Agents take local messages only (every actor whose messages can cross nodes costs a
//! proxy on every peer); other nodes reach them through this actor, which joins the pg
//! group [`GATEWAY_GROUP`] so peers discover it. It
//!
//! * answers `Hello` with this node's identity,
//! * runs `Execute` requests on the named local agent (in a spawned task, so a slow agent
//!   never blocks the gateway's mailbox), bounded by `cluster.max_remote_in_flight`,
//! * answers `Status`,
//! * hands Raft RPCs to the node's consensus handler ([`crate::raft_link`]),
//! * forwards casts (directories, heartbeats, gossip) to the cluster actor,
//! * decodes every payload itself: a garbage or truncated frame is counted, logged and,
//!   for a call, answered with `Response::Error`; the node stays up.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{AgentId, Codec};
use erlmcp_flow_gossip::GossipMessage;
use erlmcp_flow_registry::RegistryHandle;
use erlmcp_flow_router::delivery::{LocalDelivery, deliver_local};
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::Semaphore;

use crate::gossip_link::GossipSlot;
use crate::membership::ClusterMsg;
use crate::peers::{ClusterCounters, PeerTable};
use crate::raft_link::RaftEndpoint;
use crate::wire::{Envelope, GATEWAY_GROUP, GatewayMsg, Hello, Notice, Request, Response, decode, encode};

/// Start-up arguments of the gateway.
#[derive(Clone)]
pub struct GatewayArgs {
    /// This node's identity.
    pub hello: Hello,
    /// Local agents.
    pub registry: RegistryHandle,
    /// Peers (for the partition layer and counters).
    pub peers: Arc<PeerTable>,
    /// Wire codec.
    pub codec: Codec,
    /// Bound on concurrent remote deliveries.
    pub in_flight: Arc<Semaphore>,
    /// The current cluster actor (for status reports).
    pub cluster: ActorSlot<ClusterMsg>,
    /// The current gossip actor (gossip notices go straight to it).
    pub gossip: GossipSlot,
    /// Codec of gossip messages.
    pub gossip_codec: Codec,
    /// Where the incarnation is published.
    pub slot: ActorSlot<GatewayMsg>,
    /// The node's Raft handler (empty: Raft RPCs are refused).
    pub raft: RaftEndpoint,
    /// Where Byzantine voting messages go (empty: dropped and counted as bad frames).
    pub byzantine: ByzantineInbox,
}

/// Where the gateway hands Byzantine voting messages (sender, bytes); set once by the node
/// when `byzantine.enabled`.
pub type ByzantineInbox = Arc<std::sync::OnceLock<Arc<dyn Fn(erlmcp_flow_core::NodeName, Vec<u8>) + Send + Sync>>>;

impl std::fmt::Debug for GatewayArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayArgs").field("node", &self.hello.node).finish_non_exhaustive()
    }
}

/// The gateway actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gateway;

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = GatewayArgs;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayArgs, ActorProcessingErr> {
        ractor::pg::join(GATEWAY_GROUP.to_string(), vec![myself.get_cell()]);
        args.slot.set(myself);
        Ok(args)
    }

    async fn post_stop(&self, myself: ActorRef<GatewayMsg>, state: &mut GatewayArgs) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(GATEWAY_GROUP.to_string(), vec![myself.get_cell()]);
        state.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<GatewayMsg>,
        msg: GatewayMsg,
        state: &mut GatewayArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Call(bytes, reply) => state.call(bytes, reply),
            GatewayMsg::Cast(bytes) => state.cast(bytes),
        }
        Ok(())
    }
}

impl GatewayArgs {
    fn answer(&self, reply: RpcReplyPort<Vec<u8>>, response: Response) {
        match encode(&self.codec, &response) {
            Ok(bytes) => {
                let _ = reply.send(bytes);
            }
            Err(e) => {
                tracing::warn!(error = %e, "response too large to send");
                if let Ok(bytes) = encode(&self.codec, &Response::Error(format!("response not sent: {e}"))) {
                    let _ = reply.send(bytes);
                }
            }
        }
    }

    fn call(&self, bytes: Vec<u8>, reply: RpcReplyPort<Vec<u8>>) {
        let envelope: Envelope<Request> = match decode(&self.codec, &bytes) {
            Ok(e) => e,
            Err(e) => {
                ClusterCounters::inc(&self.peers.counters.bad_frames);
                tracing::warn!(error = %e, len = bytes.len(), "undecodable request at the gateway");
                return self.answer(reply, Response::Error(format!("bad request: {e}")));
            }
        };
        if self.peers.is_blocked(&envelope.from) {
            // Partitioned: the request never arrived.
            ClusterCounters::inc(&self.peers.counters.partition_drops);
            return;
        }
        match envelope.body {
            Request::Hello(peer) => {
                tracing::debug!(peer = %peer.node, "hello");
                self.answer(reply, Response::Hello(self.hello.clone()));
            }
            Request::Status => {
                // The cluster actor knows membership; ask it from a task, not this mailbox.
                let this = self.clone();
                tokio::spawn(async move {
                    let report = match this.cluster.get() {
                        Some(c) => match c.call(ClusterMsg::Report, Some(Duration::from_secs(2))).await {
                            Ok(ractor::rpc::CallResult::Success(r)) => Some(r),
                            _ => None,
                        },
                        None => None,
                    };
                    let response = match report {
                        Some(r) => Response::Status(Box::new(r)),
                        None => Response::Error("cluster actor unavailable".into()),
                    };
                    this.answer(reply, response);
                });
            }
            Request::Execute { agent, task, timeout_ms } => {
                // Work is taken only from nodes with a session record; Hello and Status are
                // open to any authenticated session (the status probe never says Hello).
                if !self.peers.knows(&envelope.from) {
                    ClusterCounters::inc(&self.peers.counters.unknown_nodes);
                    tracing::warn!(from = %envelope.from, "request from an unknown node; refused");
                    return self.answer(reply, Response::Refused(format!("unknown node {}", envelope.from)));
                }
                self.execute(agent, task, timeout_ms, reply)
            }
            Request::Raft(body) => {
                if !self.peers.knows(&envelope.from) {
                    ClusterCounters::inc(&self.peers.counters.unknown_nodes);
                    return self.answer(reply, Response::Refused(format!("unknown node {}", envelope.from)));
                }
                let Some(handler) = self.raft.get().cloned() else {
                    return self.answer(reply, Response::Refused("raft is not enabled on this node".into()));
                };
                // Raft work (log appends, state-machine reads) runs off the gateway's mailbox.
                let this = self.clone();
                tokio::spawn(async move {
                    let response = match handler.handle(envelope.from, body).await {
                        Ok(body) => Response::Raft(body),
                        Err(reason) => Response::Error(reason),
                    };
                    this.answer(reply, response);
                });
            }
        }
    }

    fn execute(&self, agent: AgentId, task: erlmcp_flow_core::Task, timeout_ms: u64, reply: RpcReplyPort<Vec<u8>>) {
        let Some(entry) = self.registry.find(&agent).filter(|e| e.is_local()) else {
            ClusterCounters::inc(&self.peers.counters.unknown_agents);
            return self.answer(reply, Response::Refused(format!("no live local agent {agent}")));
        };
        let Some(actor) = entry.actor() else {
            return self.answer(reply, Response::Refused(format!("agent {agent} is not local")));
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            ClusterCounters::inc(&self.peers.counters.overloaded);
            return self.answer(reply, Response::Refused("too many remote deliveries in flight".into()));
        };
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
            entry.load.begin();
            let response = match deliver_local(&actor, Arc::new(task), deadline).await {
                LocalDelivery::Reply(r) => Response::Executed(r),
                LocalDelivery::Timeout => Response::TimedOut,
                LocalDelivery::Lost => Response::Lost,
            };
            entry.load.end();
            drop(permit);
            this.answer(reply, response);
        });
    }

    fn cast(&self, bytes: Vec<u8>) {
        let envelope: Envelope<Notice> = match decode(&self.codec, &bytes) {
            Ok(e) => e,
            Err(e) => {
                ClusterCounters::inc(&self.peers.counters.bad_frames);
                tracing::warn!(error = %e, len = bytes.len(), "undecodable notice at the gateway");
                return;
            }
        };
        if self.peers.is_blocked(&envelope.from) {
            ClusterCounters::inc(&self.peers.counters.partition_drops);
            return;
        }
        if !self.peers.knows(&envelope.from) {
            // Gossip could otherwise plant a made-up member; a real peer's next round makes
            // up for a message dropped while its session record is being written.
            ClusterCounters::inc(&self.peers.counters.unknown_nodes);
            tracing::warn!(from = %envelope.from, "notice from an unknown node; dropped");
            return;
        }
        match envelope.body {
            Notice::Gossip(payload) => {
                let message = match GossipMessage::decode(&self.gossip_codec, &payload) {
                    Ok(m) => m,
                    Err(e) => {
                        ClusterCounters::inc(&self.peers.counters.bad_frames);
                        tracing::warn!(from = %envelope.from, error = %e, "undecodable gossip message");
                        return;
                    }
                };
                // With no gossip actor running (it is restarting) the message is dropped:
                // gossip tolerates loss and the next round makes up for it. The sender is the
                // envelope's, checked against the cut-off list above.
                if let Some(gossip) = self.gossip.get() {
                    let _ = gossip.deliver(envelope.from, message);
                }
            }
            Notice::Byzantine(bytes) => match self.byzantine.get() {
                Some(deliver) => deliver(envelope.from, bytes),
                None => {
                    ClusterCounters::inc(&self.peers.counters.bad_frames);
                    tracing::debug!(from = %envelope.from, "byzantine message, but voting is off here");
                }
            },
        }
    }
}
