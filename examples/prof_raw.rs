use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::time::{Duration, Instant};
enum PingMsg {
    Ping(RpcReplyPort<u8>),
}
impl ractor::Message for PingMsg {}
struct Pong;
impl Actor for Pong {
    type Msg = PingMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<PingMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(&self, _: ActorRef<PingMsg>, m: PingMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        let PingMsg::Ping(r) = m;
        let _ = r.send(0);
        Ok(())
    }
}
fn main() {
    let mt = std::env::args().nth(1).is_some();
    let rt = if mt {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    };
    rt.block_on(async {
        let mut actors = Vec::new();
        for _ in 0..8 {
            actors.push(Actor::spawn(None, Pong, ()).await.unwrap().0);
        }
        let actors = std::sync::Arc::new(actors);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(4) {
            let mut ws = Vec::new();
            for w in 0..256 {
                let a = actors.clone();
                ws.push(tokio::spawn(async move {
                    for j in 0..100 {
                        a[(w + j) % 8].call(PingMsg::Ping, Some(Duration::from_secs(10))).await.unwrap();
                    }
                }));
            }
            for w in ws {
                w.await.unwrap();
            }
            n += 25600;
        }
        println!(
            "{} raw: {:.0} calls/s",
            if mt { "multi" } else { "current" },
            n as f64 / start.elapsed().as_secs_f64()
        );
    });
}
