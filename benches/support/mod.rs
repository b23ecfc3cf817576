//! Shared bench helpers: per-operation percentiles (criterion reports means and
//! confidence intervals; our targets are p99s) and fixtures.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Instant;

use erlmcp_flow::core::{AgentId, AgentMsg, AgentRef, CapabilitySet};
use erlmcp_flow::registry::{AgentEntry, Candidates, Registration};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// Times `samples` single calls of `op` and prints p50/p99/p99.9 in ns, next to the cost
/// of an empty timed call (the timer's own overhead, included in every sample).
pub fn percentiles(name: &str, samples: usize, mut op: impl FnMut()) -> (u64, u64) {
    for _ in 0..samples / 10 {
        op();
    }
    let mut ns = Vec::with_capacity(samples);
    let mut empty = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        op();
        ns.push(t.elapsed().as_nanos() as u64);
        let t = Instant::now();
        empty.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    empty.sort_unstable();
    let q = |v: &[u64], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    let (p50, p99, p999) = (q(&ns, 0.5), q(&ns, 0.99), q(&ns, 0.999));
    println!(
        "PERCENTILES {name}: p50 {p50} ns, p99 {p99} ns, p99.9 {p999} ns ({samples} samples; timer alone p50 {} ns, p99 {} ns)",
        q(&empty, 0.5),
        q(&empty, 0.99)
    );
    (p50, p99)
}

/// An actor that ignores everything (for entries that are never messaged).
pub struct Nop;
impl Actor for Nop {
    type Msg = AgentMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// `n` registry entries sharing one idle actor, with capabilities `x` plus `y` on even ones.
pub fn entries(actor: &AgentRef, n: usize) -> Candidates {
    (0..n)
        .map(|i| {
            let caps = if i % 2 == 0 { vec!["x", "y"] } else { vec!["x"] };
            Arc::new(AgentEntry::new(
                Registration {
                    id: AgentId::new(format!("agent-{i:06}")).unwrap(),
                    capabilities: CapabilitySet::parse(caps).unwrap(),
                    swarms: Vec::new(),
                    weight: 1 + (i as u32 % 4),
                    actor: actor.clone(),
                },
                i as u64,
                1,
                64,
            ))
        })
        .collect::<Vec<_>>()
        .into()
}
