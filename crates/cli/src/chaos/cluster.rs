//! The nemesis's side of the processes: N `flow node --control` children on redb files,
//! the faults done to them (signals and the nodes' own `block`/`unblock`), and the
//! polling that sees the cluster notice a fault and recover from it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::check::{Incident, ReplicaView, files};
use super::record::now_ns;
use crate::node_proc::NodeProc;

/// How long a polled node may take to answer `status`.
const POLL_ANSWER: Duration = Duration::from_millis(1_500);
/// A node that did not answer is polled again after this.
const UNRESPONSIVE_RETRY: Duration = Duration::from_secs(5);
/// A node that answers nothing for this long (while not paused) is an incident.
const UNRESPONSIVE_INCIDENT: Duration = Duration::from_secs(20);

/// One node of the run, across its incarnations.
pub(crate) struct Member {
    pub(crate) name: String,
    /// The running process (None while killed, or after a failed restart).
    pub(crate) proc_: Option<NodeProc>,
    /// Starts so far, minus one.
    pub(crate) incarnation: u32,
    /// SIGSTOPped.
    pub(crate) paused: bool,
    /// Did not answer a poll since then.
    pub(crate) silent_since: Option<Instant>,
    /// Last poll attempt.
    pub(crate) last_poll: Option<Instant>,
    /// Tasks a second its workload client submits (0: KV only).
    pub(crate) tasks_per_s: u64,
    /// An incident was already recorded for its current silence.
    silence_reported: bool,
}

impl Member {
    /// Whether it can be asked something now.
    pub(crate) fn reachable_by_driver(&self) -> bool {
        self.proc_.is_some() && !self.paused
    }
}

/// What the workload clients are told at start.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub(crate) seed: u64,
    pub(crate) max_in_flight: u64,
    pub(crate) kv_clients: u64,
    pub(crate) kv_keys: u64,
    pub(crate) kv_pause_ms: u64,
}

/// One poll answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Observation {
    /// Since the workload started, ms.
    pub(crate) t_ms: u64,
    /// Who answered.
    pub(crate) node: usize,
    pub(crate) term: u64,
    pub(crate) leader: Option<String>,
    /// Peers it does not reach.
    pub(crate) unreachable: Vec<String>,
}

/// The processes of a run.
pub(crate) struct ChaosCluster {
    exe: PathBuf,
    dir: PathBuf,
    base_args: Vec<String>,
    pub(crate) members: Vec<Member>,
    pub(crate) clients: ClientSettings,
    pub(crate) incidents: Vec<Incident>,
    /// When the workload started (all times in reports are relative to it).
    pub(crate) t0: Instant,
    pub(crate) t0_ns: u64,
}

impl ChaosCluster {
    /// Starts `nodes` Raft voters on redb files in `dir`, each with `agents` agents, and
    /// waits until every node sees all agents and a leader.
    pub(crate) fn start(
        dir: &Path,
        nodes: usize,
        agents: u64,
        work_us: u64,
        tasks_per_s: &[u64],
        clients: ClientSettings,
    ) -> anyhow::Result<ChaosCluster> {
        for sub in [files::HISTORY_DIR, files::LOG_DIR, "redb"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
        let base_args = vec![
            "--raft-voters".to_string(),
            names.join(","),
            "--agents".into(),
            agents.to_string(),
            "--work-us".into(),
            work_us.to_string(),
        ];
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| Member {
                name: name.clone(),
                proc_: None,
                incarnation: 0,
                paused: false,
                silent_since: None,
                last_poll: None,
                tasks_per_s: tasks_per_s.get(i).copied().unwrap_or(0),
                silence_reported: false,
            })
            .collect();
        let mut c = ChaosCluster {
            exe: std::env::current_exe().context("cannot locate the flow binary")?,
            dir: dir.to_path_buf(),
            base_args,
            members,
            clients,
            incidents: Vec::new(),
            t0: Instant::now(),
            t0_ns: now_ns(),
        };
        for i in 0..nodes {
            c.spawn(i)?;
        }
        let total = agents * nodes as u64;
        for m in c.members.iter_mut() {
            let p = m.proc_.as_mut().expect("just started");
            p.ask(&format!("wait-agents {total} 30000"), "OK", Duration::from_secs(35))?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.common_leader().is_none() {
            if Instant::now() >= deadline {
                bail!("no Raft leader agreed on by every node within 30 s of start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(c)
    }

    /// Index of a node by name.
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// Milliseconds since the workload started.
    pub(crate) fn now_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let mut args = self.base_args.clone();
        let redb = self.dir.join("redb").join(format!("{}.redb", self.members[i].name));
        args.extend(["--raft-path".to_string(), redb.to_string_lossy().into_owned()]);
        // Join every live node that can answer (a paused one would hold the handshake).
        for (j, other) in self.members.iter().enumerate() {
            if let (true, Some(p)) = (j != i && !other.paused, &other.proc_) {
                args.extend(["--join".to_string(), p.listen.clone()]);
            }
        }
        let m = &mut self.members[i];
        let log = self.dir.join(files::LOG_DIR).join(format!("{}.{}.log", m.name, m.incarnation));
        let stderr = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        m.proc_ = Some(NodeProc::spawn(&self.exe, &m.name, &args, Stdio::from(stderr), Duration::from_secs(60))?);
        m.paused = false;
        m.silent_since = None;
        m.silence_reported = false;
        Ok(())
    }

    /// Starts the workload client of member `i` (its current incarnation), if it has one.
    pub(crate) fn start_client(&mut self, i: usize) -> anyhow::Result<()> {
        let s = self.clients.clone();
        let m = &mut self.members[i];
        let Some(p) = m.proc_.as_mut() else { return Ok(()) };
        let history = self.dir.join(files::HISTORY_DIR).join(format!("{}.{}.jsonl", m.name, m.incarnation));
        let seed = erlmcp_flow::registry::splitmix64(s.seed ^ ((i as u64) << 48) ^ u64::from(m.incarnation));
        let cmd = format!(
            "chaos-client {} {seed} {} {} {} {} {}",
            history.display(),
            m.tasks_per_s,
            s.max_in_flight,
            s.kv_clients,
            s.kv_keys,
            s.kv_pause_ms
        );
        p.discard_pending();
        p.ask(&cmd, "OK", Duration::from_secs(10))?;
        Ok(())
    }

    /// SIGKILLs member `i`.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].proc_.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.members[i].paused = false;
    }

    /// Restarts member `i` on its redb file (joining every live node) and restarts its
    /// client. A failure is an incident, and the member stays down.
    pub(crate) fn restart(&mut self, i: usize) {
        self.members[i].incarnation += 1;
        let started = self.spawn(i).and_then(|()| self.start_client(i));
        if let Err(e) = started {
            let name = self.members[i].name.clone();
            self.incidents.push(Incident {
                kind: "restart-failed".into(),
                detail: format!("{name} did not restart on its redb file: {e:#}"),
            });
            self.kill(i);
        }
    }

    /// SIGSTOP (`pause`) or SIGCONT member `i`.
    pub(crate) fn pause(&mut self, i: usize, pause: bool) {
        let Some(p) = &self.members[i].proc_ else { return };
        let sig = if pause { "-STOP" } else { "-CONT" };
        let _ = Command::new("kill").args([sig, &p.pid().to_string()]).stderr(Stdio::null()).status();
        self.members[i].paused = pause;
        if !pause {
            self.members[i].silent_since = None;
        }
    }

    /// Each member in `cuts` blocks (or unblocks) the named peers; answers are awaited
    /// together. Members that are down or paused are skipped.
    pub(crate) fn block(&mut self, cuts: &[(usize, Vec<usize>)], block: bool) {
        let word = if block { "block" } else { "unblock" };
        let names: Vec<String> = self.members.iter().map(|m| m.name.clone()).collect();
        let mut asked = Vec::new();
        for (i, peers) in cuts {
            let m = &mut self.members[*i];
            if peers.is_empty() || !m.reachable_by_driver() {
                continue;
            }
            let p = m.proc_.as_mut().expect("checked");
            p.discard_pending();
            let list: Vec<&str> = peers.iter().map(|&j| names[j].as_str()).collect();
            if p.send(&format!("{word} {}", list.join(" "))).is_ok() {
                asked.push(*i);
            }
        }
        for i in asked {
            if let Some(p) = self.members[i].proc_.as_mut()
                && let Err(e) = p.expect("OK", Duration::from_secs(5))
            {
                tracing::warn!(node = %names[i], error = %e, "{word} not confirmed");
            }
        }
    }

    /// Polls every member that is up, not paused, and not known silent (retried after a
    /// while): sends `status` to all, then collects the answers. A member silent for long
    /// is an incident.
    pub(crate) fn poll(&mut self) -> Vec<Observation> {
        let now = Instant::now();
        let mut asked = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if !m.reachable_by_driver() {
                continue;
            }
            if m.silent_since.is_some() && m.last_poll.is_some_and(|t| now.duration_since(t) < UNRESPONSIVE_RETRY) {
                continue;
            }
            m.last_poll = Some(now);
            let p = m.proc_.as_mut().expect("checked");
            p.discard_pending();
            if p.send("status").is_ok() {
                asked.push(i);
            }
        }
        let deadline = Instant::now() + POLL_ANSWER;
        let t_ms = self.now_ms();
        let mut seen = Vec::new();
        for i in asked {
            let m = &mut self.members[i];
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = m.proc_.as_mut().expect("asked").expect("STATUS", left);
            match answer.ok().and_then(|l| serde_json::from_str::<serde_json::Value>(&l["STATUS".len()..]).ok()) {
                Some(v) => {
                    m.silent_since = None;
                    m.silence_reported = false;
                    let unreachable = v["peers"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter(|p| p["reachable"] == false)
                                .filter_map(|p| p["node"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    seen.push(Observation {
                        t_ms,
                        node: i,
                        term: v["raft"]["term"].as_u64().unwrap_or(0),
                        leader: v["raft"]["leader"].as_str().map(str::to_string),
                        unreachable,
                    });
                }
                None => {
                    let since = *m.silent_since.get_or_insert(now);
                    if now.duration_since(since) >= UNRESPONSIVE_INCIDENT && !m.silence_reported {
                        m.silence_reported = true;
                        self.incidents.push(Incident {
                            kind: "unresponsive".into(),
                            detail: format!(
                                "{} (incarnation {}) answered no control command for {} s from t={} ms (not paused)",
                                m.name,
                                m.incarnation,
                                now.duration_since(since).as_secs(),
                                since.duration_since(self.t0).as_millis()
                            ),
                        });
                    }
                }
            }
        }
        seen
    }

    /// The leader every member names, when they are all up and agree.
    pub(crate) fn common_leader(&mut self) -> Option<String> {
        let n = self.members.len();
        let seen = self.poll();
        if seen.len() != n {
            return None;
        }
        let leader = seen[0].leader.clone()?;
        seen.iter().all(|o| o.leader.as_deref() == Some(&leader) && o.unreachable.is_empty()).then_some(leader)
    }

    /// Asks every live member (`who`) the same command and collects the answers,
    /// waiting up to `timeout` in all.
    pub(crate) fn ask_all(
        &mut self,
        who: &[usize],
        command: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Vec<(usize, anyhow::Result<String>)> {
        let mut asked = Vec::new();
        let mut answers = Vec::new();
        for &i in who {
            let paused = self.members[i].paused;
            match self.members[i].proc_.as_mut() {
                Some(p) if !paused => {
                    p.discard_pending();
                    match p.send(command) {
                        Ok(()) => asked.push(i),
                        Err(e) => answers.push((i, Err(e))),
                    }
                }
                _ => answers.push((i, Err(anyhow::anyhow!("{} is down", self.members[i].name)))),
            }
        }
        let deadline = Instant::now() + timeout;
        for i in asked {
            let left = deadline.saturating_duration_since(Instant::now());
            let p = self.members[i].proc_.as_mut().expect("asked");
            answers.push((i, p.expect(prefix, left).map(|l| l[prefix.len()..].trim().to_string())));
        }
        answers
    }

    /// Every member's applied index and digest, once they are equal on all members or
    /// `timeout` passed (then the last seen), plus the largest writer backlog seen last.
    pub(crate) fn replicas(&mut self, timeout: Duration) -> (Vec<ReplicaView>, u64) {
        let deadline = Instant::now() + timeout;
        let all: Vec<usize> = (0..self.members.len()).collect();
        loop {
            let answers = self.ask_all(&all, "raft", "RAFT", Duration::from_secs(5));
            let mut views = Vec::new();
            let mut backlog = 0;
            for (i, a) in answers {
                if let Some(v) = a.ok().and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok()) {
                    backlog = backlog.max(v["backlog"].as_u64().unwrap_or(0));
                    views.push(ReplicaView {
                        node: self.members[i].name.clone(),
                        last_applied: v["last_applied"].as_u64().unwrap_or(0),
                        digest: v["digest"].as_u64().unwrap_or(0),
                    });
                }
            }
            views.sort_by(|a, b| a.node.cmp(&b.node));
            let complete = views.len() == self.members.len();
            let same = views.windows(2).all(|w| w[0].last_applied == w[1].last_applied);
            if (complete && same && backlog == 0) || Instant::now() >= deadline {
                return (views, backlog);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Quits every member (SIGCONT first); one that does not exit within `timeout` is
    /// killed and is an incident.
    pub(crate) fn shutdown(&mut self, timeout: Duration) {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.pause(i, false);
            }
            let name = self.members[i].name.clone();
            if let Some(mut p) = self.members[i].proc_.take()
                && !p.quit(timeout)
            {
                self.incidents.push(Incident {
                    kind: "not-quit".into(),
                    detail: format!("{name} did not exit within {timeout:?} of `quit` (killed)"),
                });
            }
        }
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        // Never leave a stopped process behind (NodeProc's drop then quits or kills it).
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.pause(i, false);
            }
        }
    }
}
