//! Registry behaviour with real actors: registration, queries, automatic unregistration,
//! swarms and leaders, and recovery of a restarted registry actor.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use erlmcp_flow_core::{AgentId, AgentMsg, AgentRef, Capability, CapabilitySet, MonoClock, SwarmName};
use erlmcp_flow_registry::{
    LeaderChange, Registration, Registry, RegistryArgs, RegistryError, RegistryHandle, RegistryMsg, RegistryView,
};
use erlmcp_flow_supervision::ActorSlot;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(5);

/// A stand-in agent that forwards broadcasts to a channel and can be killed.
struct Dummy(Option<mpsc::UnboundedSender<Bytes>>);
impl Actor for Dummy {
    type Msg = AgentMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, _: ActorRef<AgentMsg>, msg: AgentMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        if let (AgentMsg::Broadcast(b), Some(tx)) = (msg, &self.0) {
            let _ = tx.send(b);
        }
        Ok(())
    }
}

async fn dummy() -> AgentRef {
    Actor::spawn(None, Dummy(None), ()).await.unwrap().0
}

struct Fixture {
    handle: RegistryHandle,
    args: RegistryArgs,
    actor: ActorRef<RegistryMsg>,
}

async fn fixture(max_agents: usize) -> Fixture {
    let view = Arc::new(RegistryView::new(max_agents, 64));
    let slot = ActorSlot::new();
    let args = RegistryArgs {
        view: view.clone(),
        slot: slot.clone(),
        clock: MonoClock::new(),
        bulkhead_capacity: 4,
        seq: Arc::new(AtomicU64::new(0)),
        restart_grace: Duration::from_millis(50),
    };
    let (actor, _) = Actor::spawn(None, Registry, args.clone()).await.unwrap();
    Fixture { handle: RegistryHandle::new(view, slot, T), args, actor }
}

fn id(s: &str) -> AgentId {
    AgentId::new(s).unwrap()
}
fn caps(c: &[&str]) -> CapabilitySet {
    CapabilitySet::parse(c).unwrap()
}
fn swarm(s: &str) -> SwarmName {
    SwarmName::new(s).unwrap()
}
fn reg(name: &str, c: &[&str], swarms: &[&str], actor: AgentRef) -> Registration {
    Registration {
        id: id(name),
        capabilities: caps(c),
        swarms: swarms.iter().map(|s| swarm(s)).collect(),
        weight: 1,
        actor,
    }
}

async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached in {T:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn ids(v: &[Arc<erlmcp_flow_registry::AgentEntry>]) -> Vec<String> {
    v.iter().map(|e| e.id.to_string()).collect()
}

/// Lookup by id, by one capability, and the AND-query (with and without a swarm).
#[tokio::test]
async fn find_by_id_capability_and_query() {
    let f = fixture(100).await;
    f.handle.register(reg("a", &["rust", "sql"], &["s1"], dummy().await)).await.unwrap();
    f.handle.register(reg("b", &["rust"], &["s2"], dummy().await)).await.unwrap();
    f.handle.register(reg("c", &["sql", "rust", "go"], &["s1"], dummy().await)).await.unwrap();
    assert_eq!(f.handle.find(&id("b")).unwrap().capabilities, caps(&["rust"]));
    assert!(f.handle.find(&id("zz")).is_none());
    assert_eq!(ids(&f.handle.find_by_capability(&Capability::new("sql").unwrap())), ["a", "c"]);
    assert_eq!(ids(&f.handle.query(&caps(&["rust", "sql"]), None)), ["a", "c"]);
    assert_eq!(ids(&f.handle.query(&caps(&["rust"]), Some(&swarm("s2")))), ["b"]);
    assert_eq!(ids(&f.handle.query(&caps(&["go", "sql"]), Some(&swarm("s1")))), ["c"]);
    assert!(f.handle.query(&caps(&["cobol"]), None).is_empty());
    assert!(f.handle.query(&caps(&["rust"]), Some(&swarm("nope"))).is_empty());
    // A cached answer is refreshed after a membership change.
    f.handle.register(reg("d", &["rust", "sql"], &[], dummy().await)).await.unwrap();
    assert_eq!(ids(&f.handle.query(&caps(&["rust", "sql"]), None)), ["a", "c", "d"]);
}

/// When an agent actor dies it is out of every read at once (marked down, no explicit
/// unregister), and its entry is removed after the restart grace period when no new
/// incarnation registers.
#[tokio::test]
async fn dead_agents_are_unregistered() {
    let f = fixture(100).await;
    let a = dummy().await;
    f.handle.register(reg("a", &["x"], &["s"], a.clone())).await.unwrap();
    f.handle.register(reg("b", &["x"], &["s"], dummy().await)).await.unwrap();
    a.kill();
    eventually(|| f.handle.find(&id("a")).is_none()).await;
    assert_eq!(ids(&f.handle.find_by_capability(&Capability::new("x").unwrap())), ["b"]);
    assert_eq!(f.handle.leader(&swarm("s")), Some(id("b")));
    // Routing candidates keep the down entry (skipped as not alive) until the grace ends.
    let view = f.handle.view().clone();
    eventually(|| view.entry(&id("a")).is_none()).await;
    assert_eq!(ids(&f.handle.query(&caps(&["x"]), None)), ["b"]);
}

/// A new incarnation of a crashed agent takes its entry over in place: same entry, same
/// load figures, no change to the membership epoch (so cached candidate lists stay valid).
#[tokio::test]
async fn restart_revives_entry_in_place() {
    let f = fixture(100).await;
    let old = dummy().await;
    let first = f.handle.register(reg("a", &["x"], &["s"], old.clone())).await.unwrap();
    first.load.begin();
    let epoch = f.handle.view().epoch();
    old.kill_and_wait(None).await.unwrap();
    eventually(|| !first.is_alive()).await;
    let new = dummy().await;
    let revived = f.handle.register(reg("a", &["x"], &["s"], new.clone())).await.unwrap();
    assert!(Arc::ptr_eq(&first, &revived));
    assert!(revived.is_alive());
    assert_eq!(revived.actor_id(), Some(new.get_id()));
    assert_eq!(revived.incarnation(), 1);
    assert_eq!(revived.load.in_flight(), 1);
    assert_eq!(f.handle.view().epoch(), epoch);
    assert_eq!(f.handle.leader(&swarm("s")), Some(id("a")));
}

/// A restarted agent re-registers under the same id; the late exit event of its old
/// incarnation must not remove the new entry. A live duplicate is refused.
#[tokio::test]
async fn new_incarnation_replaces_dead_one() {
    let f = fixture(100).await;
    let old = dummy().await;
    f.handle.register(reg("a", &["x"], &[], old.clone())).await.unwrap();
    assert_eq!(
        f.handle.register(reg("a", &["x"], &[], dummy().await)).await.unwrap_err(),
        RegistryError::AlreadyRegistered(id("a"))
    );
    old.kill_and_wait(None).await.unwrap();
    let new = dummy().await;
    f.handle.register(reg("a", &["x", "y"], &[], new.clone())).await.unwrap();
    // Let the old incarnation's exit event be processed, then check the entry survived.
    f.handle.register(reg("sync", &["z"], &[], dummy().await)).await.unwrap();
    let e = f.handle.find(&id("a")).unwrap();
    assert_eq!(e.actor_id(), Some(new.get_id()));
    assert_eq!(e.capabilities, caps(&["x", "y"]));
}

/// The oldest member of a swarm leads; when it dies the next oldest takes over, and
/// subscribers see every change.
#[tokio::test]
async fn leader_is_reelected_when_it_dies() {
    let f = fixture(100).await;
    let mut changes = f.handle.subscribe_leaders();
    let first = dummy().await;
    f.handle.register(reg("first", &["x"], &["g"], first.clone())).await.unwrap();
    f.handle.register(reg("second", &["x"], &["g"], dummy().await)).await.unwrap();
    f.handle.register(reg("third", &["x"], &["g"], dummy().await)).await.unwrap();
    assert_eq!(f.handle.leader(&swarm("g")), Some(id("first")));
    first.kill();
    eventually(|| f.handle.leader(&swarm("g")) == Some(id("second"))).await;
    let seen: Vec<LeaderChange> = std::iter::from_fn(|| changes.try_recv().ok()).collect();
    assert_eq!(seen.iter().map(|c| c.leader.clone()).collect::<Vec<_>>(), vec![Some(id("first")), Some(id("second"))]);
    // Leaving a swarm also hands over leadership.
    assert!(f.handle.leave_swarm(&id("second"), &swarm("g")).await.unwrap());
    assert_eq!(f.handle.leader(&swarm("g")), Some(id("third")));
    assert!(f.handle.join_swarm(&id("second"), &swarm("g")).await.unwrap());
    assert_eq!(f.handle.leader(&swarm("g")), Some(id("second")), "older member leads again");
}

/// A broadcast reaches every live member of the swarm and nobody else.
#[tokio::test]
async fn broadcast_reaches_swarm_members() {
    let f = fixture(100).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (name, sw) in [("a", "g"), ("b", "g"), ("c", "other")] {
        let actor = Actor::spawn(None, Dummy(Some(tx.clone())), ()).await.unwrap().0;
        f.handle.register(reg(name, &["x"], &[sw], actor)).await.unwrap();
    }
    assert_eq!(f.handle.broadcast(&swarm("g"), Bytes::from_static(b"hi")), 2);
    for _ in 0..2 {
        assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), "hi");
    }
    assert_eq!(f.handle.broadcast(&swarm("none"), Bytes::new()), 0);
}

/// A registry actor restarted after a crash keeps live entries, drops agents that died
/// while it was down, and resumes automatic unregistration for the survivors.
#[tokio::test]
async fn restarted_registry_rebuilds_from_live_agents() {
    let f = fixture(100).await;
    let survivor = dummy().await;
    let victim = dummy().await;
    f.handle.register(reg("survivor", &["x"], &[], survivor.clone())).await.unwrap();
    f.handle.register(reg("victim", &["x"], &[], victim.clone())).await.unwrap();
    f.actor.kill();
    eventually(|| f.actor.get_status() == ractor::ActorStatus::Stopped).await;
    victim.kill_and_wait(None).await.unwrap();
    assert!(f.handle.find(&id("victim")).is_some(), "nobody is listening yet");
    Actor::spawn(None, Registry, f.args.clone()).await.unwrap();
    assert!(f.handle.find(&id("victim")).is_none());
    assert!(f.handle.find(&id("survivor")).is_some());
    survivor.kill();
    eventually(|| f.handle.find(&id("survivor")).is_none()).await;
}

/// Writes issued while no registry actor runs wait for the next incarnation.
#[tokio::test]
async fn writes_wait_for_a_restarting_registry() {
    let f = fixture(100).await;
    f.actor.stop(None);
    eventually(|| f.handle.slot().get().is_none()).await;
    let h = f.handle.clone();
    let agent = dummy().await;
    let pending = tokio::spawn(async move { h.register(reg("late", &["x"], &[], agent)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    Actor::spawn(None, Registry, f.args.clone()).await.unwrap();
    pending.await.unwrap().unwrap();
    assert!(f.handle.find(&id("late")).is_some());
}

/// Bounds and bad registrations are typed errors.
#[tokio::test]
async fn bounds_and_bad_registrations() {
    let f = fixture(1).await;
    f.handle.register(reg("a", &["x"], &[], dummy().await)).await.unwrap();
    assert!(matches!(f.handle.register(reg("b", &["x"], &[], dummy().await)).await, Err(RegistryError::Full { .. })));
    let mut r = reg("a", &["x"], &[], dummy().await);
    r.weight = 0;
    assert_eq!(f.handle.register(r).await.unwrap_err(), RegistryError::InvalidWeight(id("a")));
    let dead = dummy().await;
    dead.kill_and_wait(None).await.unwrap();
    let f2 = fixture(10).await;
    assert_eq!(
        f2.handle.register(reg("ghost", &["x"], &[], dead)).await.unwrap_err(),
        RegistryError::AgentDead(id("ghost"))
    );
    assert!(!f2.handle.unregister(&id("nobody")).await.unwrap());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The cached AND-query (with and without a swarm) agrees with a naive filter
        /// over every registered agent.
        #[test]
        fn query_matches_naive_filter(
            agents in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), 0u8..3), 1..20),
            want in proptest::collection::vec(0u8..4, 0..3),
            in_swarm in proptest::option::of(0u8..3),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let f = fixture(100).await;
                for (i, (c, s)) in agents.iter().enumerate() {
                    let c: Vec<String> = c.iter().map(|x| format!("c{x}")).collect();
                    let c: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
                    let s = format!("s{s}");
                    f.handle.register(reg(&format!("a{i:02}"), &c, &[&s], dummy().await)).await.unwrap();
                }
                let want_caps: Vec<String> = want.iter().map(|x| format!("c{x}")).collect();
                let want_set = CapabilitySet::parse(&want_caps).unwrap();
                let sw = in_swarm.map(|s| swarm(&format!("s{s}")));
                let got = ids(&f.handle.query(&want_set, sw.as_ref()));
                let naive: Vec<String> = f.handle.view().all().iter()
                    .filter(|e| want_set.is_subset_of(&e.capabilities))
                    .filter(|e| sw.as_ref().is_none_or(|s| f.handle.view().swarms_of(&e.id).contains(s)))
                    .map(|e| e.id.to_string()).collect();
                assert_eq!(got, naive);
            });
        }
    }
}
