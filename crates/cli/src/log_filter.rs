//! Rate limit for other crates' repeated log lines, in the `flow` binary's subscriber.
//!
//! Our own crates limit their repeated events at the source ([`LogLimiter`]: one line per
//! peer per interval, with a count). Dependencies do not: under a nemesis, openraft logs
//! "timeout while confirming leadership for read request" at ERROR for every linearizable
//! read while a voter is down, and "OneshotConsumer.tx.send: is_ok: false" at WARN for every
//! client that stopped waiting (2 613 and 7 058 lines on one node in one 2-minute chaos
//! run). [`RepeatLimit`] applies the same rule per *callsite* to events of the targets in
//! [`LIMITED_TARGETS`]: the first event of a callsite in an interval is written, its
//! repeats are not, and [`RepeatLimit::report`] (called by [`spawn_reporter`] every
//! interval) writes one line per callsite with the number it held back:
//!
//! ```text
//! WARN flow::log_limit: repeated log lines not written suppressed=2612 target="openraft::core::raft_core" site=".../raft_core.rs:612" level=ERROR
//! ```
//!
//! The table is the bounded [`LogLimiter`]'s; time is an injected source (a [`MonoClock`]
//! in the binary, a counter in tests).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::core::log_limit::{DEFAULT_LOG_INTERVAL, DEFAULT_LOG_KEYS};
use erlmcp_flow::core::{LogLimiter, MonoClock};
use parking_lot::Mutex;
use tracing::callsite::Identifier;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Target prefixes whose events are limited (the crates that log per failed RPC).
pub(crate) const LIMITED_TARGETS: &[&str] = &["openraft", "ractor_cluster", "ractor", "rmcp", "hyper", "axum"];

/// The reporter's own target (never limited).
pub(crate) const REPORT_TARGET: &str = "flow::log_limit";

fn limited(target: &str) -> bool {
    LIMITED_TARGETS.iter().any(|p| target == *p || target.strip_prefix(p).is_some_and(|rest| rest.starts_with("::")))
}

/// One callsite's held-back count, as [`RepeatLimit::report`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suppressed {
    /// The callsite, `None` for the overflow window shared by callsites beyond the table.
    pub(crate) site: Option<&'static Metadata<'static>>,
    /// Events not written.
    pub(crate) count: u64,
}

#[derive(Debug)]
struct State {
    limiter: LogLimiter<Identifier>,
    sites: HashMap<Identifier, &'static Metadata<'static>>,
    /// Counts handed back by the limiter with the first event of a later window.
    pending: Vec<(Identifier, u64)>,
}

/// Nanoseconds, from any monotonic source.
type NowNs = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The layer: drops repeats of limited callsites. Cheap to clone (shared state).
#[derive(Clone)]
pub(crate) struct RepeatLimit {
    now_ns: NowNs,
    state: Arc<Mutex<State>>,
}

impl RepeatLimit {
    /// One line per callsite per `interval`; at most `max_sites` callsites tracked apart;
    /// time from `now_ns`.
    pub(crate) fn with_clock(interval: Duration, max_sites: usize, now_ns: NowNs) -> Self {
        let state = State { limiter: LogLimiter::new(interval, max_sites), sites: HashMap::new(), pending: Vec::new() };
        Self { now_ns, state: Arc::new(Mutex::new(state)) }
    }

    /// Whether this event is written (and the bookkeeping for it).
    fn admit(&self, meta: &'static Metadata<'static>) -> bool {
        if !limited(meta.target()) {
            return true;
        }
        let id = meta.callsite();
        let now = (self.now_ns)();
        let mut s = self.state.lock();
        match s.limiter.check(&id, now) {
            None => false,
            Some(held) => {
                if s.sites.len() < DEFAULT_LOG_KEYS * 4 || s.sites.contains_key(&id) {
                    s.sites.insert(id.clone(), meta);
                }
                if held > 0 {
                    s.pending.push((id, held));
                }
                true
            }
        }
    }

    /// What was held back since the last report (windows that ended, and counts handed
    /// back by a later event), one entry per callsite.
    pub(crate) fn report(&self) -> Vec<Suppressed> {
        let now = (self.now_ns)();
        let mut s = self.state.lock();
        let mut counts: Vec<(Option<Identifier>, u64)> = s.pending.drain(..).map(|(id, n)| (Some(id), n)).collect();
        counts.extend(s.limiter.flush(now));
        let mut merged: Vec<Suppressed> = Vec::new();
        for (id, count) in counts {
            let site = id.and_then(|id| s.sites.get(&id).copied());
            match merged.iter_mut().find(|m| m.site.map(|m| m.callsite()) == site.map(|m| m.callsite())) {
                Some(m) => m.count += count,
                None => merged.push(Suppressed { site, count }),
            }
        }
        // Forget callsites the limiter no longer tracks (keeps the name table bounded).
        let State { limiter, sites, .. } = &mut *s;
        if sites.len() > limiter.len() * 2 + 64 {
            sites.clear();
        }
        merged
    }

    /// Writes the report as log lines (target [`REPORT_TARGET`]).
    pub(crate) fn log_report(&self) {
        for s in self.report() {
            match s.site {
                Some(m) => tracing::warn!(
                    target: REPORT_TARGET,
                    suppressed = s.count,
                    target = m.target(),
                    site = %format_args!("{}:{}", m.file().unwrap_or("?"), m.line().unwrap_or(0)),
                    level = %m.level(),
                    "repeated log lines not written"
                ),
                None => tracing::warn!(
                    target: REPORT_TARGET,
                    suppressed = s.count,
                    "repeated log lines not written (callsites beyond the table)"
                ),
            }
        }
    }
}

impl Default for RepeatLimit {
    /// [`DEFAULT_LOG_INTERVAL`], [`DEFAULT_LOG_KEYS`], a [`MonoClock`].
    fn default() -> Self {
        let clock = MonoClock::new();
        Self::with_clock(DEFAULT_LOG_INTERVAL, DEFAULT_LOG_KEYS, Arc::new(move || clock.now_ns()))
    }
}

impl<S: Subscriber> Layer<S> for RepeatLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        self.admit(event.metadata())
    }
}

/// Runs [`RepeatLimit::log_report`] every `interval` on a background thread for the life
/// of the process (the `flow` binary's subscriber is process-wide too).
pub(crate) fn spawn_reporter(limit: RepeatLimit, interval: Duration) {
    let _ = std::thread::Builder::new().name("log-limit".into()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            limit.log_report();
        }
    });
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One callsite (each macro invocation is its own).
    fn leadership_timeout(attempt: u32) {
        tracing::error!(target: "openraft::core::raft_core", attempt, "timeout while confirming leadership");
    }

    fn lines(b: &Buffer) -> Vec<String> {
        String::from_utf8_lossy(&b.0.lock()).lines().map(str::to_string).collect()
    }

    /// A storm of one openraft callsite writes one line per interval and a report with the
    /// exact count held back; our own targets and other callsites are untouched.
    #[test]
    fn a_dependency_storm_is_one_line_per_callsite_per_interval() {
        let now = Arc::new(AtomicU64::new(1));
        let clock = now.clone();
        let limit =
            RepeatLimit::with_clock(Duration::from_secs(5), 16, Arc::new(move || clock.load(Ordering::Relaxed)));
        let advance = |d: Duration| now.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        let out = Buffer::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(limit.clone())
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone()));
        let _guard = tracing::subscriber::set_default(subscriber);
        for i in 0..1_000 {
            leadership_timeout(i);
            tracing::warn!(target: "openraft::raft::responder", "OneshotConsumer.tx.send: is_ok: false");
            tracing::warn!(target: "erlmcp_flow_cluster::peers", attempt = i, "ours");
        }
        let written = lines(&out);
        assert_eq!(written.iter().filter(|l| l.contains("confirming leadership")).count(), 1);
        assert_eq!(written.iter().filter(|l| l.contains("OneshotConsumer")).count(), 1);
        assert_eq!(written.iter().filter(|l| l.contains("ours")).count(), 1_000, "our targets are not limited here");

        // Nothing to report before the interval ends; then both callsites, exactly.
        assert!(limit.report().is_empty());
        advance(Duration::from_secs(6));
        let report = limit.report();
        assert_eq!(report.len(), 2, "{report:?}");
        assert!(report.iter().all(|s| s.count == 999 && s.site.is_some()), "{report:?}");
        assert!(limit.report().is_empty(), "a count is reported once");

        // The next interval: the first event is written again, and the report line reads well.
        leadership_timeout(1_000);
        limit.log_report();
        let written = lines(&out);
        assert_eq!(written.iter().filter(|l| l.contains("confirming leadership")).count(), 2);
        assert!(written.iter().all(|l| !l.contains("repeated log lines not written")), "nothing held back since");
        leadership_timeout(1_001);
        advance(Duration::from_secs(6));
        limit.log_report();
        let report_line = lines(&out).into_iter().find(|l| l.contains("repeated log lines not written")).unwrap();
        assert!(
            report_line.contains("suppressed=1") && report_line.contains("openraft::core::raft_core"),
            "{report_line}"
        );
    }

    /// Targets are matched by crate prefix at a path boundary.
    #[test]
    fn limited_targets_match_by_crate() {
        assert!(limited("openraft"));
        assert!(limited("openraft::core::raft_core"));
        assert!(limited("ractor_cluster::node"));
        assert!(!limited("openraftish"));
        assert!(!limited("erlmcp_flow_consensus::network"));
        assert!(!limited(REPORT_TARGET));
    }
}
