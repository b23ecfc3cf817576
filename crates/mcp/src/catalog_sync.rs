//! Keeping a node's [`Catalog`] in step with the cluster.
//!
//! Every `catalog_refresh_ms` the node reads its agent registry (local lanes and, through
//! the gossiped directory, lanes on other nodes) and collects the `mcp-catalog:<server>:
//! <digest>` capabilities of the live lanes. A digest it has not seen is fetched once by
//! routing a `describe` task to that capability (any lane of any replica with that list
//! answers); the answer is checked against the digest and cached. The listing is then
//! rebuilt from the live digests and published on a `watch` channel, which the front
//! door's sessions follow to send `notifications/tools/list_changed`.
//!
//! Every lane entry it sees (this node's and other nodes') gets a bulkhead of one slot
//! ([`limit_to_one_call`](crate::names::limit_to_one_call)).
//!
//! Why not carry the schemas in the gossiped directory: schemas can be large, gossip
//! sends the directory every round, and a directory entry would change the cluster wire
//! format. A content-addressed capability costs ~60 bytes per lane in the directory, and
//! the schemas cross the network once per distinct tool list, through the router, like
//! any task.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow::registry::AgentEntry;
use erlmcp_flow::{CapabilitySet, FlowNode, Task, TaskOutcome};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::descriptor::ReplicaCatalog;
use crate::names::{CATALOG_PREFIX, catalog_capability, parse_catalog_capability};
use crate::payload::LaneRequest;
use crate::stats::McpStats;

/// Tool lists kept (live ones are never evicted).
pub const MAX_CACHED_CATALOGS: usize = 1024;

/// How long a `describe` may take.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The catalog cache and the live set, between refreshes.
struct CatalogSync {
    node: FlowNode,
    stats: Arc<McpStats>,
    cache: BTreeMap<(String, u64), Arc<ReplicaCatalog>>,
    /// Entries that carry a catalog capability, recomputed when the registry epoch moves.
    watched: Vec<Arc<AgentEntry>>,
    epoch: Option<u64>,
}

impl CatalogSync {
    fn live(&mut self) -> BTreeSet<(String, u64)> {
        let view = self.node.registry().view();
        let epoch = view.epoch();
        if self.epoch != Some(epoch) {
            self.watched = view
                .all_entries()
                .into_iter()
                .filter(|e| e.capabilities.iter().any(|c| c.as_str().starts_with(CATALOG_PREFIX)))
                .collect();
            self.epoch = Some(epoch);
        }
        for e in &self.watched {
            crate::names::limit_to_one_call(e);
        }
        self.watched
            .iter()
            .filter(|e| e.is_alive())
            .flat_map(|e| e.capabilities.iter().filter_map(parse_catalog_capability).collect::<Vec<_>>())
            .collect()
    }

    async fn describe(&self, server: &str, digest: u64) -> Result<ReplicaCatalog, String> {
        McpStats::inc(&self.stats.describes);
        let caps = CapabilitySet::from(vec![catalog_capability(server, digest)]);
        let task = Task::new(caps)
            .with_payload(LaneRequest::Describe.encode())
            .with_priority(erlmcp_flow::core::Priority::High)
            .with_timeout(DESCRIBE_TIMEOUT);
        let handle = self.node.submit(task).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(DESCRIBE_TIMEOUT * 2, handle).await {
            Ok(TaskOutcome::Completed { output, .. }) => {
                let c: ReplicaCatalog =
                    serde_json::from_slice(&output).map_err(|e| format!("bad describe answer: {e}"))?;
                if c.server != server || c.digest() != digest {
                    return Err(format!("describe of {server}:{digest:016x} answered another list"));
                }
                Ok(c)
            }
            Ok(other) => Err(format!("describe of {server}:{digest:016x} failed: {other:?}")),
            Err(_) => Err(format!("describe of {server}:{digest:016x} not answered in time")),
        }
    }

    /// One refresh; returns the new listing.
    async fn refresh(&mut self) -> Catalog {
        let live = self.live();
        let missing: Vec<(String, u64)> = live.iter().filter(|k| !self.cache.contains_key(*k)).cloned().collect();
        let fetched = futures::future::join_all(missing.iter().map(|(s, d)| self.describe(s, *d))).await;
        for ((server, digest), result) in missing.into_iter().zip(fetched) {
            match result {
                Ok(c) => {
                    self.cache.insert((server, digest), Arc::new(c));
                }
                Err(e) => {
                    McpStats::inc(&self.stats.describe_failures);
                    tracing::debug!(error = %e, "tool list not fetched; retried at the next refresh");
                }
            }
        }
        if self.cache.len() > MAX_CACHED_CATALOGS {
            self.cache.retain(|k, _| live.contains(k));
        }
        Catalog::build(live.iter().filter_map(|k| self.cache.get(k)).map(|c| c.as_ref()))
    }
}

/// Runs the refresh loop until `stop` is cancelled, publishing each changed listing.
pub(crate) async fn run(
    node: FlowNode,
    stats: Arc<McpStats>,
    every: Duration,
    publish: watch::Sender<Arc<Catalog>>,
    stop: CancellationToken,
) {
    let mut sync = CatalogSync { node, stats, cache: BTreeMap::new(), watched: Vec::new(), epoch: None };
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let next = sync.refresh().await;
        publish.send_if_modified(|current| {
            if **current == next {
                false
            } else {
                tracing::info!(tools = next.len(), "tool catalog changed");
                *current = Arc::new(next);
                true
            }
        });
    }
}
