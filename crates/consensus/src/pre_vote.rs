//! Pre-vote (Raft thesis §9.6) on top of openraft 0.9, which has none: a node campaigns
//! only after a majority of the voters said they would vote for it.
//!
//! **Why.** Without it, a node that was paused (SIGSTOP), partitioned or restarted
//! campaigns as soon as its election timer fires, bumping its term. The voters refuse it
//! (they still hear the leader), but the leader's next AppendEntries to it answers with
//! the higher term, and the leader steps down. Every resumed or restarted node costs an
//! election: in a nemesis run the term reached 90 in 84 s and throughput fell 15-fold.
//!
//! **How.** openraft's own election timer is off (`enable_elect = false`); the node runs
//! [`ElectionTimer`] instead. When it fires, the node asks every voter a `PreVote`
//! question carrying its last log id, which changes nothing anywhere. A voter says yes
//! ([`judge_pre_vote`]) exactly when openraft would grant the real vote: it is not the
//! leader, it has not heard from a leader within its leader lease
//! (`election_timeout_max_ms`, the same lease openraft uses to refuse votes), and the
//! candidate's log is at least as up to date as its own. With yes from a quorum of every
//! voter configuration the node calls `trigger().elect()`, a real openraft election that
//! should then succeed; otherwise it waits another randomized timeout. A node that cannot
//! reach a majority therefore never raises its term, and rejoins as a follower when the
//! leader's heartbeats reach it again.
//!
//! The pieces here are pure (time and answers in, decisions out); the driver is in
//! `node.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::types::{LogId, RaftNodeId};

/// The question a would-be candidate asks each voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// Who asks.
    pub candidate: String,
    /// The last log id in the candidate's log.
    pub last_log_id: Option<LogId>,
}

/// A voter's answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreVoteAnswer {
    /// It would vote for the candidate.
    Granted,
    /// It is the leader.
    RefusedLeader,
    /// It heard from a leader within its lease.
    RefusedLeaderAlive,
    /// The candidate's log is behind its own.
    RefusedLogBehind,
}

/// What a voter knows when it judges a pre-vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoterView {
    /// It is the leader.
    pub is_leader: bool,
    /// Its vote is committed (a leader was established in its term).
    pub vote_committed: bool,
    /// Time since its vote was last updated or refreshed (openraft refreshes it on each
    /// heartbeat from the leader); `None` if never.
    pub since_vote_refreshed: Option<Duration>,
    /// The leader lease (openraft's: `election_timeout_max_ms`).
    pub lease: Duration,
    /// The last log id in its log.
    pub last_log_id: Option<LogId>,
}

/// Whether a voter in state `me` would vote for a candidate whose last log id is
/// `candidate_last`: the same rules openraft applies to a real vote request
/// (`Engine::handle_vote_req`), minus the term, which a pre-vote does not raise.
pub fn judge_pre_vote(candidate_last: Option<&LogId>, me: &VoterView) -> PreVoteAnswer {
    if me.is_leader {
        return PreVoteAnswer::RefusedLeader;
    }
    if me.vote_committed && me.since_vote_refreshed.is_some_and(|d| d <= me.lease) {
        return PreVoteAnswer::RefusedLeaderAlive;
    }
    if candidate_last < me.last_log_id.as_ref() {
        return PreVoteAnswer::RefusedLogBehind;
    }
    PreVoteAnswer::Granted
}

/// Whether `granted` (node ids, the candidate included) holds a majority of every
/// configuration in `joint` (one configuration normally, two during a membership change).
pub fn is_quorum(joint: &[BTreeSet<RaftNodeId>], granted: &BTreeSet<RaftNodeId>) -> bool {
    !joint.is_empty() && joint.iter().all(|voters| voters.intersection(granted).count() * 2 > voters.len())
}

/// This node's role as the timer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerRole {
    /// Leads: no timer.
    Leader,
    /// A voter that follows (or campaigns).
    Voter,
    /// Not a voter: never campaigns.
    NonVoter,
}

/// The follower's election timer: fires a randomized timeout (in
/// `[election_timeout_min_ms, election_timeout_max_ms]`) after the last sign of a live
/// leader, plus the leader lease when a leader was known (as openraft's own timer does),
/// and again a fresh randomized timeout after each failed attempt. Seeded, so a run can
/// be replayed.
#[derive(Debug)]
pub struct ElectionTimer {
    min: Duration,
    max: Duration,
    lease: Duration,
    rng: SmallRng,
    deadline: Instant,
}

impl ElectionTimer {
    /// A timer that first fires a randomized timeout after `now`.
    pub fn new(min: Duration, max: Duration, lease: Duration, seed: u64, now: Instant) -> Self {
        let mut t = Self { min, max, lease, rng: SmallRng::seed_from_u64(seed), deadline: now };
        t.deadline = now + t.timeout();
        t
    }

    fn timeout(&mut self) -> Duration {
        let (min, max) = (self.min.as_micros() as u64, self.max.as_micros() as u64);
        Duration::from_micros(if max > min { self.rng.random_range(min..=max) } else { min })
    }

    /// A sign of a live leader (an accepted AppendEntries or snapshot) or of an election
    /// in progress (a vote granted) at `at`: the next attempt waits a full timeout from
    /// there, plus the lease when `leader_known`.
    pub fn heard(&mut self, at: Instant, leader_known: bool) {
        let lease = if leader_known { self.lease } else { Duration::ZERO };
        let deadline = at + lease + self.timeout();
        if deadline > self.deadline {
            self.deadline = deadline;
        }
    }

    /// Whether to start a pre-vote round at `now`. When it says yes it has already set
    /// the next deadline (a failed round waits a fresh timeout).
    pub fn poll(&mut self, now: Instant, role: TimerRole) -> bool {
        match role {
            TimerRole::Leader | TimerRole::NonVoter => {
                self.deadline = self.deadline.max(now + self.min);
                false
            }
            TimerRole::Voter if now >= self.deadline => {
                self.deadline = now + self.timeout();
                true
            }
            TimerRole::Voter => false,
        }
    }

    /// When the timer fires next.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn voter() -> VoterView {
        VoterView {
            is_leader: false,
            vote_committed: true,
            since_vote_refreshed: Some(Duration::from_millis(50)),
            lease: Duration::from_millis(200),
            last_log_id: Some(log(3, 10)),
        }
    }

    /// A voter refuses while it leads or hears a leader within its lease, and refuses a
    /// candidate with a shorter or older log; it grants once the lease has expired (or no
    /// leader was established) to a candidate at least as up to date.
    #[test]
    fn pre_vote_mirrors_openraft_vote_rules() {
        let up_to_date = Some(log(3, 10));
        assert_eq!(
            judge_pre_vote(up_to_date.as_ref(), &VoterView { is_leader: true, ..voter() }),
            PreVoteAnswer::RefusedLeader
        );
        assert_eq!(judge_pre_vote(up_to_date.as_ref(), &voter()), PreVoteAnswer::RefusedLeaderAlive);
        let expired = VoterView { since_vote_refreshed: Some(Duration::from_millis(201)), ..voter() };
        assert_eq!(judge_pre_vote(up_to_date.as_ref(), &expired), PreVoteAnswer::Granted);
        let no_leader = VoterView { vote_committed: false, ..voter() };
        assert_eq!(judge_pre_vote(up_to_date.as_ref(), &no_leader), PreVoteAnswer::Granted);
        assert_eq!(judge_pre_vote(Some(&log(3, 9)), &expired), PreVoteAnswer::RefusedLogBehind);
        assert_eq!(judge_pre_vote(Some(&log(2, 50)), &expired), PreVoteAnswer::RefusedLogBehind, "older term");
        assert_eq!(judge_pre_vote(None, &expired), PreVoteAnswer::RefusedLogBehind);
        assert_eq!(judge_pre_vote(Some(&log(4, 1)), &expired), PreVoteAnswer::Granted, "newer term");
    }

    /// A quorum is a strict majority of every configuration of a joint membership.
    #[test]
    fn quorum_of_every_configuration() {
        let c = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<_>>();
        assert!(is_quorum(&[c(&[1, 2, 3])], &c(&[1, 2])));
        assert!(!is_quorum(&[c(&[1, 2, 3])], &c(&[1])));
        assert!(!is_quorum(&[c(&[1, 2, 3, 4])], &c(&[1, 2])));
        assert!(!is_quorum(&[c(&[1, 2, 3]), c(&[3, 4, 5])], &c(&[1, 2])), "joint: both majorities");
        assert!(is_quorum(&[c(&[1, 2, 3]), c(&[3, 4, 5])], &c(&[2, 3, 4])));
        assert!(!is_quorum(&[], &c(&[1])));
    }

    /// The timer fires a randomized timeout after the last sign of a leader (plus the lease
    /// when a leader was known), never while the node leads, and again a fresh timeout
    /// after a failed attempt; the same seed gives the same schedule.
    #[test]
    fn timer_fires_after_silence_only() {
        let (min, max, lease) = (Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(200));
        let t0 = Instant::now();
        let mut t = ElectionTimer::new(min, max, lease, 7, t0);
        assert!(!t.poll(t0 + Duration::from_millis(99), TimerRole::Voter));
        t.heard(t0 + Duration::from_millis(90), true);
        assert!(!t.poll(t0 + Duration::from_millis(389), TimerRole::Voter), "lease + min after the heartbeat");
        assert!(!t.poll(t0 + Duration::from_secs(5), TimerRole::Leader), "a leader never campaigns");
        assert!(!t.poll(t0 + Duration::from_secs(5), TimerRole::NonVoter));
        let late = t0 + Duration::from_secs(10);
        assert!(t.poll(late, TimerRole::Voter));
        assert!(!t.poll(late, TimerRole::Voter), "a failed round waits a fresh timeout");
        assert!(t.deadline() >= late + min && t.deadline() <= late + max);
        let mut a = ElectionTimer::new(min, max, lease, 42, t0);
        let mut b = ElectionTimer::new(min, max, lease, 42, t0);
        assert_eq!(a.deadline(), b.deadline());
        a.heard(t0, false);
        b.heard(t0, false);
        assert_eq!(a.deadline(), b.deadline(), "seeded");
    }
}
