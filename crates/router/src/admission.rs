//! Admission control: at most `router.max_in_flight` accepted-but-unfinished tasks per
//! node, granted by priority.
//!
//! A submitter at the limit waits (backpressure), or gets `Overloaded` from
//! `try_submit`. When a slot frees up it goes to the oldest waiter of the highest
//! priority. tokio's `Semaphore` is strictly FIFO, hence this small gate. The permit is a
//! guard: dropping it (task finished, or a waiter gave up) returns the slot.
//!
//! While nobody waits, taking and returning a slot is a single atomic operation; the
//! mutex is only touched once the node is at its limit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use erlmcp_flow_core::Priority;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The gate. Clone the `Arc` to share it.
#[derive(Debug)]
pub struct AdmissionGate {
    available: AtomicU32,
    /// Waiters queued (mirrors the queues' total length; read without the lock).
    waiting: AtomicU32,
    waiters: Mutex<[VecDeque<oneshot::Sender<AdmissionPermit>>; 4]>,
    limit: u32,
}

/// One admitted task's slot; returned on drop.
#[derive(Debug)]
pub struct AdmissionPermit {
    gate: Option<Arc<AdmissionGate>>,
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl AdmissionGate {
    /// A gate with `limit` slots.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            available: AtomicU32::new(limit),
            waiting: AtomicU32::new(0),
            waiters: Mutex::new(Default::default()),
            limit,
        })
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Slots free now.
    pub fn available(&self) -> u32 {
        self.available.load(Ordering::Acquire)
    }

    fn take_free(&self) -> bool {
        self.available.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(1)).is_ok()
    }

    fn permit(self: &Arc<Self>) -> AdmissionPermit {
        AdmissionPermit { gate: Some(self.clone()) }
    }

    /// Takes a slot if one is free and nobody is queued ahead.
    pub fn try_acquire(self: &Arc<Self>) -> Option<AdmissionPermit> {
        if self.waiting.load(Ordering::SeqCst) == 0 && self.take_free() { Some(self.permit()) } else { None }
    }

    /// Waits for a slot; higher priorities are served first.
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> AdmissionPermit {
        if let Some(p) = self.try_acquire() {
            return p;
        }
        let rx = {
            let mut queues = self.waiters.lock();
            // Announce ourselves before the final check, so a concurrent release either
            // left its slot in `available` (seen below) or sees us waiting.
            self.waiting.fetch_add(1, Ordering::SeqCst);
            if self.take_free() {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return self.permit();
            }
            let (tx, rx) = oneshot::channel();
            queues[priority.index()].push_back(tx);
            rx
        };
        // The sender is only dropped after a send, so this cannot fail while the gate lives.
        rx.await.expect("admission gate dropped a waiter")
    }

    fn release(self: Arc<Self>) {
        // SeqCst on both sides (here and in `acquire`): each side writes its counter, then
        // reads the other's; at least one must see the other's write (Dekker).
        if self.waiting.load(Ordering::SeqCst) == 0 {
            self.available.fetch_add(1, Ordering::SeqCst);
            if self.waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            // A waiter queued meanwhile: hand it the slot we just returned.
            if !self.take_free() {
                return;
            }
        }
        let mut queues = self.waiters.lock();
        for queue in queues.iter_mut().rev() {
            while let Some(tx) = queue.pop_front() {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match tx.send(AdmissionPermit { gate: Some(self.clone()) }) {
                    Ok(()) => return,
                    // The waiter gave up: take the permit back without recursing.
                    Err(mut permit) => permit.gate = None,
                }
            }
        }
        self.available.fetch_add(1, Ordering::AcqRel);
        debug_assert!(self.available.load(Ordering::Acquire) <= self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(gate: &AdmissionGate) -> usize {
        gate.waiters.lock().iter().map(|q| q.len()).sum()
    }

    /// Slots run out at the limit, come back on drop, and go to higher priorities first.
    #[tokio::test]
    async fn limit_and_priority_order() {
        let gate = AdmissionGate::new(1);
        let held = gate.try_acquire().unwrap();
        assert!(gate.try_acquire().is_none());
        let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for p in [Priority::Low, Priority::Critical, Priority::Normal] {
            let g = gate.clone();
            let tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let permit = g.acquire(p).await;
                tx.send(p).unwrap();
                drop(permit);
            }));
            // Make sure each waiter is queued before the next one.
            while queued(&gate) < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order: Vec<_> = std::iter::from_fn(|| order_rx.try_recv().ok()).collect();
        assert_eq!(order, [Priority::Critical, Priority::Normal, Priority::Low]);
        assert_eq!(gate.available(), 1);
    }

    /// A waiter that gives up does not leak its slot.
    #[tokio::test]
    async fn abandoned_waiter_returns_slot() {
        let gate = AdmissionGate::new(1);
        let held = gate.try_acquire().unwrap();
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.acquire(Priority::Normal).await });
        while queued(&gate) == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(gate.available(), 1);
    }

    /// Many concurrent takers and releasers never exceed the limit nor lose a slot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_use_conserves_slots() {
        let gate = AdmissionGate::new(4);
        let live = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (g, live) = (gate.clone(), live.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let p = g.acquire(Priority::ALL[i % 4]).await;
                    assert!(live.fetch_add(1, Ordering::SeqCst) < 4);
                    tokio::task::yield_now().await;
                    live.fetch_sub(1, Ordering::SeqCst);
                    drop(p);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(gate.available(), 4);
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
    }
}
