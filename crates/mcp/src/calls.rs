//! [`CallRegistry`]: the front door's calls in progress on this node, so a lane on the same
//! node can forward the upstream's progress notifications and see the client's
//! cancellation.
//!
//! A task crosses nodes as bytes, so a lane on another node cannot reach the front door's
//! session: for such calls progress is not forwarded and a cancellation only stops the
//! front door's wait (the upstream call runs to its own timeout). The registry is bounded
//! by the front door's `max_calls_in_flight`: an entry lives exactly as long as its call's
//! [`CallGuard`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::payload::CallOrigin;

/// One progress notification from an upstream, to forward to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// Progress so far.
    pub progress: f64,
    /// Total, when known.
    pub total: Option<f64>,
    /// A message.
    pub message: Option<String>,
}

/// Progress notifications buffered per call before the oldest are dropped.
pub const PROGRESS_BUFFER: usize = 64;

#[derive(Debug, Clone)]
struct Hooks {
    cancel: CancellationToken,
    progress: Option<mpsc::Sender<ProgressUpdate>>,
}

/// The calls this node's front door is waiting for.
#[derive(Debug)]
pub struct CallRegistry {
    node: String,
    next: AtomicU64,
    calls: Mutex<HashMap<u64, Hooks>>,
}

/// What a lane may use for a call that came from this node.
#[derive(Debug, Clone)]
pub struct CallHooks {
    /// Cancelled when the client cancels the call.
    pub cancel: CancellationToken,
    /// Where the upstream's progress goes, when the client asked for progress.
    pub progress: Option<mpsc::Sender<ProgressUpdate>>,
}

impl CallRegistry {
    /// An empty registry of node `node`.
    pub fn new(node: impl Into<String>) -> Arc<Self> {
        Arc::new(Self { node: node.into(), next: AtomicU64::new(1), calls: Mutex::default() })
    }

    /// Registers a call; it stays registered until the guard is dropped. With
    /// `want_progress`, the receiver yields the upstream's progress notifications.
    pub fn open(self: &Arc<Self>, want_progress: bool) -> (CallGuard, Option<mpsc::Receiver<ProgressUpdate>>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let (progress, rx) = if want_progress {
            let (tx, rx) = mpsc::channel(PROGRESS_BUFFER);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.calls.lock().insert(id, Hooks { cancel: cancel.clone(), progress });
        let guard = CallGuard { registry: self.clone(), id, cancel };
        (guard, rx)
    }

    /// The hooks of a call that came from this node and is still waited for.
    pub fn hooks(&self, origin: &CallOrigin) -> Option<CallHooks> {
        if origin.node != self.node {
            return None;
        }
        let h = self.calls.lock().get(&origin.call).cloned()?;
        Some(CallHooks { cancel: h.cancel, progress: h.progress })
    }

    /// Calls registered now.
    pub fn len(&self) -> usize {
        self.calls.lock().len()
    }

    /// True when no call is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a call registered; dropping it unregisters the call.
#[derive(Debug)]
pub struct CallGuard {
    registry: Arc<CallRegistry>,
    id: u64,
    cancel: CancellationToken,
}

impl CallGuard {
    /// The origin to put in the call's payload.
    pub fn origin(&self) -> CallOrigin {
        CallOrigin { node: self.registry.node.clone(), call: self.id }
    }

    /// Cancels the call (the lane stops waiting for the upstream and tells it so).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.registry.calls.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hooks are found only for this node's live calls; a dropped guard unregisters.
    #[test]
    fn hooks_live_as_long_as_the_guard() {
        let r = CallRegistry::new("n1");
        let (guard, rx) = r.open(true);
        assert!(rx.is_some());
        let origin = guard.origin();
        let hooks = r.hooks(&origin).unwrap();
        assert!(hooks.progress.is_some());
        guard.cancel();
        assert!(hooks.cancel.is_cancelled());
        assert!(r.hooks(&CallOrigin { node: "n2".into(), call: origin.call }).is_none());
        drop(guard);
        assert!(r.hooks(&origin).is_none());
        assert!(r.is_empty());
    }
}
