//! Byzantine quorum voting on a cluster node (`byzantine.enabled`).
//!
//! The `byzantine` child of the FlowSupervisor is a [`ByzantineDetector`] with this node's
//! pairwise keys; its messages travel as [`Notice::Byzantine`] casts between gateways
//! ([`VoteLink`]), and the gateway hands incoming ones to the current incarnation. The
//! protocol state (rounds in flight, dishonesty scores) lives in the actor: a restart
//! times out the rounds in flight and starts the scores afresh.
//!
//! [`Notice::Byzantine`]: erlmcp_flow_cluster::wire::Notice::Byzantine

use std::sync::Arc;

use bytes::Bytes;
use erlmcp_flow_byzantine::{ByzantineArgs, ByzantineHandle, ByzantineTransport, KeyRing};
use erlmcp_flow_cluster::{ByzantineInbox, VoteLink};
use erlmcp_flow_core::NodeName;
use erlmcp_flow_core::config::FlowConfig;
use erlmcp_flow_supervision::{ChildSpec, Restart, Slot};

/// The current detector incarnation, if one runs.
pub(crate) type DetectorSlot = Slot<ByzantineHandle>;

struct GatewayVotes(VoteLink);

impl ByzantineTransport for GatewayVotes {
    fn send(&self, to: &NodeName, bytes: Bytes) {
        self.0.send(to, bytes.to_vec());
    }
}

/// This node's keys, from `byzantine.keys_file` or derived from the insecure test seed.
pub(crate) fn load_keys(config: &FlowConfig, me: &NodeName) -> Result<KeyRing, String> {
    let bz = &config.byzantine;
    if let Some(path) = &bz.keys_file {
        return KeyRing::from_hex_file(me, path).map_err(|e| format!("byzantine.keys_file: {e}"));
    }
    let seed = bz.insecure_test_keys_seed.ok_or("byzantine.keys_file is required")?;
    let members = bz
        .members
        .iter()
        .map(NodeName::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("byzantine.members: {e}"))?;
    let mut rings = KeyRing::provision(&members, seed).map_err(|e| format!("byzantine keys: {e}"))?;
    rings.remove(me).ok_or_else(|| format!("byzantine.members does not list this node ({me})"))
}

/// The gateway's delivery function into the current detector.
pub(crate) fn install_inbox(inbox: &ByzantineInbox, slot: DetectorSlot) {
    let _ = inbox.set(Arc::new(move |_from: NodeName, bytes: Vec<u8>| {
        if let Some(h) = slot.get() {
            // A full inbox drops the message (counted by the detector): voting tolerates loss.
            let _ = h.deliver(Bytes::from(bytes));
        }
    }));
}

/// The `byzantine` child spec: every incarnation starts from the same keys.
pub(crate) fn child_spec(config: &FlowConfig, keys: KeyRing, link: VoteLink, slot: DetectorSlot) -> ChildSpec {
    let settings = config.byzantine.clone();
    let transport: Arc<dyn ByzantineTransport> = Arc::new(GatewayVotes(link));
    ChildSpec::new(crate::tree::Child::Byzantine.name(), Restart::Permanent, move |sup: ractor::ActorCell| {
        let args = ByzantineArgs { keys: keys.clone(), config: settings.clone(), transport: transport.clone() };
        let slot = slot.clone();
        async move {
            let handle = ByzantineHandle::spawn_linked(args, sup)
                .await
                .map_err(|e| ractor::SpawnErr::StartupFailed(Box::new(e)))?;
            let cell = handle.actor().get_cell();
            slot.set(handle);
            Ok(cell)
        }
    })
}
