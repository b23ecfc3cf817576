//! The Python side of the MCP and observability tests: a virtualenv with the pinned `mcp`
//! SDK and `prometheus_client` (the real Prometheus text parser the `/metrics` test uses;
//! `crates/cli/tests/observability.rs` includes this file), created once under the target
//! directory (`target/tmp/mcp-python-<versions>`) by whichever test gets there first, and
//! reused by every later run.
//!
//! Creation is guarded across processes by a lock directory (`mkdir` is atomic): one test
//! builds the venv in a private directory, marks it ready and renames it into place; the
//! others wait for the marker. A lock older than [`STALE_LOCK`] (a crashed builder) is
//! taken over. No Python, or a failed `pip install`, fails the test with the reason: the
//! tests never pass silently without their real parts.
//!
//! `FLOW_PYTHON` names the interpreter to build the venv from (default `python3`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// The pinned `mcp` SDK.
pub const MCP_VERSION: &str = "2.3.0";

/// The pinned `prometheus_client` (its `text_string_to_metric_families` parses `/metrics`).
pub const PROMETHEUS_CLIENT_VERSION: &str = "0.26.0";

/// A lock this old is a crashed builder's.
pub const STALE_LOCK: Duration = Duration::from_secs(15 * 60);

/// The test scripts (`upstream.py`, `load.py`, ...).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mcp/tests/python").join(name)
}

/// The venv's interpreter, creating the venv on first use.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| ensure().unwrap_or_else(|e| panic!("Python environment for the MCP tests: {e}"))).clone()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn ensure() -> Result<PathBuf, String> {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mcp-python-{MCP_VERSION}-prom-{PROMETHEUS_CLIENT_VERSION}"));
    let python = base.join("bin").join("python");
    let ready = base.join("READY");
    let lock = base.with_extension("lock");
    std::fs::create_dir_all(base.parent().expect("has a parent")).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + STALE_LOCK + Duration::from_secs(60);
    loop {
        if ready.exists() {
            return Ok(python);
        }
        match std::fs::create_dir(&lock) {
            Ok(()) => {
                let built = build(&base);
                let _ = std::fs::remove_dir(&lock);
                built?;
                return Ok(python);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default();
                if age > STALE_LOCK {
                    let _ = std::fs::remove_dir(&lock);
                }
                if Instant::now() > deadline {
                    return Err(format!("waited too long for {} to be built by another test", base.display()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("cannot create {}: {e}", lock.display())),
        }
    }
}

fn build(base: &Path) -> Result<(), String> {
    let system = std::env::var("FLOW_PYTHON").unwrap_or_else(|_| "python3".into());
    let version = Command::new(&system).arg("--version").output().map_err(|e| {
        format!(
            "`{system}` not found ({e}). The MCP tests need Python 3.10 or later with venv and pip \
             (Debian/Ubuntu: apt install python3 python3-venv); set FLOW_PYTHON to use another interpreter"
        )
    })?;
    eprintln!(
        "creating a Python venv with mcp=={MCP_VERSION} prometheus-client=={PROMETHEUS_CLIENT_VERSION} under {} ({})",
        base.display(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let tmp = base.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(Command::new(&system).args(["-m", "venv"]).arg(&tmp))?;
    run(Command::new(tmp.join("bin").join("python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("mcp=={MCP_VERSION}"),
        &format!("prometheus-client=={PROMETHEUS_CLIENT_VERSION}"),
    ]))?;
    std::fs::write(tmp.join("READY"), format!("mcp=={MCP_VERSION} prometheus-client=={PROMETHEUS_CLIENT_VERSION}\n"))
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(base);
    std::fs::rename(&tmp, base).map_err(|e| format!("cannot move the venv into place: {e}"))
}
