//! [`ReplicaCore`]: the life of one upstream replica as a pure state machine.
//!
//! Events in (connected, exited, ping answered, a timer tick, ...) with the current time;
//! commands out (connect, publish the lanes, ping, withdraw the lanes, schedule a tick).
//! The [`ReplicaManager`](super::manager::ReplicaManager) actor executes the commands and
//! feeds back what happened; this module has no I/O and no clock of its own.
//!
//! ```text
//!            start                 connected
//!  Stopped ─────────▶ Connecting ────────────▶ Up ──┐ ping, relist
//!                        │  ▲                   │ ◀┘
//!         connect failed │  │ backoff over      │ exited / ping failed / shutdown
//!                        ▼  │                   ▼
//!                       Backoff ◀──────────── Draining (lanes withdrawn)
//! ```
//!
//! Restarts back off exponentially: the n-th consecutive failure (a failed start, or a
//! death within `stable_after` of the start) waits `min(max, base · 2^(n−1))`. A replica
//! that stayed up for `stable_after` starts over at `base`. There is no give-up: an
//! upstream is an external program, its failures are data, and a replica that keeps
//! failing costs one connect attempt per `max` (30 s by default). This is why a replica's
//! process is restarted here and not by failing an agent into the node's AgentSupervisor,
//! whose intensity (5 restarts per minute by default, shared by every agent of the node)
//! a crash-looping upstream would exhaust, escalating to the FlowSupervisor and finally
//! stopping the node.

use std::time::Duration;

use tokio::time::Instant;

/// Timing of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaTiming {
    /// Heartbeat ping period.
    pub ping_interval: Duration,
    /// First restart delay.
    pub backoff_base: Duration,
    /// Restart delay cap.
    pub backoff_max: Duration,
    /// A replica up for this long resets the backoff.
    pub stable_after: Duration,
}

impl ReplicaTiming {
    /// The delay before restart number `failures` (1-based) in a row.
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        self.backoff_base.saturating_mul(1u32 << shift).min(self.backoff_max)
    }
}

/// Where the replica is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started, or shut down.
    Stopped,
    /// A connection attempt is in flight.
    Connecting,
    /// Serving through its lanes.
    Up,
    /// Its lanes are being withdrawn.
    Draining,
    /// Waiting to restart.
    Backoff,
}

/// Something the shell reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// Start the replica.
    Start,
    /// Connection attempt `generation` succeeded (initialize and tools/list answered).
    Connected {
        /// Which attempt.
        generation: u64,
    },
    /// Connection attempt `generation` failed.
    ConnectFailed {
        /// Which attempt.
        generation: u64,
    },
    /// A timer fired.
    Tick,
    /// The heartbeat ping of `generation` was answered.
    PingAnswered {
        /// Which connection.
        generation: u64,
    },
    /// The heartbeat ping of `generation` timed out or failed.
    PingFailed {
        /// Which connection.
        generation: u64,
    },
    /// Connection `generation` closed (the process exited, the link was lost).
    Exited {
        /// Which connection.
        generation: u64,
    },
    /// The upstream said its tool list changed.
    ToolsChanged {
        /// Which connection.
        generation: u64,
    },
    /// A re-listing finished.
    Relisted {
        /// Which connection.
        generation: u64,
        /// The list differs from the published one.
        changed: bool,
    },
    /// The lanes of `generation` are withdrawn and its connection closed.
    Drained {
        /// Which connection.
        generation: u64,
    },
    /// Stop for good.
    Shutdown,
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaCommand {
    /// Start a connection attempt (spawn the process or open the URL, initialize, list).
    Connect {
        /// Its number.
        generation: u64,
    },
    /// Register the lanes of connection `generation` with its tool list.
    Publish {
        /// Which connection.
        generation: u64,
    },
    /// Replace the lanes after a tool list change.
    Republish {
        /// Which connection.
        generation: u64,
    },
    /// Send a heartbeat ping (the shell bounds it by the ping timeout).
    Ping {
        /// Which connection.
        generation: u64,
    },
    /// List the tools again.
    Relist {
        /// Which connection.
        generation: u64,
    },
    /// Take the lanes out of routing, let them answer what they hold, stop them, close
    /// the connection (killing the process), then report `Drained`.
    Withdraw {
        /// Which connection.
        generation: u64,
    },
    /// Close a connection that is no longer wanted (a late success).
    Discard {
        /// Which connection.
        generation: u64,
    },
    /// Feed a `Tick` after this long.
    ScheduleTick(Duration),
}

/// What the shell counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaNote {
    /// A start succeeded.
    Started,
    /// A start failed.
    StartFailed,
    /// A started replica went down.
    Exited,
    /// A started replica stopped answering pings.
    Hung,
}

/// The replica's state machine.
#[derive(Debug, Clone)]
pub struct ReplicaCore {
    timing: ReplicaTiming,
    phase: Phase,
    generation: u64,
    failures: u32,
    up_since: Option<Instant>,
    backoff_until: Option<Instant>,
    ping_in_flight: bool,
    relist_in_flight: bool,
    stopping: bool,
    notes: Vec<ReplicaNote>,
}

impl ReplicaCore {
    /// A stopped replica.
    pub fn new(timing: ReplicaTiming) -> Self {
        Self {
            timing,
            phase: Phase::Stopped,
            generation: 0,
            failures: 0,
            up_since: None,
            backoff_until: None,
            ping_in_flight: false,
            relist_in_flight: false,
            stopping: false,
            notes: Vec::new(),
        }
    }

    /// Where it is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current connection's number.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// What happened since the last call, for the shell's counters.
    pub fn take_notes(&mut self) -> Vec<ReplicaNote> {
        std::mem::take(&mut self.notes)
    }

    fn connect(&mut self) -> Vec<ReplicaCommand> {
        self.generation += 1;
        self.phase = Phase::Connecting;
        self.backoff_until = None;
        vec![ReplicaCommand::Connect { generation: self.generation }]
    }

    fn back_off(&mut self, now: Instant) -> Vec<ReplicaCommand> {
        if self.stopping {
            self.phase = Phase::Stopped;
            return Vec::new();
        }
        let delay = self.timing.backoff(self.failures);
        self.phase = Phase::Backoff;
        self.backoff_until = Some(now + delay);
        vec![ReplicaCommand::ScheduleTick(delay)]
    }

    fn current(&self, generation: u64) -> bool {
        generation == self.generation
    }

    /// Feeds one event; returns what to do.
    pub fn on(&mut self, event: ReplicaEvent, now: Instant) -> Vec<ReplicaCommand> {
        use ReplicaCommand as C;
        use ReplicaEvent as E;
        match (self.phase, event) {
            (Phase::Stopped, E::Start) if !self.stopping => self.connect(),
            (Phase::Connecting, E::Connected { generation }) if self.current(generation) => {
                self.phase = Phase::Up;
                self.up_since = Some(now);
                self.ping_in_flight = false;
                self.relist_in_flight = false;
                self.notes.push(ReplicaNote::Started);
                vec![C::Publish { generation }, C::ScheduleTick(self.timing.ping_interval)]
            }
            (_, E::Connected { generation }) => vec![C::Discard { generation }],
            (Phase::Connecting, E::ConnectFailed { generation }) if self.current(generation) => {
                self.failures = self.failures.saturating_add(1);
                self.notes.push(ReplicaNote::StartFailed);
                self.back_off(now)
            }
            (Phase::Up, E::Tick) => {
                let mut out = vec![C::ScheduleTick(self.timing.ping_interval)];
                if !self.ping_in_flight {
                    self.ping_in_flight = true;
                    out.insert(0, C::Ping { generation: self.generation });
                }
                out
            }
            (Phase::Backoff, E::Tick) => match self.backoff_until {
                Some(until) if now < until => vec![C::ScheduleTick(until - now)],
                _ => self.connect(),
            },
            (Phase::Up, E::PingAnswered { generation }) if self.current(generation) => {
                self.ping_in_flight = false;
                if self.up_since.is_some_and(|s| now.duration_since(s) >= self.timing.stable_after) {
                    self.failures = 0;
                }
                Vec::new()
            }
            (Phase::Up, E::PingFailed { generation }) if self.current(generation) => {
                self.notes.push(ReplicaNote::Hung);
                self.phase = Phase::Draining;
                vec![C::Withdraw { generation }]
            }
            (Phase::Up, E::Exited { generation }) if self.current(generation) => {
                self.notes.push(ReplicaNote::Exited);
                self.phase = Phase::Draining;
                vec![C::Withdraw { generation }]
            }
            (Phase::Up, E::ToolsChanged { generation }) if self.current(generation) && !self.relist_in_flight => {
                self.relist_in_flight = true;
                vec![C::Relist { generation }]
            }
            (Phase::Up, E::Relisted { generation, changed }) if self.current(generation) => {
                self.relist_in_flight = false;
                if changed { vec![C::Republish { generation }] } else { Vec::new() }
            }
            (Phase::Draining, E::Drained { generation }) if self.current(generation) => {
                let lived = self.up_since.take().map(|s| now.duration_since(s)).unwrap_or_default();
                // A long life starts the backoff over; a short one continues it.
                self.failures = if lived >= self.timing.stable_after { 1 } else { self.failures.saturating_add(1) };
                self.back_off(now)
            }
            (Phase::Up, E::Shutdown) => {
                self.stopping = true;
                self.phase = Phase::Draining;
                vec![C::Withdraw { generation: self.generation }]
            }
            (Phase::Connecting, E::Shutdown) => {
                // The attempt's late success is discarded (`Connected` in another phase).
                self.stopping = true;
                self.phase = Phase::Stopped;
                Vec::new()
            }
            (_, E::Shutdown) => {
                self.stopping = true;
                if self.phase != Phase::Draining {
                    self.phase = Phase::Stopped;
                }
                Vec::new()
            }
            // Stale or out-of-phase events (a tick while connecting, a late exit).
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicaCommand as C;
    use ReplicaEvent as E;

    fn timing() -> ReplicaTiming {
        ReplicaTiming {
            ping_interval: Duration::from_secs(5),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
        }
    }

    /// A replica starts, pings, dies, withdraws its lanes and restarts after the base delay.
    #[test]
    fn start_ping_exit_restart() {
        let t0 = Instant::now();
        let mut r = ReplicaCore::new(timing());
        assert_eq!(r.on(E::Start, t0), [C::Connect { generation: 1 }]);
        assert_eq!(r.on(E::Tick, t0), []); // no tick while connecting
        assert_eq!(
            r.on(E::Connected { generation: 1 }, t0),
            [C::Publish { generation: 1 }, C::ScheduleTick(Duration::from_secs(5))]
        );
        assert_eq!(r.take_notes(), [ReplicaNote::Started]);
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(r.on(E::Tick, t5), [C::Ping { generation: 1 }, C::ScheduleTick(Duration::from_secs(5))]);
        // A second tick with the ping still out sends no second ping.
        assert_eq!(r.on(E::Tick, t5), [C::ScheduleTick(Duration::from_secs(5))]);
        let t11 = t0 + Duration::from_secs(11);
        assert_eq!(r.on(E::PingAnswered { generation: 1 }, t11), []);
        assert_eq!(r.on(E::Exited { generation: 1 }, t11), [C::Withdraw { generation: 1 }]);
        assert_eq!(r.phase(), Phase::Draining);
        assert_eq!(r.on(E::Drained { generation: 1 }, t11), [C::ScheduleTick(Duration::from_millis(200))]);
        assert_eq!(r.take_notes(), [ReplicaNote::Exited]);
        // Too early: wait the rest; then connect again with a new generation.
        assert_eq!(r.on(E::Tick, t11 + Duration::from_millis(50)), [C::ScheduleTick(Duration::from_millis(150))]);
        assert_eq!(r.on(E::Tick, t11 + Duration::from_millis(200)), [C::Connect { generation: 2 }]);
        // Events of the old connection are ignored.
        assert_eq!(r.on(E::Exited { generation: 1 }, t11), []);
    }

    /// Failed starts and short lives back off exponentially up to the cap; a stable life
    /// resets the backoff.
    #[test]
    fn backoff_grows_and_resets() {
        let mut now = Instant::now();
        let mut r = ReplicaCore::new(timing());
        r.on(E::Start, now);
        let mut delays = Vec::new();
        for _ in 0..10 {
            let g = r.generation();
            let out = r.on(E::ConnectFailed { generation: g }, now);
            let C::ScheduleTick(d) = out[0] else { panic!("{out:?}") };
            delays.push(d.as_millis());
            now += d;
            assert_eq!(r.on(E::Tick, now), [C::Connect { generation: g + 1 }]);
        }
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
        assert_eq!(r.take_notes().len(), 10);
        // Up, then dead after 1 s: still backing off from where it was.
        let g = r.generation();
        r.on(E::Connected { generation: g }, now);
        r.on(E::Exited { generation: g }, now + Duration::from_secs(1));
        let out = r.on(E::Drained { generation: g }, now + Duration::from_secs(1));
        assert_eq!(out, [C::ScheduleTick(Duration::from_secs(30))]);
        // Up for a minute, pinged: the next death restarts after the base delay.
        now += Duration::from_secs(31);
        r.on(E::Tick, now);
        let g = r.generation();
        r.on(E::Connected { generation: g }, now);
        now += Duration::from_secs(60);
        r.on(E::Tick, now);
        r.on(E::PingAnswered { generation: g }, now);
        assert_eq!(r.failures(), 0);
        r.on(E::PingFailed { generation: g }, now);
        assert_eq!(r.take_notes().last(), Some(&ReplicaNote::Hung));
        assert_eq!(r.on(E::Drained { generation: g }, now), [C::ScheduleTick(Duration::from_millis(200))]);
    }

    /// Shutdown withdraws a live replica and never restarts it; a late connection is discarded.
    #[test]
    fn shutdown_is_final() {
        let now = Instant::now();
        let mut r = ReplicaCore::new(timing());
        r.on(E::Start, now);
        r.on(E::Connected { generation: 1 }, now);
        assert_eq!(r.on(E::Shutdown, now), [C::Withdraw { generation: 1 }]);
        assert_eq!(r.on(E::Drained { generation: 1 }, now), []);
        assert_eq!(r.phase(), Phase::Stopped);
        assert_eq!(r.on(E::Start, now), []);
        let mut r = ReplicaCore::new(timing());
        r.on(E::Start, now);
        assert_eq!(r.on(E::Shutdown, now), []);
        assert_eq!(r.on(E::Connected { generation: 1 }, now), [C::Discard { generation: 1 }]);
        assert_eq!(r.phase(), Phase::Stopped);
    }

    /// A tool list change re-lists once at a time and republishes only when it changed.
    #[test]
    fn relist_on_change() {
        let now = Instant::now();
        let mut r = ReplicaCore::new(timing());
        r.on(E::Start, now);
        r.on(E::Connected { generation: 1 }, now);
        assert_eq!(r.on(E::ToolsChanged { generation: 1 }, now), [C::Relist { generation: 1 }]);
        assert_eq!(r.on(E::ToolsChanged { generation: 1 }, now), []);
        assert_eq!(r.on(E::Relisted { generation: 1, changed: false }, now), []);
        r.on(E::ToolsChanged { generation: 1 }, now);
        assert_eq!(r.on(E::Relisted { generation: 1, changed: true }, now), [C::Republish { generation: 1 }]);
    }
}
