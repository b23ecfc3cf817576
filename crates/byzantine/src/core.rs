//! [`ByzantineCore`]: the quorum-voting state machine of one node. Events in (a proposal
//! request, a message, a clock tick), [`Output`]s out; no I/O, no clock of its own.
//!
//! # Protocol
//!
//! N = |members| ≥ 3f + 1 nodes, quorum q = 2f + 1. Round r has one leader,
//! `members[r mod N]` (members sorted by name; PBFT's primary of view v, Castro & Liskov
//! §4.1). The leader broadcasts a signed `Proposal(r, value)`. Every node that accepts the
//! leader's first proposal for r broadcasts one signed `Vote(r, SHA-256(value))` and counts
//! its own vote. A node **decides** digest d for r when it holds q valid votes for d from
//! distinct, non-blacklisted senders not caught equivocating in r, before the round's
//! timeout (`round_timeout_ms` after the node first heard of r); otherwise the round
//! **times out** without a decision. A node decides at most once per round.
//!
//! **Safety.** Honest nodes vote once per round and send the same vote to everyone. Two
//! quorums of 2f + 1 among 3f + 1 nodes share at least f + 1 nodes; if two honest nodes
//! decided d ≠ d′, every shared node sent d to one and d′ to the other, so all f + 1 of them
//! would be faulty *and equivocating*. Hence: with at most f faulty nodes of any behaviour,
//! honest nodes never decide different values; with any number of faulty nodes that do not
//! equivocate (silent, forging, replaying, voting a wrong value consistently) they never
//! decide different values either. Blacklisting and exclusion only remove votes, so they
//! cannot create a decision. The bound is tight: f + 1 colluding equivocators including
//! the leader can make two honest nodes decide differently (2q − N = f + 1 is the overlap;
//! no local rule tells such a split from an honest round with f wrong votes), which the
//! `f_plus_one_colluding_equivocators_can_split` test demonstrates. Deployments must keep
//! faulty nodes ≤ f.
//!
//! # Rejections and dishonesty
//!
//! Every refused message yields a [`Rejection`] counted by [`RejectReason`]. Only faults
//! that the claimed sender alone could have produced are *charged* to it (the MAC under
//! k(sender, me) verified, and the message breaks the protocol): equivocation (two
//! different proposals or votes for one round), a proposal from a non-leader, and, once the
//! round decides, a vote for another value (wrong value). If f + 1 or more voters back the
//! same other value, or this node itself got a different proposal, at least one honest node
//! was told that value, so the leader equivocated: the leader is charged instead of the
//! voters. Bad MACs, replays and stale rounds are counted but not charged: anyone on the
//! network can replay a genuine message, and a bad tag says nothing about the claimed
//! sender. A peer's score is charged faults / authenticated messages received from it; the
//! peer is blacklisted when the score exceeds `blacklist_threshold` after at least
//! [`MIN_MESSAGES_BEFORE_BLACKLIST`] messages, and its messages are refused from then on.
//!
//! # Bounds
//!
//! State is kept for a window of [`ROUND_WINDOW`] rounds below the highest round seen;
//! older messages are `Stale`, messages more than [`ROUND_WINDOW`] rounds ahead are
//! `FutureRound`. Per round: one proposal, one vote per sender, at most
//! [`MAX_NONCES_PER_SENDER`] remembered nonces per sender.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use erlmcp_flow_core::NodeName;
use erlmcp_flow_core::config::ByzantineConfig;
use serde::{Deserialize, Serialize};

use crate::keys::{AuthError, KeyRing, MessageKind, SignedBody, ValueDigest};
use crate::wire::{self, MAX_VALUE_BYTES, SignedMessage};

/// Rounds of state kept below the highest round seen.
pub const ROUND_WINDOW: u64 = 128;
/// Authenticated messages needed from a peer before it can be blacklisted.
pub const MIN_MESSAGES_BEFORE_BLACKLIST: u64 = 4;
/// Nonces remembered per sender per round.
pub const MAX_NONCES_PER_SENDER: usize = 4;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RejectReason {
    /// The tag for this node is missing or does not verify (forged or corrupted), or the
    /// message claims to come from this node.
    Forged,
    /// A message already seen in this round (same nonce, or same content again).
    Replay,
    /// The round is below the kept window.
    Stale,
    /// The round is too far ahead of the window.
    FutureRound,
    /// A second, different proposal or vote from one sender for one round. Charged.
    Equivocation,
    /// A proposal from a node that does not lead the round. Charged.
    NotLeader,
    /// The claimed sender shares no key with this node.
    UnknownSender,
    /// The sender is blacklisted.
    Blacklisted,
    /// Bytes that are not a well-formed message.
    Malformed,
}

/// A charged fault found after the fact (not a refused message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Fault {
    /// A valid vote for a value other than the round's decision.
    WrongValue,
    /// The leader told different nodes different values (proven by f + 1 votes for another
    /// value, or by this node's own proposal).
    LeaderEquivocation,
}

/// A refused message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// Claimed sender, if the message decoded.
    pub sender: Option<NodeName>,
    /// Claimed round, if the message decoded.
    pub round: Option<u64>,
    /// Whether the sender was charged for it.
    pub charged: bool,
}

/// A round's decision at one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The round.
    pub round: u64,
    /// Digest of the decided value.
    pub digest: ValueDigest,
    /// The value, if this node received the matching proposal.
    pub value: Option<Vec<u8>>,
    /// The senders of the quorum's votes.
    pub voters: Vec<NodeName>,
}

/// What the core asks its shell to do or report.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message to every peer (its authenticator has a tag for each).
    Broadcast(SignedMessage),
    /// The round is decided (once per round).
    Decided(Decision),
    /// The round timed out without a decision (once per round).
    TimedOut {
        /// The round.
        round: u64,
    },
    /// A message was refused.
    Rejected(Rejection),
    /// A peer was charged with a fault found after the fact.
    Charged {
        /// The peer.
        node: NodeName,
        /// The round.
        round: u64,
        /// The fault.
        fault: Fault,
    },
    /// A peer crossed the dishonesty threshold and is now ignored.
    Blacklisted(NodeName),
}

/// Why a proposal could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the round's leader proposes.
    #[error("round {round} is led by {leader}, not this node")]
    NotLeader {
        /// The round.
        round: u64,
        /// Its leader.
        leader: NodeName,
    },
    /// This node proposed or accepted a proposal for the round already.
    #[error("round {0} already has a proposal")]
    AlreadyProposed(u64),
    /// The round is outside the kept window.
    #[error("round {0} is outside the window of kept rounds")]
    OutOfWindow(u64),
    /// The round timed out or was decided.
    #[error("round {0} is over")]
    RoundOver(u64),
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("value is {0} bytes, the limit is {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
}

/// Why a core could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The configuration is inconsistent.
    #[error("byzantine config: {0}")]
    Config(String),
    /// N must be at least 3f + 1.
    #[error("{members} members cannot tolerate f = {f} faulty nodes (need at least {})", 3 * f + 1)]
    TooFewMembers {
        /// Members (this node and its peers).
        members: usize,
        /// Configured f.
        f: usize,
    },
    /// More members than the wire allows.
    #[error("{0} members, the limit is {max}", max = wire::MAX_MEMBERS)]
    TooManyMembers(usize),
}

/// Counters and per-peer scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByzantineStats {
    /// Rounds decided.
    pub decided: u64,
    /// Rounds timed out.
    pub timed_out: u64,
    /// Refused messages by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Faults charged after the fact, by kind.
    pub faults: BTreeMap<Fault, u64>,
    /// Per peer: authenticated messages, charged faults, blacklisted.
    pub peers: BTreeMap<NodeName, PeerScore>,
}

impl ByzantineStats {
    /// Refused messages with `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected.get(&reason).copied().unwrap_or(0)
    }

    /// All refused messages.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Blacklisted peers.
    pub fn blacklisted(&self) -> Vec<NodeName> {
        self.peers.iter().filter(|(_, s)| s.blacklisted).map(|(n, _)| n.clone()).collect()
    }
}

/// What one node knows of a peer's honesty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerScore {
    /// Authenticated messages received from the peer.
    pub messages: u64,
    /// Faults charged to it.
    pub dishonest: u64,
    /// Whether it is blacklisted.
    pub blacklisted: bool,
}

impl PeerScore {
    /// dishonest / messages, in [0, 1] (0 before any message).
    pub fn score(&self) -> f64 {
        if self.messages == 0 { 0.0 } else { (self.dishonest as f64 / self.messages as f64).min(1.0) }
    }
}

#[derive(Debug)]
struct RoundState {
    deadline: Instant,
    proposal: Option<(ValueDigest, Vec<u8>)>,
    my_vote: Option<ValueDigest>,
    /// First vote per sender (this node's own included).
    votes: BTreeMap<NodeName, ValueDigest>,
    /// Senders caught equivocating in this round: their votes do not count.
    excluded: BTreeSet<NodeName>,
    nonces: BTreeMap<NodeName, Vec<u64>>,
    decided: Option<Decision>,
    timed_out: bool,
    /// Voters already charged with a wrong value, and whether the leader was charged.
    charged: BTreeSet<NodeName>,
    leader_charged: bool,
}

impl RoundState {
    fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            proposal: None,
            my_vote: None,
            votes: BTreeMap::new(),
            excluded: BTreeSet::new(),
            nonces: BTreeMap::new(),
            decided: None,
            timed_out: false,
            charged: BTreeSet::new(),
            leader_charged: false,
        }
    }

    fn over(&self) -> bool {
        self.decided.is_some() || self.timed_out
    }
}

/// The Byzantine quorum-voting state machine of one node.
pub struct ByzantineCore {
    keys: KeyRing,
    members: Vec<NodeName>,
    f: usize,
    quorum: usize,
    round_timeout: Duration,
    blacklist_threshold: f64,
    next_nonce: u64,
    horizon: u64,
    rounds: BTreeMap<u64, RoundState>,
    stats: ByzantineStats,
}

impl fmt::Debug for ByzantineCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByzantineCore")
            .field("me", self.me())
            .field("members", &self.members.len())
            .field("f", &self.f)
            .field("horizon", &self.horizon)
            .field("rounds", &self.rounds.len())
            .finish_non_exhaustive()
    }
}

impl ByzantineCore {
    /// A core for `keys.me()` among `keys.members()`. `nonce_start` seeds the per-sender
    /// nonce counter (the shell passes its start time in µs so nonces never repeat across
    /// restarts; tests pass anything).
    pub fn new(keys: KeyRing, config: &ByzantineConfig, nonce_start: u64) -> Result<Self, CoreError> {
        let f = config.byzantine_tolerance as usize;
        if f == 0 {
            return Err(CoreError::Config("byzantine_tolerance must be at least 1".into()));
        }
        if config.quorum_size as usize != 2 * f + 1 {
            return Err(CoreError::Config(format!("quorum_size must be 2f+1 = {}", 2 * f + 1)));
        }
        if config.round_timeout_ms == 0 {
            return Err(CoreError::Config("round_timeout_ms must be > 0".into()));
        }
        if !(config.blacklist_threshold > 0.0 && config.blacklist_threshold < 1.0) {
            return Err(CoreError::Config("blacklist_threshold must be in (0, 1)".into()));
        }
        let members = keys.members();
        if members.len() > wire::MAX_MEMBERS {
            return Err(CoreError::TooManyMembers(members.len()));
        }
        if members.len() < 3 * f + 1 {
            return Err(CoreError::TooFewMembers { members: members.len(), f });
        }
        let mut stats = ByzantineStats::default();
        for peer in keys.peers() {
            stats.peers.insert(peer.clone(), PeerScore::default());
        }
        Ok(Self {
            keys,
            members,
            f,
            quorum: 2 * f + 1,
            round_timeout: Duration::from_millis(config.round_timeout_ms),
            blacklist_threshold: config.blacklist_threshold,
            next_nonce: nonce_start,
            horizon: 0,
            rounds: BTreeMap::new(),
            stats,
        })
    }

    /// This node.
    pub fn me(&self) -> &NodeName {
        self.keys.me()
    }

    /// All members, sorted (this node included).
    pub fn members(&self) -> &[NodeName] {
        &self.members
    }

    /// Peers (every member but this node).
    pub fn peers(&self) -> impl Iterator<Item = &NodeName> {
        self.keys.peers()
    }

    /// Faulty nodes tolerated.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Matching votes needed to decide, 2f + 1.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// The leader of `round`: `members[round mod N]`.
    pub fn leader_of(&self, round: u64) -> &NodeName {
        &self.members[(round % self.members.len() as u64) as usize]
    }

    /// This node's decision for `round`, while the round is in the window.
    pub fn decision(&self, round: u64) -> Option<&Decision> {
        self.rounds.get(&round).and_then(|r| r.decided.as_ref())
    }

    /// Whether `round` timed out here (while in the window).
    pub fn timed_out(&self, round: u64) -> bool {
        self.rounds.get(&round).is_some_and(|r| r.timed_out)
    }

    /// Whether `round` is decided or timed out here (while in the window).
    pub fn is_over(&self, round: u64) -> bool {
        self.rounds.get(&round).is_some_and(RoundState::over)
    }

    /// Whether `round` is below the kept window.
    pub fn is_forgotten(&self, round: u64) -> bool {
        round + ROUND_WINDOW <= self.horizon
    }

    /// Whether `node` is blacklisted here.
    pub fn is_blacklisted(&self, node: &NodeName) -> bool {
        self.stats.peers.get(node).is_some_and(|s| s.blacklisted)
    }

    /// Counters and scores.
    pub fn stats(&self) -> &ByzantineStats {
        &self.stats
    }

    /// Rounds currently kept (bounded by `2 * ROUND_WINDOW`).
    pub fn rounds_kept(&self) -> usize {
        self.rounds.len()
    }

    /// Proposes `value` for `round` (this node must lead it): broadcasts the proposal and
    /// this node's own vote.
    pub fn propose(&mut self, round: u64, value: Vec<u8>, now: Instant) -> Result<Vec<Output>, ProposeError> {
        let leader = self.leader_of(round);
        if leader != self.me() {
            return Err(ProposeError::NotLeader { round, leader: leader.clone() });
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(ProposeError::ValueTooLarge(value.len()));
        }
        if !self.in_window(round) {
            return Err(ProposeError::OutOfWindow(round));
        }
        let mut out = Vec::new();
        self.expire(now, &mut out);
        self.advance(round);
        let state = self.round_mut(round, now);
        if state.over() {
            return Err(ProposeError::RoundOver(round));
        }
        if state.proposal.is_some() {
            return Err(ProposeError::AlreadyProposed(round));
        }
        let digest = ValueDigest::of(&value);
        state.proposal = Some((digest, value.clone()));
        let proposal = self.sign(MessageKind::Proposal, round, digest, Some(value));
        out.push(Output::Broadcast(proposal));
        self.cast_vote(round, digest, now, &mut out);
        Ok(out)
    }

    /// Decodes and handles bytes from the network; garbage is a `Malformed` rejection.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Instant) -> Vec<Output> {
        match wire::decode(bytes) {
            Ok(message) => self.on_message(message, now),
            Err(_) => {
                let mut out = Vec::new();
                self.reject(RejectReason::Malformed, None, None, false, &mut out);
                out
            }
        }
    }

    /// Handles a message from the network.
    pub fn on_message(&mut self, message: SignedMessage, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        let sender = message.body.sender.clone();
        let round = message.body.round;
        let reject = |core: &mut Self, reason, charged, out: &mut Vec<Output>| {
            core.reject(reason, Some(sender.clone()), Some(round), charged, out)
        };
        if message.check_shape().is_err() {
            reject(self, RejectReason::Malformed, false, &mut out);
            return out;
        }
        if &sender == self.me() {
            // This node never sends to itself: someone reflects or forges its messages.
            reject(self, RejectReason::Forged, false, &mut out);
            return out;
        }
        if !self.keys.knows(&sender) {
            reject(self, RejectReason::UnknownSender, false, &mut out);
            return out;
        }
        if self.is_blacklisted(&sender) {
            reject(self, RejectReason::Blacklisted, false, &mut out);
            return out;
        }
        if self.is_forgotten(round) {
            reject(self, RejectReason::Stale, false, &mut out);
            return out;
        }
        if round > self.horizon + ROUND_WINDOW {
            reject(self, RejectReason::FutureRound, false, &mut out);
            return out;
        }
        match self.keys.verify(&message.body, &message.auth) {
            Ok(()) => {}
            Err(AuthError::UnknownSender(_)) => {
                reject(self, RejectReason::UnknownSender, false, &mut out);
                return out;
            }
            Err(AuthError::MissingTag(_) | AuthError::BadTag(_)) => {
                reject(self, RejectReason::Forged, false, &mut out);
                return out;
            }
        }
        // Authenticated: only `sender` (or this node) could have made it.
        if let Some(score) = self.stats.peers.get_mut(&sender) {
            score.messages += 1;
        }
        self.advance(round);
        let nonce = message.body.nonce;
        let digest = message.body.digest;
        let leader = self.leader_of(round).clone();
        let state = self.round_mut(round, now);
        let nonces = state.nonces.entry(sender.clone()).or_default();
        if nonces.contains(&nonce) {
            reject(self, RejectReason::Replay, false, &mut out);
            return out;
        }
        if nonces.len() < MAX_NONCES_PER_SENDER {
            nonces.push(nonce);
        }
        match message.body.kind {
            MessageKind::Proposal => {
                if sender != leader {
                    reject(self, RejectReason::NotLeader, true, &mut out);
                    self.check_blacklist(&sender, &mut out);
                    return out;
                }
                match &state.proposal {
                    Some((d, _)) if *d == digest => {
                        reject(self, RejectReason::Replay, false, &mut out);
                        return out;
                    }
                    Some(_) => {
                        reject(self, RejectReason::Equivocation, true, &mut out);
                        self.check_blacklist(&sender, &mut out);
                        return out;
                    }
                    None => {}
                }
                let value = message.value.unwrap_or_default();
                state.proposal = Some((digest, value.clone()));
                if let Some(decision) = &mut state.decided
                    && decision.digest == digest
                    && decision.value.is_none()
                {
                    decision.value = Some(value);
                }
                if state.my_vote.is_none() && !state.timed_out {
                    self.cast_vote(round, digest, now, &mut out);
                }
                // Decided on votes before the proposal arrived, and the leader told us
                // something else: the leader equivocated.
                self.account_wrong_votes(round, &mut out);
            }
            MessageKind::Vote => {
                match state.votes.get(&sender) {
                    Some(d) if *d == digest => {
                        reject(self, RejectReason::Replay, false, &mut out);
                        return out;
                    }
                    Some(_) => {
                        state.excluded.insert(sender.clone());
                        reject(self, RejectReason::Equivocation, true, &mut out);
                        self.check_blacklist(&sender, &mut out);
                        return out;
                    }
                    None => {}
                }
                state.votes.insert(sender, digest);
                self.try_decide(round, now, &mut out);
                self.account_wrong_votes(round, &mut out);
            }
        }
        out
    }

    /// Times out rounds whose deadline passed.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        out
    }

    fn in_window(&self, round: u64) -> bool {
        !self.is_forgotten(round) && round <= self.horizon + ROUND_WINDOW
    }

    /// Moves the horizon up to `round` and forgets rounds below the window.
    fn advance(&mut self, round: u64) {
        if round > self.horizon {
            self.horizon = round;
            let low = self.horizon.saturating_sub(ROUND_WINDOW - 1);
            self.rounds = self.rounds.split_off(&low);
        }
        debug_assert!(self.rounds.len() as u64 <= 2 * ROUND_WINDOW + 1);
    }

    fn round_mut(&mut self, round: u64, now: Instant) -> &mut RoundState {
        let timeout = self.round_timeout;
        self.rounds.entry(round).or_insert_with(|| RoundState::new(now + timeout))
    }

    fn sign(&mut self, kind: MessageKind, round: u64, digest: ValueDigest, value: Option<Vec<u8>>) -> SignedMessage {
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        let body = SignedBody { kind, sender: self.me().clone(), round, nonce, digest };
        let auth = self.keys.authenticate(&body);
        SignedMessage { body, value, auth }
    }

    fn cast_vote(&mut self, round: u64, digest: ValueDigest, now: Instant, out: &mut Vec<Output>) {
        let me = self.me().clone();
        let state = self.round_mut(round, now);
        debug_assert!(state.my_vote.is_none(), "an honest node votes once per round");
        state.my_vote = Some(digest);
        state.votes.insert(me, digest);
        let vote = self.sign(MessageKind::Vote, round, digest, None);
        out.push(Output::Broadcast(vote));
        self.try_decide(round, now, out);
    }

    fn counts(&self, state: &RoundState) -> BTreeMap<ValueDigest, Vec<NodeName>> {
        let mut counts: BTreeMap<ValueDigest, Vec<NodeName>> = BTreeMap::new();
        for (voter, digest) in &state.votes {
            if state.excluded.contains(voter) || self.is_blacklisted(voter) {
                continue;
            }
            counts.entry(*digest).or_default().push(voter.clone());
        }
        counts
    }

    fn try_decide(&mut self, round: u64, now: Instant, out: &mut Vec<Output>) {
        let Some(state) = self.rounds.get(&round) else { return };
        if state.over() || now >= state.deadline {
            return;
        }
        let Some((digest, voters)) = self.counts(state).into_iter().find(|(_, v)| v.len() >= self.quorum) else {
            return;
        };
        let quorum = self.quorum;
        let Some(state) = self.rounds.get_mut(&round) else { return };
        debug_assert!(state.decided.is_none() && voters.len() >= quorum);
        let value = state.proposal.as_ref().filter(|(d, _)| *d == digest).map(|(_, v)| v.clone());
        let decision = Decision { round, digest, value, voters };
        state.decided = Some(decision.clone());
        self.stats.decided += 1;
        out.push(Output::Decided(decision));
    }

    /// Once `round` is decided, charges voters of other values (or the leader, when the
    /// evidence says it equivocated). Each node is charged at most once per round.
    fn account_wrong_votes(&mut self, round: u64, out: &mut Vec<Output>) {
        let Some(state) = self.rounds.get(&round) else { return };
        let Some(decided) = state.decided.as_ref().map(|d| d.digest) else { return };
        let me = self.me().clone();
        let leader = self.leader_of(round).clone();
        let mut leader_proven = state.proposal.as_ref().is_some_and(|(d, _)| *d != decided);
        let mut suspects = Vec::new();
        for (digest, voters) in self.counts(state) {
            if digest == decided {
                continue;
            }
            if voters.len() > self.f {
                leader_proven = true;
            }
            suspects.extend(voters.into_iter().filter(|v| *v != me && !state.charged.contains(v)));
        }
        let mut charges = Vec::new();
        let Some(state) = self.rounds.get_mut(&round) else { return };
        if leader_proven {
            if !state.leader_charged && leader != me {
                state.leader_charged = true;
                charges.push((leader, Fault::LeaderEquivocation));
            }
        } else {
            for voter in suspects {
                state.charged.insert(voter.clone());
                charges.push((voter, Fault::WrongValue));
            }
        }
        for (node, fault) in charges {
            if let Some(score) = self.stats.peers.get_mut(&node) {
                score.dishonest += 1;
            }
            *self.stats.faults.entry(fault).or_default() += 1;
            out.push(Output::Charged { node: node.clone(), round, fault });
            self.check_blacklist(&node, out);
        }
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<Output>) {
        for (round, state) in self.rounds.iter_mut() {
            if !state.over() && now >= state.deadline {
                state.timed_out = true;
                self.stats.timed_out += 1;
                out.push(Output::TimedOut { round: *round });
            }
        }
    }

    fn reject(
        &mut self,
        reason: RejectReason,
        sender: Option<NodeName>,
        round: Option<u64>,
        charged: bool,
        out: &mut Vec<Output>,
    ) {
        *self.stats.rejected.entry(reason).or_default() += 1;
        if charged && let Some(score) = sender.as_ref().and_then(|s| self.stats.peers.get_mut(s)) {
            score.dishonest += 1;
        }
        out.push(Output::Rejected(Rejection { reason, sender, round, charged }));
    }

    fn check_blacklist(&mut self, node: &NodeName, out: &mut Vec<Output>) {
        let threshold = self.blacklist_threshold;
        if let Some(score) = self.stats.peers.get_mut(node)
            && !score.blacklisted
            && score.messages >= MIN_MESSAGES_BEFORE_BLACKLIST
            && score.score() > threshold
        {
            score.blacklisted = true;
            tracing::warn!(node = %node, score = score.score(), "byzantine: peer blacklisted");
            out.push(Output::Blacklisted(node.clone()));
        }
    }
}
