//! The node side of `flow chaos`: the workload clients, run inside a `flow node
//! --control` process so the nemesis can freeze or kill them together with their node.
//!
//! Control commands (answered on one line each, like every control command):
//!
//! | command | answer |
//! |---|---|
//! | `chaos-client <history> <seed> <tasks_per_s> <max_in_flight> <kv_clients> <kv_keys> <kv_pause_ms>` | `OK chaos client` once the clients run in the background |
//! | `chaos-stop <timeout_ms>` | `CHAOS {json}` once the clients stopped (in-flight operations waited for up to the timeout) |
//! | `chaos-ledger <ids file> <out file>` | `CHAOSLEDGER {json}` once the ledger's view of those tasks is written (a linearizable read) |
//!
//! The task client is open-loop: `tasks_per_s` tasks a second, each a `FlowNode::route`
//! of a fresh task, at most `max_in_flight` at a time (a task due while the limit is
//! reached is skipped and counted, not queued). Each KV client runs one operation at a
//! time (get, put, or compare-and-set on `k0..k<kv_keys>`, values unique per client),
//! pausing `kv_pause_ms` between operations and longer after an error. Every invocation
//! and answer goes to the history file ([`super::record`]).
//!
//! The running clients live in a process-wide slot: one workload per node process, which
//! is what a `flow node --control` child is for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use erlmcp_flow::TaskId;
use erlmcp_flow::consensus::{ConsensusNode, LedgerCommand, LedgerResponse};
use erlmcp_flow::prelude::*;
use erlmcp_flow::registry::splitmix64;
use erlmcp_flow_lincheck::{Op, OpResult};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::record::{HistoryWriter, LedgerDump, LedgerEntry, Record, now_ns};

/// Counters a `chaos-stop` reports.
#[derive(Debug, Default, Serialize)]
struct ClientCounts {
    tasks_invoked: u64,
    tasks_ok: u64,
    tasks_err: u64,
    /// Tasks due while `max_in_flight` were outstanding (not invoked).
    tasks_skipped: u64,
    kv_invoked: u64,
    kv_ok: u64,
    kv_err: u64,
    /// Operations still unanswered when `chaos-stop` gave up waiting.
    in_flight_left: u64,
}

#[derive(Default)]
struct Counters {
    tasks_invoked: AtomicU64,
    tasks_ok: AtomicU64,
    tasks_err: AtomicU64,
    tasks_skipped: AtomicU64,
    kv_invoked: AtomicU64,
    kv_ok: AtomicU64,
    kv_err: AtomicU64,
    in_flight: AtomicU64,
}

struct Running {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

static RUNNING: parking_lot::Mutex<Option<Running>> = parking_lot::Mutex::new(None);

/// Handles a `chaos-*` control command.
pub(crate) async fn command(node: &FlowNode, name: &str, words: &[&str]) -> anyhow::Result<String> {
    let num = |i: usize| -> anyhow::Result<u64> {
        words.get(i).context("missing argument")?.parse::<u64>().with_context(|| format!("argument {i}"))
    };
    match words.first().copied() {
        Some("chaos-client") => {
            let path = std::path::PathBuf::from(words.get(1).context("missing history path")?);
            let spec = ClientSpec {
                seed: num(2)?,
                tasks_per_s: num(3)?,
                max_in_flight: num(4)?.clamp(1, 100_000) as usize,
                kv_clients: num(5)?.min(64),
                kv_keys: num(6)?.min(1_000),
                kv_pause: Duration::from_millis(num(7)?),
            };
            let mut slot = RUNNING.lock();
            if slot.is_some() {
                bail!("a chaos client already runs on this node");
            }
            let history = Arc::new(HistoryWriter::open(&path)?);
            *slot = Some(start(node, name, spec, history)?);
            Ok("OK chaos client".into())
        }
        Some("chaos-stop") => {
            let timeout = Duration::from_millis(num(1)?);
            let running = RUNNING.lock().take().context("no chaos client runs on this node")?;
            running.stop.store(true, Ordering::Release);
            let deadline = Instant::now() + timeout;
            while running.counters.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for l in running.loops {
                l.abort();
            }
            let c = &running.counters;
            let get = |a: &AtomicU64| a.load(Ordering::Acquire);
            let counts = ClientCounts {
                tasks_invoked: get(&c.tasks_invoked),
                tasks_ok: get(&c.tasks_ok),
                tasks_err: get(&c.tasks_err),
                tasks_skipped: get(&c.tasks_skipped),
                kv_invoked: get(&c.kv_invoked),
                kv_ok: get(&c.kv_ok),
                kv_err: get(&c.kv_err),
                in_flight_left: get(&c.in_flight),
            };
            Ok(format!("CHAOS {}", serde_json::to_string(&counts)?))
        }
        Some("chaos-ledger") => {
            let c = node.consensus().context("raft is not enabled on this node")?;
            let ids_path = words.get(1).context("missing ids file")?;
            let out_path = words.get(2).context("missing output file")?;
            let ids = std::fs::read_to_string(ids_path)
                .with_context(|| format!("cannot read {ids_path}"))?
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.parse::<TaskId>().with_context(|| format!("bad task id {l:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let dump = c
                .linearizable_read(move |l| {
                    let tasks = ids
                        .iter()
                        .map(|id| {
                            let entry = match (l.get(id), l.finished_kind(id)) {
                                (Some(open), _) => LedgerEntry::Open { owner: open.owner.clone() },
                                (None, Some(kind)) => LedgerEntry::Finished { kind },
                                (None, None) => LedgerEntry::Absent,
                            };
                            (*id, entry)
                        })
                        .collect();
                    let open = l.open_tasks().map(|(id, t)| (*id, t.owner.clone())).collect();
                    let c = l.counts();
                    LedgerDump { tasks, open, counts: [c.accepted, c.completed, c.failed, c.dead_lettered] }
                })
                .await
                .map_err(|e| anyhow::anyhow!("ledger read: {e}"))?;
            std::fs::write(out_path, serde_json::to_vec(&dump)?).with_context(|| format!("cannot write {out_path}"))?;
            Ok(format!(
                "CHAOSLEDGER {}",
                serde_json::json!({ "tasks": dump.tasks.len(), "open": dump.open.len(), "counts": dump.counts })
            ))
        }
        other => bail!("unknown chaos command {other:?}"),
    }
}

struct ClientSpec {
    seed: u64,
    tasks_per_s: u64,
    max_in_flight: usize,
    kv_clients: u64,
    kv_keys: u64,
    kv_pause: Duration,
}

fn start(node: &FlowNode, name: &str, spec: ClientSpec, history: Arc<HistoryWriter>) -> anyhow::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut loops = Vec::new();
    if spec.tasks_per_s > 0 {
        let caps = CapabilitySet::parse(["compute"])?;
        loops.push(tokio::spawn(task_loop(
            node.clone(),
            caps,
            spec.tasks_per_s,
            spec.max_in_flight,
            SmallRng::seed_from_u64(splitmix64(spec.seed)),
            history.clone(),
            stop.clone(),
            counters.clone(),
        )));
    }
    if spec.kv_clients > 0 && spec.kv_keys > 0 {
        let consensus = node.consensus().context("the KV workload needs raft")?.clone();
        let op_numbers = Arc::new(AtomicU64::new(0));
        // Values are unique across restarts of this node too: the pid changes.
        let prefix = format!("{name}.{}", std::process::id());
        for client in 0..spec.kv_clients {
            loops.push(tokio::spawn(kv_loop(KvClient {
                consensus: consensus.clone(),
                client,
                keys: spec.kv_keys,
                pause: spec.kv_pause,
                prefix: prefix.clone(),
                rng: SmallRng::seed_from_u64(splitmix64(spec.seed ^ (client + 1).rotate_left(32))),
                op_numbers: op_numbers.clone(),
                history: history.clone(),
                stop: stop.clone(),
                counters: counters.clone(),
            })));
        }
    }
    Ok(Running { stop, counters, loops })
}

#[allow(clippy::too_many_arguments)]
async fn task_loop(
    node: FlowNode,
    caps: CapabilitySet,
    tasks_per_s: u64,
    max_in_flight: usize,
    mut rng: SmallRng,
    history: Arc<HistoryWriter>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let started = Instant::now();
    let mut launched = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * tasks_per_s as f64) as u64;
        while launched < due && !stop.load(Ordering::Acquire) {
            launched += 1;
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                counters.tasks_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut payload = [0u8; 16];
            rng.fill(&mut payload[..]);
            let task = Task::new(caps.clone()).with_payload(Bytes::copy_from_slice(&payload));
            let (node, history, counters) = (node.clone(), history.clone(), counters.clone());
            counters.in_flight.fetch_add(1, Ordering::AcqRel);
            counters.tasks_invoked.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let id = task.id;
                history.write(&Record::TaskInvoke { t_ns: now_ns(), task: id });
                let outcome = node.route(task).await.map(|o| o.kind()).map_err(|e| e.to_string());
                let counter = if outcome.is_ok() { &counters.tasks_ok } else { &counters.tasks_err };
                counter.fetch_add(1, Ordering::Relaxed);
                history.write(&Record::TaskDone { t_ns: now_ns(), task: id, outcome });
                counters.in_flight.fetch_sub(1, Ordering::AcqRel);
                drop(permit);
            });
        }
    }
}

struct KvClient {
    consensus: ConsensusNode,
    client: u64,
    keys: u64,
    pause: Duration,
    prefix: String,
    rng: SmallRng,
    op_numbers: Arc<AtomicU64>,
    history: Arc<HistoryWriter>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

async fn kv_loop(mut k: KvClient) {
    // The last value this client saw per key: its compare-and-sets expect it, so some of
    // them succeed and the history has real contention.
    let mut seen: Vec<Option<String>> = vec![None; k.keys as usize];
    let mut i = 0u64;
    while !k.stop.load(Ordering::Acquire) {
        i += 1;
        let key_no = k.rng.random_range(0..k.keys) as usize;
        let key = format!("k{key_no}");
        let value = format!("{}.{}.{i}", k.prefix, k.client);
        let op = match k.rng.random_range(0..4u8) {
            0 => Op::get(&key),
            1 => Op::put(&key, &value),
            _ => Op::cas(&key, seen[key_no].as_deref(), Some(&value)),
        };
        let op_no = k.op_numbers.fetch_add(1, Ordering::Relaxed);
        k.counters.in_flight.fetch_add(1, Ordering::AcqRel);
        k.counters.kv_invoked.fetch_add(1, Ordering::Relaxed);
        k.history.write(&Record::KvInvoke { t_ns: now_ns(), client: k.client, op_no, op: op.clone() });
        let outcome = kv_apply(&k.consensus, &op).await.map_err(|e| e.to_string());
        k.history.write(&Record::KvDone { t_ns: now_ns(), op_no, outcome: outcome.clone() });
        k.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
        let pause = match &outcome {
            Ok(result) => {
                k.counters.kv_ok.fetch_add(1, Ordering::Relaxed);
                match (&op, result) {
                    (Op::Get { .. }, OpResult::Value(v)) => seen[key_no] = v.clone(),
                    (Op::Put { .. }, _) | (Op::Cas { .. }, OpResult::Swapped(true)) => seen[key_no] = Some(value),
                    _ => {}
                }
                k.pause
            }
            Err(_) => {
                k.counters.kv_err.fetch_add(1, Ordering::Relaxed);
                // Fewer unknown-outcome writes keep the history checkable.
                (k.pause * 10).max(Duration::from_millis(200))
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Runs one KV operation through the replicated ledger (writes through the leader,
/// reads linearizably).
async fn kv_apply(c: &ConsensusNode, op: &Op) -> Result<OpResult, erlmcp_flow::consensus::ConsensusError> {
    let cmd = match op.clone() {
        Op::Get { key } => {
            return c.linearizable_read(move |l| OpResult::Value(l.kv_get(&key).map(str::to_string))).await;
        }
        Op::Put { key, value } => LedgerCommand::KvPut { key, value },
        Op::Delete { key } => LedgerCommand::KvDelete { key },
        Op::Cas { key, expected, new } => LedgerCommand::KvCas { key, expected, new },
    };
    let receipt = c.submit(cmd).await?;
    Ok(match receipt.response {
        LedgerResponse::KvCas { swapped, .. } => OpResult::Swapped(swapped),
        _ => OpResult::Done,
    })
}
