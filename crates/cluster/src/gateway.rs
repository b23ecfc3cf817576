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
//! * admits every frame through [`Channel::admit`]: a garbage or truncated frame is
//!   counted, logged and, for a call, answered with `Response::Error`; the node stays up.
//!
//! A new kind of cross-node message is one [`Request`] or [`Notice`] variant and one arm
//! of [`GatewayState::on_call`] or [`GatewayState::on_cast`].

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{AgentId, AgentRef, Codec, DeliveryVerdict, NodeName, deliver_local};
use erlmcp_flow_gossip::GossipMessage;
use erlmcp_flow_registry::{AgentEntry, RegistryHandle};
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::channel::Channel;
use crate::cluster_actor::ClusterMsg;
use crate::gossip_link::GossipSlot;
use crate::peers::{ClusterCounters, PeerTable};
use crate::raft_link::RaftEndpoint;
use crate::wire::{GATEWAY_GROUP, GatewayMsg, Hello, Notice, Request, Response};

/// How long a status request waits for the (local) cluster actor's report.
pub const STATUS_REPORT_TIMEOUT: Duration = Duration::from_secs(2);

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

/// The gateway's state: its arguments and the node's end of the [`Channel`].
#[derive(Debug, Clone)]
pub struct GatewayState {
    args: GatewayArgs,
    channel: Channel,
}

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayState, ActorProcessingErr> {
        ractor::pg::join(GATEWAY_GROUP.to_string(), vec![myself.get_cell()]);
        args.slot.set(myself);
        let channel = Channel::new(args.hello.node.clone(), args.peers.clone(), args.codec);
        Ok(GatewayState { args, channel })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<GatewayMsg>,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(GATEWAY_GROUP.to_string(), vec![myself.get_cell()]);
        state.args.slot.clear_if(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<GatewayMsg>,
        msg: GatewayMsg,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Call(frame, reply) => match state.channel.admit::<Request>(&frame) {
                Ok(envelope) => state.on_call(envelope.from, envelope.body, reply),
                Err(rejection) => {
                    if let Some(answer) = rejection.answer() {
                        state.channel.answer(reply, answer);
                    }
                }
            },
            GatewayMsg::Cast(frame) => {
                if let Ok(envelope) = state.channel.admit::<Notice>(&frame) {
                    state.on_cast(envelope.from, envelope.body);
                }
            }
        }
        Ok(())
    }
}

impl GatewayState {
    /// One admitted request: one arm per [`Request`] variant.
    fn on_call(&self, from: NodeName, request: Request, reply: RpcReplyPort<Vec<u8>>) {
        match request {
            Request::Hello(peer) => {
                tracing::debug!(peer = %peer.node, "hello");
                self.channel.answer(reply, Response::Hello(self.args.hello.clone()));
            }
            Request::Status => {
                // The cluster actor knows membership; ask it from a task, not this mailbox.
                let this = self.clone();
                tokio::spawn(async move {
                    let report = match this.args.cluster.get() {
                        Some(c) => match c.call(ClusterMsg::Report, Some(STATUS_REPORT_TIMEOUT)).await {
                            Ok(ractor::rpc::CallResult::Success(r)) => Some(r),
                            _ => None,
                        },
                        None => None,
                    };
                    let response = match report {
                        Some(r) => Response::Status(Box::new(r)),
                        None => Response::Error("cluster actor unavailable".into()),
                    };
                    this.channel.answer(reply, response);
                });
            }
            Request::Execute { agent, task, timeout_ms } => self.execute(agent, task, timeout_ms, reply),
            Request::Raft(body) => {
                let Some(handler) = self.args.raft.get().cloned() else {
                    return self.channel.answer(reply, Response::Refused("raft is not enabled on this node".into()));
                };
                // Raft work (log appends, state-machine reads) runs off the gateway's mailbox.
                let this = self.clone();
                tokio::spawn(async move {
                    let response = match handler.handle(from, body).await {
                        Ok(body) => Response::Raft(body),
                        Err(reason) => Response::Error(reason),
                    };
                    this.channel.answer(reply, response);
                });
            }
        }
    }

    fn execute(&self, agent: AgentId, task: erlmcp_flow_core::Task, timeout_ms: u64, reply: RpcReplyPort<Vec<u8>>) {
        let (entry, actor, permit) = match self.admit_delivery(&agent) {
            Ok(admitted) => admitted,
            Err(why) => return self.channel.answer(reply, Response::Delivered(DeliveryVerdict::Refused(why))),
        };
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
            entry.load.begin();
            let verdict = deliver_local(&actor, Arc::new(task), deadline).await;
            entry.load.end();
            drop(permit);
            this.channel.answer(reply, Response::Delivered(verdict));
        });
    }

    /// The live local agent `agent` and an in-flight permit, or why the delivery is refused.
    fn admit_delivery(&self, agent: &AgentId) -> Result<(Arc<AgentEntry>, AgentRef, OwnedSemaphorePermit), String> {
        let counters = &self.args.peers.counters;
        let Some(entry) = self.args.registry.find(agent).filter(|e| e.is_local()) else {
            ClusterCounters::inc(&counters.unknown_agents);
            return Err(format!("no live local agent {agent}"));
        };
        let Some(actor) = entry.actor() else {
            return Err(format!("agent {agent} is not local"));
        };
        let Ok(permit) = self.args.in_flight.clone().try_acquire_owned() else {
            ClusterCounters::inc(&counters.overloaded);
            return Err("too many remote deliveries in flight".into());
        };
        Ok((entry, actor, permit))
    }

    /// One admitted notice: one arm per [`Notice`] variant.
    fn on_cast(&self, from: NodeName, notice: Notice) {
        match notice {
            Notice::Gossip(payload) => {
                let message = match GossipMessage::decode(&self.args.gossip_codec, &payload) {
                    Ok(m) => m,
                    Err(e) => return self.channel.bad_frame(from.as_str(), &e.to_string(), payload.len()),
                };
                // With no gossip actor running (it is restarting) the message is dropped:
                // gossip tolerates loss and the next round makes up for it. The sender is the
                // envelope's, checked against the cut-off list on admission.
                if let Some(gossip) = self.args.gossip.get() {
                    let _ = gossip.deliver(from, message);
                }
            }
            Notice::Byzantine(bytes) => match self.args.byzantine.get() {
                Some(deliver) => deliver(from, bytes),
                None => self.channel.bad_frame(from.as_str(), "byzantine message, but voting is off here", bytes.len()),
            },
        }
    }
}
