//! Bulk import into SQLite, fast on a million rows and bounded in memory.
//!
//! The costly part of a naive import is the identity index: two random-order keys per lead,
//! each insert dirtying a random page of a B-tree that every commit rewrites. Here, during a
//! *segment* (one write transaction), new keys are staged in memory as (hash → lead); at the
//! segment's end they are sorted on all cores and written to `lead_keys` in hash order (on an
//! empty store: a pure append). Keys already indexed are screened by a Bloom filter, so a new
//! key — the common case — costs no index lookup at all. A hash hit, staged or indexed, is
//! always confirmed against the lead's stored emails and phones (see `keys.rs`), so hashing
//! only ever saves work; it never decides a match.
//!
//! Per-row serialization (JSON columns, search text, key hashes) runs in the
//! [`ImportSession::preparer`], on all cores, so the single writer thread only binds values.
//!
//! A segment ends after [`SEGMENT_KEYS`] new keys or [`SEGMENT_TIME`], whichever comes first,
//! so other processes are never locked out for long and memory stays flat for any file size.
//! Between segments another process may have changed leads: every lead-writing transaction
//! bumps `meta.leads_version`, and a moved version rebuilds the filter before we go on. A dry
//! run is one transaction, rolled back at the end.

pub(super) mod bulk;
mod checkpoint;
mod filter;
mod hints;
mod identity;
mod raw;
mod ready;
mod sql;
mod writes;

use super::keys::{self, key_hash};
use super::rows::{bump_leads_version, describe_owners, leads_version, load_lead, to_ms, update_lead_columns};
use super::search;
use super::{connect, connect_keeping_journal, db_err};
use crate::engine::error::{Error, Result};
use crate::engine::field_rules;
use crate::engine::lead::{ConflictPolicy, Lead, LeadDraft, LeadId};
use crate::engine::store::{ImportPlan, ImportSession, PreparedRow, RowOutcome, RowPreparer};
use async_trait::async_trait;
use checkpoint::Checkpointer;
use chrono::Utc;
use filter::{KeyFilter, PreHashed};
use hints::KeyHints;
use rayon::prelude::*;
use ready::{EMAILS, METADATA, PHONES, Ready, Span, TAGS, TEXT, ready};
use rusqlite::{Connection, params};
use sql::ROWS_PER_INSERT;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// New keys staged per segment (~20 bytes each in the map, 16 more while they are sorted).
/// Each segment's end merges its keys into the whole index written before, so fewer, larger
/// segments write less: 900,000 rather than 400,000 took a 1,000,000-row import from 5.04 to
/// 4.76 s (median of 6, alternating; peak 167 → 175 MB). It stays under hashbrown's 2^20
/// buckets (917,504 entries), the next size up would double the map.
const SEGMENT_KEYS: usize = 900_000;
/// Longest a segment holds the write lock.
const SEGMENT_TIME: Duration = Duration::from_secs(3);
/// Page cache of the import connection, and no memory map: pages read through the map count
/// in the process's resident memory (a 1,000,000-row import peaked at 188 MB with it, 160 MB
/// without, wall time the same).
const CACHE_PRAGMA: &str = "PRAGMA cache_size = -16384; PRAGMA mmap_size = 0";

struct State {
    /// The multi-row lead INSERTs, on `conn`; declared first so they are finalized before it closes.
    inserts: raw::Inserts,
    conn: Connection,
    plan: ImportPlan,
    store: String,
    /// Hashes of keys in the index (as of the last refresh, plus our own flushed ones).
    filter: KeyFilter,
    /// The owners of the indexed keys as of the last refresh, for the unchanged-row check
    /// (merge and skip imports only; see `hints.rs`).
    hints: KeyHints,
    /// Keys added in this segment and not yet in `lead_keys`: hash → lead.
    staged: HashMap<i64, LeadId, BuildHasherDefault<PreHashed>>,
    in_segment: Option<Instant>,
    /// `leads_version` as of our last commit; another value means someone else wrote leads.
    seen_version: i64,
    /// The search group new leads are appended to, written back when we move on.
    group: OpenGroup,
    /// New leads not yet written (ids assigned by us), flushed in multi-row INSERTs.
    pending: Vec<NewRow>,
    /// The JSON columns of `pending`, back to back (one buffer, reused batch after batch).
    pending_json: String,
    /// The id the next new lead gets, when inside a segment.
    next_id: LeadId,
    /// Leads at or above this id were created by this import.
    first_new_id: Option<LeadId>,
    /// Leads that existed before this import and were updated by it: their content before
    /// (hash, without `updated_at`), `updated_at` before, and how many rows updated them.
    originals: HashMap<LeadId, (u64, i64, u32)>,
    /// Rows whose updates ended up undone by later rows of the same import.
    net_unchanged: u64,
    checkpointer: Option<Checkpointer>,
    /// Loading an empty store with a rollback journal (see `bulk.rs`).
    bulk: bool,
    /// The lead the current row's keys were confirmed against, as stored.
    loaded: Option<Lead>,
    /// What the writer is done with, freed off its thread (see [`Trash`]).
    trash: Trash,
}

/// Rows the writer has written, handed to the rayon pool to be freed. The rows were allocated
/// there (parsed and prepared on all cores); freeing their strings on the single writer thread
/// cost it ~0.9 s of ~5 s on a million rows, time the writer — the import's longest chain —
/// now spends writing.
#[derive(Default)]
struct Trash {
    prepared: Vec<Vec<PreparedRow>>,
    rows: Vec<Vec<NewRow>>,
}

impl Trash {
    fn throw(&mut self) {
        let trash = std::mem::take(self);
        rayon::spawn(move || drop(trash));
    }
}

/// Most leads whose pre-import state is remembered (24 bytes each); past it, rows that undo
/// each other are still applied correctly but `updated_at` moves.
const MAX_ORIGINALS: usize = 500_000;

/// A hash of everything about a lead but `updated_at`.
pub(crate) fn content_hash(lead: &Lead) -> u64 {
    let mut copy = lead.clone();
    copy.updated_at = chrono::DateTime::<Utc>::UNIX_EPOCH;
    xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&copy).unwrap_or_default())
}

/// A new lead's column values, waiting for a multi-row INSERT.
struct NewRow {
    id: LeadId,
    name: String,
    /// Emails, phones, tags and metadata as JSON, in [`State::pending_json`].
    json: [Span; 4],
    total_spend: f64,
    visits: i64,
    last_order_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Default)]
struct OpenGroup {
    grp: Option<i64>,
    body: Vec<u8>,
    last_id: LeadId,
}

pub struct SqliteImport {
    state: Option<State>,
}

impl SqliteImport {
    /// `bulk`: the store's own connection switched the file to a rollback journal for this
    /// import (see `bulk.rs`).
    pub async fn begin(path: PathBuf, plan: ImportPlan, bulk: bool) -> Result<SqliteImport> {
        let store = format!("sqlite:{}", path.display());
        let state = tokio::task::spawn_blocking(move || -> Result<State> {
            let conn = if bulk { connect_keeping_journal(&path) } else { connect(&path) }.map_err(db_err(&store))?;
            // Another process may have put the file back in WAL mode since.
            let bulk = bulk && bulk::in_rollback_mode(&conn).map_err(db_err(&store))?;
            if bulk {
                conn.execute_batch("PRAGMA synchronous = FULL").map_err(db_err(&store))?;
            }
            conn.execute_batch(CACHE_PRAGMA).map_err(db_err(&store))?;
            // Checkpoints run on the checkpointer's thread instead (see `Checkpointer`).
            let checkpointer = if plan.dry_run || bulk { None } else { Checkpointer::start(&path) };
            if checkpointer.is_some() {
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(db_err(&store))?;
            }
            conn.set_prepared_statement_cache_capacity(64);
            let existing: i64 =
                conn.query_row("SELECT count(*) FROM lead_keys", [], |r| r.get(0)).map_err(db_err(&store))?;
            let new_keys = plan.expected_rows.unwrap_or(100_000) * 2;
            let expected = existing as u64 + new_keys;
            Ok(State {
                inserts: raw::Inserts::new(&conn),
                conn,
                plan,
                store,
                filter: KeyFilter::with_capacity(expected),
                hints: KeyHints::default(),
                // Sized once: growing would hold the old and the new table at once.
                staged: HashMap::with_capacity_and_hasher(
                    SEGMENT_KEYS.min(usize::try_from(new_keys).unwrap_or(SEGMENT_KEYS)),
                    BuildHasherDefault::default(),
                ),
                in_segment: None,
                seen_version: -1,
                group: OpenGroup::default(),
                pending: Vec::with_capacity(ROWS_PER_INSERT),
                pending_json: String::new(),
                next_id: 1,
                first_new_id: None,
                originals: HashMap::new(),
                net_unchanged: 0,
                checkpointer,
                bulk,
                loaded: None,
                trash: Trash::default(),
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
        self.next_id = self
            .conn
            .query_row(
                "SELECT max(coalesce((SELECT max(id) FROM leads), 0),
                            coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'leads'), 0)) + 1",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql())?;
        self.first_new_id.get_or_insert(self.next_id);
        let version = leads_version(&self.conn).map_err(self.sql())?;
        if version != self.seen_version {
            self.rebuild_filter().map_err(db_err(&self.store))?;
            self.seen_version = version;
        }
        Ok(())
    }

    fn rebuild_filter(&mut self) -> rusqlite::Result<()> {
        let hinted = matches!(self.plan.policy, ConflictPolicy::Merge | ConflictPolicy::Skip);
        self.hints = KeyHints::default();
        // Sized up front: growing by doubling would hold both copies at the end (+50%).
        let count = if hinted {
            self.conn.query_row("SELECT count(*) FROM lead_keys", [], |r| r.get::<_, i64>(0))?
        } else {
            0
        };
        let mut pairs = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut stmt = self.conn.prepare("SELECT h, lead_id FROM lead_keys")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let hash = row.get(0)?;
            self.filter.insert(hash);
            if hinted {
                pairs.push((hash, row.get(1)?));
            }
        }
        drop(rows);
        self.hints = KeyHints::new(pairs).unwrap_or_default();
        let mut stmt = self.conn.prepare("SELECT key FROM lead_key_overflow")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            self.filter.insert(key_hash(row.get_ref(0)?.as_str()?));
        }
        Ok(())
    }

    /// Writes the open search group and the staged keys (in hash order); commits unless dry.
    fn end_segment(&mut self, commit: bool) -> Result<()> {
        if self.in_segment.is_none() {
            return Ok(());
        }
        self.flush_pending().map_err(db_err(&self.store))?;
        self.close_group().map_err(db_err(&self.store))?;
        self.restore_undone().map_err(db_err(&self.store))?;
        let mut staged: Vec<(i64, LeadId)> = self.staged.drain().collect();
        staged.par_sort_unstable();
        self.write_keys(&staged).map_err(db_err(&self.store))?;
        for (hash, _) in &staged {
            self.filter.insert(*hash);
        }
        if commit {
            self.seen_version = bump_leads_version(&self.conn).map_err(self.sql())?;
            self.conn.execute_batch("COMMIT").map_err(self.sql())?;
            self.in_segment = None;
            tracing::debug!(keys = staged.len(), "Import segment committed.");
            if let Some(c) = &self.checkpointer {
                c.nudge();
            }
        }
        Ok(())
    }

    fn apply(&mut self, rows: Vec<PreparedRow>) -> Result<Vec<RowOutcome>> {
        self.begin_segment()?;
        let now = Utc::now();
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut rows = rows;
        for row in &mut rows {
            let computed;
            let ready = match row.extra.as_ref().and_then(|e| e.downcast_ref::<Ready>()) {
                Some(r) => r,
                None => {
                    computed = ready(&row.draft);
                    &computed
                }
            };
            let result = self.apply_row(&mut row.draft, ready, now);
            match result {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.in_segment = None;
                    return Err(Error::sqlite(&self.store, &e));
                }
            }
        }
        self.trash.prepared.push(rows);
        self.trash.throw();
        let full = self.staged.len() >= SEGMENT_KEYS;
        if self.plan.dry_run {
            // One transaction throughout; staged keys still go to the index to bound memory.
            if full {
                self.end_segment(false)?;
            }
        } else if full || self.in_segment.is_some_and(|t| t.elapsed() >= SEGMENT_TIME) {
            self.end_segment(true)?;
        }
        Ok(outcomes)
    }

    /// Applies one row; what is left of `draft` and `ready` afterwards is the caller's to free.
    fn apply_row(
        &mut self,
        draft: &mut LeadDraft,
        ready: &Ready,
        now: chrono::DateTime<Utc>,
    ) -> rusqlite::Result<RowOutcome> {
        self.loaded = None;
        if matches!(self.plan.policy, ConflictPolicy::Merge | ConflictPolicy::Skip) {
            if let Some(id) = self.unchanged_owner(draft, ready)? {
                return Ok(RowOutcome::Skipped(id));
            }
        }
        let mut owners: Vec<(String, LeadId)> = Vec::new();
        for (key, hash) in ready.keys() {
            if let Some(id) = self.owner_of(key, hash)? {
                owners.push((key.to_string(), id));
            }
        }
        let first = owners.first().map(|(_, id)| *id);
        if owners.iter().any(|(_, id)| Some(*id) != first) {
            return Ok(RowOutcome::Conflict(format!(
                "matches more than one lead ({}); update or delete one of {}, or split the row",
                describe_owners(&owners),
                lead_list(&owners)
            )));
        }
        let Some(id) = first else {
            let id = self.insert_new(draft, ready, now)?;
            for (key, hash) in ready.keys() {
                self.add_key(key, hash, id)?;
            }
            return Ok(RowOutcome::Inserted(id));
        };
        self.flush_pending()?;
        let cached = self.loaded.take().filter(|lead| lead.id == id);
        let Some(old) = (match cached {
            Some(lead) => Some(lead),
            None => load_lead(&self.conn, id)?,
        }) else {
            return Ok(RowOutcome::Conflict(format!("lead {id} disappeared during the import")));
        };
        let mut lead = old.clone();
        if !draft.apply_to(&mut lead, self.plan.policy, now) {
            return Ok(RowOutcome::Skipped(id));
        }
        // Every row keeps the limits, but a merge accumulates tags and metadata keys.
        if let Err(reason) = field_rules::check_merged(&old, &lead) {
            return Ok(RowOutcome::Conflict(format!("would leave lead {id} over a limit: it {reason}")));
        }
        self.rewrite(&old, &lead)?;
        self.remember_original(&old);
        Ok(RowOutcome::Updated(id))
    }

    fn finish(&mut self) -> Result<u64> {
        if self.plan.dry_run {
            self.flush_pending().map_err(db_err(&self.store))?;
            self.restore_undone().map_err(db_err(&self.store))?;
            if self.in_segment.take().is_some() {
                self.conn.execute_batch("ROLLBACK").map_err(self.sql())?;
            }
            return Ok(self.net_unchanged);
        }
        self.end_segment(true)?;
        if self.bulk {
            bulk::leave(&self.conn);
        }
        if let Some(c) = self.checkpointer.take() {
            c.stop();
        }
        Ok(self.net_unchanged)
    }
}

/// "leads 3 and 7", "leads 3, 7 and 9": the distinct leads of `owners`, in order.
pub(crate) fn lead_list(owners: &[(String, LeadId)]) -> String {
    let mut ids: Vec<LeadId> = Vec::new();
    for (_, id) in owners {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    let names: Vec<String> = ids.iter().map(LeadId::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("leads {} and {last}", rest.join(", ")),
        _ => format!("lead {}", names.join("")),
    }
}

#[async_trait]
impl ImportSession for SqliteImport {
    fn preparer(&self) -> RowPreparer {
        Arc::new(|draft: LeadDraft| {
            let extra: Box<dyn std::any::Any + Send> = Box::new(ready(&draft));
            PreparedRow { draft, extra: Some(extra) }
        })
    }

    async fn apply(&mut self, rows: Vec<PreparedRow>) -> Result<Vec<RowOutcome>> {
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

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        let Some(mut state) = self.state.take() else { return Ok(0) };
        tokio::task::spawn_blocking(move || state.finish()).await.map_err(|e| Error::store("sqlite import", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_each_lead_once() {
        let owners = |ids: &[LeadId]| ids.iter().map(|id| (format!("e:{id}@x.com"), *id)).collect::<Vec<_>>();
        assert_eq!(lead_list(&owners(&[3, 7])), "leads 3 and 7");
        assert_eq!(lead_list(&owners(&[3, 7, 3, 9])), "leads 3, 7 and 9");
    }
}
