//! Validated names and ids.
//!
//! Agent ids, swarm names, node names and capabilities are short strings that
//! travel in logs, config files and (later) across nodes, so each is validated
//! once at construction: 1 to [`MAX_NAME_BYTES`] bytes of printable ASCII with no
//! whitespace. After that they are cheap to clone (`Arc<str>`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest accepted name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which kind of name ("agent id", "capability", ...).
        kind: &'static str,
    },
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("{kind} is {len} bytes long, the limit is {MAX_NAME_BYTES}")]
    TooLong {
        /// Which kind of name.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds whitespace, a control character or non-ASCII text.
    #[error("{kind} {value:?} holds a character other than printable ASCII without spaces")]
    BadCharacter {
        /// Which kind of name.
        kind: &'static str,
        /// The refused value.
        value: String,
    },
}

fn validate(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { kind, len: value.len() });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NameError::BadCharacter { kind, value: value.to_owned() });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl AsRef<str>) -> Result<Self, NameError> {
                let value = value.as_ref();
                validate($kind, value)?;
                Ok(Self(Arc::from(value)))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(value: &str) -> Result<Self, NameError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.as_ref().to_owned()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

name_type!(
    /// Identity of an agent, unique within a node (and, with the node name, in a cluster).
    AgentId,
    "agent id"
);
name_type!(
    /// Name of a swarm: a group of agents that can be targeted, broadcast to and led.
    SwarmName,
    "swarm name"
);
name_type!(
    /// Cluster-wide name of a node (ractor's own node ids are per-connection counters).
    NodeName,
    "node name"
);
name_type!(
    /// Something an agent can do; tasks require a set of these.
    Capability,
    "capability"
);

/// Identity of a task: a UUID v4, also the de-duplication key across retries and nodes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A fresh random (v4) id.
    pub fn new_v4() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID (for ids that come from elsewhere).
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// A cheap 64-bit hash of the id, for sharding tables.
    pub fn shard_hash(&self) -> u64 {
        let (hi, lo) = self.0.as_u64_pair();
        hi ^ lo.rotate_left(17)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names accept printable ASCII and refuse empty, long, spaced and non-ASCII input.
    #[test]
    fn names_are_validated() {
        assert!(AgentId::new("agent-1").is_ok());
        assert!(Capability::new("rust/tokio@1.0").is_ok());
        assert_eq!(AgentId::new(""), Err(NameError::Empty { kind: "agent id" }));
        assert!(matches!(Capability::new("a b"), Err(NameError::BadCharacter { .. })));
        assert!(matches!(SwarmName::new("é"), Err(NameError::BadCharacter { .. })));
        assert!(matches!(NodeName::new("x".repeat(MAX_NAME_BYTES + 1)), Err(NameError::TooLong { len: 129, .. })));
        assert!(NodeName::new("x".repeat(MAX_NAME_BYTES)).is_ok());
    }

    /// Deserialising a name runs the same validation as constructing it.
    #[test]
    fn deserialisation_validates() {
        let ok: Result<AgentId, _> = serde_json_like("\"a1\"");
        assert!(ok.is_ok());
        let bad: Result<AgentId, _> = serde_json_like("\"\"");
        assert!(bad.is_err());
    }

    fn serde_json_like<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, toml::de::Error> {
        #[derive(serde::Deserialize)]
        struct W<T> {
            v: T,
        }
        toml::from_str::<W<T>>(&format!("v = {s}")).map(|w| w.v)
    }
}
