//! The driver of pre-vote elections (see [`crate::pre_vote`] for the protocol): a task per
//! node that polls the [`ElectionTimer`] and, when it fires, runs one pre-vote round and
//! campaigns only if a quorum granted it.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use openraft::ServerState;
use tokio::time::Instant;

use crate::node::{Metrics, NodeInner};
use crate::pre_vote::{ElectionTimer, PreVoteAnswer, PreVoteRequest, TimerRole, is_quorum};
use crate::supervisor::CoreHealth;
use crate::types::RaftNodeId;
use crate::wire::{self, RaftWire, RaftWireReply};

fn role(m: &Metrics, me: RaftNodeId) -> TimerRole {
    if m.state == ServerState::Leader {
        TimerRole::Leader
    } else if m.membership_config.membership().voter_ids().any(|v| v == me) {
        TimerRole::Voter
    } else {
        TimerRole::NonVoter
    }
}

/// Runs the node's elections until the node is dropped or shut down.
pub(crate) async fn run(node: Weak<NodeInner>, seed: u64) {
    let Some(inner) = node.upgrade() else { return };
    let (min, max) = (inner.election_timeout_min, inner.election_timeout_max);
    let started_at = inner.started_at;
    drop(inner);
    // openraft's follower timer waits its leader lease (election_timeout_max) on top of the
    // randomized timeout when a leader was known; so does this one.
    let mut timer = ElectionTimer::new(min, max, max, seed, Instant::now());
    let tick = (min / 5).max(Duration::from_millis(5));
    let mut seen_us = 0;
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = node.upgrade() else { return };
        if inner.stopped.load(Ordering::Acquire) {
            return;
        }
        if *inner.health.borrow() != CoreHealth::Up {
            continue;
        }
        let heard_us = inner.heard_leader_us.load(Ordering::Acquire);
        if heard_us > seen_us {
            seen_us = heard_us;
            timer.heard(started_at + Duration::from_micros(heard_us), true);
        }
        let (role, joint) = {
            let m = inner.metrics.borrow();
            let joint: Vec<BTreeSet<RaftNodeId>> = m.membership_config.membership().get_joint_config().clone();
            (role(&m, inner.id), joint)
        };
        if !timer.poll(Instant::now(), role) {
            continue;
        }
        let granted = pre_vote_round(&inner, &joint).await;
        if is_quorum(&joint, &granted) {
            tracing::info!(node = %inner.name, granted = granted.len(), "pre-vote granted; campaigning");
            inner.elections_started.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = inner.raft().trigger().elect().await {
                tracing::debug!(node = %inner.name, error = %e, "election not started");
            }
            timer.heard(Instant::now(), false);
        } else {
            inner.pre_votes_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(node = %inner.name, granted = granted.len(), "pre-vote refused; not campaigning");
        }
    }
}

/// Asks every other voter whether it would vote for this node; answers the ids that
/// would (this node included). Each question is bounded by the election timeout.
async fn pre_vote_round(inner: &NodeInner, joint: &[BTreeSet<RaftNodeId>]) -> BTreeSet<RaftNodeId> {
    let mut granted = BTreeSet::from([inner.id]);
    let voters: BTreeSet<RaftNodeId> = joint.iter().flatten().copied().filter(|v| *v != inner.id).collect();
    if voters.is_empty() {
        return granted;
    }
    let last_log_id = match inner.stores.last_log_id().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(node = %inner.name, error = %e, "pre-vote: cannot read the last log id");
            return BTreeSet::new();
        }
    };
    let body = match wire::encode(&RaftWire::PreVote(PreVoteRequest { candidate: inner.name.clone(), last_log_id })) {
        Ok(b) => Bytes::from(b),
        Err(_) => return BTreeSet::new(),
    };
    let names: Vec<(RaftNodeId, String)> = {
        let m = inner.metrics.borrow();
        let membership = m.membership_config.membership();
        voters.iter().filter_map(|id| membership.get_node(id).map(|n| (*id, n.name.clone()))).collect()
    };
    let timeout = inner.election_timeout_min;
    let asks = names.into_iter().map(|(id, name)| {
        let call = inner.transport.call(id, &name, body.clone(), timeout);
        async move {
            let reply = call.await.ok()?;
            match wire::decode::<RaftWireReply>(&reply) {
                Ok(RaftWireReply::PreVote(Ok(PreVoteAnswer::Granted))) => Some(id),
                _ => None,
            }
        }
    });
    granted.extend(join_all(asks).await.into_iter().flatten());
    granted
}
