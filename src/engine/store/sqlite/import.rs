//! Bulk import into SQLite: one dedicated connection, one transaction per batch (one for the
//! whole run when dry), and an in-memory Bloom filter of identity keys so that a new key —
//! the common case — costs no index lookup at all. A filter hit is confirmed against
//! `lead_keys`, so the filter only ever saves work; it never decides a match.
//!
//! Another process may add leads between our batches. Every lead-writing transaction bumps
//! `meta.leads_version`; each batch starts under the write lock, and if the version moved
//! since our last commit the filter is rebuilt from `lead_keys` before the batch runs.

use super::leads::{
    bump_leads_version, describe_owners, insert_lead, leads_version, load_lead, lookup_key, update_lead,
};
use super::{connect, db_err};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{LeadDraft, LeadId};
use crate::engine::store::{ImportPlan, ImportSession, RowOutcome};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::Connection;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

/// A fixed-size Bloom filter over identity keys (k = 6, sized at ~12 bits a key, capped at
/// 64 MiB so memory stays bounded whatever the file size; past the cap it just says "maybe"
/// more often, which costs lookups, never correctness).
struct KeyFilter {
    bits: Vec<u64>,
    mask: u64,
    hasher: std::hash::RandomState,
}

impl KeyFilter {
    fn with_capacity(keys: u64) -> KeyFilter {
        let wanted = (keys.saturating_mul(12)).clamp(1 << 16, 1 << 29);
        let bits = wanted.next_power_of_two();
        KeyFilter { bits: vec![0; (bits / 64) as usize], mask: bits - 1, hasher: std::hash::RandomState::new() }
    }

    fn positions(&self, key: &str) -> [u64; 6] {
        let mut h = self.hasher.build_hasher();
        h.write(key.as_bytes());
        let h1 = h.finish();
        let h2 = h1.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        std::array::from_fn(|i| h1.wrapping_add((i as u64).wrapping_mul(h2)) & self.mask)
    }

    fn insert(&mut self, key: &str) {
        for p in self.positions(key) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, key: &str) -> bool {
        self.positions(key).iter().all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

struct State {
    conn: Connection,
    filter: KeyFilter,
    plan: ImportPlan,
    /// `leads_version` as of our last commit; another value means someone else wrote leads.
    seen_version: i64,
    store: String,
}

pub struct SqliteImport {
    state: Option<State>,
}

impl SqliteImport {
    pub async fn begin(path: PathBuf, plan: ImportPlan) -> Result<SqliteImport> {
        let store = format!("sqlite:{}", path.display());
        let state = tokio::task::spawn_blocking(move || -> Result<State> {
            let conn = connect(&path).map_err(db_err(&store))?;
            conn.execute_batch("PRAGMA cache_size = -65536").map_err(db_err(&store))?;
            let existing: i64 =
                conn.query_row("SELECT count(*) FROM lead_keys", [], |r| r.get(0)).map_err(db_err(&store))?;
            let expected = existing as u64 + plan.expected_rows.unwrap_or(100_000) * 2;
            let mut state = State { conn, filter: KeyFilter::with_capacity(expected), plan, seen_version: -1, store };
            if plan.dry_run {
                state.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err(&state.store))?;
                state.refresh_filter_if_stale()?;
            }
            Ok(state)
        })
        .await
        .map_err(|e| Error::store("sqlite import", e))??;
        Ok(SqliteImport { state: Some(state) })
    }
}

impl State {
    fn refresh_filter_if_stale(&mut self) -> Result<()> {
        let version = leads_version(&self.conn).map_err(db_err(&self.store))?;
        if version == self.seen_version {
            return Ok(());
        }
        let mut stmt = self.conn.prepare("SELECT key FROM lead_keys").map_err(db_err(&self.store))?;
        let mut rows = stmt.query([]).map_err(db_err(&self.store))?;
        while let Some(row) = rows.next().map_err(db_err(&self.store))? {
            let key = row.get_ref(0).map_err(db_err(&self.store))?.as_str().unwrap_or_default();
            self.filter.insert(key);
        }
        self.seen_version = version;
        Ok(())
    }

    fn apply(&mut self, rows: Vec<LeadDraft>) -> Result<Vec<RowOutcome>> {
        if !self.plan.dry_run {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err(&self.store))?;
        }
        let result = self.apply_in_tx(rows);
        if self.plan.dry_run {
            return result;
        }
        match result {
            Ok(outcomes) => {
                self.seen_version = bump_leads_version(&self.conn).map_err(db_err(&self.store))?;
                self.conn.execute_batch("COMMIT").map_err(db_err(&self.store))?;
                Ok(outcomes)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn apply_in_tx(&mut self, rows: Vec<LeadDraft>) -> Result<Vec<RowOutcome>> {
        self.refresh_filter_if_stale()?;
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(rows.len());
        for draft in rows {
            outcomes.push(self.apply_row(draft, now).map_err(db_err(&self.store))?);
        }
        Ok(outcomes)
    }

    fn apply_row(&mut self, draft: LeadDraft, now: chrono::DateTime<Utc>) -> rusqlite::Result<RowOutcome> {
        let keys = draft.identity_keys();
        let mut owners: Vec<(String, LeadId)> = Vec::new();
        for key in &keys {
            if self.filter.may_contain(key) {
                if let Some(id) = lookup_key(&self.conn, key)? {
                    owners.push((key.clone(), id));
                }
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
            let id = insert_lead(&self.conn, &lead)?;
            for key in &keys {
                self.filter.insert(key);
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
        update_lead(&self.conn, &old, &lead)?;
        for key in lead.identity_keys() {
            self.filter.insert(&key);
        }
        Ok(RowOutcome::Updated(id))
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
        let Some(state) = self.state.take() else { return Ok(()) };
        tokio::task::spawn_blocking(move || {
            if state.plan.dry_run {
                state.conn.execute_batch("ROLLBACK").map_err(db_err(&state.store))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::store("sqlite import", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_has_no_false_negatives() {
        let mut f = KeyFilter::with_capacity(10_000);
        for i in 0..10_000 {
            f.insert(&format!("e:user{i}@example.com"));
        }
        assert!((0..10_000).all(|i| f.may_contain(&format!("e:user{i}@example.com"))));
        let false_hits = (0..10_000).filter(|i| f.may_contain(&format!("p:+44{i}"))).count();
        assert!(false_hits < 100, "{false_hits} false positives in 10000");
    }
}
