//! W3C Trace Context (`traceparent`) parsing and formatting.
//!
//! Parsing follows the W3C Trace Context recommendation, §3.2 "traceparent Header",
//! strictly:
//!
//! * `version "-" trace-id "-" parent-id "-" trace-flags`, all lowercase hex
//!   (`HEXDIGLC`); upper-case hex is refused.
//! * version `ff` is forbidden; version `00` must be exactly 55 characters.
//! * a higher version is parsed as `00` when it is at least 55 characters and the
//!   character after the flags is `-` (§3.2.4 "Versioning of traceparent").
//! * an all-zero trace-id or parent-id is invalid.
//!
//! Every refusal is a typed [`TraceContextError`] naming the faulty field.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// Which part of a `traceparent` value was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceField {
    /// The two-character version.
    Version,
    /// The 32-character trace id.
    TraceId,
    /// The 16-character parent (span) id.
    ParentId,
    /// The two-character flags.
    Flags,
}

impl fmt::Display for TraceField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceField::Version => "version",
            TraceField::TraceId => "trace-id",
            TraceField::ParentId => "parent-id",
            TraceField::Flags => "trace-flags",
        })
    }
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceContextError {
    /// Wrong total length for the version.
    #[error("traceparent is {len} characters long; version {version:02x} needs {expected}")]
    BadLength {
        /// Length received.
        len: usize,
        /// Version read from the value.
        version: u8,
        /// What the version requires (exactly 55, or at least 55 for future versions).
        expected: &'static str,
    },
    /// Version `ff`, which the spec forbids.
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    /// A field holds something other than lowercase hex digits.
    #[error("traceparent {field} is not lowercase hex")]
    NotLowercaseHex {
        /// The field.
        field: TraceField,
    },
    /// A `-` is missing where the format puts one.
    #[error("traceparent has no '-' after the {after}")]
    MissingDelimiter {
        /// The field the delimiter should follow.
        after: TraceField,
    },
    /// The trace id is all zeros.
    #[error("traceparent trace-id is all zeros")]
    ZeroTraceId,
    /// The parent id is all zeros.
    #[error("traceparent parent-id is all zeros")]
    ZeroParentId,
}

/// The trace context of a task: 128-bit trace id, 64-bit span id, flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace id, shared by every span of the trace.
    pub trace_id: [u8; 16],
    /// This span's id (the `parent-id` when sent onwards).
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is `sampled`.
    pub flags: u8,
}

impl TraceContext {
    /// A new root context with random, non-zero ids, marked sampled.
    pub fn new_root<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self { trace_id: nonzero_bytes(rng), span_id: nonzero_bytes(rng), flags: 0x01 }
    }

    /// A child span in the same trace, with a fresh span id.
    pub fn child<R: Rng + ?Sized>(&self, rng: &mut R) -> Self {
        Self { trace_id: self.trace_id, span_id: nonzero_bytes(rng), flags: self.flags }
    }

    /// True when the `sampled` flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 1
    }

    /// Parses a `traceparent` header value strictly (see the module docs).
    pub fn parse_traceparent(value: &str) -> Result<Self, TraceContextError> {
        let b = value.as_bytes();
        if b.len() < 2 {
            return Err(TraceContextError::BadLength { len: b.len(), version: 0, expected: "55" });
        }
        let version = hex_field::<1>(&b[0..2], TraceField::Version)?[0];
        if version == 0xff {
            return Err(TraceContextError::ForbiddenVersion);
        }
        if version == 0 && b.len() != TRACEPARENT_LEN {
            return Err(TraceContextError::BadLength { len: b.len(), version, expected: "exactly 55" });
        }
        if b.len() < TRACEPARENT_LEN {
            return Err(TraceContextError::BadLength { len: b.len(), version, expected: "at least 55" });
        }
        delimiter(b, 2, TraceField::Version)?;
        let trace_id = hex_field::<16>(&b[3..35], TraceField::TraceId)?;
        delimiter(b, 35, TraceField::TraceId)?;
        let span_id = hex_field::<8>(&b[36..52], TraceField::ParentId)?;
        delimiter(b, 52, TraceField::ParentId)?;
        let flags = hex_field::<1>(&b[53..55], TraceField::Flags)?[0];
        if b.len() > TRACEPARENT_LEN {
            // Only future versions get here: what follows the flags must start with '-'.
            delimiter(b, 55, TraceField::Flags)?;
        }
        if trace_id == [0; 16] {
            return Err(TraceContextError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceContextError::ZeroParentId);
        }
        Ok(Self {
            trace_id,
            span_id,
            // A future version may define more flags; we only keep what version 00 defines.
            flags: if version == 0 { flags } else { flags & 0x01 },
        })
    }

    /// Formats as a version-00 `traceparent` value.
    pub fn to_traceparent(&self) -> String {
        let mut s = String::with_capacity(TRACEPARENT_LEN);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.span_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        s
    }

    /// The trace id as 32 lowercase hex characters.
    pub fn trace_id_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        push_hex(&mut s, &self.trace_id);
        s
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({})", self.to_traceparent())
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

impl std::str::FromStr for TraceContext {
    type Err = TraceContextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_traceparent(s)
    }
}

fn nonzero_bytes<const N: usize, R: Rng + ?Sized>(rng: &mut R) -> [u8; N] {
    loop {
        let mut out = [0u8; N];
        rng.fill(&mut out[..]);
        if out != [0; N] {
            return out;
        }
    }
}

fn delimiter(b: &[u8], at: usize, after: TraceField) -> Result<(), TraceContextError> {
    if b[at] == b'-' { Ok(()) } else { Err(TraceContextError::MissingDelimiter { after }) }
}

fn hex_field<const N: usize>(src: &[u8], field: TraceField) -> Result<[u8; N], TraceContextError> {
    debug_assert_eq!(src.len(), 2 * N);
    let mut out = [0u8; N];
    for (i, pair) in src.chunks_exact(2).enumerate() {
        let hi = lower_hex(pair[0]).ok_or(TraceContextError::NotLowercaseHex { field })?;
        let lo = lower_hex(pair[1]).ok_or(TraceContextError::NotLowercaseHex { field })?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The spec's own example parses and formats back to itself.
    #[test]
    fn spec_example_round_trips() {
        let ctx = TraceContext::parse_traceparent(VALID).unwrap();
        assert!(ctx.sampled());
        assert_eq!(ctx.to_traceparent(), VALID);
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    /// Each malformed input is refused with the error that names what is wrong.
    #[test]
    fn malformed_values_get_typed_errors() {
        use TraceContextError::*;
        let cases: &[(&str, TraceContextError)] = &[
            ("", BadLength { len: 0, version: 0, expected: "55" }),
            (&VALID[..54], BadLength { len: 54, version: 0, expected: "exactly 55" }),
            (&format!("{VALID}-"), BadLength { len: 56, version: 0, expected: "exactly 55" }),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ForbiddenVersion),
            ("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NotLowercaseHex { field: TraceField::Version }),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", NotLowercaseHex { field: TraceField::TraceId }),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                NotLowercaseHex { field: TraceField::ParentId },
            ),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x", NotLowercaseHex { field: TraceField::Flags }),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                MissingDelimiter { after: TraceField::Version },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                MissingDelimiter { after: TraceField::TraceId },
            ),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", ZeroTraceId),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ZeroParentId),
            // A future version must still be followed by '-' after the flags.
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", MissingDelimiter { after: TraceField::Flags }),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                BadLength { len: 54, version: 1, expected: "at least 55" },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(TraceContext::parse_traceparent(input).as_ref(), Err(want), "input {input:?}");
        }
    }

    /// A higher version with extra fields is accepted as version 00 (§3.2.4).
    #[test]
    fn future_version_with_extension_parses() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        let ctx = TraceContext::parse_traceparent(v).unwrap();
        assert_eq!(ctx.to_traceparent(), VALID);
    }

    /// Generated roots and children never have zero ids and keep the trace id.
    #[test]
    fn generated_contexts_are_valid() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let root = TraceContext::new_root(&mut rng);
        let child = root.child(&mut rng);
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        let back = TraceContext::parse_traceparent(&child.to_traceparent()).unwrap();
        assert_eq!(back, child);
    }

    proptest! {
        /// Arbitrary strings never panic the parser, and whatever parses formats back
        /// to a value that parses to the same context.
        #[test]
        fn parser_is_total(s in ".{0,80}") {
            if let Ok(ctx) = TraceContext::parse_traceparent(&s) {
                prop_assert_eq!(TraceContext::parse_traceparent(&ctx.to_traceparent()), Ok(ctx));
            }
        }
    }
}
