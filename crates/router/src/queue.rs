//! The admission wait queue and the admission rate limit, as synchronous state machines.
//!
//! Neither knows about tasks, channels or clocks: time is an argument (node-clock ns) and a
//! waiter is any value `W`. The [`admission`](crate::admission) gate is the async shell
//! around them. Every waiter pushed into a [`WaitQueue`] leaves it exactly once: admitted
//! ([`WaitQueue::pop`]), discarded with one [`DiscardReason`] (turned away or pushed out
//! by [`WaitQueue::push`], expired by [`WaitQueue::pop`] or [`WaitQueue::expire`],
//! drained by [`WaitQueue::drain`]), or taken back by its owner ([`WaitQueue::remove`]).

use std::collections::VecDeque;

use erlmcp_flow_core::config::DiscardPolicy;
use erlmcp_flow_core::{DiscardReason, Priority};

/// Where a queued waiter stands; hand it back to [`WaitQueue::remove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    seq: u64,
    priority: Priority,
}

#[derive(Debug)]
struct Entry<W> {
    seq: u64,
    /// Discarded (TTL) at or after this time, node-clock ns.
    deadline_ns: Option<u64>,
    value: W,
}

/// What [`WaitQueue::push`] did with a newcomer.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<W> {
    /// Queued.
    Queued(Ticket),
    /// Queued; the queue was full and another waiter was pushed out for it.
    Evicted {
        /// The newcomer's ticket.
        ticket: Ticket,
        /// The waiter pushed out.
        victim: W,
        /// [`DiscardReason::EvictedOldest`] or [`DiscardReason::EvictedNewest`].
        reason: DiscardReason,
    },
    /// Not queued ([`DiscardReason::QueueFull`]); the newcomer is handed back.
    Refused(W),
}

/// A bounded queue of waiters, one FIFO per priority; the highest priority is served
/// first. See the module docs.
#[derive(Debug)]
pub struct WaitQueue<W> {
    levels: [VecDeque<Entry<W>>; 4],
    len: usize,
    capacity: usize,
    policy: DiscardPolicy,
    next_seq: u64,
}

impl<W> WaitQueue<W> {
    /// An empty queue of at most `capacity` waiters, full-queue behaviour `policy`.
    pub fn new(capacity: usize, policy: DiscardPolicy) -> Self {
        Self { levels: Default::default(), len: 0, capacity, policy, next_seq: 0 }
    }

    /// Waiters queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues `value` at `priority`, to be discarded at `deadline_ns` if still waiting.
    /// A full queue applies its [`DiscardPolicy`]; a waiter is never pushed out by a
    /// newcomer of lower priority.
    pub fn push(&mut self, priority: Priority, deadline_ns: Option<u64>, value: W) -> Pushed<W> {
        let mut evicted = None;
        if self.len >= self.capacity {
            let lowest = self.levels.iter().position(|l| !l.is_empty());
            let victim = match (self.policy, lowest) {
                (DiscardPolicy::Reject, _) | (_, None) => None,
                (_, Some(l)) if l > priority.index() => None,
                (DiscardPolicy::Oldest, Some(l)) => {
                    self.levels[l].pop_front().map(|e| (e.value, DiscardReason::EvictedOldest))
                }
                // The newest waiter of the newcomer's own level is the newcomer itself.
                (DiscardPolicy::Newest, Some(l)) if l == priority.index() => None,
                (DiscardPolicy::Newest, Some(l)) => {
                    self.levels[l].pop_back().map(|e| (e.value, DiscardReason::EvictedNewest))
                }
            };
            match victim {
                Some(v) => {
                    self.len -= 1;
                    evicted = Some(v);
                }
                None => return Pushed::Refused(value),
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.levels[priority.index()].push_back(Entry { seq, deadline_ns, value });
        self.len += 1;
        let ticket = Ticket { seq, priority };
        match evicted {
            Some((victim, reason)) => Pushed::Evicted { ticket, victim, reason },
            None => Pushed::Queued(ticket),
        }
    }

    /// The waiter to admit next at `now_ns`: the oldest of the highest priority whose
    /// deadline has not passed. Expired waiters met on the way are moved to `expired`
    /// ([`DiscardReason::Ttl`]).
    pub fn pop(&mut self, now_ns: u64, expired: &mut Vec<W>) -> Option<W> {
        for level in self.levels.iter_mut().rev() {
            while let Some(e) = level.pop_front() {
                self.len -= 1;
                if e.deadline_ns.is_some_and(|d| d <= now_ns) {
                    expired.push(e.value);
                } else {
                    return Some(e.value);
                }
            }
        }
        None
    }

    /// Takes a waiter out (it gave up, or its own TTL timer fired); `None` if it has
    /// already left the queue.
    pub fn remove(&mut self, ticket: Ticket) -> Option<W> {
        let level = &mut self.levels[ticket.priority.index()];
        // Sequence numbers grow along each level, whatever leaves from where.
        let i = level.binary_search_by_key(&ticket.seq, |e| e.seq).ok()?;
        self.len -= 1;
        level.remove(i).map(|e| e.value)
    }

    /// Removes every waiter whose deadline is at or before `now_ns`
    /// ([`DiscardReason::Ttl`]).
    pub fn expire(&mut self, now_ns: u64) -> Vec<W> {
        let mut out = Vec::new();
        for level in &mut self.levels {
            let mut kept = VecDeque::with_capacity(level.len());
            for e in level.drain(..) {
                if e.deadline_ns.is_some_and(|d| d <= now_ns) { out.push(e.value) } else { kept.push_back(e) }
            }
            *level = kept;
        }
        self.len -= out.len();
        out
    }

    /// Removes every waiter, highest priority first ([`DiscardReason::Draining`]).
    pub fn drain(&mut self) -> Vec<W> {
        let out: Vec<W> = self.levels.iter_mut().rev().flat_map(|l| l.drain(..).map(|e| e.value)).collect();
        self.len = 0;
        out
    }
}

/// A token bucket: `per_second` tokens a second, at most `burst` saved up; starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_ns: f64,
    burst: f64,
    tokens: f64,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ns`.
    pub fn new(per_second: f64, burst: u32, now_ns: u64) -> Self {
        let burst = f64::from(burst.max(1));
        Self { per_ns: per_second / 1e9, burst, tokens: burst, last_ns: now_ns }
    }

    /// Takes a token if one is there at `now_ns`.
    pub fn try_take(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.tokens = (self.tokens + elapsed as f64 * self.per_ns).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    use Priority::{Critical, High, Low, Normal};

    fn queued(p: Pushed<u32>) -> Ticket {
        match p {
            Pushed::Queued(t) => t,
            other => panic!("expected Queued, got {other:?}"),
        }
    }

    fn drain_pops(q: &mut WaitQueue<u32>, now: u64) -> Vec<u32> {
        let mut expired = Vec::new();
        let out = std::iter::from_fn(|| q.pop(now, &mut expired)).collect();
        assert!(expired.is_empty());
        out
    }

    /// Higher priorities are admitted first, FIFO within a priority.
    #[test]
    fn priority_then_fifo() {
        let mut q = WaitQueue::new(10, DiscardPolicy::Reject);
        for (v, p) in [(1, Low), (2, Normal), (3, Critical), (4, Normal), (5, High)] {
            queued(q.push(p, None, v));
        }
        assert_eq!(drain_pops(&mut q, 0), [3, 5, 2, 4, 1]);
        assert!(q.is_empty());
    }

    /// `reject`: a full queue turns the newcomer away, whatever its priority.
    #[test]
    fn reject_turns_newcomer_away() {
        let mut q = WaitQueue::new(2, DiscardPolicy::Reject);
        queued(q.push(Normal, None, 1));
        queued(q.push(Normal, None, 2));
        assert_eq!(q.push(Critical, None, 3), Pushed::Refused(3));
        assert_eq!(drain_pops(&mut q, 0), [1, 2]);
    }

    /// `oldest`: the oldest waiter of the lowest priority present makes room; a newcomer
    /// below every waiter is turned away instead.
    #[test]
    fn oldest_evicts_oldest_of_lowest_priority() {
        let mut q = WaitQueue::new(3, DiscardPolicy::Oldest);
        queued(q.push(Normal, None, 1));
        queued(q.push(Low, None, 2));
        queued(q.push(Low, None, 3));
        match q.push(Normal, None, 4) {
            Pushed::Evicted { victim: 2, reason: DiscardReason::EvictedOldest, .. } => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(q.push(Low, None, 5), Pushed::Evicted { victim: 3, .. }));
        // Now Normal 1, Normal 4, Low 5: a Low newcomer pushes out Low 5 (same level).
        assert!(matches!(q.push(Low, None, 6), Pushed::Evicted { victim: 5, .. }));
        let mut hi = WaitQueue::new(1, DiscardPolicy::Oldest);
        queued(hi.push(High, None, 1));
        assert_eq!(hi.push(Normal, None, 2), Pushed::Refused(2));
        assert_eq!(drain_pops(&mut q, 0), [1, 4, 6]);
    }

    /// `newest`: the newest waiter of the lowest priority present makes room; at the
    /// newcomer's own level that is the newcomer, which is turned away.
    #[test]
    fn newest_evicts_newest_of_lowest_priority() {
        let mut q = WaitQueue::new(3, DiscardPolicy::Newest);
        queued(q.push(Low, None, 1));
        queued(q.push(Low, None, 2));
        queued(q.push(Normal, None, 3));
        match q.push(High, None, 4) {
            Pushed::Evicted { victim: 2, reason: DiscardReason::EvictedNewest, .. } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(q.push(Low, None, 5), Pushed::Refused(5));
        assert_eq!(drain_pops(&mut q, 0), [4, 3, 1]);
    }

    /// Capacity 0: nobody waits.
    #[test]
    fn zero_capacity_refuses_all() {
        for policy in [DiscardPolicy::Reject, DiscardPolicy::Oldest, DiscardPolicy::Newest] {
            let mut q = WaitQueue::new(0, policy);
            assert_eq!(q.push(Critical, None, 1), Pushed::Refused(1));
        }
    }

    /// Expired waiters are never admitted: `pop` sets them aside, `expire` finds them
    /// anywhere in the queue.
    #[test]
    fn ttl_expiry() {
        let mut q = WaitQueue::new(10, DiscardPolicy::Reject);
        queued(q.push(Normal, Some(100), 1));
        queued(q.push(Normal, None, 2));
        queued(q.push(Normal, Some(50), 3));
        let mut expired = Vec::new();
        assert_eq!(q.pop(100, &mut expired), Some(2));
        assert_eq!(expired, [1]);
        assert_eq!(q.expire(49), Vec::<u32>::new());
        assert_eq!(q.expire(50), [3]);
        assert!(q.is_empty());
    }

    /// `remove` takes out exactly the ticket's waiter, once.
    #[test]
    fn remove_by_ticket() {
        let mut q = WaitQueue::new(10, DiscardPolicy::Reject);
        let a = queued(q.push(High, None, 1));
        let b = queued(q.push(High, None, 2));
        let c = queued(q.push(High, None, 3));
        assert_eq!(q.remove(b), Some(2));
        assert_eq!(q.remove(b), None);
        assert_eq!(q.remove(a), Some(1));
        assert_eq!(q.len(), 1);
        assert_eq!(q.remove(c), Some(3));
        assert!(q.is_empty());
    }

    /// The bucket starts full (the burst), then refills at its rate, never above the burst.
    #[test]
    fn token_bucket_rate_and_burst() {
        let mut b = TokenBucket::new(10.0, 3, 0);
        assert!((0..3).all(|_| b.try_take(0)));
        assert!(!b.try_take(0));
        assert!(!b.try_take(99_000_000), "0.99 of a token after 99 ms");
        assert!(b.try_take(100_000_000));
        assert!(!b.try_take(100_000_000));
        // A long pause saves up the burst, no more.
        assert!((0..3).all(|_| b.try_take(60_000_000_000)));
        assert!(!b.try_take(60_000_000_000));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize, Option<u64>),
        Pop,
        Remove(usize),
        Expire,
        Tick(u64),
        Drain,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4usize, proptest::option::of(0..200u64)).prop_map(|(p, ttl)| Op::Push(p, ttl)),
            2 => Just(Op::Pop),
            1 => (0..64usize).prop_map(Op::Remove),
            1 => Just(Op::Expire),
            2 => (0..60u64).prop_map(Op::Tick),
            1 => Just(Op::Drain),
        ]
    }

    fn policy() -> impl Strategy<Value = DiscardPolicy> {
        prop_oneof![Just(DiscardPolicy::Reject), Just(DiscardPolicy::Oldest), Just(DiscardPolicy::Newest)]
    }

    fn end(v: u32, how: &'static str, ended: &mut HashMap<u32, &'static str>) -> Result<(), TestCaseError> {
        prop_assert!(ended.insert(v, how).is_none(), "waiter {} ended twice", v);
        Ok(())
    }

    proptest! {
        /// Under any sequence of pushes, pops, removals, expiries, clock ticks and drains:
        /// the queue never holds more than its capacity, its length is what it holds, and
        /// every waiter ever pushed ends exactly once (admitted, discarded with one reason,
        /// or removed) or is still queued at the end; none is admitted past its deadline.
        #[test]
        fn bounded_and_every_waiter_ends_once(
            capacity in 0..8usize,
            policy in policy(),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut q = WaitQueue::new(capacity, policy);
            let mut now = 0u64;
            let mut next = 0u32;
            let mut tickets: Vec<Ticket> = Vec::new();
            let mut deadlines: HashMap<u32, Option<u64>> = HashMap::new();
            // waiter -> how it ended (each at most once)
            let mut ended: HashMap<u32, &'static str> = HashMap::new();
            for op in ops {
                match op {
                    Op::Push(p, ttl) => {
                        let v = next;
                        next += 1;
                        let deadline = ttl.map(|t| now + t);
                        deadlines.insert(v, deadline);
                        match q.push(Priority::ALL[p], deadline, v) {
                            Pushed::Queued(t) => tickets.push(t),
                            Pushed::Evicted { ticket, victim, reason } => {
                                prop_assert!(policy != DiscardPolicy::Reject);
                                prop_assert!(matches!(reason, DiscardReason::EvictedOldest | DiscardReason::EvictedNewest));
                                tickets.push(ticket);
                                end(victim, "evicted", &mut ended)?;
                            }
                            Pushed::Refused(r) => {
                                prop_assert_eq!(r, v);
                                prop_assert!(q.len() >= capacity);
                                end(r, "refused", &mut ended)?;
                            }
                        }
                    }
                    Op::Pop => {
                        let mut expired = Vec::new();
                        if let Some(v) = q.pop(now, &mut expired) {
                            prop_assert!(deadlines[&v].is_none_or(|d| d > now), "admitted past its deadline");
                            end(v, "admitted", &mut ended)?;
                        }
                        for v in expired {
                            end(v, "expired", &mut ended)?;
                        }
                    }
                    Op::Remove(i) => {
                        if !tickets.is_empty() {
                            let t = tickets[i % tickets.len()];
                            if let Some(v) = q.remove(t) {
                                end(v, "removed", &mut ended)?;
                            }
                        }
                    }
                    Op::Expire => {
                        for v in q.expire(now) {
                            end(v, "expired", &mut ended)?;
                        }
                    }
                    Op::Tick(dt) => now += dt,
                    Op::Drain => {
                        for v in q.drain() {
                            end(v, "drained", &mut ended)?;
                        }
                    }
                }
                prop_assert!(q.len() <= capacity, "over capacity");
            }
            let rest = q.drain();
            prop_assert_eq!(rest.len() + ended.len(), next as usize);
            for v in rest {
                end(v, "left", &mut ended)?;
            }
            prop_assert_eq!(ended.len(), next as usize);
        }
    }
}
