//! The wire format between consensus nodes.
//!
//! One request enum, [`RaftWire`], carries openraft's three RPCs plus the two client
//! kinds a follower needs to reach the leader (a forwarded write and a read-index
//! request); one reply enum, [`RaftWireReply`], answers each. Both are bincode 2 (serde,
//! `standard` config) through `erlmcp_flow_core::Codec`, which refuses input over
//! [`MAX_RPC_BYTES`] *before* decoding and caps what a forged length prefix can make
//! bincode allocate. Undecodable bytes are a typed error, never a panic.
//!
//! Size bounds: an encoded request never exceeds [`MAX_RPC_BYTES`] (under ractor_cluster's
//! 16 MiB frame limit, past which one message drops the whole link). A single command is
//! limited to [`MAX_COMMAND_BYTES`] at submit time, and an AppendEntries batch that would
//! be larger than the limit is answered to openraft with `PayloadTooLarge`, so it retries
//! with fewer entries.

use erlmcp_flow_core::Codec;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ConsensusError;
use crate::ledger::{LedgerCommand, LedgerResponse};
use crate::types::{RaftNodeId, TypeConfig};

/// Largest encoded request or reply, bytes (15 MiB).
pub const MAX_RPC_BYTES: usize = erlmcp_flow_core::config::PAYLOAD_HARD_LIMIT_BYTES;

/// Largest encoded single command accepted by `submit`, bytes (8 MiB), so one entry
/// always fits in an AppendEntries request.
pub const MAX_COMMAND_BYTES: usize = 8 * 1024 * 1024;

/// A request from one consensus node to another.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RaftWire {
    /// Raft AppendEntries (also the heartbeat).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<RaftNodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client command forwarded by a follower to the leader.
    ClientWrite(LedgerCommand),
    /// A follower asks the leader for a linearizable read index (Raft §6.4 ReadIndex):
    /// the leader confirms its leadership with a quorum and answers the log index the
    /// follower must have applied before it reads locally.
    LinearizableRead,
    /// A membership change forwarded to the leader.
    Membership(MembershipChange),
    /// Would the receiver vote for this candidate? (see [`crate::pre_vote`]; changes
    /// nothing on the receiver). Last variant, so the others keep their encoding.
    PreVote(crate::pre_vote::PreVoteRequest),
}

/// A change of the voter set, served by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add the named node: as a learner until it has caught up, then as a voter.
    AddVoter(String),
    /// Remove the named voter (it is not kept as a learner).
    RemoveVoter(String),
}

/// What a committed command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitReceipt {
    /// Index of the log entry that carried the command.
    pub log_index: u64,
    /// The state machine's answer.
    pub response: LedgerResponse,
}

/// The answer to a [`RaftWire`] request, same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftWireReply {
    /// Answer to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<RaftNodeId>, RaftError<RaftNodeId>>),
    /// Answer to RequestVote.
    Vote(Result<VoteResponse<RaftNodeId>, RaftError<RaftNodeId>>),
    /// Answer to a snapshot chunk.
    InstallSnapshot(Result<InstallSnapshotResponse<RaftNodeId>, RaftError<RaftNodeId, InstallSnapshotError>>),
    /// Answer to a forwarded write.
    ClientWrite(Result<CommitReceipt, ConsensusError>),
    /// Answer to a read-index request: the index to wait for.
    LinearizableRead(Result<u64, ConsensusError>),
    /// The voters (names) once the change committed.
    Membership(Result<Vec<String>, ConsensusError>),
    /// Answer to a pre-vote question.
    PreVote(Result<crate::pre_vote::PreVoteAnswer, ConsensusError>),
}

fn codec() -> Codec {
    Codec::new(MAX_RPC_BYTES)
}

/// Encodes a wire value, refusing results over [`MAX_RPC_BYTES`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConsensusError> {
    codec().encode(value).map_err(|e| ConsensusError::Encode(e.to_string()))
}

/// Decodes a wire value: size-checked first, allocation-capped, no trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConsensusError> {
    codec().decode(bytes).map_err(|e| ConsensusError::Decode(e.to_string()))
}

fn local_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes local data (snapshots, storage records) without the wire size limit.
pub fn encode_unbounded<T: Serialize>(value: &T) -> Result<Vec<u8>, ConsensusError> {
    bincode::serde::encode_to_vec(value, local_config()).map_err(|e| ConsensusError::Encode(e.to_string()))
}

/// Decodes data written by [`encode_unbounded`]: storage records, and snapshots, which a
/// follower receives from the leader. No fixed size limit, but what bincode may allocate
/// is bounded by the input's size: bincode claims every byte it reads or pre-allocates
/// against the limit, and a real encoding claims at most 8 bytes per byte of input (a
/// 1-byte varint claims its type's full width), so a limit of 16× the input (64 MiB at
/// least) never stops real data and keeps a forged length prefix (a 45-byte "snapshot"
/// claiming a 4 GiB string) from allocating what it claims.
pub fn decode_unbounded<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConsensusError> {
    fn with<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard().with_limit::<LIMIT>())
    }
    let decoded = match bytes.len() {
        n if n <= 4 << 20 => with::<T, { 64 << 20 }>(bytes),
        n if n <= 64 << 20 => with::<T, { 1 << 30 }>(bytes),
        n if n <= 1 << 30 => with::<T, { 16 << 30 }>(bytes),
        _ => bincode::serde::decode_from_slice(bytes, local_config()),
    };
    let (v, used) = decoded.map_err(|e| ConsensusError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(ConsensusError::Decode(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(v)
}
