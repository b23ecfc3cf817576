//! Knowing whether a panic happened inside agent code.
//!
//! Agent panics are expected events here (they are caught, answered and supervised), so a
//! program that injects thousands of them (the demo, chaos tests) does not want a panic
//! message on stderr for each. [`AgentScope`] marks, per thread, when agent code is being
//! polled; [`quiet_agent_panics`] installs a panic hook that stays silent for those panics
//! (counting them) and delegates every other panic to the previous hook.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

thread_local! {
    static IN_AGENT: Cell<bool> = const { Cell::new(false) };
}

static QUIET: Once = Once::new();
static SILENCED: AtomicU64 = AtomicU64::new(0);

/// True while agent code runs on this thread.
pub fn in_agent_code() -> bool {
    IN_AGENT.with(|f| f.get())
}

/// Installs (once per process) a panic hook that silences panics raised inside agent code.
/// Binaries call this; libraries never install hooks on their own.
pub fn quiet_agent_panics() {
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if in_agent_code() {
                SILENCED.fetch_add(1, Ordering::Relaxed);
            } else {
                previous(info);
            }
        }));
    });
}

/// Agent panics the quiet hook has silenced so far.
pub fn silenced_agent_panics() -> u64 {
    SILENCED.load(Ordering::Relaxed)
}

pin_project_lite::pin_project! {
    /// Runs a future with the "in agent code" mark set during each poll.
    #[derive(Debug)]
    pub struct AgentScope<F> {
        #[pin]
        inner: F,
    }
}

impl<F> AgentScope<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for AgentScope<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        struct Reset(bool);
        impl Drop for Reset {
            // Runs on unwind too, so a panicking poll does not leave the mark set.
            fn drop(&mut self) {
                IN_AGENT.with(|f| f.set(self.0));
            }
        }
        let _reset = Reset(IN_AGENT.with(|f| f.replace(true)));
        self.project().inner.poll(cx)
    }
}
