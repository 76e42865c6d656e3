//! Segments in SQLite, and counting, sampling and scanning the leads a rule matches.
//!
//! A rule runs inside the database as the `WHERE` fragment `segment::sql` renders over
//! `leads l`; its text tests are SQL functions that `connect()` registers once per connection.
//! Statements go through `prepare_cached`, keyed by their SQL, which depends only on the
//! rule's shape (values are parameters): while an operator types values into a rule, every
//! preview reuses one prepared statement. Rules on spend, visits and last order are counted
//! from the narrow `leads_numbers` index (migration 2) rather than the table. A rule that is
//! one `name CONTAINS` test is answered from the search text instead (`search.rs`: ~30,000
//! group rows and a SIMD substring scan, where SQL would test a million names one call each).
//!
//! The `Store` methods themselves are in `leads.rs` (one `impl Store` per type); they call the
//! helpers here.

use super::rows::{LEAD_COLUMNS, from_ms, lead_from_row, to_ms};
use super::search::{self, Scope};
use super::{SqliteStore, db_err};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadId};
use crate::engine::limits::{MAX_PARAMS_PER_CONDITION, MAX_RULE_CONDITIONS};
use crate::engine::segment::sql::to_sql_from;
use crate::engine::segment::{NewSegment, Rule, Segment, SegmentId, name_contains, name_key};
use crate::engine::store::QueryPlan;
use chrono::{DateTime, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

const SEGMENT_COLUMNS: &str = "id, name, owner_user_id, rule_ast, created_at, updated_at";

/// Rules counted by one statement in `count_matching_each` (one pass over the leads each).
const COUNTS_PER_QUERY: usize = 50;

fn segment_from_row(row: &Row) -> rusqlite::Result<Segment> {
    let ast: String = row.get(3)?;
    let rule_ast =
        Rule::from_json(&ast).map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, Box::new(e)))?;
    Ok(Segment {
        id: row.get(0)?,
        name: row.get(1)?,
        owner_user_id: row.get(2)?,
        rule_ast,
        created_at: from_ms(row.get(4)?),
        updated_at: from_ms(row.get(5)?),
    })
}

fn load(conn: &Connection, id: SegmentId) -> rusqlite::Result<Option<Segment>> {
    conn.prepare_cached(&format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1"))?
        .query_row([id], segment_from_row)
        .optional()
}

/// `Error::Conflict` when a segment other than `except` has `name` (ignoring case).
fn refuse_taken_name(conn: &Connection, store: &str, name: &str, except: Option<SegmentId>) -> Result<()> {
    let owner: Option<(SegmentId, String)> = conn
        .prepare_cached("SELECT id, name FROM segments WHERE name_key = ?1")
        .and_then(|mut stmt| stmt.query_row([name_key(name)], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(db_err(store))?;
    match owner {
        Some((id, taken)) if Some(id) != except => Err(Error::Conflict(format!(
            "segment {id} is already named '{taken}' (names ignore case); pick another name"
        ))),
        _ => Ok(()),
    }
}

/// Campaigns RUNNING or PAUSED on segment `id`, described for an operator.
///
/// Campaigns are not stored yet. Until a migration creates their table, this consults a
/// `campaigns` table only when one exists (looked up on every call, so a table created later,
/// by a newer `crm` or another process, is seen at once), with the columns the architecture
/// gives it: `id, name, segment_id, status`.
fn active_campaigns(conn: &Connection, id: SegmentId) -> rusqlite::Result<Vec<String>> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'campaigns')")?
        .query_row([], |r| r.get(0))?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT id, name, upper(status) FROM campaigns
         WHERE segment_id = ?1 AND upper(status) IN ('RUNNING', 'PAUSED') ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(format!("campaign {} '{}' ({})", r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    rows.collect()
}

/// The count query for `rule` and its parameters.
fn count_query(rule: &Rule, now: DateTime<Utc>) -> (String, Vec<Value>) {
    let fragment = to_sql_from(rule, now, 1);
    (format!("SELECT count(*) FROM leads l WHERE {}", fragment.sql), fragment.params)
}

/// The first-`limit`-by-id query for `rule` and its parameters (`?1` is the limit).
fn sample_query(rule: &Rule, now: DateTime<Utc>, limit: usize) -> (String, Vec<Value>) {
    let fragment = to_sql_from(rule, now, 2);
    let sql = format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE {} ORDER BY l.id LIMIT ?1", fragment.sql);
    (sql, std::iter::once(Value::Integer(limit as i64)).chain(fragment.params).collect())
}

fn count(conn: &Connection, rule: &Rule, now: DateTime<Utc>) -> rusqlite::Result<u64> {
    if let Some((needle, negate)) = name_contains(rule, now) {
        let hits = search::scan(conn, &needle, Scope::Name, usize::MAX)?.len() as u64;
        if !negate {
            return Ok(hits);
        }
        let all: i64 = conn.prepare_cached("SELECT count(*) FROM leads")?.query_row([], |r| r.get(0))?;
        return Ok((all as u64).saturating_sub(hits));
    }
    let (sql, params) = count_query(rule, now);
    conn.prepare_cached(&sql)?.query_row(params_from_iter(&params), |r| r.get::<_, i64>(0)).map(|n| n as u64)
}

/// The first `limit` leads by id whose name contains `needle` (lower-cased).
fn sample_names(conn: &Connection, needle: &str, limit: usize) -> rusqlite::Result<Vec<Lead>> {
    let ids = search::scan(conn, needle, Scope::Name, limit)?;
    let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let sql =
        format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id IN (SELECT value FROM json_each(?1)) ORDER BY l.id");
    leads(conn, &sql, &[Value::Text(ids)])
}

/// Counts for every rule, up to [`COUNTS_PER_QUERY`] rules a pass over the leads, and no more
/// than one rule at the size limit can bind, so a statement never exceeds SQLite's parameters.
fn count_each(conn: &Connection, rules: &[Rule], now: DateTime<Utc>) -> rusqlite::Result<Vec<u64>> {
    let budget = MAX_RULE_CONDITIONS * MAX_PARAMS_PER_CONDITION;
    let mut counts = Vec::with_capacity(rules.len());
    let mut rest = rules;
    while !rest.is_empty() {
        let (mut columns, mut params) = (Vec::new(), Vec::new());
        for rule in rest.iter().take(COUNTS_PER_QUERY) {
            let fragment = to_sql_from(rule, now, params.len() + 1);
            if !columns.is_empty() && params.len() + fragment.params.len() > budget {
                break;
            }
            columns.push(format!("count(*) FILTER (WHERE {})", fragment.sql));
            params.extend(fragment.params);
        }
        let sql = format!("SELECT {} FROM leads l", columns.join(", "));
        let found: Vec<u64> = conn.prepare_cached(&sql)?.query_row(params_from_iter(&params), |row| {
            (0..columns.len()).map(|i| row.get::<_, i64>(i).map(|n| n as u64)).collect()
        })?;
        counts.extend(found);
        rest = &rest[columns.len()..];
    }
    Ok(counts)
}

fn leads(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Vec<Lead>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(params), lead_from_row)?;
    rows.collect()
}

/// A parameter as a SQL literal, for `--explain`.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        // A long number list is one blob; show its start and size rather than megabytes of hex.
        Value::Blob(b) if b.len() > 64 => {
            format!("X'{}…' ({} bytes)", b[..32].iter().map(|x| format!("{x:02X}")).collect::<String>(), b.len())
        }
        Value::Blob(b) => format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
    }
}

/// SQLite's `EXPLAIN QUERY PLAN` for `sql`, one step a line, indented under its parent.
fn query_plan(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows =
        stmt.query_map(params_from_iter(params), |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(3)?)))?;
    let mut depths: Vec<(i64, usize)> = Vec::new();
    let mut plan = Vec::new();
    for row in rows {
        let (id, parent, detail): (i64, i64, String) = row?;
        let depth = depths.iter().find(|(step, _)| *step == parent).map_or(0, |(_, d)| d + 1);
        depths.push((id, depth));
        plan.push(format!("{}{detail}", "  ".repeat(depth)));
    }
    Ok(plan)
}

impl SqliteStore {
    pub(super) async fn insert_segment(&self, new: NewSegment) -> Result<Segment> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = super::begin_write(conn).map_err(db_err(&store))?;
            refuse_taken_name(&tx, &store, &new.name, None)?;
            let now = from_ms(to_ms(&Utc::now()));
            // Ids are never reused (a draft campaign keeps its segment's id): `segments.id` has
            // no AUTOINCREMENT, so the highest id handed out is kept in `meta`.
            let id: SegmentId = tx
                .prepare_cached(
                    "INSERT INTO meta (key, value)
                     VALUES ('segments_last_id', (SELECT coalesce(max(id), 0) + 1 FROM segments))
                     ON CONFLICT (key) DO UPDATE SET value = max(value + 1, excluded.value)
                     RETURNING value",
                )
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
                .map_err(db_err(&store))?;
            tx.prepare_cached(
                "INSERT INTO segments (id, name, name_key, owner_user_id, rule_ast, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )
            .and_then(|mut stmt| {
                let key = name_key(&new.name);
                stmt.execute(params![id, new.name, key, new.owner_user_id, new.rule.to_json(), to_ms(&now)])
            })
            .map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            let NewSegment { name, owner_user_id, rule } = new;
            Ok(Segment { id, name, owner_user_id, rule_ast: rule, created_at: now, updated_at: now })
        })
        .await
    }

    pub(super) async fn load_segment(&self, id: SegmentId) -> Result<Option<Segment>> {
        let store = self.describe_path();
        self.call(move |conn| load(conn, id).map_err(db_err(&store))).await
    }

    pub(super) async fn load_segment_by_name(&self, name: &str) -> Result<Option<Segment>> {
        let (store, key) = (self.describe_path(), name_key(name));
        self.call(move |conn| {
            conn.prepare_cached(&format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE name_key = ?1"))
                .and_then(|mut stmt| stmt.query_row([key], segment_from_row).optional())
                .map_err(db_err(&store))
        })
        .await
    }

    pub(super) async fn load_segments(&self) -> Result<Vec<Segment>> {
        let store = self.describe_path();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY id"))
                .map_err(db_err(&store))?;
            let rows = stmt.query_map([], segment_from_row).map_err(db_err(&store))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err(&store))
        })
        .await
    }

    pub(super) async fn rewrite_segment(&self, segment: &Segment) -> Result<()> {
        let (store, segment) = (self.describe_path(), segment.clone());
        self.call(move |conn| {
            let tx = super::begin_write(conn).map_err(db_err(&store))?;
            if load(&tx, segment.id).map_err(db_err(&store))?.is_none() {
                return Err(Error::NotFound(format!("no segment with id {}", segment.id)));
            }
            refuse_taken_name(&tx, &store, &segment.name, Some(segment.id))?;
            tx.prepare_cached(
                "UPDATE segments SET name = ?2, name_key = ?3, owner_user_id = ?4, rule_ast = ?5, updated_at = ?6
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    segment.id,
                    segment.name,
                    name_key(&segment.name),
                    segment.owner_user_id,
                    segment.rule_ast.to_json(),
                    to_ms(&segment.updated_at),
                ])
            })
            .map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))
        })
        .await
    }

    pub(super) async fn remove_segment(&self, id: SegmentId) -> Result<bool> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = super::begin_write(conn).map_err(db_err(&store))?;
            let users = active_campaigns(&tx, id).map_err(db_err(&store))?;
            if !users.is_empty() {
                return Err(Error::Conflict(format!(
                    "segment {id} is the audience of {}; delete it once the campaign has finished or been cancelled",
                    users.join(", ")
                )));
            }
            let deleted = tx.execute("DELETE FROM segments WHERE id = ?1", [id]).map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            Ok(deleted > 0)
        })
        .await
    }

    pub(super) async fn campaigns_of_segment(&self, id: SegmentId) -> Result<Vec<String>> {
        let store = self.describe_path();
        self.call(move |conn| active_campaigns(conn, id).map_err(db_err(&store))).await
    }

    pub(super) async fn count_rule(&self, rule: &Rule, now: DateTime<Utc>) -> Result<u64> {
        let (store, rule) = (self.describe_path(), rule.clone());
        self.read(move |conn| count(conn, &rule, now).map_err(db_err(&store))).await
    }

    pub(super) async fn count_rules(&self, rules: &[Rule], now: DateTime<Utc>) -> Result<Vec<u64>> {
        let (store, rules) = (self.describe_path(), rules.to_vec());
        self.read(move |conn| count_each(conn, &rules, now).map_err(db_err(&store))).await
    }

    pub(super) async fn sample_rule(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<Lead>> {
        let store = self.describe_path();
        if let Some((needle, false)) = name_contains(rule, now) {
            return self.read(move |conn| sample_names(conn, &needle, limit).map_err(db_err(&store))).await;
        }
        let (sql, params) = sample_query(rule, now, limit);
        self.read(move |conn| leads(conn, &sql, &params).map_err(db_err(&store))).await
    }

    pub(super) async fn scan_rule(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        after: LeadId,
        limit: usize,
    ) -> Result<Vec<Lead>> {
        let store = self.describe_path();
        let fragment = to_sql_from(rule, now, 3);
        let sql =
            format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id > ?1 AND ({}) ORDER BY l.id LIMIT ?2", fragment.sql);
        let params: Vec<Value> =
            [Value::Integer(after), Value::Integer(limit as i64)].into_iter().chain(fragment.params).collect();
        self.read(move |conn| leads(conn, &sql, &params).map_err(db_err(&store))).await
    }

    pub(super) async fn explain_rule(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<QueryPlan>> {
        let store = self.describe_path();
        let mut queries = vec![("count", count_query(rule, now)), ("sample", sample_query(rule, now, limit))];
        if let Some((_, negate)) = name_contains(rule, now) {
            // Names are matched in Rust over the search text; the SQL part is its scan.
            let scan = || (format!("-- names matched in Rust over the search text\n{}", search::SCAN_SQL), Vec::new());
            queries[0] = ("count", scan());
            if !negate {
                queries[1] = ("sample", scan());
            }
        }
        self.call(move |conn| {
            let mut plans = Vec::new();
            for (purpose, (query, params)) in queries {
                let plan = query_plan(conn, &query, &params).map_err(db_err(&store))?;
                plans.push(QueryPlan {
                    purpose: purpose.into(),
                    params: params.iter().map(literal).collect(),
                    query,
                    plan,
                });
            }
            Ok(plans)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_text_and_keep_number_types() {
        assert_eq!(literal(&Value::Text("O'Brien".into())), "'O''Brien'");
        assert_eq!(literal(&Value::Real(500.0)), "500.0");
        assert_eq!(literal(&Value::Integer(7)), "7");
    }

    #[test]
    fn plans_indent_steps_under_their_parent() {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch("CREATE TABLE t (a INTEGER); CREATE TABLE u (b INTEGER);").expect("schema");
        let plan =
            query_plan(&conn, "SELECT count(*) FROM t WHERE a IN (SELECT b FROM u WHERE b > ?1)", &[Value::Integer(1)])
                .expect("explains");
        assert!(plan.iter().any(|step| step.starts_with("  ")), "{plan:?}");
    }
}
