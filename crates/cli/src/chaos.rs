//! `flow chaos`: a seeded nemesis against a real multi-process cluster, checked à la
//! Jepsen.
//!
//! 1. Generates the fault schedule from the seed ([`schedule`]) and writes it to the run
//!    directory; `--dry-run` prints it and stops.
//! 2. Starts N `flow node --control` processes (this binary) as Raft voters on redb
//!    files, each with agents, their stderr captured in `logs/` ([`cluster`]).
//! 3. Starts the workload clients inside the nodes ([`client`]): tasks from the
//!    submitting nodes, KV operations from every node; every invocation and answer goes
//!    to `history/`.
//! 4. Runs the schedule: SIGKILL and restart on the same redb file, SIGSTOP/SIGCONT,
//!    partitions and (with `--majority-loss`) majority losses through the nodes' own
//!    `block`/`unblock`; polls every node's `status` to time detection and recovery.
//! 5. Heals everything, stops the clients, waits (bounded) for quiescence, reads every
//!    replica's applied index and digest and the ledger's view of every invoked task.
//! 6. Judges it all ([`check`]): no acknowledged task lost, ledger `open` = 0, client
//!    outcomes equal ledger outcomes, replicas agree, the KV history is linearizable, no
//!    panic in a node's log, no node wedged. Prints the report ([`report`]) or `--json`;
//!    exits 1 on any violation, 2 on bad input.
//!
//! `flow chaos --recheck DIR` judges a finished run's directory again (step 6 only).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

mod check;
mod client;
mod cluster;
mod record;
mod report;
mod schedule;

pub(crate) use client::command as node_command;

use check::{Evidence, FinalObservations, Incident, files};
use cluster::{ChaosCluster, ClientSettings, Observation};
use report::{ChaosReport, FaultOutcome, RaftChurn};
use schedule::{Fault, Schedule, ScheduleSpec, Victim};

/// Arguments of `flow chaos`.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Cluster size (Raft voters), 3..=9.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Length of the faulty phase, seconds (healing and checking come after).
    #[arg(long, default_value_t = 120)]
    pub duration_s: u64,
    /// Seed of the fault schedule and the workload (default: from the clock; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also lose the majority (every side a minority) for longer than the clients'
    /// deadline (`raft.client_timeout_ms`).
    #[arg(long)]
    pub majority_loss: bool,
    /// Fault kinds to inject (comma-separated: kill, pause, partition; `none` for a
    /// fault-free baseline). `--majority-loss` adds majority losses.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,partition")]
    pub faults: Vec<String>,
    /// Let the nemesis kill, pause and isolate the submitting nodes too.
    #[arg(long)]
    pub kill_submitter: bool,
    /// How many nodes submit tasks (node-1, node-2, …).
    #[arg(long, default_value_t = 1)]
    pub submitters: usize,
    /// Tasks a second, over all submitters.
    #[arg(long, default_value_t = 200)]
    pub tasks_per_s: u64,
    /// Most tasks in flight per submitter (a task due at the limit is skipped).
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: u64,
    /// KV clients per node (0: no KV workload).
    #[arg(long, default_value_t = 1)]
    pub kv_clients: u64,
    /// Keys the KV clients use.
    #[arg(long, default_value_t = 4)]
    pub kv_keys: u64,
    /// Pause between a KV client's operations, ms.
    #[arg(long, default_value_t = 20)]
    pub kv_pause_ms: u64,
    /// Agents per node.
    #[arg(long, default_value_t = 4)]
    pub agents: u64,
    /// Work per task on an agent, µs.
    #[arg(long, default_value_t = 1_000)]
    pub work_us: u64,
    /// Bound on waiting for quiescence after the heal, seconds.
    #[arg(long, default_value_t = 60)]
    pub quiesce_s: u64,
    /// Run directory (created; default: a new directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print the schedule for the seed and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Judge a finished run's directory again instead of running.
    #[arg(long, value_name = "DIR", conflicts_with = "dry_run")]
    pub recheck: Option<PathBuf>,
}

pub(crate) fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.recheck {
        return recheck(dir, args.json);
    }
    if !(3..=9).contains(&args.nodes) {
        bail!("--nodes must be between 3 and 9");
    }
    if !(5..=86_400).contains(&args.duration_s) {
        bail!("--duration-s must be between 5 and 86400");
    }
    if args.submitters == 0 || args.submitters > args.nodes {
        bail!("--submitters must be between 1 and --nodes");
    }
    if args.tasks_per_s > 100_000 {
        bail!("--tasks-per-s is at most 100000");
    }
    let kinds: Vec<String> = args.faults.iter().filter(|k| k.as_str() != "none").cloned().collect();
    if let Some(bad) = kinds.iter().find(|k| !schedule::FAULT_KINDS.contains(&k.as_str())) {
        bail!("--faults: unknown fault kind {bad:?} (expected kill, pause, partition or none)");
    }
    let seed = args.seed.unwrap_or_else(|| record::now_ns() % 1_000_000);
    let client_timeout_ms = erlmcp_flow::FlowConfig::default().raft.client_timeout_ms;
    let protected: BTreeSet<usize> = if args.kill_submitter { BTreeSet::new() } else { (0..args.submitters).collect() };
    let spec = ScheduleSpec {
        nodes: args.nodes,
        duration_ms: args.duration_s * 1000,
        kinds,
        majority_loss: args.majority_loss,
        protected,
        client_timeout_ms,
    };
    let schedule = Schedule::generate(seed, &spec);
    if args.dry_run {
        println!("{}", serde_json::to_string_pretty(&schedule)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("flow-chaos-{seed}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if std::fs::read_dir(&dir)?.next().is_some() {
        bail!("the run directory {} is not empty", dir.display());
    }
    std::fs::write(dir.join(files::SCHEDULE), serde_json::to_string_pretty(&schedule)?)?;
    if !args.json {
        eprintln!(
            "flow chaos: seed {seed}, {} nodes, {} s, {} faults scheduled; run directory {}",
            args.nodes,
            args.duration_s,
            schedule.faults.len(),
            dir.display()
        );
    }
    let report = run_schedule(&args, seed, &schedule, &dir)?;
    std::fs::write(dir.join(files::REPORT), serde_json::to_string_pretty(&report)?)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report.print();
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn recheck(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    if !dir.join(files::SCHEDULE).exists() {
        bail!("{} is not a chaos run directory (no {})", dir.display(), files::SCHEDULE);
    }
    let evidence = Evidence::load(dir)?;
    let verdict = check::check(&evidence);
    let passed = verdict.passed();
    if json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "passed": passed, "verdict": verdict }))?);
    } else {
        let t = &verdict.tasks;
        println!("tasks: {} invoked; ok {:?}; refused {}; indeterminate {}", t.invoked, t.ok, t.fail, t.info);
        println!("kv: {} operations, {}", verdict.kv_operations, verdict.kv_verdict);
        if passed {
            println!("PASSED: no violation");
        } else {
            report::print_violations(&verdict);
        }
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A fault being injected or healed.
struct Active {
    /// Index into the schedule and the report's `faults`.
    idx: usize,
    injected: Instant,
    /// The nodes cut off or down.
    victims: Vec<usize>,
    /// (observer, peer) pairs the fault cuts: detection is an observer seeing the peer
    /// unreachable.
    cut: Vec<(usize, usize)>,
    /// Who blocks whom (partitions).
    blocks: Vec<(usize, Vec<usize>)>,
    healed: Option<Instant>,
}

fn run_schedule(args: &ChaosArgs, seed: u64, schedule: &Schedule, dir: &Path) -> anyhow::Result<ChaosReport> {
    let n = args.nodes;
    let per_submitter = args.tasks_per_s / args.submitters as u64;
    let mut rates = vec![0u64; n];
    for (i, r) in rates.iter_mut().enumerate().take(args.submitters) {
        *r = per_submitter + u64::from((i as u64) < args.tasks_per_s % args.submitters as u64);
    }
    let settings = ClientSettings {
        seed,
        max_in_flight: args.max_in_flight,
        kv_clients: args.kv_clients,
        kv_keys: args.kv_keys,
        kv_pause_ms: args.kv_pause_ms,
    };
    let mut c = ChaosCluster::start(dir, n, args.agents, args.work_us, &rates, settings)?;
    let mut observations: Vec<Observation> = Vec::new();
    let mut report = ChaosReport {
        seed,
        nodes: n,
        duration_s: args.duration_s,
        majority_loss: args.majority_loss,
        kill_submitter: args.kill_submitter,
        submitters: c.members[..args.submitters].iter().map(|m| m.name.clone()).collect(),
        tasks_per_s: args.tasks_per_s,
        dir: dir.display().to_string(),
        scheduled: schedule.faults.len(),
        faults: schedule
            .faults
            .iter()
            .map(|f| FaultOutcome { at_ms: f.at_ms, kind: f.fault.kind().into(), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    c.t0 = Instant::now();
    c.t0_ns = record::now_ns();
    for i in 0..n {
        c.start_client(i).with_context(|| format!("cannot start the workload client on {}", c.members[i].name))?;
    }
    if !args.json {
        eprintln!("cluster up; workload running");
    }
    // Events: (time, heal?, fault index); heals first at equal times.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, f) in schedule.faults.iter().enumerate() {
        events.push((f.at_ms, false, i));
        events.push((f.at_ms + f.hold_ms, true, i));
    }
    events.sort_by_key(|e| (e.0, !e.1, e.2));
    let mut next_event = 0;
    let mut active: Vec<Active> = Vec::new();
    let end_ms = args.duration_s * 1000;
    let poll_every = Duration::from_millis(250);
    let mut last_poll = Instant::now() - poll_every;
    let mut leader: Option<String> = None;
    loop {
        let now_ms = c.now_ms();
        while next_event < events.len() && events[next_event].0 <= now_ms {
            let (_, heal, idx) = events[next_event];
            next_event += 1;
            if heal {
                if let Some(a) = active.iter_mut().find(|a| a.idx == idx && a.healed.is_none()) {
                    heal_fault(&mut c, &schedule.faults[idx].fault, a);
                    report.faults[idx].healed_at_ms = Some(c.now_ms());
                    if !args.json {
                        eprintln!("{:>7} ms heal   {}", c.now_ms(), schedule.faults[idx].fault.kind());
                    }
                }
            } else {
                // Faults healed but not yet recovered from: the new one cuts that short.
                for a in active.iter().filter(|a| a.healed.is_some()) {
                    if report.faults[a.idx].recovered_ms.is_none() {
                        report.faults[a.idx].recovery_cut_short = true;
                    }
                }
                active.retain(|a| a.healed.is_none());
                let outcome = &mut report.faults[idx];
                outcome.leader_before = leader.clone();
                match inject(&mut c, &schedule.faults[idx].fault, leader.as_deref(), &schedule.spec.protected) {
                    Ok(a) => {
                        outcome.victims = a.victims.iter().map(|&v| c.members[v].name.clone()).collect();
                        if !args.json {
                            eprintln!("{:>7} ms inject {} {:?}", c.now_ms(), outcome.kind, outcome.victims);
                        }
                        active.push(Active { idx, ..a });
                    }
                    Err(why) => outcome.skipped = Some(why),
                }
            }
        }
        if now_ms >= end_ms {
            break;
        }
        if last_poll.elapsed() >= poll_every {
            last_poll = Instant::now();
            let seen = c.poll();
            observe(&c, &seen, &mut active, &mut report, &mut leader);
            observations.extend(seen);
            active.retain(|a| a.healed.is_none() || report.faults[a.idx].recovered_ms.is_none());
        }
        let next_at = events.get(next_event).map_or(end_ms, |e| e.0).min(end_ms);
        let wait = Duration::from_millis(next_at.saturating_sub(c.now_ms())).min(poll_every);
        std::thread::sleep(wait.max(Duration::from_millis(5)));
    }

    // Heal everything, then let the cluster settle.
    let faulty_end = Instant::now();
    for a in active.iter_mut().filter(|a| a.healed.is_none()) {
        let idx = a.idx;
        heal_fault(&mut c, &schedule.faults[idx].fault, a);
        report.faults[idx].healed_at_ms = Some(c.now_ms());
    }
    if !args.json {
        eprintln!("faulty phase over; healed; waiting for quiescence (at most {} s)", args.quiesce_s);
    }
    let quiesce_by = faulty_end + Duration::from_secs(args.quiesce_s);
    let mut agreed = None;
    while agreed.is_none() && Instant::now() < quiesce_by {
        let seen = c.poll();
        observe(&c, &seen, &mut active, &mut report, &mut leader);
        let everyone = seen.len() == n;
        let first = seen.first().and_then(|o| o.leader.clone());
        if everyone && first.is_some() && seen.iter().all(|o| o.leader == first && o.unreachable.is_empty()) {
            agreed = first;
        }
        observations.extend(seen);
        if agreed.is_none() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    if agreed.is_none() {
        let last: Vec<String> = observations
            .iter()
            .rev()
            .take(n)
            .map(|o| format!("{} sees leader {:?}, unreachable {:?}", c.members[o.node].name, o.leader, o.unreachable))
            .collect();
        c.incidents.push(Incident {
            kind: "no-leader".into(),
            detail: format!(
                "{} s after the heal the nodes were not all up, connected and agreed on one leader: {}",
                args.quiesce_s,
                last.join("; ")
            ),
        });
    }
    // Stop the clients (in-flight operations get up to the client deadline and more).
    let all: Vec<usize> = (0..n).collect();
    for (i, answer) in c.ask_all(&all, "chaos-stop 15000", "CHAOS", Duration::from_secs(20)) {
        let name = c.members[i].name.clone();
        let v = match answer {
            Ok(json) => serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        };
        report.clients.insert(name, v);
    }
    // Quiescence: the ledger has no open task and every replica applied the same index.
    let mut last = FinalObservations::default();
    loop {
        let reader = (0..n).find(|&i| c.members[i].reachable_by_driver());
        let open = reader.and_then(|i| {
            let a = c.ask_all(&[i], "ledger", "LEDGER", Duration::from_secs(10)).pop()?.1.ok()?;
            serde_json::from_str::<serde_json::Value>(&a).ok()?["open"].as_u64()
        });
        last.ledger_open = open;
        let left = quiesce_by.saturating_duration_since(Instant::now());
        let (views, backlog) = c.replicas(left.min(Duration::from_secs(5)));
        last.replicas = views;
        if (open == Some(0) && backlog == 0 && last.replicas.len() == n) || Instant::now() >= quiesce_by {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    report.quiescence_ms = faulty_end.elapsed().as_millis() as u64;
    if !args.json {
        eprintln!(
            "quiescence: open {:?} after {:.1} s; reading the ledger",
            last.ledger_open,
            report.quiescence_ms as f64 / 1e3
        );
    }
    // The ledger's view of every task a client invoked.
    let partial = Evidence::load(dir)?;
    let ids: String = partial.tasks.keys().map(|id| format!("{id}\n")).collect();
    std::fs::write(dir.join(files::TASK_IDS), ids)?;
    let cmd = format!("chaos-ledger {} {}", dir.join(files::TASK_IDS).display(), dir.join(files::LEDGER).display());
    let mut read = false;
    for i in 0..n {
        if read || !c.members[i].reachable_by_driver() {
            continue;
        }
        match c.ask_all(&[i], &cmd, "CHAOSLEDGER", Duration::from_secs(30)).pop() {
            Some((_, Ok(_))) => read = true,
            Some((_, Err(e))) => tracing::warn!(error = %e, "ledger not read"),
            None => {}
        }
    }
    for m in &c.members {
        if m.proc_.is_none() {
            c.incidents.push(Incident { kind: "down-at-end".into(), detail: format!("{} is not running", m.name) });
        }
    }
    let incidents: Vec<Incident> = c.incidents.drain(..).collect();
    c.shutdown(Duration::from_secs(10));
    last.incidents = incidents;
    last.incidents.append(&mut c.incidents);
    std::fs::write(dir.join(files::FINAL), serde_json::to_string_pretty(&last)?)?;
    std::fs::write(
        dir.join("observations.jsonl"),
        observations.iter().map(|o| serde_json::to_string(o).unwrap_or_default() + "\n").collect::<String>(),
    )?;

    let evidence = Evidence::load(dir)?;
    report.verdict = check::check(&evidence);
    report.passed = report.verdict.passed();
    report.throughput_per_s = check::throughput(&evidence.tasks, c.t0_ns, args.duration_s as usize);
    for f in report.faults.iter_mut() {
        if let Some(h) = f.healed_at_ms {
            let from = c.t0_ns + h * 1_000_000;
            f.first_ok_ms = check::first_ok_after(&evidence, from).map(|t| (t - from) / 1_000_000);
        }
    }
    report.raft = churn(&observations);
    report.summarize();
    Ok(report)
}

/// Injects `fault`; the victims resolved and what to watch, or why it was skipped.
fn inject(
    c: &mut ChaosCluster,
    fault: &Fault,
    leader: Option<&str>,
    protected: &BTreeSet<usize>,
) -> Result<Active, String> {
    let n = c.members.len();
    let resolve = |v: &Victim| -> Result<usize, String> {
        let i = match v {
            Victim::Node(i) => *i,
            Victim::Leader => {
                let l = leader.ok_or("no leader known")?;
                c.index(l).ok_or_else(|| format!("unknown leader {l}"))?
            }
        };
        if protected.contains(&i) {
            return Err(format!("{} is protected (a submitter)", c.members[i].name));
        }
        if !c.members[i].reachable_by_driver() {
            return Err(format!("{} is already down", c.members[i].name));
        }
        Ok(i)
    };
    let others = |group: &[usize]| -> Vec<usize> { (0..n).filter(|j| !group.contains(j)).collect() };
    let blank = Active { idx: 0, injected: Instant::now(), victims: vec![], cut: vec![], blocks: vec![], healed: None };
    match fault {
        Fault::Kill { victim } | Fault::Pause { victim } => {
            let v = resolve(victim)?;
            if matches!(fault, Fault::Kill { .. }) {
                c.kill(v);
            } else {
                c.pause(v, true);
            }
            let cut = others(&[v]).into_iter().map(|o| (o, v)).collect();
            Ok(Active { victims: vec![v], cut, injected: Instant::now(), ..blank })
        }
        Fault::Partition { minority } => {
            let rest = others(minority);
            let mut blocks: Vec<(usize, Vec<usize>)> = minority.iter().map(|&s| (s, rest.clone())).collect();
            blocks.extend(rest.iter().map(|&r| (r, minority.clone())));
            c.block(&blocks, true);
            let cut = blocks.iter().flat_map(|(o, ps)| ps.iter().map(move |p| (*o, *p))).collect();
            Ok(Active { victims: minority.clone(), cut, blocks, injected: Instant::now(), ..blank })
        }
        Fault::MajorityLoss { groups } => {
            let blocks: Vec<(usize, Vec<usize>)> =
                groups.iter().flat_map(|g| g.iter().map(|&m| (m, others(g))).collect::<Vec<_>>()).collect();
            c.block(&blocks, true);
            let cut = blocks.iter().flat_map(|(o, ps)| ps.iter().map(move |p| (*o, *p))).collect();
            Ok(Active { victims: (0..n).collect(), cut, blocks, injected: Instant::now(), ..blank })
        }
    }
}

fn heal_fault(c: &mut ChaosCluster, fault: &Fault, a: &mut Active) {
    match fault {
        Fault::Kill { .. } => {
            for &v in &a.victims {
                c.restart(v);
            }
        }
        Fault::Pause { .. } => {
            for &v in &a.victims {
                c.pause(v, false);
            }
        }
        Fault::Partition { .. } | Fault::MajorityLoss { .. } => c.block(&a.blocks, false),
    }
    a.healed = Some(Instant::now());
}

/// Folds one poll round into the faults' detection, failover and recovery times.
fn observe(
    c: &ChaosCluster,
    seen: &[Observation],
    active: &mut [Active],
    report: &mut ChaosReport,
    leader: &mut Option<String>,
) {
    let names: Vec<&str> = c.members.iter().map(|m| m.name.as_str()).collect();
    // The leader most nodes name this round.
    let mut votes: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in seen {
        if let Some(l) = &o.leader {
            *votes.entry(l.as_str()).or_default() += 1;
        }
    }
    if let Some((l, _)) = votes.iter().max_by_key(|(_, n)| **n) {
        *leader = Some(l.to_string());
    }
    let all_up = seen.len() == c.members.len();
    let first = seen.first().and_then(|o| o.leader.as_deref());
    let healthy =
        all_up && first.is_some() && seen.iter().all(|o| o.leader.as_deref() == first && o.unreachable.is_empty());
    for a in active.iter_mut() {
        let f = &mut report.faults[a.idx];
        let since = |t: Instant| t.elapsed().as_millis() as u64;
        if a.healed.is_none() && f.detected_ms.is_none() {
            let hit = seen
                .iter()
                .any(|o| a.cut.iter().any(|(ob, p)| *ob == o.node && o.unreachable.iter().any(|u| u == names[*p])));
            if hit {
                f.detected_ms = Some(since(a.injected));
            }
        }
        let leader_hit = f
            .leader_before
            .as_deref()
            .and_then(|l| names.iter().position(|n| *n == l))
            .is_some_and(|l| a.victims.contains(&l));
        if leader_hit && f.failover_ms.is_none() && a.victims.len() < c.members.len() {
            let new = seen.iter().filter(|o| !a.victims.contains(&o.node)).any(|o| {
                o.leader
                    .as_deref()
                    .is_some_and(|l| names.iter().position(|n| *n == l).is_some_and(|li| !a.victims.contains(&li)))
            });
            if new {
                f.failover_ms = Some(since(a.injected));
            }
        }
        if let Some(h) = a.healed
            && f.recovered_ms.is_none()
            && healthy
        {
            f.recovered_ms = Some(since(h));
        }
    }
}

/// Terms and leader changes from the polls.
fn churn(observations: &[Observation]) -> RaftChurn {
    let mut r = RaftChurn::default();
    let mut last_leader: Option<(u64, &str)> = None;
    for (i, o) in observations.iter().enumerate() {
        if i < 8 {
            r.term_start = r.term_start.max(o.term);
        }
        r.term_end = r.term_end.max(o.term);
        if let Some(l) = &o.leader
            && last_leader.is_none_or(|(t, name)| o.term > t && name != l)
        {
            if last_leader.is_some() {
                r.leader_changes += 1;
            }
            last_leader = Some((o.term, l));
        }
    }
    r
}
