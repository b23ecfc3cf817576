//! Harness for process-level cluster tests: real `flow node --control` processes on
//! 127.0.0.1 with ephemeral ports, driven over stdin/stdout, always killed at the end.
#![allow(dead_code)]

pub mod raft;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for anything a test waits for; tests poll and move on as soon as the
/// condition holds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running node process.
pub struct Node {
    pub name: String,
    pub listen: String,
    /// The `READY` line's JSON (`node`, `listen`, `mcp`).
    pub ready: serde_json::Value,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Node {
    /// Starts `flow node --name <name>` joining `join`, with extra arguments.
    pub fn start(name: &str, join: Option<&str>, extra: &[&str]) -> Node {
        Self::start_with(name, join, extra, None, None)
    }

    /// [`Node::start`] with the process's file-descriptor limit set to `fd_limit`
    /// (`ulimit -n` in a shell that then execs the node, so the pid is the node's).
    pub fn start_with_fd_limit(name: &str, join: Option<&str>, extra: &[&str], fd_limit: u64) -> Node {
        Self::start_with(name, join, extra, Some(fd_limit), None)
    }

    /// [`Node::start`], with the node's log (its default filter, stderr) written to `log`
    /// when given.
    pub fn start_logging(name: &str, join: Option<&str>, extra: &[&str], log: Option<&std::path::Path>) -> Node {
        Self::start_with(name, join, extra, None, log)
    }

    fn start_with(
        name: &str,
        join: Option<&str>,
        extra: &[&str],
        fd_limit: Option<u64>,
        log: Option<&std::path::Path>,
    ) -> Node {
        // `FLOW_BIN` runs another build of `flow` (a before/after measurement).
        let flow = std::env::var("FLOW_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_flow").to_string());
        let mut cmd = match fd_limit {
            None => Command::new(&flow),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), &flow]);
                sh
            }
        };
        cmd.args(["node", "--name", name, "--listen", "127.0.0.1:0", "--control"]).args(extra);
        if let Some(j) = join {
            cmd.args(["--join", j]);
        }
        if let Some(path) = log {
            // The node's default filter, unless `FLOW_TEST_LOG_FILTER` names another.
            match std::env::var_os("FLOW_TEST_LOG_FILTER") {
                Some(f) => cmd.env("FLOW_LOG", f),
                None => cmd.env_remove("FLOW_LOG"),
            };
            cmd.stderr(std::fs::File::options().create(true).append(true).open(path).expect("log file"));
        } else if std::env::var_os("FLOW_TEST_LOGS").is_some() {
            cmd.env("FLOW_LOG", "info").stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null());
        }
        let mut child = cmd
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flow node starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node =
            Node { name: name.into(), listen: String::new(), ready: serde_json::Value::Null, child, stdin, lines };
        let ready = node.expect("READY");
        let v: serde_json::Value = serde_json::from_str(ready.trim_start_matches("READY").trim()).unwrap();
        node.listen = v["listen"].as_str().unwrap().to_string();
        node.ready = v;
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.stdin.flush().unwrap();
    }

    /// The next line starting with `prefix`, skipping others; panics on `ERR` or after
    /// [`DEADLINE`].
    pub fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{}: no {prefix} line within {DEADLINE:?}", self.name));
            assert!(!line.starts_with("ERR"), "{}: {line}", self.name);
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// The next line, whatever it says (`ERR` lines included); panics after [`DEADLINE`].
    pub fn next_line(&mut self) -> String {
        self.lines.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("{}: no line within {DEADLINE:?}", self.name))
    }

    pub fn ask(&mut self, command: &str, prefix: &str) -> String {
        self.send(command);
        self.expect(prefix)
    }

    /// Parsed JSON after `prefix`.
    pub fn ask_json(&mut self, command: &str, prefix: &str) -> serde_json::Value {
        let line = self.ask(command, prefix);
        serde_json::from_str(line[prefix.len()..].trim()).unwrap()
    }

    pub fn status(&mut self) -> serde_json::Value {
        self.ask_json("status", "STATUS")
    }

    /// The counter `name` in this node's status.
    pub fn counter(&mut self, name: &str) -> u64 {
        let s = self.status();
        s["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c[0] == name)
            .and_then(|c| c[1].as_u64())
            .unwrap_or_else(|| panic!("{}: no counter {name} in {s}", self.name))
    }

    /// File descriptors the node process holds now (Linux).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// `reachable` of peer `peer` in this node's status, if listed.
    pub fn sees(&mut self, peer: &str) -> Option<bool> {
        let s = self.status();
        s["peers"].as_array().unwrap().iter().find(|p| p["node"] == peer).map(|p| p["reachable"].as_bool().unwrap())
    }

    /// Live agents this node sees on `peer`.
    pub fn agents_of(&mut self, peer: &str) -> u64 {
        let s = self.status();
        s["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["node"] == peer)
            .map(|p| p["agents"].as_u64().unwrap())
            .unwrap_or(0)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} {}", self.name);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Never leave a stopped or running process behind.
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until true; panics with `what` after [`DEADLINE`].
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "not reached within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `names` as a cluster: the first node, then the others joining it, each with
/// `agents` agents of capability `compute` (and swarm `swarm`, if given).
pub fn cluster(names: &[&str], agents: usize, swarm: Option<&str>, work_us: u64) -> Vec<Node> {
    let mut nodes = vec![Node::start(names[0], None, &[])];
    let seed = nodes[0].listen.clone();
    for n in &names[1..] {
        nodes.push(Node::start(n, Some(&seed), &[]));
    }
    for node in nodes.iter_mut() {
        let name = node.name.clone();
        node.ask(&format!("spawn {agents} {name}-a compute {} 0 {work_us}", swarm.unwrap_or("-")), "OK");
    }
    let total = agents * names.len();
    for node in nodes.iter_mut() {
        node.ask(&format!("wait-agents {total} 20000"), "OK");
    }
    nodes
}

/// Runs `run <tasks>` on `node` and returns the RESULT JSON, calling `on_progress` with
/// the completed count as it goes.
pub fn run_tasks(node: &mut Node, tasks: u64, on_progress: impl FnMut(u64)) -> serde_json::Value {
    run_tasks_with(node, tasks, "compute", on_progress)
}

/// [`run_tasks`] for tasks needing capabilities `caps` (comma-separated).
pub fn run_tasks_with(node: &mut Node, tasks: u64, caps: &str, mut on_progress: impl FnMut(u64)) -> serde_json::Value {
    node.send(&format!("run {tasks} {caps} 64 7"));
    loop {
        let line = node.expect("");
        if let Some(p) = line.strip_prefix("PROGRESS ") {
            on_progress(p.trim().parse().unwrap());
        } else if let Some(r) = line.strip_prefix("RESULT ") {
            return serde_json::from_str(r).unwrap();
        }
    }
}

/// Asserts a RESULT lost nothing and its counts add up.
pub fn assert_no_loss(r: &serde_json::Value, tasks: u64) {
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["accepted"], tasks, "{r}");
    let n = |k: &str| r[k].as_u64().unwrap();
    assert_eq!(n("completed") + n("failed") + n("dead_lettered"), tasks, "{r}");
}

/// Connects a bare ractor_cluster node called `name` (no erlmcp-flow) to the node
/// listening on `addr`, finds its gateway and runs `f` with it: how tests speak raw,
/// possibly malformed, wire traffic to a node.
pub fn with_raw_gateway<F, Fut>(addr: &str, name: &str, f: F)
where
    F: FnOnce(ractor::ActorRef<erlmcp_flow::cluster::GatewayMsg>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let server =
            ractor_cluster::NodeServer::new(0, "erlmcp-flow".into(), name.into(), "127.0.0.1".into(), None, None)
                .with_listen_addr([127, 0, 0, 1].into());
        let (server, _) = ractor::Actor::spawn(None, server, ()).await.unwrap();
        ractor_cluster::client_connect(&server, addr).await.unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let group = erlmcp_flow::cluster::wire::GATEWAY_GROUP.to_string();
        let gateway = loop {
            if let Some(c) = ractor::pg::get_members(&group).into_iter().find(|c| !c.get_id().is_local()) {
                break c.into();
            }
            assert!(tokio::time::Instant::now() < deadline, "gateway not found");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        f(gateway).await;
        server.stop(None);
    });
}
