//! Leads in SQLite: row mapping, identity keys, listing, and the `Store` implementation.
//!
//! Lists (emails, phones, tags) and metadata are JSON columns; timestamps are Unix
//! milliseconds so range rules compare integers. `lead_keys` maps every normalized email and
//! phone to its lead and is the unique index that dedup relies on. Substring search has its
//! own structure, in `search.rs`.

use super::rows::{
    LEAD_COLUMNS, bump_leads_version, describe_owners, from_ms, json, lead_from_row, lead_values, load_lead, to_ms,
    update_lead_columns,
};
use super::{SqliteStore, db_err};
use super::{keys, listing, search};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::segment::{NewSegment, Rule, Segment, SegmentId};
use crate::engine::store::{ImportPlan, ImportSession, LeadFilter, LeadQuery, QueryPlan, SortKey, Store};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

/// Inserts a new lead's row and search line (its `id` is ignored; keys are the caller's).
pub(super) fn insert_lead_row(conn: &Connection, lead: &Lead) -> rusqlite::Result<LeadId> {
    conn.prepare_cached(
        "INSERT INTO leads (name, emails, phones, total_spend, visits, last_order_at, tags, metadata, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params_from_iter(lead_values(lead)))?;
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

pub(super) fn lookup_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeadId>> {
    keys::owner(conn, key)
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

/// Every id `query` covers, in its order (the listing its pages are cut from).
fn ordered_ids(conn: &Connection, query: &LeadQuery) -> rusqlite::Result<Vec<LeadId>> {
    let ids = search_ids(conn, &query.filter)?;
    // Search matches come sorted by id: no SQL needed for an id order.
    if let Some(mut found) = ids.clone().filter(|_| query.sort == SortKey::Id && only_search(&query.filter)) {
        if query.desc {
            found.reverse();
        }
        return Ok(found);
    }
    let mut params = Vec::new();
    let clause = where_clause(&query.filter, ids.as_deref(), &mut params);
    let sql = format!("SELECT l.id FROM leads l {clause} {}", order_by(query));
    let mut stmt = conn.prepare(&sql)?;
    stmt.query_map(rusqlite::params_from_iter(params), |r| r.get(0))?.collect()
}

/// A first page of an unfiltered listing in an indexed order, read straight from the index.
fn direct_page(conn: &Connection, query: &LeadQuery) -> rusqlite::Result<Vec<Lead>> {
    let limit = query.limit.map(|l| l.min(i64::MAX as usize) as i64).unwrap_or(-1);
    let sql = format!(
        "SELECT {LEAD_COLUMNS} FROM leads l {} LIMIT {limit} OFFSET {}",
        order_by(query),
        query.offset.min(i64::MAX as usize)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_map([], lead_from_row)?.collect()
}

fn order_by(query: &LeadQuery) -> String {
    let dir = if query.desc { "DESC" } else { "ASC" };
    let column = match query.sort {
        SortKey::Id => return format!("ORDER BY l.id {dir}"),
        // NOT NULL, and indexed with the id (`leads_created`): no NULL ordering to defeat it.
        SortKey::CreatedAt => return format!("ORDER BY l.created_at {dir}, l.id {dir}"),
        SortKey::Name => "l.name COLLATE NOCASE",
        SortKey::TotalSpend => "l.total_spend",
        SortKey::Visits => "l.visits",
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
        let bulk = !plan.dry_run && self.call(|conn| Ok(super::import::bulk::enter(conn))).await?;
        let session = super::import::SqliteImport::begin(self.path.clone(), plan, bulk).await?;
        Ok(Box::new(session))
    }

    async fn add_lead(&self, draft: LeadDraft) -> Result<Lead> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = super::begin_write(conn).map_err(db_err(&store))?;
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
            let tx = super::begin_write(conn).map_err(db_err(&store))?;
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
            let tx = super::begin_write(conn).map_err(db_err(&store))?;
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
        let (store, query, listings) = (self.describe_path(), query.clone(), self.listings.clone());
        self.call(move |conn| {
            if listing::direct(&query) && !listings.has(conn, &query).map_err(db_err(&store))? {
                return direct_page(conn, &query).map_err(db_err(&store));
            }
            let ids = listings.ids(conn, &query, |c| ordered_ids(c, &query)).map_err(db_err(&store))?;
            let mut leads = Vec::new();
            for &id in listing::page(&ids, query.offset, query.limit) {
                // A lead deleted by another process since the listing was read is left out.
                leads.extend(load_lead(conn, id).map_err(db_err(&store))?);
            }
            Ok(leads)
        })
        .await
    }

    async fn count_leads(&self, filter: &LeadFilter) -> Result<u64> {
        let (store, filter, listings) = (self.describe_path(), filter.clone(), self.listings.clone());
        self.call(move |conn| {
            listings
                .count(conn, &filter, |c| {
                    let ids = search_ids(c, &filter)?;
                    if let Some(ids) = ids.as_ref().filter(|_| only_search(&filter)) {
                        return Ok(ids.len() as u64);
                    }
                    let mut params = Vec::new();
                    let clause = where_clause(&filter, ids.as_deref(), &mut params);
                    let sql = format!("SELECT count(*) FROM leads l {clause}");
                    c.query_row(&sql, rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0)).map(|n| n as u64)
                })
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
