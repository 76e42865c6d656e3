//! Bulk import into SQLite, fast on a million rows and bounded in memory.
//!
//! The expensive part of a naive import is the identity index: two random-order keys per
//! lead, each insert dirtying a random page of a large B-tree, rewritten at every commit.
//! Here, during a *segment* (one write transaction), new keys are staged in memory (a compact
//! arena plus a map of key hash → arena slot); at the segment's end they are sorted on all
//! cores and written to `lead_keys` in key order (on an empty store: a pure append). Keys already in `lead_keys` are screened by a Bloom filter, so a new key — the
//! common case — costs no index lookup. Hash hits from the map or the filter are always
//! confirmed against real data, so hashing only ever saves work; it never decides a match.
//!
//! A segment ends after [`SEGMENT_KEYS`] new keys or [`SEGMENT_TIME`], whichever comes first,
//! so other processes are never locked out for long and memory stays flat for any file size.
//! Between segments, another process may have changed leads: every lead-writing transaction
//! bumps `meta.leads_version`, and a moved version rebuilds the filter before we go on.
//! A dry run is one transaction, rolled back at the end.

use super::leads::{
    bump_leads_version, describe_owners, insert_lead_row, leads_version, load_lead, lookup_key, update_lead_row,
};
use super::{connect, db_err};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::store::{ImportPlan, ImportSession, RowOutcome};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use rayon::slice::ParallelSliceMut;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// New keys staged per segment (staging costs ~70 bytes a key: ~70 MB at most).
const SEGMENT_KEYS: usize = 1_000_000;
/// Longest a segment holds the write lock.
const SEGMENT_TIME: Duration = Duration::from_secs(3);

/// A Bloom filter over key hashes (k = 6, ~12 bits a key, capped at 64 MiB; past the cap it
/// answers "maybe" more often, which costs lookups, never correctness).
struct KeyFilter {
    bits: Vec<u64>,
    mask: u64,
}

impl KeyFilter {
    fn with_capacity(keys: u64) -> KeyFilter {
        let bits = keys.saturating_mul(12).clamp(1 << 16, 1 << 29).next_power_of_two();
        KeyFilter { bits: vec![0; (bits / 64) as usize], mask: bits - 1 }
    }

    fn positions(&self, h1: u64) -> [u64; 6] {
        let h2 = h1.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        std::array::from_fn(|i| h1.wrapping_add((i as u64).wrapping_mul(h2)) & self.mask)
    }

    fn insert(&mut self, hash: u64) {
        for p in self.positions(hash) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        self.positions(hash).iter().all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

/// A `Hasher` for keys that are already hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Keys staged in a segment: one byte arena, slots into it, and a map from key hash to slot.
#[derive(Default)]
struct StagedKeys {
    bytes: String,
    /// (start, end, lead); a removed key keeps its slot with lead 0.
    slots: Vec<(u32, u32, LeadId)>,
    by_hash: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
}

impl StagedKeys {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn key(&self, slot: u32) -> &str {
        let (start, end, _) = self.slots[slot as usize];
        &self.bytes[start as usize..end as usize]
    }

    fn get(&self, hash: u64, key: &str) -> Option<LeadId> {
        let slot = *self.by_hash.get(&hash)?;
        let id = self.slots[slot as usize].2;
        (id != 0 && self.key(slot) == key).then_some(id)
    }

    /// False when another key with this hash is staged (the caller stores it elsewhere).
    fn insert(&mut self, hash: u64, key: &str, id: LeadId) -> bool {
        let slot = self.slots.len() as u32;
        match self.by_hash.entry(hash) {
            Entry::Occupied(_) => false,
            Entry::Vacant(entry) => {
                entry.insert(slot);
                let start = self.bytes.len() as u32;
                self.bytes.push_str(key);
                self.slots.push((start, self.bytes.len() as u32, id));
                true
            }
        }
    }

    fn remove(&mut self, hash: u64, key: &str) {
        if let Some(&slot) = self.by_hash.get(&hash) {
            if self.key(slot) == key {
                self.slots[slot as usize].2 = 0;
                self.by_hash.remove(&hash);
            }
        }
    }

    /// Live keys in key order, sorted on all cores.
    fn sorted(&self) -> Vec<(&str, LeadId)> {
        let mut live: Vec<(&str, LeadId)> =
            (0..self.slots.len() as u32).filter(|s| self.slots[*s as usize].2 != 0).map(|s| (self.key(s), self.slots[s as usize].2)).collect();
        live.par_sort_unstable_by(|a, b| a.0.cmp(b.0));
        live
    }

    fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_hash.keys().copied()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.slots.clear();
        self.by_hash.clear();
    }
}

struct State {
    conn: Connection,
    plan: ImportPlan,
    store: String,
    hasher: ahash::RandomState,
    /// Keys in `lead_keys` (as of the last refresh, plus our own flushed ones).
    filter: KeyFilter,
    /// Keys added in this segment, not yet in `lead_keys`.
    staged: StagedKeys,
    in_segment: Option<Instant>,
    /// `leads_version` as of our last commit; another value means someone else wrote leads.
    seen_version: i64,
}

pub struct SqliteImport {
    state: Option<State>,
}

impl SqliteImport {
    pub async fn begin(path: PathBuf, plan: ImportPlan) -> Result<SqliteImport> {
        let store = format!("sqlite:{}", path.display());
        let state = tokio::task::spawn_blocking(move || -> Result<State> {
            let conn = connect(&path).map_err(db_err(&store))?;
            conn.execute_batch(
                "PRAGMA cache_size = -65536;
                 PRAGMA temp_store = FILE;",
            )
            .map_err(db_err(&store))?;
            let existing: i64 =
                conn.query_row("SELECT count(*) FROM lead_keys", [], |r| r.get(0)).map_err(db_err(&store))?;
            let expected = existing as u64 + plan.expected_rows.unwrap_or(100_000) * 2;
            Ok(State {
                conn,
                plan,
                store,
                hasher: ahash::RandomState::new(),
                filter: KeyFilter::with_capacity(expected),
                staged: StagedKeys::default(),
                in_segment: None,
                seen_version: -1,
            })
        })
        .await
        .map_err(|e| Error::store("sqlite import", e))??;
        Ok(SqliteImport { state: Some(state) })
    }
}

impl State {
    fn sql(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        db_err(&self.store)
    }

    fn begin_segment(&mut self) -> Result<()> {
        if self.in_segment.is_some() {
            return Ok(());
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(self.sql())?;
        self.in_segment = Some(Instant::now());
        let version = leads_version(&self.conn).map_err(self.sql())?;
        if version != self.seen_version {
            self.rebuild_filter()?;
            self.seen_version = version;
        }
        Ok(())
    }

    fn rebuild_filter(&mut self) -> Result<()> {
        let mut stmt = self.conn.prepare("SELECT key FROM lead_keys").map_err(db_err(&self.store))?;
        let mut rows = stmt.query([]).map_err(db_err(&self.store))?;
        while let Some(row) = rows.next().map_err(db_err(&self.store))? {
            let key = row.get_ref(0).map_err(db_err(&self.store))?.as_str().unwrap_or_default();
            self.filter.insert(self.hasher.hash_one(key));
        }
        Ok(())
    }

    /// Moves staged keys into `lead_keys` (sorted), and commits unless this is a dry run.
    fn end_segment(&mut self, commit: bool) -> Result<()> {
        if self.in_segment.is_none() {
            return Ok(());
        }
        {
            let mut insert =
                self.conn.prepare_cached("INSERT INTO lead_keys (key, lead_id) VALUES (?1, ?2)").map_err(db_err(&self.store))?;
            for (key, id) in self.staged.sorted() {
                insert.execute(params![key, id]).map_err(db_err(&self.store))?;
            }
        }
        for hash in self.staged.hashes() {
            self.filter.insert(hash);
        }
        self.staged.clear();
        if commit {
            self.seen_version = bump_leads_version(&self.conn).map_err(self.sql())?;
            self.conn.execute_batch("COMMIT").map_err(self.sql())?;
            self.in_segment = None;
        }
        Ok(())
    }

    fn segment_full(&self) -> bool {
        self.staged.len() >= SEGMENT_KEYS || self.in_segment.is_some_and(|t| t.elapsed() >= SEGMENT_TIME)
    }

    fn apply(&mut self, rows: Vec<LeadDraft>) -> Result<Vec<RowOutcome>> {
        self.begin_segment()?;
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(rows.len());
        for draft in rows {
            match self.apply_row(draft, now) {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.in_segment = None;
                    return Err(Error::store(&self.store, e));
                }
            }
        }
        if self.plan.dry_run {
            // One transaction throughout; still flush staged keys so memory stays bounded.
            if self.staged.len() >= SEGMENT_KEYS {
                self.end_segment(false)?;
            }
        } else if self.segment_full() {
            self.end_segment(true)?;
        }
        Ok(outcomes)
    }

    /// The lead owning `key`, if any: staged keys first, then the index.
    fn owner_of(&self, key: &str, hash: u64) -> rusqlite::Result<Option<LeadId>> {
        if let Some(id) = self.staged.get(hash, key) {
            return Ok(Some(id));
        }
        if self.filter.may_contain(hash) { lookup_key(&self.conn, key) } else { Ok(None) }
    }

    fn add_key(&mut self, key: &str, id: LeadId) -> rusqlite::Result<()> {
        let hash = self.hasher.hash_one(key);
        if !self.staged.insert(hash, key, id) {
            // Two keys with one hash: the second goes straight to the index (exact).
            self.conn.prepare_cached("INSERT INTO lead_keys (key, lead_id) VALUES (?1, ?2)")?.execute(params![key, id])?;
            self.filter.insert(hash);
        }
        Ok(())
    }

    fn remove_key(&mut self, key: &str, id: LeadId) -> rusqlite::Result<()> {
        let hash = self.hasher.hash_one(key);
        self.conn.prepare_cached("DELETE FROM lead_keys WHERE key = ?1 AND lead_id = ?2")?.execute(params![key, id])?;
        self.staged.remove(hash, key);
        Ok(())
    }

    fn apply_row(&mut self, draft: LeadDraft, now: chrono::DateTime<Utc>) -> rusqlite::Result<RowOutcome> {
        let keys = draft.identity_keys();
        let mut owners: Vec<(String, LeadId)> = Vec::new();
        for key in &keys {
            if let Some(id) = self.owner_of(key, self.hasher.hash_one(key))? {
                owners.push((key.clone(), id));
            }
        }
        let first = owners.first().map(|(_, id)| *id);
        if owners.iter().any(|(_, id)| Some(*id) != first) {
            return Ok(RowOutcome::Conflict(format!(
                "matches more than one lead ({}); merge those leads first or split the row",
                describe_owners(&owners)
            )));
        }
        let Some(id) = first else {
            let lead = draft.into_lead(0, now);
            let id = insert_lead_row(&self.conn, &lead)?;
            for key in &keys {
                self.add_key(key, id)?;
            }
            return Ok(RowOutcome::Inserted(id));
        };
        let Some(old) = load_lead(&self.conn, id)? else {
            return Ok(RowOutcome::Conflict(format!("lead {id} disappeared during the import")));
        };
        let mut lead = old.clone();
        if !draft.apply_to(&mut lead, self.plan.policy, now) {
            return Ok(RowOutcome::Skipped(id));
        }
        self.rewrite(&old, &lead)?;
        Ok(RowOutcome::Updated(id))
    }

    fn rewrite(&mut self, old: &Lead, lead: &Lead) -> rusqlite::Result<()> {
        update_lead_row(&self.conn, lead)?;
        let (old_keys, new_keys) = (old.identity_keys(), lead.identity_keys());
        for key in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            self.remove_key(key, lead.id)?;
        }
        for key in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            self.add_key(key, lead.id)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.plan.dry_run {
            if self.in_segment.take().is_some() {
                self.conn.execute_batch("ROLLBACK").map_err(self.sql())?;
            }
            return Ok(());
        }
        self.end_segment(true)
    }
}

#[async_trait]
impl ImportSession for SqliteImport {
    async fn apply(&mut self, rows: Vec<LeadDraft>) -> Result<Vec<RowOutcome>> {
        let mut state = self.state.take().ok_or_else(|| Error::store("sqlite import", "session already failed"))?;
        let (state, result) = tokio::task::spawn_blocking(move || {
            let result = state.apply(rows);
            (state, result)
        })
        .await
        .map_err(|e| Error::store("sqlite import", e))?;
        self.state = Some(state);
        result
    }

    async fn finish(mut self: Box<Self>) -> Result<()> {
        let Some(mut state) = self.state.take() else { return Ok(()) };
        tokio::task::spawn_blocking(move || state.finish()).await.map_err(|e| Error::store("sqlite import", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_has_no_false_negatives() {
        let hasher = ahash::RandomState::new();
        let mut f = KeyFilter::with_capacity(10_000);
        for i in 0..10_000 {
            f.insert(hasher.hash_one(format!("e:user{i}@example.com")));
        }
        assert!((0..10_000).all(|i| f.may_contain(hasher.hash_one(format!("e:user{i}@example.com")))));
        let false_hits = (0..10_000).filter(|i| f.may_contain(hasher.hash_one(format!("p:+44{i}")))).count();
        assert!(false_hits < 100, "{false_hits} false positives in 10000");
    }
}
