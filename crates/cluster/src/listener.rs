//! The cluster listener's accept loop: hands each connection accepted on the node's own
//! port to the NodeServer, closes those over the handshake cap at once, and backs off
//! when `accept` fails.
//!
//! The cap check here is a fast path: it reads the number of incoming connections waiting
//! for their handshake that the cluster actor publishes (`handshakes_pending`), adding the
//! ones it handed over since, so a burst of connections is cut off before any actor is
//! started for them. The cluster actor's [`HandshakeGuard`](crate::handshake::HandshakeGuard)
//! stays the authority (it also sees the NodeServer's internal listener).
//!
//! A failed `accept` (out of file descriptors: `EMFILE`) leaves the connection in the
//! backlog, so retrying at once fails again at once: the loop waits
//! ([`AcceptBackoff`]: 10 ms doubling to 1 s), counts each failure (`accept_errors`) and
//! logs at most one line per interval with the number it suppressed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::handshake::AcceptBackoff;
use crate::peers::{ClusterCounters, PeerTable, TransportEvent};

/// Starts the accept loop of `listener`, feeding `server`, admitting at most
/// `max_pending` incoming connections waiting for their handshake. It ends when the
/// NodeServer is gone.
pub(crate) fn spawn_accept_loop(
    listener: Arc<TcpListener>,
    server: ActorRef<NodeServerMessage>,
    peers: Arc<PeerTable>,
    max_pending: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let counters = &peers.counters;
        let mut backoff = AcceptBackoff::default();
        loop {
            match listener.accept().await {
                Ok((stream, peer_addr)) => {
                    backoff.succeeded();
                    // The actor stores the exact figure as it sees sessions open; counting
                    // the hand-over here bounds a burst before it catches up.
                    if counters.handshakes_pending.fetch_add(1, Ordering::Relaxed) >= max_pending {
                        counters.handshakes_pending.fetch_sub(1, Ordering::Relaxed);
                        ClusterCounters::inc(&counters.handshakes_rejected);
                        if let Some(suppressed) = peers.log_now(TransportEvent::HandshakeCap, "listener") {
                            tracing::warn!(%peer_addr, max_pending, suppressed, "too many connections waiting for their handshake; closed");
                        }
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let Ok(local_addr) = stream.local_addr() else { continue };
                    let msg = NodeServerMessage::ConnectionOpened {
                        stream: Box::new(ractor_cluster::NetworkStream::Raw { peer_addr, local_addr, stream }),
                        is_server: true,
                    };
                    if server.cast(msg).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    ClusterCounters::inc(&counters.accept_errors);
                    let wait = backoff.failed();
                    if let Some(suppressed) = peers.log_now(TransportEvent::AcceptFailed, "listener") {
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, suppressed, "accept failed");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    })
}

/// The process's soft limit on open file descriptors, where the platform tells it
/// (Linux: `/proc/self/limits`).
pub(crate) fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On Linux the descriptor limit is read (and is positive).
    #[test]
    fn descriptor_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(descriptor_limit().is_some_and(|n| n > 0));
        }
    }
}
