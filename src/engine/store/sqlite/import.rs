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

use super::keys::{self, key_hash};
use super::leads::{bump_leads_version, describe_owners, json, leads_version, load_lead, to_ms, update_lead_columns};
use super::search;
use super::{connect, db_err};
use crate::engine::error::{Error, Result};
use crate::engine::field_rules;
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::store::{ImportPlan, ImportSession, PreparedRow, RowOutcome, RowPreparer};
use async_trait::async_trait;
use chrono::Utc;
use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// New keys staged per segment (~40 bytes each in memory).
const SEGMENT_KEYS: usize = 400_000;
/// Longest a segment holds the write lock.
const SEGMENT_TIME: Duration = Duration::from_secs(3);
/// Page cache of the import connection.
const CACHE_PRAGMA: &str = "PRAGMA cache_size = -16384";

/// A Bloom filter over key hashes (k = 6, ~12 bits a key, capped at 32 MiB; past the cap it
/// answers "maybe" more often, which costs lookups, never correctness).
struct KeyFilter {
    bits: Vec<u64>,
    mask: u64,
}

impl KeyFilter {
    fn with_capacity(keys: u64) -> KeyFilter {
        let bits = keys.saturating_mul(12).clamp(1 << 16, 1 << 28).next_power_of_two();
        KeyFilter { bits: vec![0; (bits / 64) as usize], mask: bits - 1 }
    }

    fn positions(&self, hash: i64) -> [u64; 6] {
        let h1 = hash as u64;
        let h2 = h1.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        std::array::from_fn(|i| h1.wrapping_add((i as u64).wrapping_mul(h2)) & self.mask)
    }

    fn insert(&mut self, hash: i64) {
        for p in self.positions(hash) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, hash: i64) -> bool {
        self.positions(hash).iter().all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

/// A `Hasher` for map keys that are already hashes.
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
    fn write_i64(&mut self, n: i64) {
        self.0 = n as u64;
    }
}

/// What the preparer computes for a row: its keys with their hashes, and the column values
/// of a new lead (emails, phones, tags, metadata as JSON; the search text).
struct Ready {
    keys: Vec<(String, i64)>,
    columns: [String; 5],
}

fn ready(draft: &LeadDraft) -> Ready {
    let keys = draft.identity_keys().into_iter().map(|k| (k.clone(), key_hash(&k))).collect();
    let text = search::text_of(draft.name.as_deref().unwrap_or(""), &draft.emails, &draft.phones);
    Ready { keys, columns: [json(&draft.emails), json(&draft.phones), json(&draft.tags), json(&draft.metadata), text] }
}

struct State {
    conn: Connection,
    plan: ImportPlan,
    store: String,
    /// Hashes of keys in the index (as of the last refresh, plus our own flushed ones).
    filter: KeyFilter,
    /// Keys added in this segment and not yet in `lead_keys`: hash → lead.
    staged: HashMap<i64, LeadId, BuildHasherDefault<PreHashed>>,
    in_segment: Option<Instant>,
    /// `leads_version` as of our last commit; another value means someone else wrote leads.
    seen_version: i64,
    /// The search group new leads are appended to, written back when we move on.
    group: OpenGroup,
    /// New leads not yet written (ids assigned by us), flushed in multi-row INSERTs.
    pending: Vec<NewRow>,
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
}

/// Copies committed WAL pages into the database on its own thread and connection, so the
/// writer thread never stalls on a checkpoint (a passive checkpoint runs beside a writer).
struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &std::path::Path) -> Option<Checkpointer> {
        let conn = connect(path).ok()?;
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        });
        Some(Checkpointer { wake, thread })
    }

    fn nudge(&self) {
        let _ = self.wake.try_send(());
    }

    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

/// Most leads whose pre-import state is remembered (24 bytes each); past it, rows that undo
/// each other are still applied correctly but `updated_at` moves.
const MAX_ORIGINALS: usize = 500_000;

/// A hash of everything about a lead but `updated_at`.
fn content_hash(lead: &Lead) -> u64 {
    let mut copy = lead.clone();
    copy.updated_at = chrono::DateTime::<Utc>::UNIX_EPOCH;
    xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&copy).unwrap_or_default())
}

/// A new lead's column values, waiting for a multi-row INSERT.
struct NewRow {
    id: LeadId,
    name: String,
    json: [String; 4],
    total_spend: f64,
    visits: i64,
    last_order_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// Rows per multi-row INSERT: fewer statement executions, far less per-row overhead.
const ROWS_PER_INSERT: usize = 64;

/// Splits `items` into chunks of `max`, then of falling powers of two, so a flush of any size
/// uses a handful of distinct (cached) statements rather than one per size.
fn power_of_two_chunks<T>(mut items: &[T], max: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut size = max;
    while !items.is_empty() {
        while size > items.len() {
            size /= 2;
        }
        let (head, rest) = items.split_at(size);
        chunks.push(head);
        items = rest;
    }
    chunks
}

fn insert_leads_sql(rows: usize) -> String {
    let one = "(?,?,?,?,?,?,?,?,?,?,?)";
    format!(
        "INSERT INTO leads (id, name, emails, phones, total_spend, visits, last_order_at, tags, metadata, created_at, updated_at) VALUES {}",
        vec![one; rows].join(",")
    )
}

fn insert_keys_sql(rows: usize) -> String {
    format!("INSERT INTO lead_keys (h, lead_id) VALUES {}", vec!["(?,?)"; rows].join(","))
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
    pub async fn begin(path: PathBuf, plan: ImportPlan) -> Result<SqliteImport> {
        let store = format!("sqlite:{}", path.display());
        let state = tokio::task::spawn_blocking(move || -> Result<State> {
            let conn = connect(&path).map_err(db_err(&store))?;
            conn.execute_batch(CACHE_PRAGMA).map_err(db_err(&store))?;
            // Checkpoints run on the checkpointer's thread instead (see `Checkpointer`).
            let checkpointer = if plan.dry_run { None } else { Checkpointer::start(&path) };
            if checkpointer.is_some() {
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(db_err(&store))?;
            }
            conn.set_prepared_statement_cache_capacity(64);
            let existing: i64 =
                conn.query_row("SELECT count(*) FROM lead_keys", [], |r| r.get(0)).map_err(db_err(&store))?;
            let expected = existing as u64 + plan.expected_rows.unwrap_or(100_000) * 2;
            Ok(State {
                conn,
                plan,
                store,
                filter: KeyFilter::with_capacity(expected),
                staged: HashMap::default(),
                in_segment: None,
                seen_version: -1,
                group: OpenGroup::default(),
                pending: Vec::with_capacity(ROWS_PER_INSERT),
                next_id: 1,
                first_new_id: None,
                originals: HashMap::new(),
                net_unchanged: 0,
                checkpointer,
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
        let mut stmt = self.conn.prepare("SELECT h FROM lead_keys")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            self.filter.insert(row.get(0)?);
        }
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
        for row in rows {
            let ready = match row.extra.and_then(|e| e.downcast::<Ready>().ok()) {
                Some(r) => *r,
                None => ready(&row.draft),
            };
            match self.apply_row(row.draft, ready, now) {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.in_segment = None;
                    return Err(Error::sqlite(&self.store, &e));
                }
            }
        }
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

    /// Whether lead `id`'s stored emails/phones include `key` (the JSON columns are searched
    /// for the quoted value; normalized emails and phones never need escaping).
    fn confirm(&self, id: LeadId, key: &str) -> rusqlite::Result<bool> {
        let (column, value) = match key.split_once(':') {
            Some(("e", v)) => ("emails", v),
            Some(("p", v)) => ("phones", v),
            _ => return Ok(false),
        };
        let sql = format!("SELECT instr({column}, ?2) > 0 FROM leads WHERE id = ?1");
        let quoted = format!("\"{value}\"");
        Ok(self.conn.prepare_cached(&sql)?.query_row(params![id, quoted], |r| r.get(0)).optional()?.unwrap_or(false))
    }

    /// The lead owning `key`, confirmed: staged keys, then the index, then the overflow.
    fn owner_of(&mut self, key: &str, hash: i64) -> rusqlite::Result<Option<LeadId>> {
        let candidate = match self.staged.get(&hash) {
            Some(&id) => Some(id),
            None if self.filter.may_contain(hash) => keys::hashed_owner(&self.conn, hash)?,
            None => return Ok(None),
        };
        self.flush_pending()?;
        if let Some(id) = candidate {
            if self.confirm(id, key)? {
                return Ok(Some(id));
            }
        }
        keys::overflow_owner(&self.conn, key)
    }

    /// Records a key no lead owns yet.
    fn add_key(&mut self, key: &str, hash: i64, id: LeadId) -> rusqlite::Result<()> {
        let taken = self.staged.contains_key(&hash)
            || (self.filter.may_contain(hash) && keys::hashed_owner(&self.conn, hash)?.is_some());
        if taken {
            keys::insert_overflow(&self.conn, key, id)?;
            self.filter.insert(hash);
        } else {
            self.staged.insert(hash, id);
        }
        Ok(())
    }

    fn remove_key(&mut self, key: &str, id: LeadId) -> rusqlite::Result<()> {
        let hash = key_hash(key);
        if self.staged.get(&hash) == Some(&id) && keys::overflow_owner(&self.conn, key)? != Some(id) {
            self.staged.remove(&hash);
            return Ok(());
        }
        keys::remove(&self.conn, key, id)
    }

    fn apply_row(
        &mut self,
        draft: LeadDraft,
        mut ready: Ready,
        now: chrono::DateTime<Utc>,
    ) -> rusqlite::Result<RowOutcome> {
        let mut owners: Vec<(String, LeadId)> = Vec::new();
        for (key, hash) in &ready.keys {
            if let Some(id) = self.owner_of(key, *hash)? {
                owners.push((key.clone(), id));
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
            let keys = std::mem::take(&mut ready.keys);
            let id = self.insert_new(draft, ready, now)?;
            for (key, hash) in &keys {
                self.add_key(key, *hash, id)?;
            }
            return Ok(RowOutcome::Inserted(id));
        };
        self.flush_pending()?;
        let Some(old) = load_lead(&self.conn, id)? else {
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

    fn insert_new(&mut self, d: LeadDraft, ready: Ready, now: chrono::DateTime<Utc>) -> rusqlite::Result<LeadId> {
        let id = self.next_id;
        self.next_id += 1;
        let [emails, phones, tags, metadata, text] = ready.columns;
        self.put_search(id, &text)?;
        self.pending.push(NewRow {
            id,
            name: d.name.unwrap_or_default(),
            json: [emails, phones, tags, metadata],
            total_spend: d.total_spend.unwrap_or(0.0),
            visits: d.visits.unwrap_or(0),
            last_order_at: d.last_order_at.as_ref().map(to_ms),
            created_at: to_ms(&d.created_at.unwrap_or(now)),
            updated_at: to_ms(&now),
        });
        if self.pending.len() >= ROWS_PER_INSERT {
            self.flush_pending()?;
        }
        Ok(id)
    }

    /// Writes buffered new leads. Must run before anything reads `leads`.
    fn flush_pending(&mut self) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        for chunk in power_of_two_chunks(&rows, ROWS_PER_INSERT) {
            let mut stmt = self.conn.prepare_cached(&insert_leads_sql(chunk.len()))?;
            let mut i = 0;
            let mut bind = |stmt: &mut rusqlite::Statement, v: &dyn rusqlite::ToSql| {
                i += 1;
                stmt.raw_bind_parameter(i, v)
            };
            for r in chunk {
                bind(&mut stmt, &r.id)?;
                bind(&mut stmt, &r.name)?;
                bind(&mut stmt, &r.json[0])?;
                bind(&mut stmt, &r.json[1])?;
                bind(&mut stmt, &r.total_spend)?;
                bind(&mut stmt, &r.visits)?;
                bind(&mut stmt, &r.last_order_at)?;
                bind(&mut stmt, &r.json[2])?;
                bind(&mut stmt, &r.json[3])?;
                bind(&mut stmt, &r.created_at)?;
                bind(&mut stmt, &r.updated_at)?;
            }
            stmt.raw_execute()?;
        }
        self.pending = rows;
        self.pending.clear();
        Ok(())
    }

    fn write_keys(&self, keys: &[(i64, LeadId)]) -> rusqlite::Result<()> {
        for chunk in power_of_two_chunks(keys, ROWS_PER_INSERT * 4) {
            let mut stmt = self.conn.prepare_cached(&insert_keys_sql(chunk.len()))?;
            for (i, (hash, id)) in chunk.iter().enumerate() {
                stmt.raw_bind_parameter(2 * i + 1, hash)?;
                stmt.raw_bind_parameter(2 * i + 2, id)?;
            }
            stmt.raw_execute()?;
        }
        Ok(())
    }

    /// Writes a lead's search record through the open group.
    fn put_search(&mut self, id: LeadId, text: &str) -> rusqlite::Result<()> {
        let grp = search::group_of(id);
        if self.group.grp != Some(grp) {
            if self.group.grp.is_some_and(|open| grp < open) {
                // An update to an older lead: edit its group in place, keep appending here.
                return search::set_record(&self.conn, id, Some(text));
            }
            self.close_group()?;
            let body = search::load_group(&self.conn, grp)?;
            self.group = OpenGroup { grp: Some(grp), last_id: search::last_id(&body).unwrap_or(0), body };
        }
        if id > self.group.last_id {
            search::push_record(&mut self.group.body, id, text);
            self.group.last_id = id;
        } else {
            self.group.body = search::with_record(&self.group.body, id, Some(text));
        }
        Ok(())
    }

    fn close_group(&mut self) -> rusqlite::Result<()> {
        let group = std::mem::take(&mut self.group);
        match group.grp {
            Some(grp) => search::store_group(&self.conn, grp, &group.body),
            None => Ok(()),
        }
    }

    fn rewrite(&mut self, old: &Lead, lead: &Lead) -> rusqlite::Result<()> {
        update_lead_columns(&self.conn, lead)?;
        self.put_search(lead.id, &search::search_text(lead))?;
        let (old_keys, new_keys) = (old.identity_keys(), lead.identity_keys());
        for key in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            self.remove_key(key, lead.id)?;
        }
        for key in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            self.add_key(key, key_hash(key), lead.id)?;
        }
        Ok(())
    }

    /// Notes the state of a pre-existing lead before this import first updates it.
    fn remember_original(&mut self, old: &Lead) {
        if self.first_new_id.is_some_and(|first| old.id >= first) {
            return;
        }
        if let Some(entry) = self.originals.get_mut(&old.id) {
            entry.2 += 1;
        } else if self.originals.len() < MAX_ORIGINALS {
            self.originals.insert(old.id, (content_hash(old), to_ms(&old.updated_at), 1));
        }
    }

    /// Leads updated more than once and now back to their pre-import content get their
    /// `updated_at` back: the import changed nothing about them.
    fn restore_undone(&mut self) -> rusqlite::Result<()> {
        let candidates: Vec<(LeadId, u64, i64, u32)> =
            self.originals.iter().filter(|(_, v)| v.2 >= 2).map(|(id, v)| (*id, v.0, v.1, v.2)).collect();
        for (id, hash, updated_at, rows) in candidates {
            let Some(lead) = load_lead(&self.conn, id)? else { continue };
            if content_hash(&lead) == hash {
                self.conn
                    .prepare_cached("UPDATE leads SET updated_at = ?2 WHERE id = ?1")?
                    .execute(params![id, updated_at])?;
                self.net_unchanged += u64::from(rows);
                self.originals.remove(&id);
            }
        }
        Ok(())
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
        if let Some(c) = self.checkpointer.take() {
            c.stop();
        }
        Ok(self.net_unchanged)
    }
}

/// "leads 3 and 7", "leads 3, 7 and 9": the distinct leads of `owners`, in order.
fn lead_list(owners: &[(String, LeadId)]) -> String {
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
    fn chunks_fall_by_powers_of_two() {
        let items: Vec<u32> = (0..75).collect();
        let sizes: Vec<usize> = power_of_two_chunks(&items, 64).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [64, 8, 2, 1]);
        assert!(power_of_two_chunks::<u32>(&[], 64).is_empty());
    }

    #[test]
    fn conflicts_name_each_lead_once() {
        let owners = |ids: &[LeadId]| ids.iter().map(|id| (format!("e:{id}@x.com"), *id)).collect::<Vec<_>>();
        assert_eq!(lead_list(&owners(&[3, 7])), "leads 3 and 7");
        assert_eq!(lead_list(&owners(&[3, 7, 3, 9])), "leads 3, 7 and 9");
    }

    #[test]
    fn filter_has_no_false_negatives() {
        let mut f = KeyFilter::with_capacity(10_000);
        for i in 0..10_000 {
            f.insert(key_hash(&format!("e:user{i}@example.com")));
        }
        assert!((0..10_000).all(|i| f.may_contain(key_hash(&format!("e:user{i}@example.com")))));
        let false_hits = (0..10_000).filter(|i| f.may_contain(key_hash(&format!("p:+44{i}")))).count();
        assert!(false_hits < 100, "{false_hits} false positives in 10000");
    }
}
