//! [`Slot`]: where the current incarnation of a supervised child can be found.
//!
//! A restarted actor is a new actor with a new `ActorRef`. Instead of ractor's
//! process-global name registry (one per process, which would tie a process to one
//! node), each supervised service gets a slot its incarnations publish themselves into
//! (from `pre_start`, or from the child spec's start function); callers read the slot (a
//! watch channel read, no mailbox) and can wait, with a deadline, for an incarnation to
//! appear.
//!
//! What a slot holds is an [`Incarnation`]: a bare [`ActorRef`] ([`ActorSlot`]), or a
//! handle that carries one (a gossip or Byzantine handle with its inbox). The slot reads
//! as empty as soon as that actor stops, whether or not anything cleared it: a killed
//! actor runs no cleanup, so a slot that trusted its last writer would hand out a dead
//! handle.

use std::fmt;
use std::time::Duration;

use ractor::{ActorCell, ActorId, ActorRef, ActorStatus, Message};
use tokio::sync::watch;

/// What a [`Slot`] holds: something with one actor behind it.
pub trait Incarnation: Clone + Send + Sync + 'static {
    /// The actor of this incarnation.
    fn cell(&self) -> ActorCell;
}

impl<M: Message> Incarnation for ActorRef<M> {
    fn cell(&self) -> ActorCell {
        self.get_cell()
    }
}

/// The current incarnation of a supervised child, if one is up.
pub struct Slot<H: Incarnation> {
    tx: watch::Sender<Option<H>>,
}

/// A slot holding a bare actor reference.
pub type ActorSlot<M> = Slot<ActorRef<M>>;

impl<H: Incarnation> Clone for Slot<H> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<H: Incarnation> Default for Slot<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Incarnation> fmt::Debug for Slot<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("current", &self.id()).finish()
    }
}

fn alive(cell: &ActorCell) -> bool {
    cell.get_status() <= ActorStatus::Running
}

impl<H: Incarnation> Slot<H> {
    /// An empty slot.
    pub fn new() -> Self {
        Self { tx: watch::Sender::new(None) }
    }

    /// Publishes `incarnation` as the current one.
    pub fn set(&self, incarnation: H) {
        self.tx.send_replace(Some(incarnation));
    }

    /// Empties the slot if `actor` is still the one published (an old incarnation must
    /// not clear a newer one).
    pub fn clear_if(&self, actor: &ActorCell) {
        self.tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.cell().get_id() == actor.get_id()) {
                *cur = None;
                true
            } else {
                false
            }
        });
    }

    /// The current incarnation if its actor is alive; `None` once it stopped, however it
    /// stopped.
    pub fn get(&self) -> Option<H> {
        self.tx.borrow().as_ref().filter(|h| alive(&h.cell())).cloned()
    }

    /// The id of the current live incarnation's actor (to observe restarts).
    pub fn id(&self) -> Option<ActorId> {
        self.get().map(|h| h.cell().get_id())
    }

    /// Kills the current incarnation's actor: an abnormal exit, which its supervisor
    /// treats as a crash (fault injection). False when no incarnation is alive.
    pub fn kill(&self) -> bool {
        match self.get() {
            Some(h) => {
                h.cell().kill();
                true
            }
            None => false,
        }
    }

    /// Waits up to `timeout` for a live incarnation.
    pub async fn wait(&self, timeout: Duration) -> Option<H> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// A handle that carries an actor among other things, as the gossip and Byzantine
    /// handles do.
    #[derive(Clone)]
    struct Handle {
        actor: ActorRef<()>,
        _inbox: u32,
    }

    impl Incarnation for Handle {
        fn cell(&self) -> ActorCell {
            self.actor.get_cell()
        }
    }

    /// A slot whose actor stopped (killed, so no cleanup ran and nothing cleared it)
    /// reads as empty: no dead handle is handed out.
    #[tokio::test]
    async fn a_stopped_incarnation_reads_as_empty() {
        let (actor, join) = Actor::spawn(None, Idle, ()).await.unwrap();
        let slot: Slot<Handle> = Slot::new();
        slot.set(Handle { actor: actor.clone(), _inbox: 7 });
        assert_eq!(slot.id(), Some(actor.get_id()));
        assert!(slot.kill(), "a live incarnation is killed");
        join.await.unwrap();
        assert!(slot.get().is_none());
        assert!(slot.id().is_none());
        assert!(!slot.kill(), "nothing left to kill");
    }

    /// An old incarnation's `clear_if` leaves a newer one in place.
    #[tokio::test]
    async fn clear_if_only_clears_its_own_incarnation() {
        let (old, _) = Actor::spawn(None, Idle, ()).await.unwrap();
        let (new, _) = Actor::spawn(None, Idle, ()).await.unwrap();
        let slot: ActorSlot<()> = ActorSlot::new();
        slot.set(new.clone());
        slot.clear_if(&old.get_cell());
        assert_eq!(slot.id(), Some(new.get_id()));
        slot.clear_if(&new.get_cell());
        assert!(slot.get().is_none());
        old.stop(None);
        new.stop(None);
    }

    /// `wait` returns the incarnation published while it waits.
    #[tokio::test]
    async fn wait_sees_a_later_incarnation() {
        let slot: ActorSlot<()> = ActorSlot::new();
        assert!(slot.wait(Duration::from_millis(1)).await.is_none());
        let (actor, _) = Actor::spawn(None, Idle, ()).await.unwrap();
        let publisher = slot.clone();
        let a = actor.clone();
        tokio::spawn(async move { publisher.set(a) });
        assert_eq!(slot.wait(Duration::from_secs(10)).await.map(|a| a.get_id()), Some(actor.get_id()));
        actor.stop(None);
    }
}
