//! [`EchoActor`]: a bare ractor_cluster round trip, the baseline the cluster benchmarks
//! compare routed tasks against.
//!
//! It speaks the gateway's message type (so it is reachable across nodes exactly like a
//! gateway) and answers every `Call` with the bytes it got: no decoding, no routing, no
//! registry, nothing of erlmcp-flow's own on the path. `flow node --echo` starts one.

use ractor::{Actor, ActorProcessingErr, ActorRef, SpawnErr};

use crate::wire::GatewayMsg;

/// The pg group echo actors join.
pub const ECHO_GROUP: &str = "erlmcp-flow-echo";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoActor;

impl Actor for EchoActor {
    type Msg = GatewayMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        ractor::pg::join(ECHO_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(&self, _: ActorRef<Self::Msg>, msg: Self::Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        if let GatewayMsg::Call(bytes, reply) = msg {
            // The caller may have given up; nothing to do about it here.
            let _ = reply.send(bytes);
        }
        Ok(())
    }
}

/// Starts an unsupervised echo actor in the [`ECHO_GROUP`].
pub async fn spawn_echo() -> Result<ActorRef<GatewayMsg>, SpawnErr> {
    Actor::spawn(None, EchoActor, ()).await.map(|(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::rpc::CallResult;

    /// The echo actor answers a call with exactly the bytes it was sent.
    #[tokio::test]
    async fn echoes_the_bytes() {
        let echo = spawn_echo().await.unwrap();
        let answer = echo.call(|r| GatewayMsg::Call(vec![1, 2, 3], r), None).await.unwrap();
        assert!(matches!(answer, CallResult::Success(ref b) if b == &[1, 2, 3]));
        echo.stop(None);
    }
}
