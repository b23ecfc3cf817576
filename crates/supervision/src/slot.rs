//! [`ActorSlot`]: where the current incarnation of a supervised actor can be found.
//!
//! A restarted actor is a new actor with a new `ActorRef`. Instead of ractor's
//! process-global name registry (one per process, which would tie a process to one
//! node), each supervised service gets a slot its incarnations publish themselves into
//! from `pre_start`; callers read the slot (a watch channel read, no mailbox) and can
//! wait, with a deadline, for an incarnation to appear.

use std::fmt;
use std::time::Duration;

use ractor::{ActorRef, ActorStatus, Message};
use tokio::sync::watch;

/// The current incarnation of an actor, if one is up.
pub struct ActorSlot<M: Message> {
    tx: watch::Sender<Option<ActorRef<M>>>,
}

impl<M: Message> Clone for ActorSlot<M> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<M: Message> Default for ActorSlot<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Message> fmt::Debug for ActorSlot<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSlot").field("current", &self.get().map(|r| r.get_id())).finish()
    }
}

impl<M: Message> ActorSlot<M> {
    /// An empty slot.
    pub fn new() -> Self {
        Self { tx: watch::Sender::new(None) }
    }

    /// Publishes `actor` as the current incarnation.
    pub fn set(&self, actor: ActorRef<M>) {
        self.tx.send_replace(Some(actor));
    }

    /// Empties the slot if `actor` is still the one published (an old incarnation must
    /// not clear a newer one).
    pub fn clear_if(&self, actor: &ActorRef<M>) {
        self.tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.get_id() == actor.get_id()) {
                *cur = None;
                true
            } else {
                false
            }
        });
    }

    /// The current incarnation if it is alive.
    pub fn get(&self) -> Option<ActorRef<M>> {
        self.tx.borrow().as_ref().filter(|a| a.get_status() <= ActorStatus::Running).cloned()
    }

    /// Waits up to `timeout` for a live incarnation.
    pub async fn wait(&self, timeout: Duration) -> Option<ActorRef<M>> {
        let mut rx = self.tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(a) = self.get() {
                return Some(a);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The sender lives in `self`, so `changed` cannot fail while we hold it.
                Ok(Err(_)) | Err(_) => return self.get(),
            }
        }
    }
}
