//! Lead rows in SQLite: the column list, row ⇄ [`Lead`] mapping (lists and metadata as JSON,
//! times as Unix milliseconds), loading and rewriting one row, the `leads_version` counter, and
//! describing who owns a key. The bottom layer of the store's modules: `keys`, `import` and
//! `leads` build on it, and it depends on none of them.

use crate::engine::lead::{Lead, LeadId};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

pub(super) const LEAD_COLUMNS: &str = "l.id, l.name, l.emails, l.phones, l.total_spend, l.visits, \
     l.last_order_at, l.tags, l.metadata, l.created_at, l.updated_at";

pub(super) fn to_ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(ms: i64) -> DateTime<Utc> {
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

/// JSON text appended to a buffer, byte for byte what [`json`] (serde_json) writes, without
/// its `io::Write` detour: that checked every piece for UTF-8 and was ~3% of a 1,000,000-row
/// import's CPU (2026-12-06 profile).
pub(super) trait JsonInto {
    fn json_into(&self, out: &mut String);
}

impl JsonInto for Vec<String> {
    fn json_into(&self, out: &mut String) {
        out.push('[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str_into(out, item);
        }
        out.push(']');
    }
}

impl JsonInto for std::collections::BTreeMap<String, String> {
    fn json_into(&self, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str_into(out, key);
            out.push(':');
            json_str_into(out, value);
        }
        out.push('}');
    }
}

/// [`json`], appended to `out`.
pub(super) fn json_into<T: JsonInto>(out: &mut String, value: &T) {
    value.json_into(out);
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped as serde_json does
/// (the rare string that has any goes through serde_json itself).
fn json_str_into(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&json(&s));
    }
}

/// A lead's column values after `id`, in column order: name, emails, phones, total_spend,
/// visits, last_order_at, tags, metadata, created_at, updated_at.
pub(super) fn lead_values(lead: &Lead) -> [Value; 10] {
    [
        Value::Text(lead.name.clone()),
        Value::Text(json(&lead.emails)),
        Value::Text(json(&lead.phones)),
        Value::Real(lead.total_spend),
        Value::Integer(lead.visits),
        lead.last_order_at.as_ref().map_or(Value::Null, |t| Value::Integer(to_ms(t))),
        Value::Text(json(&lead.tags)),
        Value::Text(json(&lead.metadata)),
        Value::Integer(to_ms(&lead.created_at)),
        Value::Integer(to_ms(&lead.updated_at)),
    ]
}

/// Rewrites a stored lead's columns (search line and keys are the caller's).
pub(super) fn update_lead_columns(conn: &Connection, lead: &Lead) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE leads SET name = ?2, emails = ?3, phones = ?4, total_spend = ?5, visits = ?6,
             last_order_at = ?7, tags = ?8, metadata = ?9, created_at = ?10, updated_at = ?11
         WHERE id = ?1",
    )?
    .execute(params_from_iter(std::iter::once(Value::Integer(lead.id)).chain(lead_values(lead))))?;
    Ok(())
}

pub(super) fn load_lead(conn: &Connection, id: LeadId) -> rusqlite::Result<Option<Lead>> {
    conn.prepare_cached(&format!("SELECT {LEAD_COLUMNS} FROM leads l WHERE l.id = ?1"))?
        .query_row([id], lead_from_row)
        .optional()
}

/// Records that leads changed, so an import running in another process reloads its filter.
pub(super) fn bump_leads_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'leads_version' RETURNING value")?
        .query_row([], |r| r.get(0))
}

pub(super) fn leads_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = 'leads_version'")?.query_row([], |r| r.get(0))
}

/// "email ada@x.com belongs to lead 12, phone +44… to lead 40".
pub(crate) fn describe_owners(owners: &[(String, LeadId)]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn json_appended_is_the_json_of_the_value() {
        let tags = vec!["vip".to_string(), "ünïcödé \"quoted\" \\ \u{1f}\n".to_string(), "日本".to_string()];
        let metadata =
            BTreeMap::from([("City".to_string(), "São Paulo".to_string()), ("k\"".to_string(), String::new())]);
        let mut out = "before".to_string();
        json_into(&mut out, &tags);
        json_into(&mut out, &metadata);
        json_into(&mut out, &Vec::<String>::new());
        assert_eq!(out, format!("before{}{}[]", json(&tags), json(&metadata)));
    }

    proptest::proptest! {
        #[test]
        fn json_appended_is_what_serde_json_writes(
            items in proptest::collection::vec(".*", 0..4),
            pairs in proptest::collection::btree_map(".*", "[\\x00-\\x7f]*", 0..4),
        ) {
            let mut out = String::new();
            json_into(&mut out, &items);
            json_into(&mut out, &pairs);
            proptest::prop_assert_eq!(out, format!("{}{}", json(&items), json(&pairs)));
        }
    }
}
