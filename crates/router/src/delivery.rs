//! Delivering one task to a local agent actor and waiting for its answer.
//!
//! Shared by the router (attempts on this node) and the cluster gateway (attempts other
//! nodes send here), so both see agent deaths the same way.

use std::sync::Arc;

use erlmcp_flow_core::{AgentMsg, AgentRef, AgentReply, Task};
use tokio::sync::oneshot;

/// How a local delivery ended.
#[derive(Debug)]
pub enum LocalDelivery {
    /// The agent answered.
    Reply(AgentReply),
    /// No answer by the deadline.
    Timeout,
    /// The agent died (or was already dead) before answering.
    Lost,
}

/// Sends `task` to `target` and waits for the reply until `deadline`.
///
/// The actor's exit is watched as well as the reply: a message that races with the
/// actor's death can stay parked in its dead mailbox (the channel outlives its receiver
/// while any sender handle exists), so "reply channel closed" alone would only fire at the
/// deadline.
pub async fn deliver_local(target: &AgentRef, task: Arc<Task>, deadline: tokio::time::Instant) -> LocalDelivery {
    let (tx, mut rx) = oneshot::channel();
    if target.send_message(AgentMsg::Execute { task, reply: tx.into() }).is_err() {
        return LocalDelivery::Lost;
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
        Ok(Some(Ok(reply))) => LocalDelivery::Reply(reply),
        Ok(Some(Err(_))) => LocalDelivery::Lost,
        // Died: a reply sent before its death is already in the channel.
        Ok(None) => rx.try_recv().map(LocalDelivery::Reply).unwrap_or(LocalDelivery::Lost),
        Err(_) => LocalDelivery::Timeout,
    }
}
