//! Fault injection: what a faulty node sends instead of what its (honest) core asked for.
//!
//! A faulty node runs an ordinary [`ByzantineCore`](crate::ByzantineCore); a
//! [`FaultInjector`] holding the node's own keys rewrites each outgoing message per
//! receiver. Shared by the deterministic [`Simulation`](crate::Simulation) and the actor
//! network [`InProcessByzantineNet`](crate::InProcessByzantineNet).

use erlmcp_flow_core::NodeName;
use serde::{Deserialize, Serialize};

use crate::keys::{AuthTag, Authenticator, KeyRing, MessageKind, SignedBody, ValueDigest};
use crate::wire::SignedMessage;

/// How a node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends nothing.
    Silent,
    /// Instead of its own messages, sends messages in another node's name (for another
    /// value), tagged with the keys it holds: every tag is wrong at the receiver.
    Forge,
    /// Sends each message, then replays it and its previous message (duplicates of
    /// messages already delivered): the replays are refused, the genuine votes count.
    Replay,
    /// Sends each message and a conflicting one (another value, validly signed) to every
    /// receiver, in receiver-dependent order: as leader it splits the honest nodes.
    Equivocate,
    /// Proposes honestly but votes, validly signed, for another value.
    WrongValue,
}

impl Behaviour {
    /// The faulty behaviours, for tests that try each.
    pub const FAULTY: [Behaviour; 5] =
        [Behaviour::Silent, Behaviour::Forge, Behaviour::Replay, Behaviour::Equivocate, Behaviour::WrongValue];

    /// Whether the behaviour withholds the node's genuine votes (it does not help a quorum).
    pub fn withholds_votes(self) -> bool {
        !matches!(self, Behaviour::Honest | Behaviour::Replay)
    }

    /// Whether honest nodes can attribute this behaviour's messages to the node (and so
    /// blacklist it): only validly signed protocol violations are attributable.
    pub fn is_attributable(self) -> bool {
        matches!(self, Behaviour::Equivocate | Behaviour::WrongValue)
    }
}

/// The value a faulty node pushes instead of the real one in `round`.
pub fn evil_value(round: u64) -> Vec<u8> {
    format!("evil value for round {round}").into_bytes()
}

/// Rewrites one faulty node's outgoing messages.
#[derive(Debug)]
pub struct FaultInjector {
    behaviour: Behaviour,
    keys: KeyRing,
    members: Vec<NodeName>,
    nonce: u64,
    previous: Option<SignedMessage>,
    current: Option<SignedMessage>,
    /// The conflicting/replacement message made for the current original, so that every
    /// receiver gets the same one.
    replacement: Option<(SignedBody, SignedMessage)>,
}

impl FaultInjector {
    /// An injector for the node owning `keys`.
    pub fn new(behaviour: Behaviour, keys: KeyRing) -> Self {
        let members = keys.members();
        Self { behaviour, keys, members, nonce: u64::MAX / 2, previous: None, current: None, replacement: None }
    }

    /// The behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    fn sign(&mut self, kind: MessageKind, round: u64, value: Vec<u8>) -> SignedMessage {
        self.nonce += 1;
        let digest = ValueDigest::of(&value);
        let body = SignedBody { kind, sender: self.keys.me().clone(), round, nonce: self.nonce, digest };
        let auth = self.keys.authenticate(&body);
        let value = (kind == MessageKind::Proposal).then_some(value);
        SignedMessage { body, value, auth }
    }

    /// The conflicting message for `original` (same kind and round, another value),
    /// made once per original.
    fn conflicting(&mut self, original: &SignedMessage) -> SignedMessage {
        if let Some((body, m)) = &self.replacement
            && body == &original.body
        {
            return m.clone();
        }
        let m = self.sign(original.body.kind, original.body.round, evil_value(original.body.round));
        self.replacement = Some((original.body.clone(), m.clone()));
        m
    }

    /// What to send to `to` in place of `message`.
    pub fn rewrite(&mut self, to: &NodeName, message: &SignedMessage) -> Vec<SignedMessage> {
        match self.behaviour {
            Behaviour::Honest => vec![message.clone()],
            Behaviour::Silent => Vec::new(),
            Behaviour::Forge => {
                // Claim to be the next member that is neither this node nor the receiver.
                let me = self.keys.me().clone();
                let i = self.members.iter().position(|m| *m == me).unwrap_or(0);
                let n = self.members.len();
                let Some(victim) = (1..n).map(|k| &self.members[(i + k) % n]).find(|m| **m != me && *m != to).cloned()
                else {
                    return Vec::new();
                };
                let round = message.body.round;
                let value = evil_value(round);
                self.nonce += 1;
                let body = SignedBody {
                    kind: message.body.kind,
                    sender: victim,
                    round,
                    nonce: self.nonce,
                    digest: ValueDigest::of(&value),
                };
                // The best it can do: tag with its own key towards the receiver.
                let tag = self.keys.tag_towards(&body, to).unwrap_or([0; 32]);
                let auth = Authenticator(vec![AuthTag { receiver: to.clone(), tag }]);
                let value = (body.kind == MessageKind::Proposal).then_some(value);
                vec![SignedMessage { body, value, auth }]
            }
            Behaviour::Replay => {
                if self.current.as_ref() != Some(message) {
                    self.previous = self.current.replace(message.clone());
                }
                let mut out = vec![message.clone(), message.clone()];
                out.extend(self.previous.iter().cloned());
                out
            }
            Behaviour::Equivocate => {
                let other = self.conflicting(message);
                let i = self.members.iter().position(|m| m == to).unwrap_or(0);
                if i % 2 == 0 { vec![message.clone(), other] } else { vec![other, message.clone()] }
            }
            Behaviour::WrongValue => match message.body.kind {
                MessageKind::Proposal => vec![message.clone()],
                MessageKind::Vote => vec![self.conflicting(message)],
            },
        }
    }
}
