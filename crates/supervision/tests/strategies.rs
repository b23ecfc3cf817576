//! Behaviour of the supervisor under child failures: strategies, restart types,
//! intensity and escalation. Children are tiny actors that panic on request and count
//! their starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use erlmcp_flow_supervision::{
    ChildExit, ChildSpec, Restart, RestartIntensity, Strategy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};

const T: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum WorkerMsg {
    Panic,
    Stop,
}
impl ractor::Message for WorkerMsg {}

struct Worker;
impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<WorkerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, me: ActorRef<WorkerMsg>, msg: WorkerMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Panic => panic!("injected"),
            WorkerMsg::Stop => me.stop(Some("done".into())),
        }
        Ok(())
    }
}

/// A child spec that counts its starts.
fn counted(id: &str, restart: Restart, starts: Arc<AtomicUsize>) -> ChildSpec {
    ChildSpec::new(id, restart, move |sup: ActorCell| {
        let starts = starts.clone();
        async move {
            starts.fetch_add(1, Ordering::SeqCst);
            Actor::spawn_linked(None, Worker, (), sup).await.map(|(r, _)| r.get_cell())
        }
    })
}

async fn children(sup: &ActorRef<SupervisorMsg>) -> Vec<(String, Option<ActorCell>)> {
    Supervisor::which_children(sup, T).await.unwrap().into_iter().map(|c| (c.id, c.actor)).collect()
}

fn worker(cell: &ActorCell) -> ActorRef<WorkerMsg> {
    cell.clone().into()
}

/// Polls `cond` until it holds or the deadline passes.
async fn eventually(mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition not reached within {T:?}");
}

fn three(strategy: Strategy, starts: &[Arc<AtomicUsize>; 3]) -> SupervisorSpec {
    SupervisorSpec::new("test", strategy, RestartIntensity::new(10, Duration::from_secs(60)))
        .child(counted("a", Restart::Permanent, starts[0].clone()))
        .child(counted("b", Restart::Permanent, starts[1].clone()))
        .child(counted("c", Restart::Permanent, starts[2].clone()))
}

fn counters() -> [Arc<AtomicUsize>; 3] {
    Default::default()
}

fn loads(starts: &[Arc<AtomicUsize>; 3]) -> [usize; 3] {
    [0, 1, 2].map(|i| starts[i].load(Ordering::SeqCst))
}

/// one_for_one restarts only the child that panicked; its siblings keep their actors.
#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let starts = counters();
    let (sup, _) = Supervisor::start(three(Strategy::OneForOne, &starts)).await.unwrap();
    let before = children(&sup).await;
    worker(before[1].1.as_ref().unwrap()).send_message(WorkerMsg::Panic).unwrap();
    eventually(async || loads(&starts) == [1, 2, 1]).await;
    eventually(async || children(&sup).await[1].1.is_some()).await;
    let after = children(&sup).await;
    assert_eq!(after[0].1.as_ref().unwrap().get_id(), before[0].1.as_ref().unwrap().get_id());
    assert_ne!(after[1].1.as_ref().unwrap().get_id(), before[1].1.as_ref().unwrap().get_id());
    assert_eq!(after[2].1.as_ref().unwrap().get_id(), before[2].1.as_ref().unwrap().get_id());
    sup.stop(None);
}

/// one_for_all restarts every child when one panics, and stops the old siblings.
#[tokio::test]
async fn one_for_all_restarts_every_child() {
    let starts = counters();
    let (sup, _) = Supervisor::start(three(Strategy::OneForAll, &starts)).await.unwrap();
    let before = children(&sup).await;
    worker(before[0].1.as_ref().unwrap()).send_message(WorkerMsg::Panic).unwrap();
    eventually(async || loads(&starts) == [2, 2, 2]).await;
    for (_, cell) in &before {
        let cell = cell.as_ref().unwrap();
        eventually(async || cell.get_status() == ActorStatus::Stopped).await;
    }
    // Deliberately stopped siblings are not restarted a second time.
    tokio::task::yield_now().await;
    assert_eq!(loads(&starts), [2, 2, 2]);
    sup.stop(None);
}

/// rest_for_one restarts the failed child and those started after it, not before it.
#[tokio::test]
async fn rest_for_one_restarts_later_children() {
    let starts = counters();
    let (sup, _) = Supervisor::start(three(Strategy::RestForOne, &starts)).await.unwrap();
    let before = children(&sup).await;
    worker(before[1].1.as_ref().unwrap()).send_message(WorkerMsg::Panic).unwrap();
    eventually(async || loads(&starts) == [1, 2, 2]).await;
    let after = children(&sup).await;
    assert_eq!(after[0].1.as_ref().unwrap().get_id(), before[0].1.as_ref().unwrap().get_id());
    sup.stop(None);
}

/// Transient children are restarted after a panic but not after a normal stop;
/// temporary children are never restarted and leave the child list.
#[tokio::test]
async fn restart_types_are_honoured() {
    let t_starts = Arc::new(AtomicUsize::new(0));
    let tmp_starts = Arc::new(AtomicUsize::new(0));
    let removed = Arc::new(parking_lot_free::Removed::default());
    let hook_removed = removed.clone();
    let spec = SupervisorSpec::new("types", Strategy::OneForOne, RestartIntensity::new(10, Duration::from_secs(60)))
        .child(counted("transient", Restart::Transient, t_starts.clone()))
        .child(counted("temporary", Restart::Temporary, tmp_starts.clone()))
        .on_child_removed(Arc::new(move |id: &str, exit: &ChildExit| hook_removed.push(id, exit)));
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    let kids = children(&sup).await;
    worker(kids[0].1.as_ref().unwrap()).send_message(WorkerMsg::Panic).unwrap();
    eventually(async || t_starts.load(Ordering::SeqCst) == 2).await;
    eventually(async || children(&sup).await[0].1.is_some()).await;
    let kids = children(&sup).await;
    worker(kids[0].1.as_ref().unwrap()).send_message(WorkerMsg::Stop).unwrap();
    worker(kids[1].1.as_ref().unwrap()).send_message(WorkerMsg::Panic).unwrap();
    eventually(async || children(&sup).await.is_empty()).await;
    assert_eq!(t_starts.load(Ordering::SeqCst), 2);
    assert_eq!(tmp_starts.load(Ordering::SeqCst), 1);
    let mut got = removed.ids();
    got.sort();
    assert_eq!(got, vec!["temporary".to_string(), "transient".to_string()]);
    sup.stop(None);
}

struct Parent {
    events: tokio::sync::mpsc::UnboundedSender<String>,
}
impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, err) = evt {
            let _ = self.events.send(err.to_string());
        }
        Ok(())
    }
}

/// A restart storm beyond the intensity stops the children and fails the supervisor,
/// which its parent sees as a failure naming the meltdown; it does not loop.
#[tokio::test]
async fn restart_storm_escalates_to_parent() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (parent, _) = Actor::spawn(None, Parent { events: tx }, ()).await.unwrap();
    let starts = Arc::new(AtomicUsize::new(0));
    let spec = SupervisorSpec::new("stormy", Strategy::OneForOne, RestartIntensity::new(3, Duration::from_secs(60)))
        .child(counted("flaky", Restart::Permanent, starts.clone()))
        .child(counted("bystander", Restart::Permanent, Arc::default()));
    let stats = spec.stats.clone();
    let (sup, sup_handle) = Supervisor::start_linked(spec, parent.get_cell()).await.unwrap();
    let bystander = children(&sup).await[1].1.clone().unwrap();
    for _ in 0..4 {
        let current = loop {
            if let Ok(kids) = Supervisor::which_children(&sup, T).await
                && let Some(c) = kids[0].actor.clone()
            {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        worker(&current).send_message(WorkerMsg::Panic).unwrap();
        let n = starts.load(Ordering::SeqCst);
        eventually(async || starts.load(Ordering::SeqCst) > n || sup.get_status() == ActorStatus::Stopped).await;
    }
    let err = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert!(err.contains("exceeded 3 restarts"), "{err}");
    sup_handle.await.unwrap();
    assert_eq!(sup.get_status(), ActorStatus::Stopped);
    assert_eq!(bystander.get_status(), ActorStatus::Stopped);
    assert_eq!(stats.restarts(), 3);
    assert_eq!(stats.meltdowns(), 1);
    assert_eq!(starts.load(Ordering::SeqCst), 4);
    parent.stop(None);
}

/// A child whose start keeps failing exhausts the intensity instead of retrying forever.
#[tokio::test]
async fn child_that_cannot_restart_escalates() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (parent, _) = Actor::spawn(None, Parent { events: tx }, ()).await.unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a2 = attempts.clone();
    let spec = SupervisorSpec::new("broken", Strategy::OneForOne, RestartIntensity::new(2, Duration::from_secs(60)))
        .child(ChildSpec::new("once", Restart::Permanent, move |sup: ActorCell| {
            let n = a2.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Actor::spawn_linked(None, Worker, (), sup).await.map(|(r, _)| r.get_cell())
                } else {
                    Err(ractor::SpawnErr::StartupFailed("dependency down".into()))
                }
            }
        }));
    let (sup, handle) = Supervisor::start_linked(spec, parent.get_cell()).await.unwrap();
    let kid = children(&sup).await[0].1.clone().unwrap();
    worker(&kid).send_message(WorkerMsg::Panic).unwrap();
    let err = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert!(err.contains("exceeded 2 restarts"), "{err}");
    handle.await.unwrap();
    // First start, then two failed restarts allowed, the third tips it over.
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    parent.stop(None);
}

/// Dynamic children can be added, listed and terminated; duplicates and unknown ids are
/// typed errors; a terminated child is not restarted.
#[tokio::test]
async fn dynamic_children() {
    let spec = SupervisorSpec::new("dyn", Strategy::OneForOne, RestartIntensity::default());
    let (sup, _) = Supervisor::start(spec).await.unwrap();
    let starts = Arc::new(AtomicUsize::new(0));
    let cell = Supervisor::start_child(&sup, counted("x", Restart::Permanent, starts.clone()), T).await.unwrap();
    assert!(matches!(
        Supervisor::start_child(&sup, counted("x", Restart::Permanent, starts.clone()), T).await,
        Err(erlmcp_flow_supervision::SupervisorError::DuplicateChild(_))
    ));
    assert_eq!(children(&sup).await.len(), 1);
    Supervisor::terminate_child(&sup, "x", T).await.unwrap();
    assert_eq!(cell.get_status(), ActorStatus::Stopped);
    assert!(children(&sup).await.is_empty());
    assert!(matches!(
        Supervisor::terminate_child(&sup, "x", T).await,
        Err(erlmcp_flow_supervision::SupervisorError::UnknownChild(_))
    ));
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    sup.stop(None);
}

/// Stopping a supervisor stops its children.
#[tokio::test]
async fn stopping_the_supervisor_stops_children() {
    let starts = counters();
    let (sup, handle) = Supervisor::start(three(Strategy::OneForOne, &starts)).await.unwrap();
    let kids = children(&sup).await;
    sup.stop(None);
    handle.await.unwrap();
    for (_, cell) in kids {
        assert_eq!(cell.unwrap().get_status(), ActorStatus::Stopped);
    }
    assert_eq!(loads(&starts), [1, 1, 1]);
}

mod parking_lot_free {
    use erlmcp_flow_supervision::ChildExit;
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct Removed(Mutex<Vec<String>>);
    impl Removed {
        pub(crate) fn push(&self, id: &str, _exit: &ChildExit) {
            self.0.lock().unwrap().push(id.to_owned());
        }
        pub(crate) fn ids(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }
}
