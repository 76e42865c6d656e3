//! What one Kafka consumer has handed out and not yet finished, per partition: the bookkeeping
//! that turns a log into the bus contract. Pure (no broker, no clock of its own), so it is
//! tested on its own.
//!
//! - Every message read is *outstanding* until acknowledged. The offset committed for a
//!   partition is the lowest outstanding offset (or one past the newest read when nothing is
//!   outstanding): a crash or a rebalance replays from the first unfinished message, never
//!   skips one.
//! - A handout carries a token, fresh each time; ack, retry and extend answer `false` unless
//!   the token is the message's current one, so a stale or revoked delivery cannot touch it.
//! - Every handout has a lease: a delivery not acknowledged, given back or extended before its
//!   lease runs out is handed out again (a fresh token, one more delivery) by the next
//!   [`Tracker::take_due`] — so a caller whose step failed halfway (a store or broker outage)
//!   gets its message back, as on the embedded bus, without restarting. Until then a late ack
//!   of the old handout is still accepted: the work is done.
//! - `retry(after)` and a publish delay are *holds*: the message stays outstanding (its
//!   position uncommitted) in a local timer list and is handed out again when due. Nothing is
//!   republished, so a paused campaign's jobs cost no broker traffic while they wait.
//! - A revoked partition is forgotten: its deliveries answer `false`, its holds and leases are
//!   dropped (the new owner reads them again from the committed offset).

use crate::engine::bus::Delivery;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of a [`Delivery::id`] that hold the offset; the partition sits above them.
const OFFSET_BITS: u32 = 40;

/// A delivery's id: partition and offset in one number, stable across handouts.
pub(super) fn delivery_id(partition: i32, offset: i64) -> i64 {
    (i64::from(partition) << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1))
}

/// The partition and offset a delivery id names.
pub(super) fn position(id: i64) -> (i32, i64) {
    (i32::try_from(id >> OFFSET_BITS).unwrap_or(-1), id & ((1 << OFFSET_BITS) - 1))
}

/// A message read from the log, before it is handed out.
#[derive(Debug, Clone)]
pub(super) struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// Unix ms before which the message must not be handed out (a delayed publish).
    pub not_before: i64,
}

/// Where an outstanding message is: handed out under a lease, or held for later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Leased,
    Held,
}

/// An outstanding message: the token of its current handout (or hold), and its timer — when
/// the lease runs out, or when the hold ends.
#[derive(Debug, Clone, Copy)]
struct Slot {
    token: u64,
    due: i64,
    state: State,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Offset → its current handout or hold.
    outstanding: BTreeMap<i64, Slot>,
    /// One past the newest offset read.
    next: Option<i64>,
    /// The last offset committed (or asked to be).
    committed: Option<i64>,
}

/// A message on a timer, with the handouts it has had.
#[derive(Debug)]
struct Timed {
    read: Read,
    deliveries: u32,
}

#[derive(Debug)]
pub(super) struct Tracker {
    topic: String,
    partitions: HashMap<i32, PartitionState>,
    /// (due ms, token) → a message held for later (a retry or a delayed publish).
    held: BTreeMap<(i64, u64), Timed>,
    /// (lease end ms, token) → a message handed out.
    leased: BTreeMap<(i64, u64), Timed>,
}

/// Tokens are unique in the process, so a delivery from one consumer never matches another's.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn token() -> u64 {
    NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
}

impl Tracker {
    pub fn new(topic: &str) -> Tracker {
        Tracker { topic: topic.to_string(), partitions: HashMap::new(), held: BTreeMap::new(), leased: BTreeMap::new() }
    }

    /// The partition is now this consumer's (a rebalance assigned it).
    pub fn assign(&mut self, partition: i32) {
        self.partitions.entry(partition).or_default();
    }

    /// The partition is no longer this consumer's: forget it and everything held or leased
    /// from it. Returns the offset to commit for it first (what it finished), if any is new.
    pub fn revoke(&mut self, partition: i32) -> Option<i64> {
        let commit = self.commit_target(partition);
        self.partitions.remove(&partition);
        self.held.retain(|_, h| h.read.partition != partition);
        self.leased.retain(|_, h| h.read.partition != partition);
        commit
    }

    /// Partitions currently assigned.
    pub fn assigned(&self) -> usize {
        self.partitions.len()
    }

    /// Records a message read from the log: handed out at once under a lease of `lease_ms`, or
    /// held until its due time.
    pub fn received(&mut self, read: Read, now_ms: i64, lease_ms: i64) -> Option<Delivery> {
        let token = token();
        let state = self.partitions.entry(read.partition).or_default();
        state.next = Some(state.next.map_or(read.offset + 1, |n| n.max(read.offset + 1)));
        let (due, kind) = if read.not_before > now_ms {
            (read.not_before, State::Held)
        } else {
            (now_ms.saturating_add(lease_ms), State::Leased)
        };
        // Read again (a partition handed back and forth): the old handout's timer goes.
        if let Some(old) = state.outstanding.insert(read.offset, Slot { token, due, state: kind }) {
            match old.state {
                State::Leased => self.leased.remove(&(old.due, old.token)),
                State::Held => self.held.remove(&(old.due, old.token)),
            };
        }
        if kind == State::Held {
            self.held.insert((due, token), Timed { read, deliveries: 0 });
            return None;
        }
        let delivery = self.delivery(&read, token, 1);
        self.leased.insert((due, token), Timed { read, deliveries: 1 });
        Some(delivery)
    }

    fn delivery(&self, read: &Read, token: u64, deliveries: u32) -> Delivery {
        Delivery {
            id: delivery_id(read.partition, read.offset),
            topic: self.topic.clone(),
            key: read.key.clone(),
            payload: read.payload.clone(),
            deliveries,
            lease_token: token,
        }
    }

    /// Held messages whose time has come and handouts whose lease ran out, up to `max`,
    /// handed out (again) with fresh tokens and leases of `lease_ms`.
    pub fn take_due(&mut self, now_ms: i64, max: usize, lease_ms: i64) -> Vec<Delivery> {
        let mut out = Vec::new();
        while out.len() < max {
            let due = |timers: &BTreeMap<(i64, u64), Timed>| {
                timers.first_key_value().filter(|(k, _)| k.0 <= now_ms).map(|(k, _)| *k)
            };
            let (key, timed) = match (due(&self.held), due(&self.leased)) {
                (Some(h), Some(l)) if l < h => (l, self.leased.remove(&l)),
                (Some(h), _) => (h, self.held.remove(&h)),
                (None, Some(l)) => (l, self.leased.remove(&l)),
                (None, None) => break,
            };
            let Some(timed) = timed else { break };
            let (old, partition, offset) = (key.1, timed.read.partition, timed.read.offset);
            let Some(slot) = self.partitions.get_mut(&partition).and_then(|s| s.outstanding.get_mut(&offset)) else {
                continue;
            };
            if slot.token != old {
                continue;
            }
            let token = token();
            let due = now_ms.saturating_add(lease_ms);
            *slot = Slot { token, due, state: State::Leased };
            let deliveries = timed.deliveries + 1;
            out.push(self.delivery(&timed.read, token, deliveries));
            self.leased.insert((due, token), Timed { read: timed.read, deliveries });
        }
        out
    }

    /// The slot of `d`'s message when `d` is its current handout.
    fn current(&mut self, d: &Delivery) -> Option<&mut Slot> {
        let (partition, offset) = position(d.id);
        let slot = self.partitions.get_mut(&partition)?.outstanding.get_mut(&offset)?;
        (slot.token == d.lease_token && slot.state == State::Leased).then_some(slot)
    }

    /// Whether `d` is the current handout of its message.
    #[cfg(test)]
    pub fn holds(&self, d: &Delivery) -> bool {
        let (partition, offset) = position(d.id);
        self.partitions
            .get(&partition)
            .and_then(|s| s.outstanding.get(&offset))
            .is_some_and(|slot| slot.token == d.lease_token && slot.state == State::Leased)
    }

    /// Extends the lease of a current handout to `until_ms`.
    pub fn extend(&mut self, d: &Delivery, until_ms: i64) -> bool {
        let Some(slot) = self.current(d) else { return false };
        let old = (slot.due, slot.token);
        slot.due = until_ms;
        if let Some(timed) = self.leased.remove(&old) {
            self.leased.insert((until_ms, old.1), timed);
        }
        true
    }

    /// Finishes the deliveries that are still current; returns how many, and the partitions
    /// whose committable offset moved (with that offset).
    pub fn ack<'a>(&mut self, deliveries: impl IntoIterator<Item = &'a Delivery>) -> (usize, Vec<(i32, i64)>) {
        let mut acked = 0;
        let mut touched = Vec::new();
        for d in deliveries {
            let Some(slot) = self.current(d).copied() else { continue };
            let (partition, offset) = position(d.id);
            self.leased.remove(&(slot.due, slot.token));
            if let Some(state) = self.partitions.get_mut(&partition) {
                state.outstanding.remove(&offset);
                acked += 1;
                if !touched.contains(&partition) {
                    touched.push(partition);
                }
            }
        }
        let commits = touched.into_iter().filter_map(|p| self.commit_target(p).map(|o| (p, o))).collect();
        (acked, commits)
    }

    /// The offset to commit for `partition` if it moved past the last one committed.
    fn commit_target(&mut self, partition: i32) -> Option<i64> {
        let state = self.partitions.get_mut(&partition)?;
        let target = state.outstanding.keys().next().copied().or(state.next)?;
        if state.committed.is_some_and(|c| c >= target) {
            return None;
        }
        state.committed = Some(target);
        Some(target)
    }

    /// A commit of `offset` on `partition` failed: it is due again (see [`Tracker::unsent_commits`]).
    pub fn commit_failed(&mut self, partition: i32, offset: i64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            if state.committed == Some(offset) {
                state.committed = None;
            }
        }
    }

    /// Committable offsets not committed yet: after a failed commit, nothing else would send
    /// them when no more messages of the partition are acknowledged.
    pub fn unsent_commits(&mut self) -> Vec<(i32, i64)> {
        let mut partitions: Vec<i32> = self.partitions.keys().copied().collect();
        partitions.sort_unstable();
        partitions.into_iter().filter_map(|p| self.commit_target(p).map(|o| (p, o))).collect()
    }

    /// Holds a current delivery until `due_ms`; its position stays uncommitted.
    pub fn retry(&mut self, d: &Delivery, due_ms: i64) -> bool {
        let Some(slot) = self.current(d) else { return false };
        let old = (slot.due, slot.token);
        let token = token();
        *slot = Slot { token, due: due_ms, state: State::Held };
        let timed = match self.leased.remove(&old) {
            Some(timed) => timed,
            None => {
                let (partition, offset) = position(d.id);
                let read = Read { partition, offset, key: d.key.clone(), payload: d.payload.clone(), not_before: 0 };
                Timed { read, deliveries: d.deliveries }
            }
        };
        self.held.insert((due_ms, token), timed);
        true
    }

    /// (handed out and not finished, held for later) on this consumer.
    pub fn local_counts(&self) -> (u64, u64) {
        (self.leased.len() as u64, self.held.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: i64 = 30_000;

    fn read(partition: i32, offset: i64) -> Read {
        Read { partition, offset, key: None, payload: offset.to_string().into_bytes(), not_before: 0 }
    }

    #[test]
    fn commits_stop_below_the_lowest_unfinished_message() {
        let mut t = Tracker::new("t");
        t.assign(0);
        let ds: Vec<Delivery> = (0..4).filter_map(|o| t.received(read(0, o), 0, LEASE)).collect();
        assert_eq!(t.ack(&ds[1..3]), (2, vec![(0, 0)]), "offset 0 is unfinished: nothing new past it");
        assert_eq!(t.ack(&ds[..1]), (1, vec![(0, 3)]));
        assert_eq!(t.ack(&ds[3..]), (1, vec![(0, 4)]));
        assert_eq!(t.ack(&ds), (0, vec![]), "acknowledged once only");
    }

    #[test]
    fn a_failed_commit_is_sent_again() {
        let mut t = Tracker::new("t");
        t.assign(0);
        let ds: Vec<Delivery> = (0..4).filter_map(|o| t.received(read(0, o), 0, LEASE)).collect();
        assert_eq!(t.ack(&ds), (4, vec![(0, 4)]));
        assert_eq!(t.unsent_commits(), vec![], "nothing is owed while the commit stands");
        t.commit_failed(0, 3);
        assert_eq!(t.unsent_commits(), vec![], "a failure of an older commit changes nothing");
        t.commit_failed(0, 4);
        assert_eq!(t.unsent_commits(), vec![(0, 4)]);
        assert_eq!(t.unsent_commits(), vec![], "asked once until it fails again");
    }

    #[test]
    fn retries_hold_the_position_and_come_back_with_a_new_token() {
        let mut t = Tracker::new("t");
        let d = t.received(read(1, 7), 0, LEASE).expect("handed out");
        assert!(t.retry(&d, 1000));
        assert!(!t.holds(&d) && !t.retry(&d, 0), "the old handout is stale");
        assert_eq!(t.local_counts(), (0, 1));
        assert!(t.take_due(999, 10, LEASE).is_empty());
        let again = t.take_due(1000, 10, LEASE).remove(0);
        assert_eq!((again.id, again.deliveries), (d.id, 2));
        assert_eq!(position(again.id), (1, 7));
        assert_eq!(t.ack(std::slice::from_ref(&again)), (1, vec![(1, 8)]));
    }

    #[test]
    fn a_revoked_partition_is_forgotten_with_its_holds() {
        let mut t = Tracker::new("t");
        t.assign(0);
        t.assign(1);
        let a = t.received(read(0, 0), 0, LEASE).expect("a");
        let b = t.received(read(1, 5), 0, LEASE).expect("b");
        assert!(t.received(Read { not_before: 50, ..read(1, 6) }, 0, LEASE).is_none(), "a delayed message is held");
        assert_eq!(t.ack(std::slice::from_ref(&a)), (1, vec![(0, 1)]));
        assert_eq!(t.revoke(1), Some(5), "what it finished: nothing past 5");
        assert!(!t.holds(&b));
        assert!(t.take_due(100_000, 10, LEASE).is_empty(), "holds and leases of a revoked partition are dropped");
        assert_eq!(t.assigned(), 1);
    }

    #[test]
    fn an_expired_lease_hands_the_message_out_again() {
        let mut t = Tracker::new("t");
        let first = t.received(read(0, 3), 0, 1000).expect("handed out");
        assert!(t.take_due(999, 10, 1000).is_empty(), "the lease still runs");
        assert!(t.extend(&first, 2000));
        assert!(t.take_due(1999, 10, 1000).is_empty(), "extended");
        let second = t.take_due(2000, 10, 1000).remove(0);
        assert_eq!((second.id, second.deliveries, second.payload.as_slice()), (first.id, 2, b"3".as_slice()));
        assert!(!t.holds(&first) && !t.extend(&first, 9000), "the expired handout is stale");
        assert_eq!(t.ack(std::slice::from_ref(&first)), (0, vec![]));
        assert_eq!(t.local_counts(), (1, 0));
        assert_eq!(t.ack(std::slice::from_ref(&second)), (1, vec![(0, 4)]));
        assert_eq!(t.local_counts(), (0, 0), "no timer left behind");
        assert!(t.take_due(i64::MAX, 10, 1000).is_empty());
    }

    #[test]
    fn a_late_ack_before_the_next_take_is_accepted() {
        let mut t = Tracker::new("t");
        let d = t.received(read(0, 0), 0, 1000).expect("handed out");
        assert_eq!(t.ack(std::slice::from_ref(&d)), (1, vec![(0, 1)]), "its lease ran out, nobody took it");
        assert!(t.take_due(5000, 10, 1000).is_empty());
    }

    #[test]
    fn a_message_read_again_keeps_one_timer() {
        let mut t = Tracker::new("t");
        let old = t.received(read(0, 0), 0, 1000).expect("handed out");
        let new = t.received(read(0, 0), 10, 1000).expect("handed out again");
        assert!(!t.holds(&old) && t.holds(&new));
        assert_eq!(t.local_counts(), (1, 0));
        assert_eq!(t.take_due(1010, 10, 1000).len(), 1);
    }
}
