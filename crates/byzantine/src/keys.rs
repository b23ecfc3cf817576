//! Pairwise keys and PBFT-style authenticators.
//!
//! One key shared by the whole cluster cannot say who signed: any holder could compute any
//! node's MAC, so "node B voted X" would mean "someone in the cluster claims B voted X" and
//! blacklisting by identity would mean nothing. Instead every unordered pair of nodes
//! {i, j} shares its own 256-bit key k_ij, known only to i and j (Castro & Liskov,
//! "Practical Byzantine Fault Tolerance", OSDI '99, §3 and "authenticators" in §4). A
//! [`KeyRing`] is node i's view: k_ij for every peer j.
//!
//! A signed message carries an [`Authenticator`]: one HMAC-SHA256 tag per receiver j,
//! computed with k_ij over the message's [canonical encoding](SignedBody::canonical_bytes)
//! *and* the receiver's name. Receiver j checks only its own entry, in constant time
//! (`hmac`'s `verify_slice`). A node A that wants to pass off a vote as B's towards C needs
//! k_BC, which only B and C hold, so it cannot (see the `a_cannot_forge_b_to_c` test).
//!
//! What this does not give: non-repudiation. C can convince itself that B sent a message,
//! but cannot prove it to D (C holds k_BC and could have made the tag itself). Every
//! node therefore judges peers only on what it received itself.
//!
//! Keys come from a key file in production ([`KeyRing::from_hex_file`]); for tests and demos
//! [`KeyRing::provision`] derives every pair's key from a seed, which anyone who knows the
//! seed can recompute: never use it outside tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use erlmcp_flow_core::{NameError, NodeName};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Domain separation tag, first field of every canonical encoding.
pub const DOMAIN_TAG: &[u8] = b"erlmcp-flow/byzantine/v1";

/// Length of a key, a tag and a value digest, in bytes.
pub const KEY_BYTES: usize = 32;

/// SHA-256 of a proposed value: what votes are about.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ValueDigest(pub [u8; 32]);

impl ValueDigest {
    /// SHA-256 of `value`.
    pub fn of(value: &[u8]) -> Self {
        Self(Sha256::digest(value).into())
    }
}

impl fmt::Debug for ValueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueDigest({})", hex(&self.0[..6]))
    }
}

impl fmt::Display for ValueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0[..6]))
    }
}

/// Which protocol message a body belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageKind {
    /// The round leader's proposal.
    Proposal,
    /// A node's vote for a proposal's digest.
    Vote,
}

impl MessageKind {
    fn code(self) -> u8 {
        match self {
            MessageKind::Proposal => 1,
            MessageKind::Vote => 2,
        }
    }
}

/// Everything a MAC covers (besides the receiver's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBody {
    /// Proposal or vote.
    pub kind: MessageKind,
    /// Claimed sender.
    pub sender: NodeName,
    /// Voting round.
    pub round: u64,
    /// Per-sender number, strictly increasing; starts at the node's start time in µs, so it
    /// is also a coarse timestamp and does not repeat across restarts.
    pub nonce: u64,
    /// Digest of the value proposed or voted for.
    pub digest: ValueDigest,
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Names are ≤ 128 bytes and the domain tag is constant, so u32 never truncates.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl SignedBody {
    /// The canonical byte layout MACed for `receiver`; fixed order, big endian, every
    /// variable-length field prefixed by its u32 length, independent of serde:
    ///
    /// ```text
    /// len(domain) domain | kind: u8 | len(sender) sender | len(receiver) receiver
    /// | round: u64 | nonce: u64 | digest: [u8; 32]
    /// ```
    ///
    /// The receiver is bound in so that a tag cannot be reflected to another receiver.
    pub fn canonical_bytes(&self, receiver: &NodeName) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + DOMAIN_TAG.len() + 1 + 8 + 2 * 64 + 16 + 32);
        put_bytes(&mut out, DOMAIN_TAG);
        out.push(self.kind.code());
        put_bytes(&mut out, self.sender.as_str().as_bytes());
        put_bytes(&mut out, receiver.as_str().as_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.digest.0);
        out
    }
}

/// One receiver's HMAC-SHA256 tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthTag {
    /// The receiver this tag is for.
    pub receiver: NodeName,
    /// HMAC-SHA256 under k(sender, receiver).
    pub tag: [u8; 32],
}

/// One tag per receiver (PBFT's authenticator).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Authenticator(pub Vec<AuthTag>);

impl Authenticator {
    /// The tag for `receiver`, if any.
    pub fn tag_for(&self, receiver: &NodeName) -> Option<&[u8; 32]> {
        self.0.iter().find(|t| &t.receiver == receiver).map(|t| &t.tag)
    }
}

/// A 256-bit key shared by one pair of nodes. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct PairKey([u8; KEY_BYTES]);

impl PairKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }
}

impl fmt::Debug for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairKey(<redacted>)")
    }
}

/// Why a message's authenticator was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The claimed sender shares no key with this node.
    #[error("no key shared with {0}")]
    UnknownSender(NodeName),
    /// The authenticator has no tag for this node.
    #[error("no tag for {0} in the authenticator")]
    MissingTag(NodeName),
    /// The tag does not verify under k(sender, me): forged or corrupted.
    #[error("tag from {0} does not verify")]
    BadTag(NodeName),
}

/// Why a key ring could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A node appears twice.
    #[error("node {0} listed twice")]
    DuplicateNode(NodeName),
    /// A node was given a key with itself.
    #[error("{0} cannot share a key with itself")]
    SelfPair(NodeName),
    /// The node is not among the nodes to provision.
    #[error("{0} is not among the provisioned nodes")]
    NotMember(NodeName),
    /// A ring needs at least one peer.
    #[error("{0} has no peer keys")]
    NoPeers(NodeName),
}

/// Why a key file could not be loaded. Line numbers start at 1.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line does not have the form `<node> <node> <64 hex digits>`.
    #[error("line {line}: expected `<node> <node> <64 hex digits>`, got {fields} fields")]
    Syntax {
        /// Line number.
        line: usize,
        /// Fields found.
        fields: usize,
    },
    /// A node name is invalid.
    #[error("line {line}: {source}")]
    BadName {
        /// Line number.
        line: usize,
        /// The cause.
        source: NameError,
    },
    /// The key is not hexadecimal.
    #[error("line {line}: key is not hexadecimal")]
    BadHex {
        /// Line number.
        line: usize,
    },
    /// The key is not 32 bytes.
    #[error("line {line}: key is {bytes} bytes, expected 32")]
    BadKeyLength {
        /// Line number.
        line: usize,
        /// Bytes found.
        bytes: usize,
    },
    /// The pair was listed before.
    #[error("line {line}: pair {a} {b} listed twice")]
    DuplicatePair {
        /// Line number.
        line: usize,
        /// First node.
        a: NodeName,
        /// Second node.
        b: NodeName,
    },
    /// The ring could not be built (self pair, no peers).
    #[error(transparent)]
    Ring(#[from] KeyError),
    /// A self pair, with its line.
    #[error("line {line}: {node} cannot share a key with itself")]
    SelfPair {
        /// Line number.
        line: usize,
        /// The node.
        node: NodeName,
    },
}

/// Node `me`'s keys: k(me, j) for every peer j.
#[derive(Clone)]
pub struct KeyRing {
    me: NodeName,
    keys: BTreeMap<NodeName, PairKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("me", &self.me).field("peers", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl KeyRing {
    /// A ring for `me` from (peer, key) pairs.
    pub fn new(me: NodeName, keys: impl IntoIterator<Item = (NodeName, PairKey)>) -> Result<Self, KeyError> {
        let mut map = BTreeMap::new();
        for (peer, key) in keys {
            if peer == me {
                return Err(KeyError::SelfPair(me));
            }
            if map.insert(peer.clone(), key).is_some() {
                return Err(KeyError::DuplicateNode(peer));
            }
        }
        if map.is_empty() {
            return Err(KeyError::NoPeers(me));
        }
        Ok(Self { me, keys: map })
    }

    /// **For tests and demos only.** Key rings for every node of `nodes`, with k_ij derived
    /// from `seed` and the two names (HMAC-SHA256 keyed by SHA-256 of the seed): the same
    /// seed gives the same keys, and anyone who knows the seed knows every key.
    pub fn provision(nodes: &[NodeName], seed: u64) -> Result<BTreeMap<NodeName, KeyRing>, KeyError> {
        let mut set = BTreeSet::new();
        for n in nodes {
            if !set.insert(n.clone()) {
                return Err(KeyError::DuplicateNode(n.clone()));
            }
        }
        let mut master = Sha256::new();
        master.update(b"erlmcp-flow/byzantine/test-provision");
        master.update(seed.to_be_bytes());
        let master = PairKey(master.finalize().into());
        let mut rings = BTreeMap::new();
        for me in &set {
            let keys = set.iter().filter(|p| *p != me).map(|peer| {
                let (lo, hi) = if me < peer { (me, peer) } else { (peer, me) };
                let mut mac = master.mac();
                let mut input = Vec::new();
                put_bytes(&mut input, lo.as_str().as_bytes());
                put_bytes(&mut input, hi.as_str().as_bytes());
                mac.update(&input);
                (peer.clone(), PairKey(mac.finalize().into_bytes().into()))
            });
            rings.insert(me.clone(), KeyRing::new(me.clone(), keys)?);
        }
        Ok(rings)
    }

    /// Parses a key file for node `me`. One pair per line, `<node> <node> <64 hex digits>`;
    /// blank lines and lines starting with `#` are skipped. Lines for pairs without `me`
    /// are checked for syntax and skipped, so one file can serve the whole cluster (better:
    /// give each node only its own lines). Example:
    ///
    /// ```text
    /// # k(node-a, node-b)
    /// node-a node-b 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    /// ```
    pub fn parse_hex(me: &NodeName, text: &str) -> Result<Self, KeyFileError> {
        let mut keys = BTreeMap::new();
        let mut pairs = BTreeSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = trimmed.split_whitespace().collect();
            if fields.len() != 3 {
                return Err(KeyFileError::Syntax { line, fields: fields.len() });
            }
            let a = NodeName::new(fields[0]).map_err(|source| KeyFileError::BadName { line, source })?;
            let b = NodeName::new(fields[1]).map_err(|source| KeyFileError::BadName { line, source })?;
            let key = parse_key(fields[2], line)?;
            if a == b {
                return Err(KeyFileError::SelfPair { line, node: a });
            }
            let (lo, hi) = if a < b { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
            if !pairs.insert((lo, hi)) {
                return Err(KeyFileError::DuplicatePair { line, a, b });
            }
            if &a == me {
                keys.insert(b, key);
            } else if &b == me {
                keys.insert(a, key);
            }
        }
        Ok(KeyRing::new(me.clone(), keys)?)
    }

    /// Reads and parses a key file (see [`KeyRing::parse_hex`]).
    pub fn from_hex_file(me: &NodeName, path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| KeyFileError::Io { path: path.display().to_string(), source })?;
        Self::parse_hex(me, &text)
    }

    /// This node.
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// Peers this node shares a key with.
    pub fn peers(&self) -> impl Iterator<Item = &NodeName> {
        self.keys.keys()
    }

    /// Whether this node shares a key with `node`.
    pub fn knows(&self, node: &NodeName) -> bool {
        self.keys.contains_key(node)
    }

    /// This node and its peers, sorted.
    pub fn members(&self) -> Vec<NodeName> {
        let mut all: Vec<NodeName> = self.keys.keys().cloned().collect();
        all.push(self.me.clone());
        all.sort();
        all
    }

    /// The authenticator for `body` (whose sender should be this node): one tag per peer.
    pub fn authenticate(&self, body: &SignedBody) -> Authenticator {
        Authenticator(
            self.keys
                .iter()
                .map(|(peer, key)| {
                    let mut mac = key.mac();
                    mac.update(&body.canonical_bytes(peer));
                    AuthTag { receiver: peer.clone(), tag: mac.finalize().into_bytes().into() }
                })
                .collect(),
        )
    }

    /// The tag this node would compute for `body` towards `receiver`, if it shares a key
    /// with `receiver`. Used by the fault injector to build forgeries.
    pub fn tag_towards(&self, body: &SignedBody, receiver: &NodeName) -> Option<[u8; 32]> {
        let key = self.keys.get(receiver)?;
        let mut mac = key.mac();
        mac.update(&body.canonical_bytes(receiver));
        Some(mac.finalize().into_bytes().into())
    }

    /// Checks this node's entry of `auth` for `body`, in constant time.
    pub fn verify(&self, body: &SignedBody, auth: &Authenticator) -> Result<(), AuthError> {
        let key = self.keys.get(&body.sender).ok_or_else(|| AuthError::UnknownSender(body.sender.clone()))?;
        let tag = auth.tag_for(&self.me).ok_or_else(|| AuthError::MissingTag(self.me.clone()))?;
        let mut mac = key.mac();
        mac.update(&body.canonical_bytes(&self.me));
        mac.verify_slice(tag).map_err(|_| AuthError::BadTag(body.sender.clone()))
    }
}

fn parse_key(text: &str, line: usize) -> Result<PairKey, KeyFileError> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) || !text.len().is_multiple_of(2) {
        return Err(KeyFileError::BadHex { line });
    }
    if text.len() != 2 * KEY_BYTES {
        return Err(KeyFileError::BadKeyLength { line, bytes: text.len() / 2 });
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| KeyFileError::BadHex { line })?;
    }
    Ok(PairKey(key))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<NodeName> {
        (0..n).map(|i| NodeName::new(format!("node-{i}")).unwrap()).collect()
    }

    fn body(sender: &NodeName) -> SignedBody {
        SignedBody {
            kind: MessageKind::Vote,
            sender: sender.clone(),
            round: 7,
            nonce: 42,
            digest: ValueDigest::of(b"deploy"),
        }
    }

    /// Provisioning is deterministic and symmetric: k_ij at i equals k_ji at j, and the same
    /// seed gives the same keys while another seed gives other keys.
    #[test]
    fn provision_is_symmetric_and_deterministic() {
        let n = names(4);
        let rings = KeyRing::provision(&n, 1).unwrap();
        let again = KeyRing::provision(&n, 1).unwrap();
        let other = KeyRing::provision(&n, 2).unwrap();
        for i in &n {
            for j in &n {
                if i != j {
                    assert_eq!(rings[i].keys[j], rings[j].keys[i]);
                    assert_eq!(rings[i].keys[j], again[i].keys[j]);
                    assert_ne!(rings[i].keys[j], other[i].keys[j]);
                }
            }
        }
        assert_ne!(rings[&n[0]].keys[&n[1]], rings[&n[0]].keys[&n[2]]);
    }

    /// A message authenticated by its sender verifies at every receiver.
    #[test]
    fn honest_tags_verify_at_every_receiver() {
        let n = names(4);
        let rings = KeyRing::provision(&n, 9).unwrap();
        let b = body(&n[1]);
        let auth = rings[&n[1]].authenticate(&b);
        assert_eq!(auth.0.len(), 3);
        for r in [&n[0], &n[2], &n[3]] {
            rings[r].verify(&b, &auth).unwrap();
        }
    }

    /// Node A cannot forge node B's vote to C: A does not hold k_BC, so whatever tag A
    /// computes (with its own keys, or copied from B's tag to A) fails at C; a changed field
    /// fails too, and a tag meant for one receiver does not verify at another.
    #[test]
    fn a_cannot_forge_b_to_c() {
        let n = names(4);
        let rings = KeyRing::provision(&n, 3).unwrap();
        let (a, b, c) = (&n[0], &n[1], &n[2]);
        let forged = body(b);
        // A tries every key it holds.
        for peer in rings[a].peers() {
            let tag = {
                let mut mac = rings[a].keys[peer].mac();
                mac.update(&forged.canonical_bytes(c));
                mac.finalize().into_bytes().into()
            };
            let auth = Authenticator(vec![AuthTag { receiver: c.clone(), tag }]);
            assert_eq!(rings[c].verify(&forged, &auth), Err(AuthError::BadTag(b.clone())));
        }
        // A's own authenticate() under B's name: tags are keyed with k_A*, fail at C.
        let auth = rings[a].authenticate(&forged);
        assert_eq!(rings[c].verify(&forged, &auth), Err(AuthError::BadTag(b.clone())));
        // A copies B's genuine tag for A into C's slot: bound to receiver A, fails at C.
        let genuine = rings[b].authenticate(&forged);
        let mut reflected = genuine.clone();
        let for_a = *genuine.tag_for(a).unwrap();
        reflected.0.iter_mut().filter(|t| &t.receiver == c).for_each(|t| t.tag = for_a);
        assert!(rings[c].verify(&forged, &reflected).is_err());
        // A changes the digest of B's genuine vote.
        let mut altered = forged.clone();
        altered.digest = ValueDigest::of(b"rollback");
        assert!(rings[c].verify(&altered, &genuine).is_err());
        // The genuine one verifies.
        rings[c].verify(&forged, &genuine).unwrap();
    }

    /// Unknown senders and missing tags are told apart.
    #[test]
    fn unknown_sender_and_missing_tag() {
        let n = names(3);
        let rings = KeyRing::provision(&n, 3).unwrap();
        let stranger = NodeName::new("stranger").unwrap();
        assert_eq!(
            rings[&n[0]].verify(&body(&stranger), &Authenticator::default()),
            Err(AuthError::UnknownSender(stranger))
        );
        assert_eq!(
            rings[&n[0]].verify(&body(&n[1]), &Authenticator::default()),
            Err(AuthError::MissingTag(n[0].clone()))
        );
    }

    /// The canonical encoding is length-prefixed: moving bytes between sender and receiver
    /// names gives a different encoding.
    #[test]
    fn canonical_encoding_is_unambiguous() {
        let ab = NodeName::new("ab").unwrap();
        let c = NodeName::new("c").unwrap();
        let a = NodeName::new("a").unwrap();
        let bc = NodeName::new("bc").unwrap();
        assert_ne!(body(&ab).canonical_bytes(&c), body(&a).canonical_bytes(&bc));
        let bytes = body(&a).canonical_bytes(&bc);
        assert_eq!(&bytes[4..4 + DOMAIN_TAG.len()], DOMAIN_TAG);
    }

    /// Key files: a valid file yields the node's own pairs; each kind of bad line is a
    /// typed error naming the line.
    #[test]
    fn key_file_parsing() {
        let k = "ab".repeat(32);
        let me = NodeName::new("n1").unwrap();
        let text = format!("# cluster keys\n\nn1 n2 {k}\nn3 n1 {k}\nn2 n3 {k}\n");
        let ring = KeyRing::parse_hex(&me, &text).unwrap();
        assert_eq!(ring.peers().map(|p| p.as_str()).collect::<Vec<_>>(), vec!["n2", "n3"]);
        assert_eq!(ring.members().len(), 3);

        let err = |t: &str| KeyRing::parse_hex(&me, t).unwrap_err();
        assert!(matches!(err("n1 n2"), KeyFileError::Syntax { line: 1, fields: 2 }));
        assert!(matches!(err(&format!("n1 n2 {}", "zz".repeat(32))), KeyFileError::BadHex { line: 1 }));
        assert!(matches!(err("n1 n2 abcd"), KeyFileError::BadKeyLength { line: 1, bytes: 2 }));
        assert!(matches!(err(&format!("n1 n1 {k}")), KeyFileError::SelfPair { line: 1, .. }));
        assert!(matches!(err(&format!("n1 n2 {k}\nn2 n1 {k}")), KeyFileError::DuplicatePair { line: 2, .. }));
        assert!(matches!(err(&format!("n1 b\u{e9}d {k}")), KeyFileError::BadName { line: 1, .. }));
        assert!(matches!(err(&format!("n2 n3 {k}")), KeyFileError::Ring(KeyError::NoPeers(_))));
        assert!(matches!(KeyRing::from_hex_file(&me, "/nonexistent/keys.txt").unwrap_err(), KeyFileError::Io { .. }));
    }
}
