//! erlmcp_flow_byzantine: Byzantine quorum voting for critical decisions.
//!
//! placeholder docs
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod actor;
mod core;
mod fault;
mod keys;
mod simulation;
pub mod wire;

pub use crate::core::{
    ByzantineCore, ByzantineStats, CoreError, Decision, Fault, MAX_NONCES_PER_SENDER, MIN_MESSAGES_BEFORE_BLACKLIST,
    Output, PeerScore, ProposeError, ROUND_WINDOW, RejectReason, Rejection,
};
pub use actor::{
    ByzantineArgs, ByzantineDetector, ByzantineError, ByzantineHandle, ByzantineMsg, ByzantineStart, ByzantineState,
    ByzantineTransport, DeliverError, InProcessByzantineNet, InProcessByzantineTransport, MAX_INBOX, MAX_WAITERS,
    RoundOutcome,
};
pub use fault::{Behaviour, FaultInjector, evil_value};
pub use keys::{
    AuthError, AuthTag, Authenticator, DOMAIN_TAG, KEY_BYTES, KeyError, KeyFileError, KeyRing, MessageKind, PairKey,
    SignedBody, ValueDigest,
};
pub use simulation::{RoundReport, Simulation, SimulationError};
pub use wire::{SignedMessage, WireError, decode, encode};
