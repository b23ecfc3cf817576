//! The Q-table model file: versioned, checksummed, written atomically.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "ERLMCPQT"
//!      8     2  format version, little endian (this build: 1)
//!     10     2  reserved, 0
//!     12     8  payload length, little endian
//!     20     8  FNV-1a 64 checksum of the payload, little endian
//!     28     …  payload: `ModelData` through the project codec (bincode 2, serde)
//! ```
//!
//! The payload holds only visited entries (sparse), the latency reference, ε and the
//! update count; α and γ come from the config at load, so retuning them does not need a
//! new model. A file is written to a temporary sibling, synced, then renamed over the old
//! one, so a crash mid-write leaves the previous model intact.
//!
//! Loading never fails the node: [`load_or_fresh`] turns a missing file into a fresh
//! table, and an unreadable, truncated, corrupted (checksum), foreign (magic), newer
//! (version) or incompatible (state space, non-finite values) file into a fresh table plus
//! a warning (logged, and kept for inspection); the bad file is moved aside to
//! `<model_path>.corrupt` so the evidence survives the next save.

use std::io::Write;
use std::path::{Path, PathBuf};

use erlmcp_flow_core::{Codec, CodecError};

use super::table::{ModelData, QParams, QTable};

/// First bytes of every model file.
pub const MAGIC: [u8; 8] = *b"ERLMCPQT";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 28;
/// Largest model file read (16 MiB, above what [`DEFAULT_MAX_ACTIONS`] can produce).
///
/// [`DEFAULT_MAX_ACTIONS`]: super::table::DEFAULT_MAX_ACTIONS
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a model file could not be written or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file system refused.
    #[error("cannot access model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Shorter than the header.
    #[error("model file is {len} bytes, shorter than its {HEADER_LEN}-byte header (truncated)")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Does not start with [`MAGIC`].
    #[error("not a Q-table model file (bad magic bytes)")]
    BadMagic,
    /// Written by another format version.
    #[error("model file format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The file's version.
        found: u16,
        /// Ours.
        supported: u16,
    },
    /// The payload is shorter or longer than the header says.
    #[error("model file is truncated or padded: the header announces {expected} payload bytes, found {actual}")]
    Length {
        /// Announced.
        expected: u64,
        /// Present.
        actual: u64,
    },
    /// The payload does not match its checksum.
    #[error("model file is corrupted: checksum {stored:#018x} stored, {computed:#018x} computed")]
    Checksum {
        /// In the header.
        stored: u64,
        /// Of the payload.
        computed: u64,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("model file is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The payload is not a valid encoding.
    #[error("model file payload cannot be decoded: {0}")]
    Decode(#[from] CodecError),
    /// The payload decodes but cannot be used by this build.
    #[error("model file is incompatible: {0}")]
    Incompatible(String),
}

/// FNV-1a, 64 bit.
pub fn checksum(bytes: &[u8]) -> u64 {
    erlmcp_flow_core::hash::fnv1a64(bytes)
}

fn codec() -> Codec {
    Codec::new(MAX_FILE_BYTES as usize)
}

/// The file image of `table`.
pub fn encode(table: &QTable) -> Result<Vec<u8>, ModelFileError> {
    encode_data(&table.to_data())
}

/// The file image of already extracted model data.
pub fn encode_data(data: &ModelData) -> Result<Vec<u8>, ModelFileError> {
    let payload = codec().encode(data)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    debug_assert_eq!(out.len(), HEADER_LEN + payload.len());
    Ok(out)
}

/// Parses a file image into a table with `params`, at most `max_actions` actions.
pub fn decode(bytes: &[u8], params: QParams, max_actions: usize) -> Result<QTable, ModelFileError> {
    if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
        return Err(ModelFileError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ModelFileError::TooShort { len: bytes.len() });
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let version = u16_at(8);
    if version != FORMAT_VERSION {
        return Err(ModelFileError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    let expected = u64_at(12);
    let payload = &bytes[HEADER_LEN..];
    if expected != payload.len() as u64 {
        return Err(ModelFileError::Length { expected, actual: payload.len() as u64 });
    }
    let (stored, computed) = (u64_at(20), checksum(payload));
    if stored != computed {
        return Err(ModelFileError::Checksum { stored, computed });
    }
    let data: ModelData = codec().decode(payload)?;
    QTable::from_data(data, params, max_actions).map_err(ModelFileError::Incompatible)
}

/// Writes `image` (from [`encode`]) to `path` atomically, creating missing directories.
pub fn write_image(path: &Path, image: &[u8]) -> Result<(), ModelFileError> {
    let io = |source| ModelFileError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(image)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Saves `table` to `path` atomically.
pub fn save(path: &Path, table: &QTable) -> Result<(), ModelFileError> {
    write_image(path, &encode(table)?)
}

/// Reads the model at `path`: `Ok(None)` when there is no file.
pub fn load(path: &Path, params: QParams, max_actions: usize) -> Result<Option<QTable>, ModelFileError> {
    let io = |source| ModelFileError::Io { path: path.to_owned(), source };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if size > MAX_FILE_BYTES {
        return Err(ModelFileError::TooLarge { size, limit: MAX_FILE_BYTES });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode(&bytes, params, max_actions).map(Some)
}

/// A model as loaded at start.
#[derive(Debug)]
pub struct LoadedModel {
    /// The table (fresh when there was no usable file).
    pub table: QTable,
    /// True when the table came from the file.
    pub from_file: bool,
    /// Why the file was not used, when it existed but was unusable.
    pub warning: Option<String>,
}

/// Loads the model at `path`, or starts a fresh table: never fails. An unusable file is
/// reported in [`LoadedModel::warning`] (and logged) and moved to `<path>.corrupt`.
pub fn load_or_fresh(path: &Path, params: QParams, max_actions: usize) -> LoadedModel {
    match load(path, params, max_actions) {
        Ok(Some(table)) => {
            tracing::info!(path = %path.display(), updates = table.updates(), actions = table.action_count(), "Q-learning model loaded");
            LoadedModel { table, from_file: true, warning: None }
        }
        Ok(None) => LoadedModel { table: QTable::new(params, max_actions), from_file: false, warning: None },
        Err(e) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".corrupt");
            let aside = PathBuf::from(aside);
            let moved = match std::fs::rename(path, &aside) {
                Ok(()) => format!("the unusable file was moved to {}", aside.display()),
                Err(err) => format!("it could not be moved aside ({err}) and will be overwritten at the next save"),
            };
            let warning = format!(
                "Q-learning model {} is unusable ({e}); starting with a fresh Q-table; {moved}",
                path.display()
            );
            tracing::warn!("{warning}");
            LoadedModel { table: QTable::new(params, max_actions), from_file: false, warning: Some(warning) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q_learning::state::AgentState;
    use crate::q_learning::table::{Action, TdUpdate};
    use erlmcp_flow_core::{AgentId, SwarmName};

    /// A directory of its own for each test.
    fn temp_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("erlmcp-qtable-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn trained() -> QTable {
        let mut t = QTable::new(QParams::default(), 64);
        let swarms = [SwarmName::new("blue").unwrap()];
        for i in 0..200u64 {
            let agent = AgentId::new(format!("agent-{}", i % 5)).unwrap();
            let state = AgentState { load: (i % 11) as u8, success: (i % 3) as u8, latency: (i % 2) as u8 };
            t.update(&TdUpdate {
                agent: &agent,
                swarms: if i % 2 == 0 { &swarms } else { &[] },
                state,
                next_state: AgentState { load: 0, ..state },
                latency_ns: 1_000_000 + i * 10_000,
                success: i % 7 != 0,
            });
        }
        t
    }

    /// A saved table loads back identical (values, visits, ε, reference, swarms), and
    /// the file starts with the documented header.
    #[test]
    fn round_trip() {
        let dir = temp_dir("round-trip");
        let path = dir.join("nested/q_table.bin");
        let t = trained();
        save(&path, &t).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"ERLMCPQT");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), FORMAT_VERSION);
        let back = load(&path, QParams::default(), 64).unwrap().unwrap();
        assert_eq!(back.to_data(), t.to_data());
        assert_eq!(
            back.snapshot().value("agent-1", AgentState { load: 1, success: 1, latency: 1 }),
            t.snapshot().value("agent-1", AgentState { load: 1, success: 1, latency: 1 })
        );
        assert!(
            back.q(&Action::Swarm(SwarmName::new("blue").unwrap()), AgentState { load: 0, success: 0, latency: 0 })
                .is_some()
        );
        let loaded = load_or_fresh(&path, QParams::default(), 64);
        assert!(loaded.from_file && loaded.warning.is_none());
        assert_eq!(load(&dir.join("absent.bin"), QParams::default(), 64).unwrap().map(|t| t.updates()), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Every kind of damage is detected and named: truncation (inside the header and
    /// inside the payload), a flipped payload byte, a foreign file, a newer format
    /// version, a checksum-valid payload that is not a model, and a model of another
    /// state space.
    #[test]
    fn damaged_files_are_refused_with_the_reason() {
        let image = encode(&trained()).unwrap();
        let p = QParams::default();
        let err = |bytes: &[u8]| decode(bytes, p, 64).unwrap_err();

        assert!(matches!(err(&image[..10]), ModelFileError::TooShort { len: 10 }));
        assert!(matches!(err(&image[..image.len() - 7]), ModelFileError::Length { .. }));
        let mut flipped = image.clone();
        let mid = HEADER_LEN + (image.len() - HEADER_LEN) / 2;
        flipped[mid] ^= 0x40;
        assert!(matches!(err(&flipped), ModelFileError::Checksum { .. }));
        assert!(matches!(err(b"PK\x03\x04 this is a zip file, not a model"), ModelFileError::BadMagic));
        let mut newer = image.clone();
        newer[8..10].copy_from_slice(&2u16.to_le_bytes());
        let e = err(&newer);
        assert!(matches!(e, ModelFileError::UnsupportedVersion { found: 2, supported: 1 }));
        assert!(e.to_string().contains("version 2"), "{e}");

        // Well framed, but the payload is garbage.
        let garbage = [0xffu8; 40];
        let mut framed = image[..HEADER_LEN].to_vec();
        framed[12..20].copy_from_slice(&(garbage.len() as u64).to_le_bytes());
        framed[20..28].copy_from_slice(&checksum(&garbage).to_le_bytes());
        framed.extend_from_slice(&garbage);
        assert!(matches!(err(&framed), ModelFileError::Decode(_)));

        // Well framed model data of another state space.
        let mut data = trained().to_data();
        data.states = 27;
        let e = err(&encode_data(&data).unwrap());
        assert!(matches!(&e, ModelFileError::Incompatible(why) if why.contains("27 states")), "{e}");
    }

    /// A corrupted, truncated or wrong-version file never fails the load: a fresh table
    /// comes back with a warning naming the file and the problem, and the bad file is
    /// moved aside (so the next save does not destroy the evidence).
    #[test]
    fn unusable_files_give_a_warning_and_a_fresh_table() {
        let dir = temp_dir("unusable");
        let image = encode(&trained()).unwrap();
        let mut wrong_version = image.clone();
        wrong_version[8] = 9;
        let mut corrupted = image.clone();
        let last = corrupted.len() - 1;
        corrupted[last] ^= 1;
        let cases: [(&str, &[u8], &str); 4] = [
            ("truncated", &image[..image.len() / 2], "truncated"),
            ("corrupted", &corrupted, "checksum"),
            ("version", &wrong_version, "version 9"),
            ("empty", &[], "shorter than its 28-byte header"),
        ];
        for (name, bytes, needle) in cases {
            let path = dir.join(format!("{name}.bin"));
            std::fs::write(&path, bytes).unwrap();
            let loaded = load_or_fresh(&path, QParams::default(), 64);
            assert!(!loaded.from_file);
            assert_eq!(loaded.table.updates(), 0, "{name}: fresh table");
            let warning = loaded.warning.unwrap_or_else(|| panic!("{name}: no warning"));
            assert!(warning.contains(needle), "{name}: {warning}");
            assert!(warning.contains(&path.display().to_string()), "{warning}");
            assert!(warning.contains("fresh Q-table"), "{warning}");
            assert!(!path.exists(), "{name}: moved aside");
            assert_eq!(std::fs::read(dir.join(format!("{name}.bin.corrupt"))).unwrap(), bytes);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A file over the size limit is refused before it is read.
    #[test]
    fn oversized_files_are_refused() {
        let dir = temp_dir("oversized");
        let path = dir.join("huge.bin");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(load(&path, QParams::default(), 64), Err(ModelFileError::TooLarge { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
