//! Gossip over the cluster: the gossip actor's transport, its slot, and its start-up.
//!
//! The gossip protocol (`erlmcp_flow_gossip`) is transport-agnostic; here its messages are
//! encoded with the gossip codec and travel as [`Notice::Gossip`] casts over the
//! [`Channel`], so the gateway stays the only cluster-message actor and the partition
//! fault-injection layer applies: nothing is sent to a cut-off peer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use erlmcp_flow_core::config::ClusterConfig;
use erlmcp_flow_core::{Codec, NodeName};
use erlmcp_flow_gossip::{GossipActorArgs, GossipConfig, GossipHandle, GossipMessage, GossipTransport};
use erlmcp_flow_supervision::Slot;
use ractor::{ActorCell, SpawnErr};

use crate::channel::{Channel, ChannelError};
use crate::peers::{PeerTable, Reach};
use crate::wire::Notice;

/// How long a call to the (local) gossip actor waits for its answer.
pub const GOSSIP_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The current gossip actor's handle (replaced when the actor is restarted, empty once it
/// stopped).
pub type GossipSlot = Slot<GossipHandle>;

/// Gossip settings derived from `[cluster]` and `failure_detector.phi_threshold`.
pub fn gossip_config(cfg: &ClusterConfig, phi_threshold: f64) -> GossipConfig {
    let mut g = GossipConfig {
        interval_ms: cfg.gossip_interval_ms,
        fanout: cfg.gossip_fanout as usize,
        rumor_ttl: cfg.rumor_ttl.min(16) as u8,
        heartbeat_interval_ms: cfg.heartbeat_interval_ms,
        ..GossipConfig::default()
    };
    g.failure_detector.threshold = phi_threshold;
    g.failure_detector.suspect_threshold = g.failure_detector.suspect_threshold.min(phi_threshold);
    g
}

/// Sends gossip messages over the [`Channel`].
#[derive(Debug)]
pub struct ClusterGossipTransport {
    channel: Channel,
    gossip: Codec,
}

impl ClusterGossipTransport {
    /// A transport for node `me`.
    pub fn new(me: NodeName, peers: Arc<PeerTable>, wire: Codec, config: &GossipConfig) -> Self {
        Self { channel: Channel::new(me, peers, wire), gossip: Codec::new(config.max_message_bytes) }
    }
}

impl GossipTransport for ClusterGossipTransport {
    fn send(&self, to: &NodeName, message: GossipMessage) {
        let payload = match message.encode(&self.gossip) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(peer = %to, error = %e, "gossip message not encodable; dropped");
                return;
            }
        };
        // Heartbeats must reach a peer we consider unreachable too, or it could never
        // come back: any session will do. Gossip tolerates loss; the next round makes up
        // for a message not sent.
        if let Err(e @ ChannelError::TooLarge(_)) = self.channel.cast(to, Notice::Gossip(payload), Reach::AnySession) {
            tracing::warn!(peer = %to, error = %e, "gossip envelope too large; dropped");
        }
    }
}

/// What the gossip child of the FlowSupervisor starts from.
#[derive(Clone)]
pub struct GossipChildArgs {
    /// This node.
    pub me: NodeName,
    /// Protocol settings.
    pub config: GossipConfig,
    /// Outgoing messages.
    pub transport: Arc<dyn GossipTransport>,
    /// Where the handle is published.
    pub slot: GossipSlot,
    /// Seed of the actor's RNG.
    pub seed: u64,
}

impl std::fmt::Debug for GossipChildArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipChildArgs").field("me", &self.me).finish_non_exhaustive()
    }
}

impl GossipChildArgs {
    /// Starts a gossip actor supervised by `supervisor` and publishes its handle. Each start
    /// takes a larger incarnation (wall-clock ms), as the protocol requires across restarts.
    pub async fn start(&self, supervisor: ActorCell) -> Result<ActorCell, SpawnErr> {
        let incarnation = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1);
        let args = GossipActorArgs {
            me: self.me.clone(),
            config: self.config.clone(),
            incarnation,
            seed: self.seed ^ incarnation,
            transport: self.transport.clone(),
            peers: Vec::new(),
        };
        let (handle, _) = GossipHandle::spawn_linked(args, supervisor)
            .await
            .map_err(|e| SpawnErr::StartupFailed(e.to_string().into()))?;
        let handle = handle.with_call_timeout(GOSSIP_CALL_TIMEOUT);
        let cell = handle.actor().get_cell();
        self.slot.set(handle);
        Ok(cell)
    }
}
