//! [`NodeProc`]: a `flow node --control` child process, driven over stdin/stdout (the
//! multi-node demo and `flow bench cluster` use it). Dropping one asks it to quit and
//! kills it if it does not.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A `flow node --control` child process.
pub(crate) struct NodeProc {
    pub(crate) name: String,
    pub(crate) listen: String,
    pub(crate) child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl NodeProc {
    /// Starts node `name` (joining `join`, with `extra` arguments) and waits for `READY`.
    pub(crate) fn start(
        exe: &std::path::Path,
        name: &str,
        join: Option<&str>,
        extra: &[String],
        verbose: bool,
    ) -> anyhow::Result<Self> {
        let mut args = extra.to_vec();
        if let Some(j) = join {
            args.extend(["--join".to_string(), j.to_string()]);
        }
        Self::spawn(exe, name, &args, if verbose { Stdio::inherit() } else { Stdio::null() }, Duration::from_secs(30))
    }

    /// Starts node `name` with `args` (joins included), its stderr going to `stderr`, and
    /// waits up to `ready_within` for `READY`.
    pub(crate) fn spawn(
        exe: &std::path::Path,
        name: &str,
        args: &[String],
        stderr: Stdio,
        ready_within: Duration,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(["node", "--name", name, "--listen", "127.0.0.1:0", "--control"]);
        cmd.args(args);
        cmd.env("RUST_BACKTRACE", "0").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().with_context(|| format!("cannot start node {name}"))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = NodeProc { name: name.to_string(), listen: String::new(), child, stdin, lines };
        let ready = node.expect("READY", ready_within)?;
        let v: serde_json::Value = serde_json::from_str(ready.trim_start_matches("READY").trim())?;
        node.listen = v["listen"].as_str().context("listen address")?.to_string();
        Ok(node)
    }

    /// Sends one command line.
    pub(crate) fn send(&mut self, command: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{command}").with_context(|| format!("node {} is gone", self.name))?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The next line starting with `prefix` (other lines are skipped), or an error.
    pub(crate) fn expect(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("node {} did not answer {prefix} in {timeout:?}", self.name))?;
            if line.starts_with("ERR") {
                bail!("node {}: {line}", self.name);
            }
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }

    /// Drops the lines received but not read yet (late answers to commands whose wait
    /// timed out), so the next [`NodeProc::ask`] reads its own answer.
    pub(crate) fn discard_pending(&mut self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the node to quit and waits up to `timeout` for it to exit; kills it after
    /// that. Returns whether it exited by itself.
    pub(crate) fn quit(&mut self, timeout: Duration) -> bool {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Sends a command and waits for the line starting with `prefix`.
    pub(crate) fn ask(&mut self, command: &str, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        self.send(command)?;
        self.expect(prefix, timeout)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.quit(Duration::from_secs(3));
    }
}
