//! What the simulator remembers (one entry per idempotency key, lock-free counters) and the
//! deterministic dice that decide each request's fate.
//!
//! The dice are a hash of (seed, idempotency key, how many times the key was seen), not a shared
//! random generator: the same seed gives the same answers whatever order concurrent requests
//! arrive in, and a retry of a rate-limited key rolls again instead of being refused forever.

use super::SimConfig;
use super::api::{KeyStats, Stats};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected_429: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub rejected_invalid: AtomicU64,
    pub receipts_scheduled: AtomicU64,
    pub receipts_sent: AtomicU64,
    pub receipts_dropped: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct KeyEntry {
    /// Set once the key is accepted.
    message_id: Option<String>,
    /// POSTs answered with the message id.
    answered: u64,
    /// Every POST with this key, refused ones included: the dice's round number.
    posts: u64,
}

/// How the simulator answers one `POST /messages`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    RateLimited,
    ServerError {
        status: u16,
    },
    /// The key's message id; `fresh` when this POST is the one that accepted it.
    Accepted {
        message_id: String,
        fresh: bool,
    },
}

/// What becomes of an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Failed,
    Delivered { read: bool },
}

pub(crate) struct Ledger {
    seed: u64,
    keys: Mutex<HashMap<String, KeyEntry, ahash::RandomState>>,
}

// Salts keep the dice for different questions independent.
const GATE: u64 = 1;
const FAIL: u64 = 2;
const READ: u64 = 3;
const ID: u64 = 4;

/// A number in [0, 1) determined by the seed, the key, the question and the round.
pub(crate) fn dice(seed: u64, key: &str, salt: u64, round: u64) -> f64 {
    let mixed = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ round.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), mixed);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Ledger {
    pub fn new(seed: u64) -> Ledger {
        Ledger { seed, keys: Mutex::new(HashMap::with_hasher(ahash::RandomState::new())) }
    }

    /// Rolls for 429/5xx, then records the POST under its key. The lock is held for one map
    /// lookup and no I/O.
    pub fn answer(&self, key: String, config: &SimConfig) -> Answer {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let round = keys.get(&key).map_or(0, |e| e.posts);
        let roll = dice(self.seed, &key, GATE, round);
        let id_hash = xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), self.seed ^ ID);
        let entry = keys.entry(key).or_default();
        entry.posts += 1;
        if roll < config.rate_limit_rate {
            return Answer::RateLimited;
        }
        if roll < config.rate_limit_rate + config.server_error_rate {
            return Answer::ServerError { status: if round % 2 == 0 { 500 } else { 503 } };
        }
        entry.answered += 1;
        match &entry.message_id {
            Some(id) => Answer::Accepted { message_id: id.clone(), fresh: false },
            None => {
                let id = format!("sim-{id_hash:016x}");
                entry.message_id = Some(id.clone());
                Answer::Accepted { message_id: id, fresh: true }
            }
        }
    }

    /// What becomes of the message accepted under `key`.
    pub fn fate(&self, key: &str, config: &SimConfig) -> Fate {
        if dice(self.seed, key, FAIL, 0) < config.failure_rate {
            Fate::Failed
        } else {
            Fate::Delivered { read: dice(self.seed, key, READ, 0) < config.read_rate }
        }
    }

    /// The message id and answered count of an accepted key.
    pub fn lookup(&self, key: &str) -> Option<KeyStats> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let entry = keys.get(key)?;
        Some(KeyStats { message_id: entry.message_id.clone()?, count: entry.answered })
    }

    /// A snapshot of the counters, and of every accepted key when `by_key` is set.
    pub fn stats(&self, counters: &Counters, by_key: bool) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (scheduled, sent, dropped) =
            (get(&counters.receipts_scheduled), get(&counters.receipts_sent), get(&counters.receipts_dropped));
        let mut stats = Stats {
            accepted: get(&counters.accepted),
            duplicates: get(&counters.duplicates),
            rejected_429: get(&counters.rejected_429),
            errors_5xx: get(&counters.errors_5xx),
            rejected_invalid: get(&counters.rejected_invalid),
            receipts_sent: sent,
            receipts_dropped: dropped,
            receipts_pending: scheduled.saturating_sub(sent + dropped),
            by_key: Default::default(),
        };
        if by_key {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            stats.by_key = keys
                .iter()
                .filter_map(|(k, e)| {
                    let message_id = e.message_id.clone()?;
                    Some((k.clone(), KeyStats { message_id, count: e.answered }))
                })
                .collect();
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimConfig {
        SimConfig { failure_rate: 0.3, read_rate: 0.5, ..SimConfig::default() }
    }

    #[test]
    fn dice_are_uniform_enough_and_deterministic() {
        let rolls: Vec<f64> = (0..10_000).map(|i| dice(7, &format!("k{i}"), GATE, 0)).collect();
        assert!(rolls.iter().all(|r| (0.0..1.0).contains(r)));
        let below = rolls.iter().filter(|r| **r < 0.25).count();
        assert!((2_200..2_800).contains(&below), "{below} of 10000 below 0.25");
        assert_eq!(dice(7, "k1", GATE, 0), rolls[1]);
        assert_ne!(dice(8, "k1", GATE, 0), rolls[1], "the seed matters");
        assert_ne!(dice(7, "k1", GATE, 1), rolls[1], "a retry rolls again");
    }

    #[test]
    fn a_repeated_key_gets_the_first_id() {
        let ledger = Ledger::new(1);
        let first = ledger.answer("a".into(), &config());
        let Answer::Accepted { message_id, fresh: true } = first else { panic!("{first:?}") };
        assert_eq!(
            ledger.answer("a".into(), &config()),
            Answer::Accepted { message_id: message_id.clone(), fresh: false }
        );
        assert_eq!(ledger.lookup("a"), Some(KeyStats { message_id, count: 2 }));
        assert_eq!(ledger.lookup("b"), None);
    }

    #[test]
    fn same_seed_same_fates_and_ids() {
        let (a, b) = (Ledger::new(42), Ledger::new(42));
        for i in 0..200 {
            let key = format!("send-{i}");
            assert_eq!(a.fate(&key, &config()), b.fate(&key, &config()));
            assert_eq!(a.answer(key.clone(), &config()), b.answer(key, &config()));
        }
        let failed = (0..2_000).filter(|i| a.fate(&format!("x{i}"), &config()) == Fate::Failed).count();
        assert!((500..700).contains(&failed), "{failed} of 2000 failed at rate 0.3");
    }

    #[test]
    fn refused_posts_are_not_answered_counts() {
        let ledger = Ledger::new(3);
        let always_429 = SimConfig { rate_limit_rate: 1.0, ..config() };
        assert_eq!(ledger.answer("k".into(), &always_429), Answer::RateLimited);
        assert_eq!(ledger.lookup("k"), None, "a refused key is not accepted");
        let always_5xx = SimConfig { server_error_rate: 1.0, ..config() };
        assert!(matches!(ledger.answer("k".into(), &always_5xx), Answer::ServerError { .. }));
        assert!(matches!(ledger.answer("k".into(), &config()), Answer::Accepted { fresh: true, .. }));
        assert_eq!(ledger.lookup("k").map(|s| s.count), Some(1));
        let stats = ledger.stats(&Counters::default(), true);
        assert_eq!(stats.by_key.len(), 1);
    }
}
