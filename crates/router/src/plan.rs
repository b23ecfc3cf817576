//! [`RoutePlan`]: the routing decisions for one task, as a synchronous state machine.
//!
//! The plan owns every *decision* of the pipeline (which phase, whether an attempt was
//! spent, whether to retry, back off, wait for a breaker's trial slot, ask the retry
//! budget, and which terminal outcome the task gets); the async driver in [`crate::core`]
//! only *executes* the steps it returns (query and acquire an agent, deliver, sleep, ask
//! the budget) and feeds back what happened. Events in, steps out, time as an input, the
//! randomness (backoff jitter) from the caller's seeded RNG: no I/O and no clock of its
//! own, so the plan is tested directly (see the tests below, property tests included).
//!
//! ```text
//!            ┌───────────── Woke ◄──── Wait(backoff | breaker trial) ◄────────────┐
//!            ▼                                                                    │
//!   start ─► Acquire ──Acquired──► Deliver ──Attempted(verdict)──► retry? ──► WithdrawBudget
//!            │  ▲                                                   │             │
//!            │  └── AllTried (forget `tried`, once all were tried)  │        Budget(false)
//!            │                                                      ▼             ▼
//!            └── NoCandidates / attempts spent ──► next phase ──► Finish(outcome)
//! ```
//!
//! A *phase* is the primary candidate set, then the fallback swarm (if any); each gets
//! `max_attempts` attempts. An attempt is spent by a delivery that ran and failed, or by
//! an acquisition that found no usable agent; a delivery lost with its agent before it
//! ran is redelivered without spending one, up to `max_redeliveries` times per task.
//!
//! An *at-most-once* task ([`RoutePlan::at_most_once`]) is never delivered again once an
//! attempt may have run it (lost, timed out, panicked): it fails with
//! [`FailureReason::MayHaveRun`]. A refusal by the agent's node and an agent's retryable
//! error (its word that nothing ran) are retried as usual.
//!
//! When no agent is usable only because circuit breakers refuse, and one of them will
//! let a trial request through within the routing timeout, the plan waits for that trial
//! instead of spending the attempt (and, after all attempts, dead-lettering the task):
//! with every capable breaker open, a task waits for the first half-open probe.

use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow_core::{AgentId, AttemptError, DeadLetterReason, FailureReason, SwarmName, TaskOutcome};
use rand::Rng;

use crate::backoff::Backoff;

/// Shortest wait for a breaker's trial slot: the timer's granularity.
const MIN_TRIAL_WAIT: Duration = Duration::from_millis(1);

/// The limits a plan decides within (from [`crate::RouterSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Attempts per phase (primary, fallback).
    pub max_attempts: u32,
    /// Redeliveries of never-run tasks per task.
    pub max_redeliveries: u32,
    /// Retry backoff.
    pub backoff: Backoff,
    /// Longest wait for a circuit breaker's trial slot per attempt, ns.
    pub routing_timeout_ns: u64,
}

/// How one delivery attempt ended, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// The agent answered with a result.
    Completed(Bytes),
    /// The agent rejected the task permanently: the task is at fault, not the agent.
    Permanent(String),
    /// The agent ran the task and failed with a retryable error.
    Failed(String),
    /// The agent panicked on the task (and is being restarted).
    Panicked(String),
    /// No answer within the attempt timeout.
    TimedOut {
        /// The attempt timeout, ms.
        after_ms: u64,
    },
    /// The agent (or its node) went away before answering; the task may or may not have
    /// run there: redelivered without spending an attempt (unless at-most-once).
    Lost,
    /// The agent's node refused the delivery (unknown agent, overloaded) or it could not
    /// be sent: the task did not run. Redelivered like [`AttemptVerdict::Lost`].
    Refused(String),
}

/// What an attempt says about the agent's health: the one feedback table for breakers,
/// load figures and strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (a permanent rejection blames the task, not the agent).
    Healthy,
    /// It failed, panicked or timed out.
    Unhealthy,
    /// No verdict: it was gone before it could answer.
    Unknown,
}

impl AttemptVerdict {
    /// The feedback table.
    pub fn health(&self) -> Health {
        match self {
            AttemptVerdict::Completed(_) | AttemptVerdict::Permanent(_) => Health::Healthy,
            AttemptVerdict::Failed(_) | AttemptVerdict::Panicked(_) | AttemptVerdict::TimedOut { .. } => {
                Health::Unhealthy
            }
            AttemptVerdict::Lost | AttemptVerdict::Refused(_) => Health::Unknown,
        }
    }

    /// Whether a retry after it waits for backoff (and so needs the retry budget). Not
    /// after a panic: the agent is gone, the next one is healthy.
    fn backs_off(&self) -> bool {
        matches!(self, AttemptVerdict::Failed(_) | AttemptVerdict::TimedOut { .. })
    }

    /// The error an unsuccessful attempt leaves as the task's last.
    fn error(self, agent: AgentId) -> AttemptError {
        match self {
            AttemptVerdict::Failed(message) => AttemptError::AgentError { agent, message },
            AttemptVerdict::Panicked(message) => AttemptError::Panicked { agent, message },
            AttemptVerdict::TimedOut { after_ms } => AttemptError::Timeout { agent, after_ms },
            AttemptVerdict::Lost
            | AttemptVerdict::Refused(_)
            | AttemptVerdict::Completed(_)
            | AttemptVerdict::Permanent(_) => AttemptError::AgentLost { agent },
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Find a usable agent among the capable agents in [`RoutePlan::swarm`] that is not in
    /// [`RoutePlan::tried`]; answer with [`Event::Acquired`], [`Event::AllTried`],
    /// [`Event::Unavailable`] or [`Event::NoCandidates`]. `retry`: this follows a failed
    /// attempt (counted as a retry).
    Acquire {
        /// Counted as a retry.
        retry: bool,
    },
    /// Deliver the task to the acquired agent as delivery number `attempt` (1-based);
    /// answer with [`Event::Attempted`].
    Deliver {
        /// Delivery number.
        attempt: u32,
    },
    /// Ask the retry budget for one retry; answer with [`Event::Budget`].
    WithdrawBudget,
    /// Sleep this long, then answer [`Event::Woke`].
    Wait(Duration),
    /// The task's terminal outcome. The plan takes no more events.
    Finish(TaskOutcome),
}

/// What happened, fed back to the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// No agent has the capabilities (in the phase's swarm).
    NoCandidates,
    /// An agent was leased for the next delivery.
    Acquired {
        /// Its id.
        agent: AgentId,
        /// Its registration sequence number (what `tried` holds).
        seq: u64,
    },
    /// No usable agent is left that was not tried already for this task.
    AllTried,
    /// No usable agent within the routing wait.
    Unavailable {
        /// Why, for the task's last error.
        detail: String,
        /// When every refusal came from a circuit breaker: how soon the first of them
        /// lets a trial request through, ns.
        trial_in_ns: Option<u64>,
    },
    /// The delivery ended.
    Attempted(AttemptVerdict),
    /// The retry budget's answer.
    Budget(bool),
    /// A [`Step::Wait`] is over.
    Woke,
}

/// What the plan expects next (checked in debug builds, and by the property tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Acquisition { retry: bool },
    Delivery,
    Budget,
    Wake { retry: bool },
    Nothing,
}

/// One task's routing decisions. See the module docs.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    limits: PlanLimits,
    swarms: [Option<SwarmName>; 2],
    phases: usize,
    phase: usize,
    phase_attempts: u32,
    deliveries: u32,
    executed: u32,
    redeliveries: u32,
    last: Option<AttemptError>,
    saw_candidates: bool,
    /// Agents already tried for this task, by registration sequence number.
    tried: Vec<u64>,
    /// The agent leased for the delivery in progress.
    leased: Option<(AgentId, u64)>,
    /// Since when (ns) the current acquisition has waited for a breaker's trial slot.
    trial_wait_since_ns: Option<u64>,
    /// At-most-once: `Some(delivered_before)` (see [`RoutePlan::at_most_once`]).
    at_most_once: Option<bool>,
    expect: Expect,
}

impl RoutePlan {
    /// A plan for a task bound to `swarm` (`None`: any), with `fallback` tried after
    /// the primary candidates (ignored if it is the same swarm).
    pub fn new(limits: PlanLimits, swarm: Option<SwarmName>, fallback: Option<SwarmName>) -> Self {
        let fallback = fallback.filter(|f| Some(f) != swarm.as_ref());
        let phases = if fallback.is_some() { 2 } else { 1 };
        Self {
            limits,
            swarms: [swarm, fallback],
            phases,
            phase: 0,
            phase_attempts: 0,
            deliveries: 0,
            executed: 0,
            redeliveries: 0,
            last: None,
            saw_candidates: false,
            tried: Vec::new(),
            leased: None,
            trial_wait_since_ns: None,
            at_most_once: None,
            expect: Expect::Acquisition { retry: false },
        }
    }

    /// Makes the task at-most-once: no delivery after one that may have run it.
    /// `delivered_before`: it was delivered before this plan (adopted from a node that
    /// died), so the plan fails it at once.
    pub fn at_most_once(mut self, delivered_before: bool) -> Self {
        self.at_most_once = Some(delivered_before);
        self
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        debug_assert_eq!(self.expect, Expect::Acquisition { retry: false });
        if self.at_most_once == Some(true) {
            let detail = "delivered before by a node that died; it may have run there".into();
            return self.finish(TaskOutcome::Failed {
                reason: FailureReason::MayHaveRun { agent: None, detail },
                attempts: 0,
            });
        }
        Step::Acquire { retry: false }
    }

    /// The swarm of the current phase (`None`: any agent).
    pub fn swarm(&self) -> Option<&SwarmName> {
        self.swarms[self.phase].as_ref()
    }

    /// Agents not to choose for the next acquisition (registration sequence numbers).
    pub fn tried(&self) -> &[u64] {
        &self.tried
    }

    /// Deliveries so far.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// True once the plan has returned its [`Step::Finish`].
    pub fn is_finished(&self) -> bool {
        self.expect == Expect::Nothing
    }

    /// Feeds one event at `now_ns`; returns the next step, or `None` once finished (or
    /// for an event the plan did not ask for, which is a driver bug).
    pub fn on_event<R: Rng + ?Sized>(&mut self, event: Event, now_ns: u64, rng: &mut R) -> Option<Step> {
        let step = match (self.expect, event) {
            (Expect::Nothing, _) => return None,
            (Expect::Acquisition { .. }, Event::NoCandidates) => {
                self.trial_wait_since_ns = None;
                self.last
                    .get_or_insert(AttemptError::NoAgent { detail: "no agent has the required capabilities".into() });
                self.next_phase()
            }
            (Expect::Acquisition { .. }, Event::Acquired { agent, seq }) => {
                self.trial_wait_since_ns = None;
                self.saw_candidates = true;
                self.leased = Some((agent, seq));
                self.deliveries += 1;
                self.expect = Expect::Delivery;
                Step::Deliver { attempt: self.deliveries }
            }
            (Expect::Acquisition { retry }, Event::AllTried) => {
                self.saw_candidates = true;
                debug_assert!(!self.tried.is_empty(), "AllTried with nothing tried");
                // Every usable agent has had this task once: allow second tries.
                self.tried.clear();
                Step::Acquire { retry }
            }
            (Expect::Acquisition { retry }, Event::Unavailable { detail, trial_in_ns }) => {
                self.saw_candidates = true;
                let since = *self.trial_wait_since_ns.get_or_insert(now_ns);
                match trial_in_ns {
                    Some(wait)
                        if now_ns.saturating_add(wait) <= since.saturating_add(self.limits.routing_timeout_ns) =>
                    {
                        self.expect = Expect::Wake { retry };
                        Step::Wait(Duration::from_nanos(wait).max(MIN_TRIAL_WAIT))
                    }
                    _ => {
                        self.trial_wait_since_ns = None;
                        self.last = Some(AttemptError::NoAgent { detail });
                        self.phase_attempts += 1;
                        if self.phase_attempts < self.limits.max_attempts {
                            self.expect = Expect::Wake { retry: false };
                            Step::Wait(self.limits.backoff.delay(self.phase_attempts, rng))
                        } else {
                            self.next_phase()
                        }
                    }
                }
            }
            (Expect::Delivery, Event::Attempted(verdict)) => self.on_attempt(verdict),
            (Expect::Budget, Event::Budget(granted)) => {
                if granted {
                    self.expect = Expect::Wake { retry: true };
                    Step::Wait(self.limits.backoff.delay(self.phase_attempts, rng))
                } else {
                    let last = self.last.take().expect("a failed attempt precedes a budget request");
                    self.finish(TaskOutcome::Failed {
                        reason: FailureReason::RetryBudgetExhausted { last },
                        attempts: self.deliveries,
                    })
                }
            }
            (Expect::Wake { retry }, Event::Woke) => {
                self.expect = Expect::Acquisition { retry };
                Step::Acquire { retry }
            }
            (expect, event) => {
                debug_assert!(false, "routing plan expected {expect:?}, got {event:?}");
                return None;
            }
        };
        Some(step)
    }

    fn on_attempt(&mut self, verdict: AttemptVerdict) -> Step {
        let (agent, seq) = self.leased.take().expect("a delivery follows an acquisition");
        if self.at_most_once.is_some() {
            let detail = match &verdict {
                AttemptVerdict::Lost => Some("the agent was lost before answering".to_string()),
                AttemptVerdict::Panicked(m) => Some(format!("the agent panicked: {m}")),
                AttemptVerdict::TimedOut { after_ms } => Some(format!("no answer within {after_ms} ms")),
                _ => None,
            };
            if let Some(detail) = detail {
                return self.finish(TaskOutcome::Failed {
                    reason: FailureReason::MayHaveRun { agent: Some(agent), detail },
                    attempts: self.deliveries,
                });
            }
        }
        match verdict {
            AttemptVerdict::Completed(output) => {
                self.finish(TaskOutcome::Completed { agent, output, attempts: self.deliveries })
            }
            AttemptVerdict::Permanent(message) => self.finish(TaskOutcome::Failed {
                reason: FailureReason::Permanent { agent, message },
                attempts: self.deliveries,
            }),
            AttemptVerdict::Lost | AttemptVerdict::Refused(_) => {
                self.redeliveries += 1;
                self.tried.push(seq);
                if self.redeliveries > self.limits.max_redeliveries {
                    self.executed += 1;
                    self.phase_attempts += 1;
                    self.last = Some(AttemptError::AgentLost { agent });
                }
                self.acquire_or_next_phase(false)
            }
            verdict => {
                let backs_off = verdict.backs_off();
                self.executed += 1;
                self.phase_attempts += 1;
                self.last = Some(verdict.error(agent));
                self.tried.push(seq);
                if self.phase_attempts >= self.limits.max_attempts {
                    self.next_phase()
                } else if backs_off {
                    self.expect = Expect::Budget;
                    Step::WithdrawBudget
                } else {
                    self.acquire_or_next_phase(true)
                }
            }
        }
    }

    fn acquire_or_next_phase(&mut self, retry: bool) -> Step {
        if self.phase_attempts >= self.limits.max_attempts {
            return self.next_phase();
        }
        self.expect = Expect::Acquisition { retry };
        Step::Acquire { retry }
    }

    fn next_phase(&mut self) -> Step {
        self.phase += 1;
        self.phase_attempts = 0;
        self.trial_wait_since_ns = None;
        if self.phase < self.phases {
            self.expect = Expect::Acquisition { retry: false };
            return Step::Acquire { retry: false };
        }
        self.phase = self.phases - 1;
        let last = self.last.take().unwrap_or(AttemptError::NoAgent { detail: "no attempt was possible".into() });
        let outcome = if self.executed == 0 {
            let reason = if !self.saw_candidates {
                DeadLetterReason::NoCapableAgent
            } else {
                DeadLetterReason::NoAvailableAgent { detail: last.to_string() }
            };
            TaskOutcome::DeadLettered { reason, attempts: self.deliveries }
        } else {
            TaskOutcome::Failed { reason: FailureReason::RetriesExhausted { last }, attempts: self.deliveries }
        };
        self.finish(outcome)
    }

    fn finish(&mut self, outcome: TaskOutcome) -> Step {
        self.expect = Expect::Nothing;
        Step::Finish(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const MS: u64 = 1_000_000;

    fn limits() -> PlanLimits {
        PlanLimits {
            max_attempts: 3,
            max_redeliveries: 2,
            backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(5) },
            routing_timeout_ns: 5_000 * MS,
        }
    }

    fn agent(n: u64) -> Event {
        Event::Acquired { agent: AgentId::new(format!("a{n}")).unwrap(), seq: n }
    }

    fn swarm(s: &str) -> Option<SwarmName> {
        Some(SwarmName::new(s).unwrap())
    }

    struct Run {
        plan: RoutePlan,
        rng: SmallRng,
        now: u64,
    }

    impl Run {
        fn new(mut plan: RoutePlan) -> (Self, Step) {
            let step = plan.start();
            (Self { plan, rng: SmallRng::seed_from_u64(1), now: 0 }, step)
        }
        fn feed(&mut self, e: Event) -> Step {
            self.plan.on_event(e, self.now, &mut self.rng).expect("plan still running")
        }
    }

    /// A first delivery that completes finishes the task, attempts = 1.
    #[test]
    fn completes_on_first_delivery() {
        let (mut r, s) = Run::new(RoutePlan::new(limits(), None, None));
        assert_eq!(s, Step::Acquire { retry: false });
        assert_eq!(r.feed(agent(1)), Step::Deliver { attempt: 1 });
        let s = r.feed(Event::Attempted(AttemptVerdict::Completed(Bytes::from_static(b"x"))));
        assert!(matches!(s, Step::Finish(TaskOutcome::Completed { attempts: 1, .. })), "{s:?}");
        assert!(r.plan.is_finished());
        assert_eq!(r.plan.on_event(Event::Woke, 0, &mut r.rng), None, "no event after the finish");
    }

    /// At-most-once: a refusal and a retryable error are retried; a lost, timed-out or
    /// panicked attempt fails the task as "may have run" with no further delivery; a task
    /// delivered before the plan fails at once.
    #[test]
    fn at_most_once_stops_after_an_attempt_that_may_have_run() {
        for (verdict, tag) in [
            (AttemptVerdict::Lost, "lost"),
            (AttemptVerdict::TimedOut { after_ms: 5 }, "5 ms"),
            (AttemptVerdict::Panicked("boom".into()), "boom"),
        ] {
            let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None).at_most_once(false));
            r.feed(agent(1));
            assert_eq!(
                r.feed(Event::Attempted(AttemptVerdict::Refused("busy".into()))),
                Step::Acquire { retry: false }
            );
            r.feed(agent(2));
            assert_eq!(r.feed(Event::Attempted(AttemptVerdict::Failed("not run".into()))), Step::WithdrawBudget);
            r.feed(Event::Budget(true));
            r.feed(Event::Woke);
            r.feed(agent(3));
            let s = r.feed(Event::Attempted(verdict));
            let Step::Finish(TaskOutcome::Failed {
                reason: FailureReason::MayHaveRun { agent: Some(_), detail },
                attempts: 3,
            }) = &s
            else {
                panic!("{s:?}")
            };
            assert!(detail.contains(tag), "{detail}");
        }
        let mut plan = RoutePlan::new(limits(), None, None).at_most_once(true);
        let s = plan.start();
        assert!(
            matches!(
                s,
                Step::Finish(TaskOutcome::Failed {
                    reason: FailureReason::MayHaveRun { agent: None, .. },
                    attempts: 0
                })
            ),
            "{s:?}"
        );
        assert!(plan.is_finished());
    }

    /// A retryable failure asks the budget, backs off, and excludes the failed agent;
    /// a panic retries at once (no budget, no backoff).
    #[test]
    fn failure_backs_off_with_budget_panic_does_not() {
        let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None));
        r.feed(agent(1));
        assert_eq!(r.feed(Event::Attempted(AttemptVerdict::Failed("no".into()))), Step::WithdrawBudget);
        let Step::Wait(d) = r.feed(Event::Budget(true)) else { panic!("backoff") };
        assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        assert_eq!(r.feed(Event::Woke), Step::Acquire { retry: true });
        assert_eq!(r.plan.tried(), &[1]);
        r.feed(agent(2));
        assert_eq!(r.feed(Event::Attempted(AttemptVerdict::Panicked("boom".into()))), Step::Acquire { retry: true });
        assert_eq!(r.plan.tried(), &[1, 2]);
    }

    /// A denied budget fails the task with the last error.
    #[test]
    fn denied_budget_fails_the_task() {
        let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None));
        r.feed(agent(1));
        r.feed(Event::Attempted(AttemptVerdict::TimedOut { after_ms: 5 }));
        let s = r.feed(Event::Budget(false));
        assert!(
            matches!(
                s,
                Step::Finish(TaskOutcome::Failed {
                    reason: FailureReason::RetryBudgetExhausted { last: AttemptError::Timeout { after_ms: 5, .. } },
                    attempts: 1
                })
            ),
            "{s:?}"
        );
    }

    /// Lost deliveries do not spend attempts until `max_redeliveries` is passed.
    #[test]
    fn lost_deliveries_are_free_up_to_the_limit() {
        let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None));
        for n in 0..3 {
            r.feed(agent(n));
            assert_eq!(r.feed(Event::Attempted(AttemptVerdict::Lost)), Step::Acquire { retry: false });
        }
        assert_eq!(r.plan.phase_attempts, 1, "the third loss passed max_redeliveries = 2");
    }

    /// With every candidate's breaker open and a trial due within the routing timeout,
    /// the plan waits for the trial instead of spending attempts (and dead-lettering).
    #[test]
    fn all_breakers_open_waits_for_a_trial_within_the_routing_timeout() {
        let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None));
        let open = |trial_ms: u64| Event::Unavailable { detail: "refused".into(), trial_in_ns: Some(trial_ms * MS) };
        assert_eq!(r.feed(open(300)), Step::Wait(Duration::from_millis(300)));
        r.now += 300 * MS;
        assert_eq!(r.feed(Event::Woke), Step::Acquire { retry: false });
        assert_eq!(r.plan.phase_attempts, 0, "waiting spent no attempt");
        assert_eq!(r.feed(agent(1)), Step::Deliver { attempt: 1 });
        assert!(matches!(
            r.feed(Event::Attempted(AttemptVerdict::Completed(Bytes::new()))),
            Step::Finish(TaskOutcome::Completed { .. })
        ));

        // A trial due after the routing timeout spends the attempt now.
        let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None));
        let Step::Wait(_) = r.feed(open(30_000)) else { panic!("backoff after a spent attempt") };
        assert_eq!(r.plan.phase_attempts, 1);
        // Repeated short trial waits are bounded by the routing timeout in total.
        let (mut r, _) = Run::new(RoutePlan::new(limits(), None, None));
        let mut waits = 0;
        while r.plan.phase_attempts == 0 {
            let Step::Wait(d) = r.feed(open(1_000)) else { panic!() };
            r.now += d.as_nanos() as u64;
            r.feed(Event::Woke);
            waits += 1;
        }
        assert_eq!(waits, 6, "5 waits of 1 s fit in the 5 s routing timeout, the 6th spends the attempt");
    }

    /// No candidates in the primary swarm moves to the fallback; no candidates anywhere
    /// dead-letters as NoCapableAgent; unavailable agents dead-letter as NoAvailableAgent.
    #[test]
    fn phases_and_dead_letter_reasons() {
        let (mut r, _) = Run::new(RoutePlan::new(limits(), swarm("p"), swarm("f")));
        assert_eq!(r.plan.swarm(), swarm("p").as_ref());
        assert_eq!(r.feed(Event::NoCandidates), Step::Acquire { retry: false });
        assert_eq!(r.plan.swarm(), swarm("f").as_ref());
        let s = r.feed(Event::NoCandidates);
        assert!(
            matches!(s, Step::Finish(TaskOutcome::DeadLettered { reason: DeadLetterReason::NoCapableAgent, .. })),
            "{s:?}"
        );

        let (mut r, _) = Run::new(RoutePlan::new(limits(), swarm("p"), swarm("p")));
        assert_eq!(r.plan.phases, 1, "a fallback equal to the primary is no second phase");
        let mut s = r.feed(Event::Unavailable { detail: "all busy".into(), trial_in_ns: None });
        while let Step::Wait(_) = s {
            s = r.feed(Event::Woke);
            if s == (Step::Acquire { retry: false }) {
                s = r.feed(Event::Unavailable { detail: "all busy".into(), trial_in_ns: None });
            }
        }
        assert!(
            matches!(
                s,
                Step::Finish(TaskOutcome::DeadLettered {
                    reason: DeadLetterReason::NoAvailableAgent { .. },
                    attempts: 0
                })
            ),
            "{s:?}"
        );
    }

    /// One simulated driver answer per step: a random number read as the answer to
    /// whatever the plan asked (the real driver's acquisition honours `tried`).
    fn answer(step: &Step, roll: u32, agents: u64, tried: &[u64]) -> Event {
        match step {
            Step::Wait(_) => Event::Woke,
            Step::WithdrawBudget => Event::Budget(!roll.is_multiple_of(3)),
            Step::Deliver { .. } => Event::Attempted(match roll % 7 {
                0 => AttemptVerdict::Completed(Bytes::new()),
                1 => AttemptVerdict::Permanent("p".into()),
                2 => AttemptVerdict::Failed("f".into()),
                3 => AttemptVerdict::Panicked("x".into()),
                4 => AttemptVerdict::TimedOut { after_ms: 1 },
                5 => AttemptVerdict::Refused("r".into()),
                _ => AttemptVerdict::Lost,
            }),
            Step::Acquire { .. } => match roll % 10 {
                0 => Event::NoCandidates,
                1 => Event::Unavailable { detail: "u".into(), trial_in_ns: None },
                2 => Event::Unavailable { detail: "u".into(), trial_in_ns: Some(u64::from(roll >> 8) % 8_000 * MS) },
                _ => {
                    let free: Vec<u64> = (0..agents).filter(|a| !tried.contains(a)).collect();
                    if free.is_empty() { Event::AllTried } else { agent(free[(roll >> 4) as usize % free.len()]) }
                }
            },
            Step::Finish(_) => unreachable!("no answer to a finish"),
        }
    }

    proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Over random event sequences from a driver that honours the plan's exclusions:
            /// every task reaches exactly one terminal step and takes no event after it;
            /// backoff retries never exceed the budget granted; deliveries stay within
            /// phases × (attempts + redeliveries + 1); and an agent gets the task a second
            /// time only after the plan heard `AllTried` (every usable agent was tried).
            #[test]
            fn every_task_ends_once_within_its_budget_and_exclusions(
                agents in 1u64..6,
                fallback in any::<bool>(),
                at_most_once in any::<bool>(),
                rolls in proptest::collection::vec(any::<u32>(), 1..300),
                seed in any::<u64>(),
            ) {
                let lim = limits();
                let mut plan = RoutePlan::new(lim, swarm("p"), if fallback { swarm("f") } else { None });
                if at_most_once {
                    plan = plan.at_most_once(false);
                }
                let mut rng = SmallRng::seed_from_u64(seed);
                // At-most-once: deliveries after one that may have run the task.
                let (mut may_have_run, mut delivered_after) = (false, 0u32);
                let mut step = plan.start();
                let (mut now, mut finishes, mut grants, mut budget_retries) = (0u64, 0u32, 0u32, 0u32);
                let mut delivered_since_all_tried: Vec<u64> = Vec::new();
                let mut rolls = rolls.into_iter().cycle();
                for _ in 0..100_000 {
                    if let Step::Finish(_) = step {
                        finishes += 1;
                        break;
                    }
                    let event = answer(&step, rolls.next().expect("cycled"), agents, plan.tried());
                    let budget_answer = matches!(event, Event::Budget(_));
                    if matches!(step, Step::Deliver { .. }) && may_have_run {
                        delivered_after += 1;
                    }
                    if let Event::Attempted(AttemptVerdict::Lost | AttemptVerdict::Panicked(_) | AttemptVerdict::TimedOut { .. }) = &event {
                        may_have_run = true;
                    }
                    match (&step, &event) {
                        (Step::Wait(d), _) => now += d.as_nanos() as u64,
                        (_, Event::Budget(true)) => grants += 1,
                        (_, Event::AllTried) => delivered_since_all_tried.clear(),
                        (_, Event::Acquired { seq, .. }) => {
                            prop_assert!(
                                !delivered_since_all_tried.contains(seq),
                                "agent {} tried twice without AllTried in between", seq
                            );
                            delivered_since_all_tried.push(*seq);
                        }
                        _ => {}
                    }
                    step = plan.on_event(event, now, &mut rng).expect("a running plan answers its events");
                    if budget_answer && matches!(step, Step::Wait(_)) {
                        // The backoff of a retry that asked the budget.
                        budget_retries += 1;
                    }
                }
                prop_assert_eq!(finishes, 1, "exactly one terminal step");
                prop_assert!(plan.is_finished());
                prop_assert_eq!(plan.on_event(Event::Woke, now, &mut rng), None);
                prop_assert!(budget_retries <= grants, "{} backoff retries, {} granted", budget_retries, grants);
                let phases = if fallback { 2 } else { 1 };
                prop_assert!(plan.deliveries() <= phases * (lim.max_attempts + lim.max_redeliveries + 1));
                if at_most_once {
                    prop_assert_eq!(delivered_after, 0, "an at-most-once task was delivered after it may have run");
                }
    }
        }
}
