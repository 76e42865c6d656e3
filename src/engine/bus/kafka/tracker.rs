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
//! - `retry(after)` and a publish delay are *holds*: the message stays outstanding (its
//!   position uncommitted) in a local timer list and is handed out again when due. Nothing is
//!   republished, so a paused campaign's jobs cost no broker traffic while they wait.
//! - A revoked partition is forgotten: its deliveries answer `false`, its holds are dropped
//!   (the new owner reads them again from the committed offset).

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

#[derive(Debug, Default)]
struct PartitionState {
    /// Offset → token of its current handout (or hold).
    outstanding: BTreeMap<i64, u64>,
    /// One past the newest offset read.
    next: Option<i64>,
    /// The last offset committed (or asked to be).
    committed: Option<i64>,
}

#[derive(Debug)]
struct Held {
    read: Read,
    deliveries: u32,
}

#[derive(Debug)]
pub(super) struct Tracker {
    topic: String,
    partitions: HashMap<i32, PartitionState>,
    /// (due ms, token) → the held message.
    held: BTreeMap<(i64, u64), Held>,
}

/// Tokens are unique in the process, so a delivery from one consumer never matches another's.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

impl Tracker {
    pub fn new(topic: &str) -> Tracker {
        Tracker { topic: topic.to_string(), partitions: HashMap::new(), held: BTreeMap::new() }
    }

    fn token(&mut self) -> u64 {
        NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
    }

    /// The partition is now this consumer's (a rebalance assigned it).
    pub fn assign(&mut self, partition: i32) {
        self.partitions.entry(partition).or_default();
    }

    /// The partition is no longer this consumer's: forget it and everything held from it.
    /// Returns the offset to commit for it first (what it finished), if any is new.
    pub fn revoke(&mut self, partition: i32) -> Option<i64> {
        let commit = self.commit_target(partition);
        self.partitions.remove(&partition);
        self.held.retain(|_, h| h.read.partition != partition);
        commit
    }

    /// Partitions currently assigned.
    pub fn assigned(&self) -> usize {
        self.partitions.len()
    }

    /// Records a message read from the log: handed out at once, or held until its due time.
    pub fn received(&mut self, read: Read, now_ms: i64) -> Option<Delivery> {
        let token = self.token();
        let state = self.partitions.entry(read.partition).or_default();
        state.next = Some(state.next.map_or(read.offset + 1, |n| n.max(read.offset + 1)));
        state.outstanding.insert(read.offset, token);
        if read.not_before > now_ms {
            self.held.insert((read.not_before, token), Held { read, deliveries: 0 });
            return None;
        }
        Some(self.delivery(&read, token, 1))
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

    /// Held messages whose time has come, up to `max`, handed out with fresh tokens.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Vec<Delivery> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(entry) = self.held.first_entry() else { break };
            if entry.key().0 > now_ms {
                break;
            }
            let ((_, old), held) = entry.remove_entry();
            let token = self.token();
            let Some(state) = self.partitions.get_mut(&held.read.partition) else { continue };
            match state.outstanding.get_mut(&held.read.offset) {
                Some(current) if *current == old => *current = token,
                _ => continue,
            }
            out.push(self.delivery(&held.read, token, held.deliveries + 1));
        }
        out
    }

    /// Whether `d` is the current handout of its message.
    pub fn holds(&self, d: &Delivery) -> bool {
        let (partition, offset) = position(d.id);
        self.partitions.get(&partition).and_then(|s| s.outstanding.get(&offset)) == Some(&d.lease_token)
    }

    /// Finishes the deliveries that are still current; returns how many, and the partitions
    /// whose committable offset moved (with that offset).
    pub fn ack(&mut self, deliveries: &[Delivery]) -> (usize, Vec<(i32, i64)>) {
        let mut acked = 0;
        let mut touched = Vec::new();
        for d in deliveries {
            if !self.holds(d) {
                continue;
            }
            let (partition, offset) = position(d.id);
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

    /// Holds a current delivery until `due_ms`; its position stays uncommitted.
    pub fn retry(&mut self, d: &Delivery, due_ms: i64) -> bool {
        if !self.holds(d) {
            return false;
        }
        let token = self.token();
        let (partition, offset) = position(d.id);
        if let Some(current) = self.partitions.get_mut(&partition).and_then(|s| s.outstanding.get_mut(&offset)) {
            *current = token;
        }
        let read = Read { partition, offset, key: d.key.clone(), payload: d.payload.clone(), not_before: due_ms };
        self.held.insert((due_ms, token), Held { read, deliveries: d.deliveries });
        true
    }

    /// (handed out and not finished, held for later) on this consumer.
    pub fn local_counts(&self) -> (u64, u64) {
        let outstanding: usize = self.partitions.values().map(|s| s.outstanding.len()).sum();
        let held = self.held.len();
        ((outstanding - held.min(outstanding)) as u64, held as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(partition: i32, offset: i64) -> Read {
        Read { partition, offset, key: None, payload: offset.to_string().into_bytes(), not_before: 0 }
    }

    #[test]
    fn commits_stop_below_the_lowest_unfinished_message() {
        let mut t = Tracker::new("t");
        t.assign(0);
        let ds: Vec<Delivery> = (0..4).filter_map(|o| t.received(read(0, o), 0)).collect();
        assert_eq!(t.ack(&ds[1..3]), (2, vec![(0, 0)]), "offset 0 is unfinished: nothing new past it");
        assert_eq!(t.ack(&ds[..1]), (1, vec![(0, 3)]));
        assert_eq!(t.ack(&ds[3..]), (1, vec![(0, 4)]));
        assert_eq!(t.ack(&ds), (0, vec![]), "acknowledged once only");
    }

    #[test]
    fn retries_hold_the_position_and_come_back_with_a_new_token() {
        let mut t = Tracker::new("t");
        let d = t.received(read(1, 7), 0).expect("handed out");
        assert!(t.retry(&d, 1000));
        assert!(!t.holds(&d) && !t.retry(&d, 0), "the old handout is stale");
        assert_eq!(t.local_counts(), (0, 1));
        assert!(t.take_due(999, 10).is_empty());
        let again = t.take_due(1000, 10).remove(0);
        assert_eq!((again.id, again.deliveries), (d.id, 2));
        assert_eq!(position(again.id), (1, 7));
        assert_eq!(t.ack(std::slice::from_ref(&again)), (1, vec![(1, 8)]));
    }

    #[test]
    fn a_revoked_partition_is_forgotten_with_its_holds() {
        let mut t = Tracker::new("t");
        t.assign(0);
        t.assign(1);
        let a = t.received(read(0, 0), 0).expect("a");
        let b = t.received(read(1, 5), 0).expect("b");
        assert!(t.received(Read { not_before: 50, ..read(1, 6) }, 0).is_none(), "a delayed message is held");
        assert_eq!(t.ack(std::slice::from_ref(&a)), (1, vec![(0, 1)]));
        assert_eq!(t.revoke(1), Some(5), "what it finished: nothing past 5");
        assert!(!t.holds(&b));
        assert!(t.take_due(100, 10).is_empty(), "holds of a revoked partition are dropped");
        assert_eq!(t.assigned(), 1);
    }
}
