//! The nemesis schedule: which faults happen when, generated from the seed before the run
//! starts (so the same seed replays the same schedule; only the system's own timing
//! differs between runs).
//!
//! Fault vocabulary (Jepsen's nemeses):
//!
//! * **kill**: SIGKILL a node; at the heal, restart it on the same redb file.
//! * **pause**: SIGSTOP a node; at the heal, SIGCONT it.
//! * **partition**: cut a minority of nodes off from the rest (both sides `block` each
//!   other through the nodes' fault injection); at the heal, `unblock`.
//! * **majority-loss** (only with `--majority-loss`): cut every link between groups that
//!   are each a minority, so no side can commit, for longer than the clients' deadline
//!   (`raft.client_timeout_ms`): what a client sees as a timeout may commit after the heal.
//!
//! A victim is a node index or, for kill and pause, "the leader" (resolved when the fault
//! is injected). Kills and pauses may overlap as long as a majority is untouched at every
//! instant; a partition or a majority loss runs alone. Protected nodes (the submitters,
//! unless `--kill-submitter`) are never killed, paused or put on a partition's minority
//! side.

use std::collections::BTreeSet;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Who a kill or pause hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Victim {
    /// This node (0-based index).
    Node(usize),
    /// Whichever node leads when the fault is injected (skipped if it is protected).
    Leader,
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Fault {
    /// SIGKILL, then a restart on the same redb file at the heal.
    Kill {
        /// Who.
        victim: Victim,
    },
    /// SIGSTOP, then SIGCONT at the heal.
    Pause {
        /// Who.
        victim: Victim,
    },
    /// These nodes are cut off from all the others.
    Partition {
        /// The minority side (node indexes).
        minority: Vec<usize>,
    },
    /// Every link between these groups is cut; each group is a minority.
    MajorityLoss {
        /// The groups (node indexes).
        groups: Vec<Vec<usize>>,
    },
}

impl Fault {
    /// The fault kind's name, as reports group them.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Partition { .. } => "partition",
            Fault::MajorityLoss { .. } => "majority-loss",
        }
    }
}

/// A fault at a time, held for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScheduledFault {
    /// Injected this long after the workload started, ms.
    pub(crate) at_ms: u64,
    /// Healed this long after the injection, ms.
    pub(crate) hold_ms: u64,
    /// What.
    #[serde(flatten)]
    pub(crate) fault: Fault,
}

/// What the schedule is generated for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScheduleSpec {
    /// Cluster size.
    pub(crate) nodes: usize,
    /// Length of the faulty phase, ms.
    pub(crate) duration_ms: u64,
    /// Fault kinds to draw from (`kill`, `pause`, `partition`).
    pub(crate) kinds: Vec<String>,
    /// Include majority-loss faults.
    pub(crate) majority_loss: bool,
    /// Nodes never killed, paused or isolated in a minority.
    pub(crate) protected: BTreeSet<usize>,
    /// The clients' deadline (`raft.client_timeout_ms`): a majority loss lasts longer.
    pub(crate) client_timeout_ms: u64,
}

/// The whole schedule of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Schedule {
    /// The seed it was generated from.
    pub(crate) seed: u64,
    /// What for.
    pub(crate) spec: ScheduleSpec,
    /// Faults by injection time.
    pub(crate) faults: Vec<ScheduledFault>,
}

/// The fault kinds besides majority loss.
pub(crate) const FAULT_KINDS: [&str; 3] = ["kill", "pause", "partition"];

/// No fault starts before this (the workload warms up), ms.
const WARM_UP_MS: u64 = 2_000;
/// Every fault is healed this long before the end of the faulty phase, ms.
const TAIL_MS: u64 = 2_000;

impl Schedule {
    /// Generates the schedule for `spec` from `seed`. Deterministic.
    pub(crate) fn generate(seed: u64, spec: &ScheduleSpec) -> Schedule {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = spec.nodes;
        let minority = (n.saturating_sub(1)) / 2;
        let end = spec.duration_ms.saturating_sub(TAIL_MS);
        // Per node: busy (killed, paused or partitioned) until this time.
        let mut busy_until = vec![0u64; n];
        // A partition or majority loss holds the whole cluster until this time.
        let mut exclusive_until = 0u64;
        let mut faults = Vec::new();
        let mut t = WARM_UP_MS + rng.random_range(0..1_000);
        let victims: Vec<usize> = (0..n).filter(|i| !spec.protected.contains(i)).collect();
        while t < end && minority > 0 {
            let mut kinds: Vec<(&str, u32)> = [("kill", 3), ("pause", 2), ("partition", 2)]
                .into_iter()
                .filter(|(k, _)| spec.kinds.iter().any(|s| s == k))
                .collect();
            if spec.majority_loss {
                kinds.push(("majority-loss", 2));
            }
            if kinds.is_empty() {
                break;
            }
            let total: u32 = kinds.iter().map(|k| k.1).sum();
            let mut pick = rng.random_range(0..total);
            let mut kind = "kill";
            for (name, weight) in &kinds {
                if pick < *weight {
                    kind = name;
                    break;
                }
                pick -= weight;
            }
            let hold_ms = match kind {
                "majority-loss" => spec.client_timeout_ms + rng.random_range(500..4_000),
                "partition" => rng.random_range(1_500..6_000),
                _ => rng.random_range(1_000..5_000),
            };
            let gap = rng.random_range(500..3_000);
            if t + hold_ms > end {
                // Too long for what is left; try a shorter one a bit later.
                t += 500;
                continue;
            }
            let free: Vec<usize> = victims.iter().copied().filter(|&v| busy_until[v] <= t).collect();
            let affected_now = busy_until.iter().filter(|&&b| b > t).count();
            let exclusive_ok = t >= exclusive_until && affected_now == 0;
            let fault = match kind {
                "kill" | "pause" if t >= exclusive_until && affected_now < minority && !free.is_empty() => {
                    // The leader as victim only while nothing else is down (it may be any node).
                    let victim = if affected_now == 0 && rng.random_bool(0.3) {
                        Victim::Leader
                    } else {
                        Victim::Node(free[rng.random_range(0..free.len())])
                    };
                    match victim {
                        Victim::Node(v) => busy_until[v] = t + hold_ms,
                        // Unknown until injected: hold everything.
                        Victim::Leader => exclusive_until = t + hold_ms,
                    }
                    Some(if kind == "kill" { Fault::Kill { victim } } else { Fault::Pause { victim } })
                }
                "partition" if exclusive_ok && !victims.is_empty() => {
                    let mut side = victims.clone();
                    side.shuffle(&mut rng);
                    side.truncate(rng.random_range(1..=minority.min(victims.len())));
                    side.sort_unstable();
                    exclusive_until = t + hold_ms;
                    Some(Fault::Partition { minority: side })
                }
                "majority-loss" if exclusive_ok => {
                    let mut all: Vec<usize> = (0..n).collect();
                    all.shuffle(&mut rng);
                    let mut groups = Vec::new();
                    while !all.is_empty() {
                        let size = rng.random_range(1..=minority).min(all.len());
                        let mut g: Vec<usize> = all.drain(..size).collect();
                        g.sort_unstable();
                        groups.push(g);
                    }
                    exclusive_until = t + hold_ms;
                    Some(Fault::MajorityLoss { groups })
                }
                _ => None,
            };
            match fault {
                Some(fault) => {
                    faults.push(ScheduledFault { at_ms: t, hold_ms, fault });
                    t += gap;
                }
                None => t += 500,
            }
        }
        Schedule { seed, spec: spec.clone(), faults }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(nodes: usize, majority_loss: bool) -> ScheduleSpec {
        ScheduleSpec {
            nodes,
            duration_ms: 120_000,
            kinds: FAULT_KINDS.iter().map(|k| k.to_string()).collect(),
            majority_loss,
            protected: BTreeSet::from([0]),
            client_timeout_ms: 2_000,
        }
    }

    /// Replaying a seed gives the same schedule; another seed gives another one.
    #[test]
    fn same_seed_same_schedule() {
        let a = Schedule::generate(7, &spec(5, true));
        assert_eq!(a, Schedule::generate(7, &spec(5, true)));
        assert_ne!(a.faults, Schedule::generate(8, &spec(5, true)).faults);
        assert!(a.faults.len() >= 10, "a two-minute run has many faults: {}", a.faults.len());
        let none = ScheduleSpec { kinds: vec![], majority_loss: false, ..spec(5, false) };
        assert!(Schedule::generate(7, &none).faults.is_empty());
        let kills = ScheduleSpec { kinds: vec!["kill".into()], ..spec(5, false) };
        assert!(Schedule::generate(7, &kills).faults.iter().all(|f| f.fault.kind() == "kill"));
    }

    /// At every instant a majority is untouched unless a majority loss is scheduled;
    /// protected nodes are never victims; everything heals before the tail; majority
    /// losses outlast the client deadline and appear only when asked for.
    #[test]
    fn schedules_respect_their_rules() {
        for seed in 0..200 {
            for (nodes, ml) in [(3, false), (5, false), (5, true), (3, true), (7, true)] {
                let s = Schedule::generate(seed, &spec(nodes, ml));
                let mut kinds = BTreeSet::new();
                for (i, f) in s.faults.iter().enumerate() {
                    kinds.insert(f.fault.kind());
                    assert!(f.at_ms >= WARM_UP_MS && f.at_ms + f.hold_ms <= 120_000 - TAIL_MS, "{f:?}");
                    let overlapping: Vec<&ScheduledFault> = s
                        .faults
                        .iter()
                        .enumerate()
                        .filter(|(j, g)| *j != i && g.at_ms < f.at_ms + f.hold_ms && f.at_ms < g.at_ms + g.hold_ms)
                        .map(|(_, g)| g)
                        .collect();
                    match &f.fault {
                        Fault::Kill { victim } | Fault::Pause { victim } => {
                            assert_ne!(*victim, Victim::Node(0), "protected");
                            if *victim == Victim::Leader {
                                assert!(overlapping.is_empty(), "{f:?} overlaps {overlapping:?}");
                            }
                            // The most nodes down at once is reached at some fault's start.
                            let down_at_start =
                                s.faults.iter().filter(|g| g.at_ms <= f.at_ms && f.at_ms < g.at_ms + g.hold_ms).count();
                            assert!(
                                down_at_start <= (nodes - 1) / 2,
                                "a majority stays up: {f:?} with {overlapping:?}"
                            );
                        }
                        Fault::Partition { minority } => {
                            assert!(overlapping.is_empty(), "{f:?} overlaps {overlapping:?}");
                            assert!(!minority.contains(&0) && minority.len() <= (nodes - 1) / 2);
                        }
                        Fault::MajorityLoss { groups } => {
                            assert!(ml, "only when asked for");
                            assert!(overlapping.is_empty());
                            assert!(f.hold_ms > 2_000, "longer than the client deadline");
                            assert!(groups.iter().all(|g| g.len() <= (nodes - 1) / 2));
                            assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), nodes);
                        }
                    }
                }
                if ml && seed < 20 {
                    // Every kind shows up over a two-minute schedule of most seeds.
                    assert!(s.faults.len() > 5);
                }
            }
        }
    }
}
