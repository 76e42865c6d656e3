//! Leads in SQLite: row mapping, identity keys, listing, and the `Store` implementation.
//!
//! Lists (emails, phones, tags) and metadata are JSON columns; timestamps are Unix
//! milliseconds so range rules compare integers. `lead_keys` maps every normalized email and
//! phone to its lead and is the unique index that dedup relies on. Substring search has its
//! own structure, in `search.rs`.

use super::{SqliteStore, db_err};
use super::{keys, search};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::segment::{NewSegment, Rule, Segment, SegmentId};
use crate::engine::store::{ImportPlan, ImportSession, LeadFilter, LeadQuery, QueryPlan, SortKey, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(super) const LEAD_COLUMNS: &str = "l.id, l.name, l.emails, l.phones, l.total_spend, l.visits, \
     l.last_order_at, l.tags, l.metadata, l.created_at, l.updated_at";

pub(super) fn to_ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

pub(super) fn lead_from_row(row: &Row) -> rusqlite::Result<Lead> {
    Ok(Lead {
        id: row.get(0)?,
        name: row.get(1)?,
        emails: json_col(row, 2)?,
        phones: json_col(row, 3)?,
        total_spend: row.get(4)?,
        visits: row.get(5)?,
        last_order_at: row.get::<_, Option<i64>>(6)?.map(from_ms),
        tags: json_col(row, 7)?,
        metadata: json_col(row, 8)?,
        created_at: from_ms(row.get(9)?),
        updated_at: from_ms(row.get(10)?),
    })
}

pub(super) fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Inserts a new lead's row and search line (its `id` is ignored; keys are the caller's).
pub(super) fn insert_lead_row(conn: &Connection, lead: &Lead) -> rusqlite::Result<LeadId> {
    conn.prepare_cached(
        "INSERT INTO leads (name, emails, phones, total_spend, visits, last_order_at, tags, metadata, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        lead.name,
        json(&lead.emails),
        json(&lead.phones),
        lead.total_spend,
        lead.visits,
        lead.last_order_at.as_ref().map(to_ms),
        json(&lead.tags),
        json(&lead.metadata),
        to_ms(&lead.created_at),
        to_ms(&lead.updated_at),
    ])?;
    let id = conn.last_insert_rowid();
    search::set_record(conn, id, Some(&search::search_text(lead)))?;
    Ok(id)
}

/// Inserts a new lead with its identity keys; returns the id.
pub(super) fn insert_lead(conn: &Connection, lead: &Lead) -> rusqlite::Result<LeadId> {
    let id = insert_lead_row(conn, lead)?;
    for key in lead.identity_keys() {
        keys::insert(conn, &key, id)?;
    }
    Ok(id)
}

/// Rewrites a stored lead's columns (search line and keys are the caller's).
pub(super) fn update_lead_columns(conn: &Connection, lead: &Lead) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE leads SET name = ?2, emails = ?3, phones = ?4, total_spend = ?5, visits = ?6,
             last_order_at = ?7, tags = ?8, metadata = ?9, created_at = ?10, updated_at = ?11
         WHERE id = ?1",
    )?
    .execute(params![
        lead.id,
        lead.name,
        json(&lead.emails),
        json(&lead.phones),
        lead.total_spend,
        lead.visits,
        lead.last_order_at.as_ref().map(to_ms),
        json(&lead.tags),
        json(&lead.metadata),
        to_ms(&lead.created_at),
        to_ms(&lead.updated_at),
    ])?;
    Ok(())
}

/// Rewrites a stored lead's row and search line (keys are the caller's).
pub(super) fn update_lead_row(conn: &Connection, lead: &Lead) -> rusqlite::Result<()> {
    update_lead_columns(conn, lead)?;
    search::set_record(conn, lead.id, Some(&search::search_text(lead)))
}

/// Rewrites a stored lead, moving its identity keys from `old`'s to `lead`'s.
pub(super) fn update_lead(conn: &Connection, old: &Lead, lead: &Lead) -> rusqlite::Result<()> {
    update_lead_row(conn, lead)?;
    let (old_keys, new_keys) = (old.identity_keys(), lead.identity_keys());
    for key in old_keys.iter().filter(|k| !new_keys.contains(k)) {
        keys::remove(conn, key, lead.id)?;
    }
    for key in new_keys.iter().filter(|k| !old_keys.contains(k)) {
        keys::insert(conn, key, lead.id)?;
    }
    Ok(())
}

pub(super) fn load_lead(conn: &Connection, id: LeadId) -> rusqlite::Result<Option<Lead>> {
    conn.prepare_cached(&format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id = ?1"))?
        .query_row([id], lead_from_row)
        .optional()
}

pub(super) fn lookup_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeadId>> {
    keys::owner(conn, key)
}

/// Records that leads changed, so an import running in another process reloads its filter.
pub(super) fn bump_leads_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'leads_version' RETURNING value")?
        .query_row([], |r| r.get(0))
}

pub(super) fn leads_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = 'leads_version'")?.query_row([], |r| r.get(0))
}

/// Describes which stored leads own the keys of `lead`, other than `except`.
fn owners_of(conn: &Connection, keys: &[String], except: Option<LeadId>) -> rusqlite::Result<Vec<(String, LeadId)>> {
    let mut owners = Vec::new();
    for key in keys {
        if let Some(id) = lookup_key(conn, key)? {
            if Some(id) != except {
                owners.push((key.clone(), id));
            }
        }
    }
    Ok(owners)
}

/// "email ada@x.com belongs to lead 12, phone +44… to lead 40".
pub(super) fn describe_owners(owners: &[(String, LeadId)]) -> String {
    owners
        .iter()
        .map(|(key, id)| {
            let (kind, value) = key.split_once(':').unwrap_or(("key", key));
            let kind = if kind == "e" { "email" } else { "phone" };
            format!("{kind} {value} belongs to lead {id}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The WHERE clause for a filter; `ids` are the search matches when a search was given.
fn where_clause(filter: &LeadFilter, ids: Option<&[LeadId]>, params: &mut Vec<Value>) -> String {
    let mut conds: Vec<String> = Vec::new();
    if let Some(ids) = ids {
        params.push(Value::Text(json(&ids)));
        conds.push(format!("l.id IN (SELECT value FROM json_each(?{}))", params.len()));
    }
    if let Some(min) = filter.min_spend {
        params.push(Value::Real(min));
        conds.push(format!("l.total_spend >= ?{}", params.len()));
    }
    if let Some(max) = filter.max_spend {
        params.push(Value::Real(max));
        conds.push(format!("l.total_spend <= ?{}", params.len()));
    }
    for tag in &filter.tags {
        params.push(Value::Text(tag.clone()));
        conds.push(format!(
            "EXISTS (SELECT 1 FROM json_each(l.tags) t WHERE t.value = ?{} COLLATE NOCASE)",
            params.len()
        ));
    }
    if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) }
}

/// Search matches for the filter's term (`None` when there is no search).
fn search_ids(conn: &Connection, filter: &LeadFilter) -> rusqlite::Result<Option<Vec<LeadId>>> {
    match filter.search.as_deref().map(search::normalize_term).filter(|t| !t.is_empty()) {
        Some(term) => search::matching_ids(conn, &term).map(Some),
        None => Ok(None),
    }
}

fn only_search(filter: &LeadFilter) -> bool {
    filter.min_spend.is_none() && filter.max_spend.is_none() && filter.tags.is_empty()
}

fn order_by(query: &LeadQuery) -> String {
    let dir = if query.desc { "DESC" } else { "ASC" };
    let column = match query.sort {
        SortKey::Id => return format!("ORDER BY l.id {dir}"),
        SortKey::Name => "l.name COLLATE NOCASE",
        SortKey::TotalSpend => "l.total_spend",
        SortKey::Visits => "l.visits",
        SortKey::CreatedAt => "l.created_at",
        SortKey::LastOrderAt => "l.last_order_at",
    };
    format!("ORDER BY {column} IS NULL, {column} {dir}, l.id {dir}")
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.describe_path()
    }

    async fn begin_import(&self, plan: ImportPlan) -> Result<Box<dyn ImportSession>> {
        let session = super::import::SqliteImport::begin(self.path.clone(), plan).await?;
        Ok(Box::new(session))
    }

    async fn add_lead(&self, draft: LeadDraft) -> Result<Lead> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err(&store))?;
            let owners = owners_of(&tx, &draft.identity_keys(), None).map_err(db_err(&store))?;
            if !owners.is_empty() {
                return Err(Error::Conflict(format!("a lead with these details exists: {}", describe_owners(&owners))));
            }
            // At the millisecond the row keeps, so the lead returned is the lead stored.
            let mut lead = draft.into_lead(0, from_ms(to_ms(&Utc::now())));
            lead.id = insert_lead(&tx, &lead).map_err(db_err(&store))?;
            bump_leads_version(&tx).map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            Ok(lead)
        })
        .await
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>> {
        let store = self.describe_path();
        self.call(move |conn| load_lead(conn, id).map_err(db_err(&store))).await
    }

    async fn find_lead_by_key(&self, key: &str) -> Result<Option<Lead>> {
        let (store, key) = (self.describe_path(), key.to_string());
        self.call(move |conn| {
            let Some(id) = lookup_key(conn, &key).map_err(db_err(&store))? else { return Ok(None) };
            load_lead(conn, id).map_err(db_err(&store))
        })
        .await
    }

    async fn save_lead(&self, lead: &Lead) -> Result<()> {
        let (store, lead) = (self.describe_path(), lead.clone());
        self.call(move |conn| {
            let tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err(&store))?;
            let old = load_lead(&tx, lead.id)
                .map_err(db_err(&store))?
                .ok_or_else(|| Error::NotFound(format!("no lead with id {}", lead.id)))?;
            let owners = owners_of(&tx, &lead.identity_keys(), Some(lead.id)).map_err(db_err(&store))?;
            if !owners.is_empty() {
                return Err(Error::Conflict(format!("cannot update lead {}: {}", lead.id, describe_owners(&owners))));
            }
            update_lead(&tx, &old, &lead).map_err(db_err(&store))?;
            bump_leads_version(&tx).map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))
        })
        .await
    }

    async fn delete_lead(&self, id: LeadId) -> Result<bool> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err(&store))?;
            let Some(old) = load_lead(&tx, id).map_err(db_err(&store))? else { return Ok(false) };
            let run = |sql: &str| tx.execute(sql, [id]).map_err(db_err(&store));
            for key in old.identity_keys() {
                keys::remove(&tx, &key, id).map_err(db_err(&store))?;
            }
            search::set_record(&tx, id, None).map_err(db_err(&store))?;
            run("DELETE FROM leads WHERE id = ?1")?;
            bump_leads_version(&tx).map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            Ok(true)
        })
        .await
    }

    async fn list_leads(&self, query: &LeadQuery) -> Result<Vec<Lead>> {
        let (store, query) = (self.describe_path(), query.clone());
        self.call(move |conn| {
            let mut ids = search_ids(conn, &query.filter).map_err(db_err(&store))?;
            let mut offset = query.offset;
            // Search matches come sorted by id: page them here rather than in SQL.
            if let Some(found) = ids.as_mut().filter(|_| query.sort == SortKey::Id && only_search(&query.filter)) {
                if query.desc {
                    found.reverse();
                }
                let end = query.limit.map_or(found.len(), |l| offset.saturating_add(l).min(found.len()));
                *found = found.get(offset.min(end)..end).unwrap_or_default().to_vec();
                offset = 0;
            }
            let mut params = Vec::new();
            let clause = where_clause(&query.filter, ids.as_deref(), &mut params);
            let limit = query.limit.map(|l| l.min(i64::MAX as usize) as i64).unwrap_or(-1);
            // SQLite reads an OFFSET past i64 as a real and fails; no store is that big anyway.
            let offset = offset.min(i64::MAX as usize);
            let sql = format!(
                "SELECT {LEAD_COLUMNS} FROM leads l {clause} {} LIMIT {limit} OFFSET {offset}",
                order_by(&query)
            );
            let mut stmt = conn.prepare(&sql).map_err(db_err(&store))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), lead_from_row).map_err(db_err(&store))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err(&store))
        })
        .await
    }

    async fn count_leads(&self, filter: &LeadFilter) -> Result<u64> {
        let (store, filter) = (self.describe_path(), filter.clone());
        self.call(move |conn| {
            let ids = search_ids(conn, &filter).map_err(db_err(&store))?;
            if let Some(ids) = ids.as_ref().filter(|_| only_search(&filter)) {
                return Ok(ids.len() as u64);
            }
            let mut params = Vec::new();
            let clause = where_clause(&filter, ids.as_deref(), &mut params);
            let sql = format!("SELECT count(*) FROM leads l {clause}");
            conn.query_row(&sql, rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db_err(&store))
        })
        .await
    }

    async fn scan_leads(&self, after: LeadId, limit: usize) -> Result<Vec<Lead>> {
        let store = self.describe_path();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id > ?1 ORDER BY l.id LIMIT ?2"))
                .map_err(db_err(&store))?;
            let rows = stmt.query_map(params![after, limit as i64], lead_from_row).map_err(db_err(&store))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err(&store))
        })
        .await
    }

    async fn metadata_keys(&self) -> Result<Vec<String>> {
        let store = self.describe_path();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT DISTINCT j.key FROM leads l, json_each(l.metadata) j WHERE l.metadata != '{}' ORDER BY 1",
                )
                .map_err(db_err(&store))?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(db_err(&store))?;
            rows.collect::<rusqlite::Result<Vec<String>>>().map_err(db_err(&store))
        })
        .await
    }

    // Segments: the bodies are in segments.rs.

    async fn create_segment(&self, segment: NewSegment) -> Result<Segment> {
        self.insert_segment(segment).await
    }

    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>> {
        self.load_segment(id).await
    }

    async fn get_segment_by_name(&self, name: &str) -> Result<Option<Segment>> {
        self.load_segment_by_name(name).await
    }

    async fn list_segments(&self) -> Result<Vec<Segment>> {
        self.load_segments().await
    }

    async fn update_segment(&self, segment: &Segment) -> Result<()> {
        self.rewrite_segment(segment).await
    }

    async fn delete_segment(&self, id: SegmentId) -> Result<bool> {
        self.remove_segment(id).await
    }

    async fn campaigns_using_segment(&self, id: SegmentId) -> Result<Vec<String>> {
        self.campaigns_of_segment(id).await
    }

    async fn count_matching(&self, rule: &Rule, now: DateTime<Utc>) -> Result<u64> {
        self.count_rule(rule, now).await
    }

    async fn count_matching_each(&self, rules: &[Rule], now: DateTime<Utc>) -> Result<Vec<u64>> {
        self.count_rules(rules, now).await
    }

    async fn sample_matching(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<Lead>> {
        self.sample_rule(rule, now, limit).await
    }

    async fn scan_matching(&self, rule: &Rule, now: DateTime<Utc>, after: LeadId, limit: usize) -> Result<Vec<Lead>> {
        self.scan_rule(rule, now, after, limit).await
    }

    async fn explain_matching(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<QueryPlan>> {
        self.explain_rule(rule, now, limit).await
    }
}
