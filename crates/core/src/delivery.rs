//! Delivering one task attempt to an agent, and the one verdict every delivery ends in.
//!
//! A delivery to a local agent actor ([`deliver_local`]), a delivery to an agent on
//! another node ([`RemoteAgent::deliver`](crate::RemoteAgent::deliver)) and the answer a
//! node's gateway sends back over the wire all end in a [`DeliveryVerdict`], so the
//! router, the gateway and the wire speak of agent deaths, time-outs and refusals the
//! same way and nothing translates one spelling into another.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::agent::{AgentMsg, AgentRef, AgentReply};
use crate::task::Task;

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryVerdict {
    /// The agent answered (its output, or its error).
    Answered(AgentReply),
    /// No answer by the deadline (the task may still run).
    TimedOut,
    /// The agent, its node or the link went away before answering (the task may or may
    /// not have run; it is redelivered elsewhere).
    Lost,
    /// The attempt was not made: the agent's node refused it (unknown agent, overloaded,
    /// a request it could not take) or it could not be sent.
    Refused(String),
}

/// Sends `task` to the agent actor `target` and waits for its answer until `deadline`.
///
/// The actor's exit is watched as well as the reply: a message that races with the
/// actor's death can stay parked in its dead mailbox (the channel outlives its receiver
/// while any sender handle exists), so "reply channel closed" alone would only fire at the
/// deadline. Never answers [`DeliveryVerdict::Refused`].
pub async fn deliver_local(target: &AgentRef, task: Arc<Task>, deadline: tokio::time::Instant) -> DeliveryVerdict {
    let (tx, mut rx) = oneshot::channel();
    if target.send_message(AgentMsg::Execute { task, reply: tx.into() }).is_err() {
        return DeliveryVerdict::Lost;
    }
    let cell = target.get_cell();
    let waited = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            biased;
            r = &mut rx => Some(r),
            _ = cell.wait(None) => None,
        }
    })
    .await;
    match waited {
        Ok(Some(Ok(reply))) => DeliveryVerdict::Answered(reply),
        Ok(Some(Err(_))) => DeliveryVerdict::Lost,
        // Died: a reply sent before its death is already in the channel.
        Ok(None) => rx.try_recv().map(DeliveryVerdict::Answered).unwrap_or(DeliveryVerdict::Lost),
        Err(_) => DeliveryVerdict::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CapabilitySet;
    use crate::agent::AgentReplyError;
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use std::time::Duration;

    /// Answers `Execute` with the task's payload, sleeps through it, or dies, by payload.
    struct Stub;
    impl Actor for Stub {
        type Msg = AgentMsg;
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
        async fn handle(&self, me: ActorRef<AgentMsg>, msg: AgentMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
            if let AgentMsg::Execute { task, reply } = msg {
                match task.payload.as_ref() {
                    b"hang" => std::future::pending::<()>().await,
                    b"die" => me.stop(None),
                    b"fail" => {
                        let _ = reply.send(Err(AgentReplyError::Panicked("boom".into())));
                    }
                    other => {
                        let _ = reply.send(Ok(bytes::Bytes::copy_from_slice(other)));
                    }
                }
            }
            Ok(())
        }
    }

    fn task(payload: &'static [u8]) -> Arc<Task> {
        Arc::new(Task::new(CapabilitySet::parse(["c"]).unwrap()).with_payload(payload.to_vec()))
    }

    /// Each way a local delivery ends maps to its verdict: an answer (output or error),
    /// a time-out at the deadline, and a lost task when the agent dies or is already dead.
    #[tokio::test]
    async fn every_ending_has_its_verdict() {
        let soon = || tokio::time::Instant::now() + Duration::from_millis(200);
        let (agent, _) = Actor::spawn(None, Stub, ()).await.unwrap();
        assert_eq!(
            deliver_local(&agent, task(b"hi"), soon()).await,
            DeliveryVerdict::Answered(Ok(bytes::Bytes::from_static(b"hi")))
        );
        assert_eq!(
            deliver_local(&agent, task(b"fail"), soon()).await,
            DeliveryVerdict::Answered(Err(AgentReplyError::Panicked("boom".into())))
        );
        assert_eq!(deliver_local(&agent, task(b"die"), soon()).await, DeliveryVerdict::Lost);
        assert_eq!(deliver_local(&agent, task(b"hi"), soon()).await, DeliveryVerdict::Lost, "already dead");
        let (sleeper, _) = Actor::spawn(None, Stub, ()).await.unwrap();
        assert_eq!(deliver_local(&sleeper, task(b"hang"), soon()).await, DeliveryVerdict::TimedOut);
        sleeper.kill();
    }
}
