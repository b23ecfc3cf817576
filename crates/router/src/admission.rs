//! Admission control: at most `router.max_in_flight` accepted-but-unfinished tasks per
//! node, granted by priority.
//!
//! A submitter at the limit waits (backpressure), or gets `Overloaded` from
//! `try_submit`. When a slot frees up it goes to the oldest waiter of the highest
//! priority. tokio's `Semaphore` is strictly FIFO, hence this small gate. The permit is a
//! guard: dropping it (task finished, or a waiter gave up) returns the slot.

use std::collections::VecDeque;
use std::sync::Arc;

use erlmcp_flow_core::Priority;
use parking_lot::Mutex;
use tokio::sync::oneshot;

#[derive(Debug)]
struct GateState {
    available: u32,
    waiters: [VecDeque<oneshot::Sender<AdmissionPermit>>; 4],
}

/// The gate. Clone the `Arc` to share it.
#[derive(Debug)]
pub struct AdmissionGate {
    state: Mutex<GateState>,
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
            state: Mutex::new(GateState {
                available: limit,
                waiters: Default::default(),
            }),
            limit,
        })
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Slots free now.
    pub fn available(&self) -> u32 {
        self.state.lock().available
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(self: &Arc<Self>) -> Option<AdmissionPermit> {
        let mut s = self.state.lock();
        if s.available > 0 {
            s.available -= 1;
            Some(AdmissionPermit {
                gate: Some(self.clone()),
            })
        } else {
            None
        }
    }

    /// Waits for a slot; higher priorities are served first.
    pub async fn acquire(self: &Arc<Self>, priority: Priority) -> AdmissionPermit {
        let rx = {
            let mut s = self.state.lock();
            if s.available > 0 {
                s.available -= 1;
                return AdmissionPermit {
                    gate: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            s.waiters[priority.index()].push_back(tx);
            rx
        };
        // The sender is only dropped after a send, so this cannot fail while the gate lives.
        rx.await.expect("admission gate dropped a waiter")
    }

    fn release(self: Arc<Self>) {
        let mut s = self.state.lock();
        for queue in s.waiters.iter_mut().rev() {
            while let Some(tx) = queue.pop_front() {
                match tx.send(AdmissionPermit {
                    gate: Some(self.clone()),
                }) {
                    Ok(()) => return,
                    // The waiter gave up: reclaim the permit without recursing into release.
                    Err(mut permit) => {
                        permit.gate = None;
                    }
                }
            }
        }
        s.available += 1;
        debug_assert!(s.available <= self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            while gate
                .state
                .lock()
                .waiters
                .iter()
                .map(|q| q.len())
                .sum::<usize>()
                < tasks.len()
            {
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
        while gate.state.lock().waiters[1].is_empty() {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(gate.available(), 1);
    }
}
