//! Asking a running node for its status from outside (`flow status`): join its cluster
//! as a short-lived client node, find its gateway, send `Status`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{Codec, NodeName};
use ractor::Actor;
use ractor_cluster::NodeServer;

use crate::channel::{Channel, ChannelError};
use crate::peers::PeerTable;
use crate::status::NodeReport;
use crate::wire::{GATEWAY_GROUP, GatewayMsg, Request, Response};

/// How often the probe looks for the node's gateway in pg while it waits for it.
const GATEWAY_POLL: Duration = Duration::from_millis(20);

/// Why a status query failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Could not start the client node or connect.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Connected, but no gateway answered (wrong cookie, not an erlmcp-flow node).
    #[error("no erlmcp-flow gateway answered at {0} within the timeout (wrong cookie?)")]
    NoGateway(SocketAddr),
    /// The node answered something else.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Connects to the node at `addr` with `cookie` and returns its status report.
pub async fn query_status(addr: SocketAddr, cookie: &str, timeout: Duration) -> Result<NodeReport, ProbeError> {
    let name = format!("flow-status-{}", std::process::id());
    let server = NodeServer::new(0, cookie.to_string(), name.clone(), "127.0.0.1".into(), None, None)
        .with_listen_addr(std::net::IpAddr::from([127, 0, 0, 1]));
    let (server, handle) =
        Actor::spawn(None, server, ()).await.map_err(|e| ProbeError::Connect { addr, reason: e.to_string() })?;
    let result = async {
        ractor_cluster::client_connect(&server, addr)
            .await
            .map_err(|e| ProbeError::Connect { addr, reason: e.to_string() })?;
        let deadline = tokio::time::Instant::now() + timeout;
        let gateway = loop {
            let remote =
                ractor::pg::get_members(&GATEWAY_GROUP.to_string()).into_iter().find(|c| !c.get_id().is_local());
            if let Some(cell) = remote {
                break ractor::ActorRef::<GatewayMsg>::from(cell);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProbeError::NoGateway(addr));
            }
            tokio::time::sleep(GATEWAY_POLL).await;
        };
        let from = NodeName::new(&name).map_err(|e| ProbeError::Unexpected(e.to_string()))?;
        let peer = NodeName::new(addr.to_string()).map_err(|e| ProbeError::Unexpected(e.to_string()))?;
        let channel = Channel::new(from, Arc::new(PeerTable::default()), Codec::default());
        match channel.call_gateway(&gateway, &peer, Request::Status, timeout).await {
            Ok(Response::Status(r)) => Ok(*r),
            Ok(other) => Err(ProbeError::Unexpected(other.kind().to_string())),
            Err(ChannelError::Refused { reason, .. }) => Err(ProbeError::Unexpected(reason)),
            Err(_) => Err(ProbeError::NoGateway(addr)),
        }
    }
    .await;
    server.stop(None);
    let _ = handle.await;
    result
}
