//! Leads in SQLite: row mapping, identity keys, listing, and the `Store` implementation.
//!
//! Lists (emails, phones, tags) and metadata are JSON columns; timestamps are Unix
//! milliseconds so range rules compare integers. `lead_keys` maps every normalized email and
//! phone to its lead and is the unique index that dedup relies on. `lead_search` holds one
//! lower-cased line per lead (name, emails, phones) so a substring search scans a narrow table.

use super::{SqliteStore, db_err};

use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::store::{ImportPlan, ImportSession, LeadFilter, LeadQuery, SortKey, Store};
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

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The lower-cased line `lead_search` holds for a lead.
pub(super) fn search_text(lead: &Lead) -> String {
    let mut text = lead.name.to_lowercase();
    for v in lead.emails.iter().chain(&lead.phones) {
        text.push('\n');
        text.push_str(v);
    }
    text
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
    conn.prepare_cached("INSERT INTO lead_search (id, text) VALUES (?1, ?2)")?.execute(params![id, search_text(lead)])?;
    Ok(id)
}

/// Inserts a new lead with its identity keys; returns the id.
pub(super) fn insert_lead(conn: &Connection, lead: &Lead) -> rusqlite::Result<LeadId> {
    let id = insert_lead_row(conn, lead)?;
    let mut key_stmt = conn.prepare_cached("INSERT INTO lead_keys (key, lead_id) VALUES (?1, ?2)")?;
    for key in lead.identity_keys() {
        key_stmt.execute(params![key, id])?;
    }
    Ok(id)
}

/// Rewrites a stored lead's row and search line (keys are the caller's).
pub(super) fn update_lead_row(conn: &Connection, lead: &Lead) -> rusqlite::Result<()> {
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
    conn.prepare_cached("UPDATE lead_search SET text = ?2 WHERE id = ?1")?.execute(params![lead.id, search_text(lead)])?;
    Ok(())
}

/// Rewrites a stored lead, moving its identity keys from `old`'s to `lead`'s.
pub(super) fn update_lead(conn: &Connection, old: &Lead, lead: &Lead) -> rusqlite::Result<()> {
    update_lead_row(conn, lead)?;
    let (old_keys, new_keys) = (old.identity_keys(), lead.identity_keys());
    let mut del = conn.prepare_cached("DELETE FROM lead_keys WHERE key = ?1 AND lead_id = ?2")?;
    for key in old_keys.iter().filter(|k| !new_keys.contains(k)) {
        del.execute(params![key, lead.id])?;
    }
    let mut add = conn.prepare_cached("INSERT INTO lead_keys (key, lead_id) VALUES (?1, ?2)")?;
    for key in new_keys.iter().filter(|k| !old_keys.contains(k)) {
        add.execute(params![key, lead.id])?;
    }
    Ok(())
}

pub(super) fn load_lead(conn: &Connection, id: LeadId) -> rusqlite::Result<Option<Lead>> {
    conn.prepare_cached(&format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id = ?1"))?
        .query_row([id], lead_from_row)
        .optional()
}

pub(super) fn lookup_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeadId>> {
    conn.prepare_cached("SELECT lead_id FROM lead_keys WHERE key = ?1")?.query_row([key], |r| r.get(0)).optional()
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

fn where_clause(filter: &LeadFilter, params: &mut Vec<Value>) -> (String, String) {
    let mut from = String::from("leads l");
    let mut conds: Vec<String> = Vec::new();
    if let Some(term) = filter.search.as_ref().map(|s| search_term(s)).filter(|s| !s.is_empty()) {
        from = String::from("lead_search s JOIN leads l ON l.id = s.id");
        params.push(Value::Text(term));
        conds.push(format!("instr(s.text, ?{}) > 0", params.len()));
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
    let clause = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
    (from, clause)
}

/// The search term as `lead_search` stores text: lower-cased; a phone-like term (digits with
/// spaces, dashes, dots, parentheses) loses its punctuation so `7700 900` finds `+447700900123`.
fn search_term(term: &str) -> String {
    let term = term.trim();
    let phone_like = term.chars().filter(|c| c.is_ascii_digit()).count() >= 3
        && term.chars().all(|c| c.is_ascii_digit() || " -.()+".contains(c));
    if phone_like { term.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect() } else { term.to_lowercase() }
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
                return Err(Error::Conflict(format!(
                    "a lead with these details exists: {} (use `crm leads update` to change it)",
                    describe_owners(&owners)
                )));
            }
            let mut lead = draft.into_lead(0, Utc::now());
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
            let mut del =
                tx.prepare_cached("DELETE FROM lead_keys WHERE key = ?1 AND lead_id = ?2").map_err(db_err(&store))?;
            for key in old.identity_keys() {
                del.execute(params![key, id]).map_err(db_err(&store))?;
            }
            drop(del);
            run("DELETE FROM lead_search WHERE id = ?1")?;
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
            let mut params = Vec::new();
            let (from, clause) = where_clause(&query.filter, &mut params);
            let limit = query.limit.map(|l| l as i64).unwrap_or(-1);
            let sql = format!(
                "SELECT {LEAD_COLUMNS} FROM {from} {clause} {} LIMIT {limit} OFFSET {}",
                order_by(&query),
                query.offset
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
            let mut params = Vec::new();
            let (from, clause) = where_clause(&filter, &mut params);
            let sql = format!("SELECT count(*) FROM {from} {clause}");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_like_search_terms_lose_punctuation() {
        assert_eq!(search_term("7700 900"), "7700900");
        assert_eq!(search_term("+44 (0)7700"), "+4407700");
        assert_eq!(search_term("Ada LOVELACE"), "ada lovelace");
        assert_eq!(search_term("Flat 12"), "flat 12");
    }
}
