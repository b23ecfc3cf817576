//! [`HandshakeGuard`]: a deadline and a cap for connections that have not authenticated.
//!
//! ractor_cluster keeps every accepted connection until the peer closes it: a connection
//! that never sends its name, or stalls half-way through the cookie challenge, holds a
//! file descriptor and three actors (~56 KiB) for good. 500 idle connections took a node
//! from 16 to 44 MB; with a 256-descriptor limit, 400 of them kept a new node from
//! joining while the accept loop logged `Too many open files` thousands of times a second.
//!
//! The guard follows every session of the node's NodeServer from its opening to its
//! authentication or its end (the session events ractor_cluster publishes), and says which
//! ones to close:
//!
//! * **a deadline**: a session (incoming or dialled by this node) that has not
//!   authenticated within `timeout` of its opening is closed ([`HandshakeGuard::expire`]);
//! * **a cap**: at most `max_pending_incoming` incoming sessions wait for their handshake
//!   at once; beyond it, a newly opened one is closed at once ([`Opened::OverCap`]).
//!
//! It is a pure state machine (time is an input, in nanoseconds); the cluster actor feeds
//! it the session events and stops the sessions it names. The accept loop reads the
//! published number of pending incoming sessions to close connections over the cap
//! before a session is even started (a fast path: the guard's own check stays the
//! authority, and also covers the NodeServer's internal listener, whose port nobody is
//! told but anyone can find).
//!
//! A session closed by the guard is not counted again when its end is reported:
//! [`HandshakeGuard::closed`] says how a session ended, so a wrong cookie (closed before
//! authenticating, by the peer or by ractor_cluster) is told apart from a deadline.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// The guard's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// How long a session may take to authenticate.
    pub timeout: Duration,
    /// Incoming sessions that may wait for their handshake at once.
    pub max_pending_incoming: usize,
}

/// What to do with a session that just opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Let it authenticate (within the deadline).
    Admitted,
    /// Close it now: the cap of pending incoming sessions is reached.
    OverCap,
}

/// How a session ended, as far as its handshake goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It had authenticated: an ordinary disconnection.
    AfterAuthentication,
    /// It closed before authenticating, not by the guard's doing (a wrong cookie, a
    /// protocol mismatch, a peer that gave up).
    Refused,
    /// The guard had it closed (deadline or cap); already counted.
    ByGuard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pending,
    Authenticated,
    /// Closed by the guard at `since_ns`; waiting for its end to be reported.
    Closing,
}

#[derive(Debug)]
struct Session<H> {
    handle: H,
    incoming: bool,
    stage: Stage,
    since_ns: u64,
}

/// See the module docs. `K` identifies a session, `H` is what the caller needs to close it.
#[derive(Debug)]
pub struct HandshakeGuard<K, H> {
    limits: HandshakeLimits,
    timeout_ns: u64,
    sessions: HashMap<K, Session<H>>,
    pending_incoming: usize,
}

impl<K: Eq + Hash + Clone, H: Clone> HandshakeGuard<K, H> {
    /// A guard with `limits` (a cap of at least 1).
    pub fn new(limits: HandshakeLimits) -> Self {
        let limits = HandshakeLimits { max_pending_incoming: limits.max_pending_incoming.max(1), ..limits };
        Self {
            timeout_ns: u64::try_from(limits.timeout.as_nanos()).unwrap_or(u64::MAX),
            limits,
            sessions: HashMap::new(),
            pending_incoming: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> HandshakeLimits {
        self.limits
    }

    /// Session `key` opened at `now_ns`; `incoming` when the peer connected to us. Over the
    /// cap the caller must close it (`handle` is kept until its end is reported).
    pub fn opened(&mut self, key: K, handle: H, incoming: bool, now_ns: u64) -> Opened {
        let over = incoming && self.pending_incoming >= self.limits.max_pending_incoming;
        let stage = if over { Stage::Closing } else { Stage::Pending };
        if let Some(old) = self.sessions.insert(key, Session { handle, incoming, stage, since_ns: now_ns }) {
            self.forget(&old);
        }
        if over {
            Opened::OverCap
        } else {
            if incoming {
                self.pending_incoming += 1;
            }
            Opened::Admitted
        }
    }

    /// Session `key` passed the cookie challenge.
    pub fn authenticated(&mut self, key: &K) {
        if let Some(s) = self.sessions.get_mut(key)
            && s.stage == Stage::Pending
        {
            s.stage = Stage::Authenticated;
            if s.incoming {
                self.pending_incoming -= 1;
            }
        }
    }

    /// Session `key` ended; how, as far as its handshake goes. A session the guard never
    /// saw open counts as refused (it cannot have authenticated unseen).
    pub fn closed(&mut self, key: &K) -> Closed {
        match self.sessions.remove(key) {
            Some(s) => {
                self.forget(&s);
                match s.stage {
                    Stage::Pending => Closed::Refused,
                    Stage::Authenticated => Closed::AfterAuthentication,
                    Stage::Closing => Closed::ByGuard,
                }
            }
            None => Closed::Refused,
        }
    }

    /// The sessions whose deadline passed by `now_ns`: the caller closes them. Sessions
    /// the guard closed whose end was never reported are forgotten after another
    /// `timeout`, so the table stays bounded by the sessions alive.
    pub fn expire(&mut self, now_ns: u64) -> Vec<H> {
        let timeout_ns = self.timeout_ns;
        let mut due = Vec::new();
        let mut freed = 0;
        self.sessions.retain(|_, s| {
            let late = now_ns.saturating_sub(s.since_ns) >= timeout_ns;
            match s.stage {
                Stage::Pending if late => {
                    due.push(s.handle.clone());
                    if s.incoming {
                        freed += 1;
                    }
                    s.stage = Stage::Closing;
                    s.since_ns = now_ns;
                    true
                }
                Stage::Closing => !late,
                _ => true,
            }
        });
        self.pending_incoming -= freed;
        due
    }

    /// Incoming sessions waiting for their handshake now.
    pub fn pending_incoming(&self) -> usize {
        self.pending_incoming
    }

    /// Sessions followed now (pending, authenticated, or closing).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is followed.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn forget(&mut self, s: &Session<H>) {
        if s.incoming && s.stage == Stage::Pending {
            self.pending_incoming -= 1;
        }
    }
}

/// How long the accept loop waits after a failed `accept` (out of file descriptors, …)
/// before the next: doubling from [`Self::MIN`] to [`Self::MAX`], back to the minimum after
/// a success. Without it, an accept loop out of descriptors spins, logging the same error
/// thousands of times a second while the pending connection stays in the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self { next: Self::MIN }
    }
}

impl AcceptBackoff {
    /// The first wait after a failure.
    pub const MIN: Duration = Duration::from_millis(10);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(1);

    /// One more failure: how long to wait before the next accept.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }

    /// An accept succeeded.
    pub fn succeeded(&mut self) {
        self.next = Self::MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn guard(cap: usize) -> HandshakeGuard<u32, u32> {
        HandshakeGuard::new(HandshakeLimits { timeout: Duration::from_millis(100), max_pending_incoming: cap })
    }

    /// A session that does not authenticate within the deadline is named for closing,
    /// once; one that authenticates in time never is; the end of a closed one is reported
    /// as the guard's doing, not as a refusal.
    #[test]
    fn deadline_closes_only_unauthenticated_sessions() {
        let mut g = guard(8);
        assert_eq!(g.opened(1, 1, true, 0), Opened::Admitted);
        assert_eq!(g.opened(2, 2, true, 0), Opened::Admitted);
        assert_eq!(g.opened(3, 3, false, 50 * MS), Opened::Admitted);
        g.authenticated(&2);
        assert!(g.expire(99 * MS).is_empty());
        assert_eq!(g.expire(100 * MS), vec![1]);
        assert!(g.expire(120 * MS).is_empty(), "named once");
        assert_eq!(g.expire(150 * MS), vec![3], "dialled sessions have a deadline too");
        assert_eq!(g.closed(&1), Closed::ByGuard);
        assert_eq!(g.closed(&2), Closed::AfterAuthentication);
        assert_eq!(g.closed(&3), Closed::ByGuard);
        assert!(g.is_empty());
    }

    /// Beyond the cap, a new incoming session is to be closed at once; dialled sessions
    /// are not capped; a slot frees when a pending session authenticates, ends or expires.
    #[test]
    fn cap_on_pending_incoming_sessions() {
        let mut g = guard(2);
        assert_eq!(g.opened(1, 1, true, 0), Opened::Admitted);
        assert_eq!(g.opened(2, 2, true, 0), Opened::Admitted);
        assert_eq!(g.opened(3, 3, true, 0), Opened::OverCap);
        assert_eq!(g.opened(4, 4, false, 0), Opened::Admitted, "outgoing: not capped");
        assert_eq!(g.pending_incoming(), 2);
        assert_eq!(g.closed(&3), Closed::ByGuard);
        g.authenticated(&1);
        assert_eq!(g.opened(5, 5, true, 1), Opened::Admitted);
        assert_eq!(g.opened(6, 6, true, 1), Opened::OverCap);
        assert_eq!(g.closed(&2), Closed::Refused, "a wrong cookie, not the guard");
        assert_eq!(g.opened(7, 7, true, 2), Opened::Admitted);
        let mut due = g.expire(200 * MS);
        due.sort();
        assert_eq!(due, vec![4, 5, 7]);
        assert_eq!(g.pending_incoming(), 0);
        assert_eq!(g.opened(8, 8, true, 200 * MS), Opened::Admitted);
    }

    /// Sessions the guard closed but whose end never came are forgotten after another
    /// timeout: the table is bounded by live sessions.
    #[test]
    fn closing_sessions_are_forgotten() {
        let mut g = guard(1);
        g.opened(1, 1, true, 0);
        assert_eq!(g.opened(2, 2, true, 50 * MS), Opened::OverCap);
        assert_eq!(g.expire(100 * MS), vec![1]);
        assert_eq!(g.len(), 2, "both closing, their ends not reported yet");
        assert!(g.expire(150 * MS).is_empty());
        assert_eq!(g.len(), 1, "the one over the cap is forgotten a timeout after its closing");
        assert!(g.expire(200 * MS).is_empty());
        assert!(g.is_empty());
        assert_eq!(g.closed(&1), Closed::Refused, "a late end of a forgotten session");
    }

    /// The accept backoff doubles to its maximum and starts over after a success.
    #[test]
    fn accept_backoff() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| b.failed()).collect();
        assert_eq!(waits[0], AcceptBackoff::MIN);
        assert_eq!(waits[1], AcceptBackoff::MIN * 2);
        assert_eq!(*waits.last().unwrap(), AcceptBackoff::MAX);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        b.succeeded();
        assert_eq!(b.failed(), AcceptBackoff::MIN);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Open(u8, bool),
        Auth(u8),
        Close(u8),
        Tick,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0u8..16, any::<bool>()).prop_map(|(k, i)| Event::Open(k, i)),
            (0u8..16).prop_map(Event::Auth),
            (0u8..16).prop_map(Event::Close),
            Just(Event::Tick),
        ]
    }

    proptest! {
        /// Under any sequence of events: the pending-incoming count equals the sessions
        /// actually pending, never exceeds the cap, and every session still pending is
        /// younger than the deadline after each tick.
        #[test]
        fn invariants_hold(events in proptest::collection::vec(event(), 1..300), cap in 1usize..5) {
            let mut g = guard(cap);
            let mut now = 0;
            for e in events {
                now += 7 * MS;
                match e {
                    Event::Open(k, incoming) => { g.opened(u32::from(k), u32::from(k), incoming, now); }
                    Event::Auth(k) => g.authenticated(&u32::from(k)),
                    Event::Close(k) => { g.closed(&u32::from(k)); }
                    Event::Tick => { g.expire(now); }
                }
                let pending = g.sessions.values().filter(|s| s.incoming && s.stage == Stage::Pending).count();
                prop_assert_eq!(pending, g.pending_incoming());
                prop_assert!(g.pending_incoming() <= cap);
                if matches!(e, Event::Tick) {
                    prop_assert!(g.sessions.values().all(|s| s.stage != Stage::Pending || now - s.since_ns < 100 * MS));
                }
            }
        }
    }
}
