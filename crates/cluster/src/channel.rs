//! The one channel between nodes: every cross-node exchange goes through [`Channel`].
//!
//! Task deliveries, Raft RPCs, Byzantine votes, gossip, the greeting and status probes
//! are each one [`Request`] or [`Notice`] variant with one handler in the
//! [`Gateway`](crate::Gateway); what they share is here, written once, so every kind of
//! traffic sees partitions, size limits, dead peers and bad frames the same way:
//!
//! * [`Channel::call`]: request/response with a named peer. In order: encode with the
//!   codec's limit (a frame over ractor_cluster's 16 MiB limit would drop the whole link,
//!   so an oversized request is refused before anything is sent), the partition check
//!   (counted in `partition_drops`), the gateway lookup (reachable peers only), the call
//!   raced against the peer's "down" signal (a peer declared unreachable mid-call fails
//!   the call at once: `abandoned_calls`), and the decode of the answer (`bad_frames`).
//!   Every failure is one [`ChannelError`].
//! * [`Channel::call_gateway`]: the same exchange with a gateway found another way (the
//!   greeting of a newly seen gateway, the `flow status` probe), before any name is known.
//! * [`Channel::cast`]: one-way, to reachable peers only or to any peer with a session
//!   ([`Reach`]), with the same size and partition checks.
//! * [`Channel::admit`]: the receive side's check of a frame: decode (`bad_frames`), the
//!   partition layer (a cut-off sender's frames are dropped: `partition_drops`), and the
//!   sender's session (`unknown_nodes`: only [`Hello`](Request::Hello) and
//!   [`Status`](Request::Status) are open to a session that never greeted). A refused
//!   call is answered as [`Rejection::answer`] says; [`Channel::answer`] encodes answers
//!   with the same size check.
//!
//! Repeated transport errors (partition drops, bad frames, unknown senders) are logged at
//! most once per peer per interval, with the count of the lines suppressed meanwhile
//! ([`erlmcp_flow_core::LogLimiter`]).

use std::sync::Arc;
use std::time::Duration;

use erlmcp_flow_core::{Codec, NodeName};
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::peers::{ClusterCounters, PeerTable, Reach, TransportEvent};
use crate::wire::{Envelope, GatewayMsg, Notice, Request, Response, decode, encode};

/// Why an exchange with a peer did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No session with the node, it is not reachable, or it is cut off by the partition
    /// layer: nothing was sent.
    #[error("node {0} is unreachable")]
    Unreachable(NodeName),
    /// The request was handed to the link, then the node went down (or the link broke)
    /// before answering: it may have received and acted on it, and will never answer.
    #[error("node {0} went down before answering")]
    Lost(NodeName),
    /// No answer in time; the peer may still have acted on the request.
    #[error("no answer from {0} in time")]
    Timeout(NodeName),
    /// The message is over the codec limit; it was not sent.
    #[error("message not sent: {0}")]
    TooLarge(String),
    /// The peer answered, but not with what was asked: an error or a refusal of its own,
    /// or an answer that does not decode or does not fit the request.
    #[error("{node} refused the request: {reason}")]
    Refused {
        /// The peer.
        node: NodeName,
        /// What it said, or what was wrong with its answer.
        reason: String,
    },
}

/// Why the receive side did not admit a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The frame does not decode.
    Undecodable(String),
    /// The sender is cut off by the partition layer: the frame never arrived.
    Partitioned(NodeName),
    /// The sender never had a session here (a misnamed or forged sender).
    UnknownNode(NodeName),
}

impl Rejection {
    /// The answer a refused call gets; `None`: none at all (a partition drops traffic).
    pub fn answer(&self) -> Option<Response> {
        match self {
            Rejection::Undecodable(e) => Some(Response::Error(format!("bad request: {e}"))),
            Rejection::Partitioned(_) => None,
            Rejection::UnknownNode(n) => Some(Response::Refused(format!("unknown node {n}"))),
        }
    }
}

/// What the receive side needs to know about an incoming body.
pub trait Inbound: DeserializeOwned {
    /// True when any authenticated session may send it, even one that never greeted (the
    /// `flow status` probe); false when only a node with a session record may.
    fn open_to_any_session(&self) -> bool {
        false
    }
}

impl Inbound for Request {
    fn open_to_any_session(&self) -> bool {
        matches!(self, Request::Hello(_) | Request::Status)
    }
}

impl Inbound for Notice {}

/// One node's end of the channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Channel {
    me: NodeName,
    peers: Arc<PeerTable>,
    codec: Codec,
}

impl Channel {
    /// The channel of node `me` over its peer table, framing with `codec`.
    pub fn new(me: NodeName, peers: Arc<PeerTable>, codec: Codec) -> Self {
        Self { me, peers, codec }
    }

    /// This node's name (the sender of everything it sends).
    pub fn me(&self) -> &NodeName {
        &self.me
    }

    /// The peer table the channel reads.
    pub fn peers(&self) -> &Arc<PeerTable> {
        &self.peers
    }

    /// The codec frames are checked against.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    fn frame<T: Serialize>(&self, body: T) -> Result<Vec<u8>, ChannelError> {
        encode(&self.codec, &Envelope { from: self.me.clone(), body })
            .map_err(|e| ChannelError::TooLarge(e.to_string()))
    }

    /// The partition layer's one check of outgoing traffic.
    fn check_partition(&self, to: &NodeName) -> Result<(), ChannelError> {
        if self.peers.is_blocked(to) {
            ClusterCounters::inc(&self.peers.counters.partition_drops);
            if let Some(suppressed) = self.peers.log_now(TransportEvent::PartitionDrop, to.as_str()) {
                tracing::debug!(peer = %to, suppressed, "partition: message to a cut-off peer dropped");
            }
            return Err(ChannelError::Unreachable(to.clone()));
        }
        Ok(())
    }

    /// Sends `request` to node `to` and waits at most `timeout` for the answer. A
    /// `Response::Error` or `Response::Refused` comes back as [`ChannelError::Refused`].
    pub async fn call(&self, to: &NodeName, request: Request, timeout: Duration) -> Result<Response, ChannelError> {
        let frame = self.frame(request)?;
        self.check_partition(to)?;
        // Watch for the peer going down before looking it up, so no signal is missed.
        let mut down = self.peers.down_signal(to);
        down.borrow_and_update();
        let gateway = self.peers.gateway(to, Reach::Reachable).ok_or_else(|| ChannelError::Unreachable(to.clone()))?;
        tokio::select! {
            r = self.exchange(&gateway, to, frame, timeout) => r,
            _ = down.changed() => {
                ClusterCounters::inc(&self.peers.counters.abandoned_calls);
                Err(ChannelError::Lost(to.clone()))
            }
        }
    }

    /// Sends `request` to `gateway` (found through pg, before its node's name is known;
    /// `peer` names it in errors) and waits at most `timeout` for the answer.
    pub async fn call_gateway(
        &self,
        gateway: &ActorRef<GatewayMsg>,
        peer: &NodeName,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, ChannelError> {
        let frame = self.frame(request)?;
        self.exchange(gateway, peer, frame, timeout).await
    }

    async fn exchange(
        &self,
        gateway: &ActorRef<GatewayMsg>,
        peer: &NodeName,
        frame: Vec<u8>,
        timeout: Duration,
    ) -> Result<Response, ChannelError> {
        match gateway.call(|reply| GatewayMsg::Call(frame, reply), Some(timeout)).await {
            Ok(CallResult::Success(bytes)) => match decode::<Response>(&self.codec, &bytes) {
                Ok(Response::Error(reason) | Response::Refused(reason)) => {
                    Err(ChannelError::Refused { node: peer.clone(), reason })
                }
                Ok(response) => Ok(response),
                Err(e) => {
                    self.bad_frame(peer.as_str(), &e.to_string(), bytes.len());
                    Err(ChannelError::Refused { node: peer.clone(), reason: format!("undecodable answer: {e}") })
                }
            },
            Ok(CallResult::Timeout) => Err(ChannelError::Timeout(peer.clone())),
            Ok(CallResult::SenderError) | Err(_) => Err(ChannelError::Lost(peer.clone())),
        }
    }

    /// The error for an answer that decodes but does not fit the request (counted as a
    /// bad frame).
    pub fn unexpected(&self, peer: &NodeName, answer: &Response) -> ChannelError {
        let reason = format!("unexpected answer {}", answer.kind());
        self.bad_frame(peer.as_str(), &reason, 0);
        ChannelError::Refused { node: peer.clone(), reason }
    }

    /// Sends `notice` to node `to` without waiting; `reach` says whether an unreachable
    /// peer with a session may get it. Delivery is best effort (a cast to a peer that
    /// dies meanwhile is lost silently), like everything one-way.
    pub fn cast(&self, to: &NodeName, notice: Notice, reach: Reach) -> Result<(), ChannelError> {
        let frame = self.frame(notice)?;
        self.check_partition(to)?;
        let gateway = self.peers.gateway(to, reach).ok_or_else(|| ChannelError::Unreachable(to.clone()))?;
        gateway.cast(GatewayMsg::Cast(frame)).map_err(|_| ChannelError::Unreachable(to.clone()))
    }

    /// The receive side's check of an incoming frame: decodes it and admits its sender
    /// (see the module docs). Every rejection is counted and logged (rate-limited).
    pub fn admit<T: Inbound>(&self, frame: &[u8]) -> Result<Envelope<T>, Rejection> {
        let envelope: Envelope<T> = decode(&self.codec, frame).map_err(|e| {
            self.bad_frame("unknown sender", &e.to_string(), frame.len());
            Rejection::Undecodable(e.to_string())
        })?;
        let from = &envelope.from;
        if self.peers.is_blocked(from) {
            ClusterCounters::inc(&self.peers.counters.partition_drops);
            if let Some(suppressed) = self.peers.log_now(TransportEvent::PartitionDrop, from.as_str()) {
                tracing::debug!(peer = %from, suppressed, "partition: message from a cut-off peer dropped");
            }
            return Err(Rejection::Partitioned(from.clone()));
        }
        if !envelope.body.open_to_any_session() && !self.peers.knows(from) {
            ClusterCounters::inc(&self.peers.counters.unknown_nodes);
            if let Some(suppressed) = self.peers.log_now(TransportEvent::UnknownSender, from.as_str()) {
                tracing::warn!(from = %from, suppressed, "message from a node without a session record; refused");
            }
            return Err(Rejection::UnknownNode(from.clone()));
        }
        Ok(envelope)
    }

    /// Answers a call: encodes `response` with the codec's limit; an answer too large to
    /// send is replaced by an error saying so.
    pub fn answer(&self, reply: RpcReplyPort<Vec<u8>>, response: Response) {
        let bytes = encode(&self.codec, &response).or_else(|e| {
            tracing::warn!(error = %e, kind = response.kind(), "answer too large to send");
            encode(&self.codec, &Response::Error(format!("answer not sent: {e}")))
        });
        if let Ok(bytes) = bytes {
            // The caller may have given up; nothing to do about it here.
            let _ = reply.send(bytes);
        }
    }

    /// Counts and logs (rate-limited) an undecodable frame.
    pub fn bad_frame(&self, from: &str, error: &str, len: usize) {
        ClusterCounters::inc(&self.peers.counters.bad_frames);
        if let Some(suppressed) = self.peers.log_now(TransportEvent::BadFrame, from) {
            tracing::warn!(from, error, len, suppressed, "undecodable cluster frame");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};

    fn name(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn channel(limit: usize) -> Channel {
        Channel::new(name("near"), Arc::new(PeerTable::default()), Codec::new(limit))
    }

    /// A gateway stand-in answering every call with a fixed frame (or holding the call
    /// unanswered) and recording casts.
    struct Fixed;
    impl Actor for Fixed {
        type Msg = GatewayMsg;
        type State = (Option<Vec<u8>>, tokio::sync::mpsc::UnboundedSender<Vec<u8>>, Vec<RpcReplyPort<Vec<u8>>>);
        type Arguments = (Option<Vec<u8>>, tokio::sync::mpsc::UnboundedSender<Vec<u8>>);
        async fn pre_start(
            &self,
            _: ActorRef<GatewayMsg>,
            a: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok((a.0, a.1, Vec::new()))
        }
        async fn handle(
            &self,
            _: ActorRef<GatewayMsg>,
            msg: GatewayMsg,
            state: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                GatewayMsg::Call(_, reply) => match &state.0 {
                    Some(answer) => {
                        let _ = reply.send(answer.clone());
                    }
                    None => state.2.push(reply),
                },
                GatewayMsg::Cast(frame) => {
                    let _ = state.1.send(frame);
                }
            }
            Ok(())
        }
    }

    async fn peer_with_gateway(
        ch: &Channel,
        peer: &str,
        answer: Option<Vec<u8>>,
    ) -> (ActorRef<GatewayMsg>, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (gateway, _) = Actor::spawn(None, Fixed, (answer, tx)).await.unwrap();
        let g = gateway.clone();
        ch.peers.upsert(&name(peer), |p| {
            p.gateway = Some(g);
            p.reachable = true;
        });
        (gateway, rx)
    }

    fn counter(ch: &Channel, key: &str) -> u64 {
        ch.peers.counters.named().into_iter().find(|(k, _)| k == key).unwrap().1
    }

    /// A request over the codec limit is refused before anything else: the peer here has
    /// no session at all, so reaching the lookup would answer `Unreachable`.
    #[tokio::test]
    async fn oversized_request_is_not_sent() {
        let r = channel(1024).call(&name("far"), Request::Raft(vec![0; 4096]), Duration::from_secs(1)).await;
        assert!(matches!(r, Err(ChannelError::TooLarge(_))), "{r:?}");
    }

    /// A call to a node without a session fails at once, not after its timeout.
    #[tokio::test]
    async fn unknown_node_is_unreachable_at_once() {
        let r = channel(1024).call(&name("far"), Request::Status, Duration::from_secs(3600)).await;
        assert_eq!(r, Err(ChannelError::Unreachable(name("far"))));
    }

    /// Calls and casts to a cut-off peer are refused and counted once per message, by
    /// every verb alike; after the heal the same call is answered.
    #[tokio::test]
    async fn partition_is_checked_and_counted_once_for_every_verb() {
        let ch = channel(1 << 20);
        let hello = encode(&ch.codec, &Response::Raft(vec![7])).unwrap();
        let (gateway, mut casts) = peer_with_gateway(&ch, "far", Some(hello)).await;
        ch.peers.block(&name("far"));
        let r = ch.call(&name("far"), Request::Raft(vec![1]), Duration::from_secs(5)).await;
        assert_eq!(r, Err(ChannelError::Unreachable(name("far"))));
        assert_eq!(counter(&ch, "partition_drops"), 1);
        for reach in [Reach::Reachable, Reach::AnySession] {
            assert!(ch.cast(&name("far"), Notice::Gossip(vec![1]), reach).is_err());
        }
        assert_eq!(counter(&ch, "partition_drops"), 3);
        ch.peers.unblock(&name("far"));
        let r = ch.call(&name("far"), Request::Raft(vec![1]), Duration::from_secs(5)).await;
        assert_eq!(r, Ok(Response::Raft(vec![7])));
        ch.cast(&name("far"), Notice::Gossip(vec![2]), Reach::Reachable).unwrap();
        let frame = casts.recv().await.unwrap();
        let e: Envelope<Notice> = decode(&ch.codec, &frame).unwrap();
        assert_eq!((e.from, e.body), (name("near"), Notice::Gossip(vec![2])));
        assert_eq!(counter(&ch, "partition_drops"), 3);
        gateway.stop(None);
    }

    /// A call waiting on a peer that is declared down fails at once (`abandoned_calls`),
    /// long before its timeout, as `Lost`: the request was sent and may have been acted on.
    #[tokio::test]
    async fn a_call_is_abandoned_when_its_peer_goes_down() {
        let ch = channel(1 << 20);
        let (gateway, _) = peer_with_gateway(&ch, "far", None).await; // never answers
        let call = {
            let ch = ch.clone();
            tokio::spawn(async move { ch.call(&name("far"), Request::Status, Duration::from_secs(3600)).await })
        };
        // The call subscribes to the signal on its own schedule: signal until it ends.
        while !call.is_finished() {
            ch.peers.signal_down(&name("far"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(call.await.unwrap(), Err(ChannelError::Lost(name("far"))));
        assert_eq!(counter(&ch, "abandoned_calls"), 1);
        gateway.stop(None);
    }

    /// Casts to a peer that is not reachable go out only with `Reach::AnySession`.
    #[tokio::test]
    async fn cast_reach() {
        let ch = channel(1 << 20);
        let (gateway, mut casts) = peer_with_gateway(&ch, "far", None).await;
        ch.peers.upsert(&name("far"), |p| p.reachable = false);
        assert_eq!(
            ch.cast(&name("far"), Notice::Gossip(vec![1]), Reach::Reachable),
            Err(ChannelError::Unreachable(name("far")))
        );
        ch.cast(&name("far"), Notice::Gossip(vec![2]), Reach::AnySession).unwrap();
        assert!(casts.recv().await.is_some());
        gateway.stop(None);
    }

    /// Error answers, garbage answers and answers that do not fit the request are each a
    /// `Refused`; garbage and misfits are counted as bad frames.
    #[tokio::test]
    async fn bad_answers_are_refusals() {
        let ch = channel(1 << 20);
        let err = encode(&ch.codec, &Response::Error("nope".into())).unwrap();
        let (g1, _) = peer_with_gateway(&ch, "err", Some(err)).await;
        let (g2, _) = peer_with_gateway(&ch, "junk", Some(vec![0xff, 0xfe, 0xfd])).await;
        let r = ch.call(&name("err"), Request::Status, Duration::from_secs(5)).await;
        assert_eq!(r, Err(ChannelError::Refused { node: name("err"), reason: "nope".into() }));
        let r = ch.call(&name("junk"), Request::Status, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(ChannelError::Refused { ref reason, .. }) if reason.contains("undecodable")), "{r:?}");
        let e = ch.unexpected(&name("err"), &Response::Raft(vec![]));
        assert!(matches!(e, ChannelError::Refused { ref reason, .. } if reason.contains("Raft")), "{e:?}");
        assert_eq!(counter(&ch, "bad_frames"), 2);
        g1.stop(None);
        g2.stop(None);
    }

    /// The receive side: garbage is refused as undecodable, a cut-off sender's frames are
    /// dropped without an answer, a sender without a session record may greet and ask for
    /// status but nothing else, and each rejection is counted.
    #[tokio::test]
    async fn admission() {
        let ch = channel(1 << 20);
        let frame = |from: &str, body: Request| encode(&ch.codec, &Envelope { from: name(from), body }).unwrap();
        let r = ch.admit::<Request>(&[1, 2, 3]);
        assert!(matches!(r, Err(Rejection::Undecodable(_))), "{r:?}");
        assert!(matches!(r.unwrap_err().answer(), Some(Response::Error(_))));
        assert!(ch.admit::<Request>(&frame("stranger", Request::Status)).is_ok());
        let r = ch.admit::<Request>(&frame("stranger", Request::Raft(vec![])));
        assert_eq!(r, Err(Rejection::UnknownNode(name("stranger"))));
        assert!(matches!(r.unwrap_err().answer(), Some(Response::Refused(_))));
        let gossip = encode(&ch.codec, &Envelope { from: name("stranger"), body: Notice::Gossip(vec![]) }).unwrap();
        assert_eq!(ch.admit::<Notice>(&gossip), Err(Rejection::UnknownNode(name("stranger"))));
        ch.peers.upsert(&name("friend"), |_| {});
        assert!(ch.admit::<Request>(&frame("friend", Request::Raft(vec![]))).is_ok());
        ch.peers.block(&name("friend"));
        let r = ch.admit::<Request>(&frame("friend", Request::Status));
        assert_eq!(r, Err(Rejection::Partitioned(name("friend"))));
        assert_eq!(r.unwrap_err().answer(), None);
        assert_eq!(counter(&ch, "bad_frames"), 1);
        assert_eq!(counter(&ch, "unknown_nodes"), 2);
        assert_eq!(counter(&ch, "partition_drops"), 1);
    }
}
