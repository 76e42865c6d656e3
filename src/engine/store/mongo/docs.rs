//! Lead documents and the field helpers every collection uses.
//!
//! A lead is stored under its own field names, as `segment::mongo` filters expect: lists as
//! arrays, metadata as an embedded document, times as BSON dates (milliseconds, as SQLite
//! keeps them), `last_order_at` absent when there is none. Two derived fields serve queries:
//! `name_key` (the lower-cased name, for sorting by name ignoring case) and `search` (the
//! lower-cased name, emails and phones, as the SQLite store's search text, for substring
//! search with an escaped `$regex`: no `$text` index needed).
//!
//! Metadata keys are stored with `%`, `.` and `$` percent-encoded: MongoDB reads `.` as a path
//! and `$` as an operator. Keys a rule can name (letters, digits, `_`) are stored as they are,
//! so rules reach them by `metadata.KEY`.

use crate::engine::lead::{Lead, LeadId};
use crate::engine::store::sqlite::search_text_of;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

pub(super) fn to_date(t: &DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

pub(super) fn from_date(d: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(d.timestamp_millis()).unwrap_or_default()
}

/// Now, at the millisecond a store keeps (so what a call returns is what a read gives back).
pub(super) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default()
}

/// An integer field, whichever numeric type another writer used; 0 when absent.
pub(super) fn int(d: &Document, key: &str) -> i64 {
    opt_int(d, key).unwrap_or(0)
}

/// An integer field, whichever numeric type another writer used (`mongosh` writes doubles);
/// `None` when absent or not a number.
pub(super) fn opt_int(d: &Document, key: &str) -> Option<i64> {
    match d.get(key) {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Double(f)) => Some(*f as i64),
        _ => None,
    }
}

pub(super) fn real(d: &Document, key: &str) -> f64 {
    match d.get(key) {
        Some(Bson::Double(f)) => *f,
        Some(Bson::Int64(n)) => *n as f64,
        Some(Bson::Int32(n)) => f64::from(*n),
        _ => 0.0,
    }
}

pub(super) fn text(d: &Document, key: &str) -> String {
    d.get_str(key).unwrap_or_default().to_string()
}

pub(super) fn opt_text(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_string)
}

pub(super) fn date(d: &Document, key: &str) -> Option<DateTime<Utc>> {
    d.get_datetime(key).ok().map(|t| from_date(*t))
}

pub(super) fn strings(d: &Document, key: &str) -> Vec<String> {
    d.get_array(key).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// An optional text as BSON (null when absent).
pub(super) fn opt_bson(value: Option<&str>) -> Bson {
    value.map_or(Bson::Null, |v| Bson::String(v.to_string()))
}

/// A metadata key as stored: `%`, `.` and `$` percent-encoded.
pub(super) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' => out.push_str("%24"),
            c => out.push(c),
        }
    }
    out
}

/// A stored metadata key as the lead has it.
pub(super) fn decode_key(stored: &str) -> String {
    if !stored.contains('%') {
        return stored.to_string();
    }
    let mut out = String::with_capacity(stored.len());
    let mut rest = stored;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        let decoded = match code {
            Some("25") => Some('%'),
            Some("2E") => Some('.'),
            Some("24") => Some('$'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn metadata_doc(metadata: &BTreeMap<String, String>) -> Document {
    metadata.iter().map(|(k, v)| (encode_key(k), Bson::String(v.clone()))).collect()
}

/// The stored document of a lead.
pub(super) fn lead_doc(lead: &Lead) -> Document {
    let mut d = doc! {
        "_id": lead.id,
        "name": &lead.name,
        "name_key": lead.name.to_lowercase(),
        "emails": lead.emails.clone(),
        "phones": lead.phones.clone(),
        "total_spend": lead.total_spend,
        "visits": lead.visits,
        "tags": lead.tags.clone(),
        "metadata": metadata_doc(&lead.metadata),
        "created_at": to_date(&lead.created_at),
        "updated_at": to_date(&lead.updated_at),
        "search": search_text_of(&lead.name, &lead.emails, &lead.phones),
    };
    if let Some(t) = &lead.last_order_at {
        d.insert("last_order_at", to_date(t));
    }
    d
}

/// A lead from its stored document; `Err` names the field that is not as crm writes it.
pub(super) fn lead_from_doc(d: &Document) -> Result<Lead, String> {
    let id = match d.get("_id") {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        _ => return Err("a lead has no integer _id".into()),
    };
    let metadata = match d.get("metadata") {
        Some(Bson::Document(m)) => {
            m.iter().filter_map(|(k, v)| v.as_str().map(|v| (decode_key(k), v.to_string()))).collect()
        }
        _ => BTreeMap::new(),
    };
    let created_at = date(d, "created_at").ok_or_else(|| format!("lead {id} has no created_at date"))?;
    Ok(Lead {
        id,
        name: text(d, "name"),
        emails: strings(d, "emails"),
        phones: strings(d, "phones"),
        total_spend: real(d, "total_spend"),
        visits: int(d, "visits"),
        last_order_at: date(d, "last_order_at"),
        tags: strings(d, "tags"),
        metadata,
        created_at,
        updated_at: date(d, "updated_at").unwrap_or(created_at),
    })
}

/// A condition on a field with a partial index (`{field: {$type: "string"}}`: `emails` and
/// `phones`, so leads without either do not collide; the vendor message ids of logs and
/// replies) that the index can answer: a server uses a partial index only for a query that
/// contains its filter expression, so the `$type` test is repeated here (it changes no result:
/// every value looked up is a string).
pub(super) fn on_key_index(field: &str, condition: Document) -> Document {
    let mut condition = condition;
    condition.insert("$type", "string");
    doc! { field: condition }
}

/// The filter finding the lead that owns an identity key (`e:…`, `p:…`); None for other keys.
pub(super) fn key_filter(key: &str) -> Option<Document> {
    match key.split_once(':') {
        Some(("e", email)) => Some(on_key_index("emails", doc! { "$eq": email })),
        Some(("p", phone)) => Some(on_key_index("phones", doc! { "$eq": phone })),
        _ => None,
    }
}

/// The filter finding every lead that owns one of these emails or phones.
pub(super) fn owners_filter(emails: &[String], phones: &[String]) -> Option<Document> {
    let mut any = Vec::new();
    if !emails.is_empty() {
        any.push(on_key_index("emails", doc! { "$in": emails.to_vec() }));
    }
    if !phones.is_empty() {
        any.push(on_key_index("phones", doc! { "$in": phones.to_vec() }));
    }
    (!any.is_empty()).then(|| doc! { "$or": any })
}

/// Which of `keys` each lead of `leads` owns, in the order of `keys`, leaving out `except`.
pub(super) fn owners_in(keys: &[String], leads: &[Lead], except: Option<LeadId>) -> Vec<(String, LeadId)> {
    let mut owners = Vec::new();
    for key in keys {
        if let Some(lead) = leads.iter().find(|l| Some(l.id) != except && l.identity_keys().contains(key)) {
            owners.push((key.clone(), lead.id));
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::lead::LeadDraft;

    #[test]
    fn key_lookups_repeat_the_partial_filter_of_the_key_indexes() {
        let email = key_filter("e:ada@example.com").unwrap();
        assert_eq!(email, doc! { "emails": { "$eq": "ada@example.com", "$type": "string" } });
        assert_eq!(
            key_filter("p:+447700900123").unwrap(),
            doc! { "phones": { "$eq": "+447700900123", "$type": "string" } }
        );
        assert_eq!(key_filter("x:1"), None);
        let both = owners_filter(&["a@x.io".into()], &["+15550100".into()]).unwrap();
        assert_eq!(
            both,
            doc! { "$or": [
                { "emails": { "$in": ["a@x.io"], "$type": "string" } },
                { "phones": { "$in": ["+15550100"], "$type": "string" } },
            ] }
        );
        assert_eq!(owners_filter(&[], &[]), None);
    }

    #[test]
    fn integers_are_read_whichever_numeric_type_was_written() {
        let d = doc! { "a": 7_i64, "b": 7_i32, "c": 7.0, "d": "7" };
        let read: Vec<Option<i64>> = ["a", "b", "c", "d", "e"].iter().map(|k| opt_int(&d, k)).collect();
        assert_eq!(read, [Some(7), Some(7), Some(7), None, None]);
        assert_eq!((int(&d, "c"), int(&d, "e")), (7, 0));
    }

    #[test]
    fn metadata_keys_round_trip_and_plain_keys_stay_plain() {
        for key in ["city", "postal_code", "a.b", "$where", "100%", "%2E", "x%y.z$"] {
            assert_eq!(decode_key(&encode_key(key)), key);
            assert!(!encode_key(key).contains(['.', '$']), "{key}");
        }
        assert_eq!(encode_key("loyalty_tier_2024"), "loyalty_tier_2024");
        assert_eq!(decode_key("50%off"), "50%off", "a stray % (another writer) is kept");
    }

    #[test]
    fn leads_round_trip_through_documents() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).expect("valid");
        let mut lead = LeadDraft {
            name: Some("Ada Lovelace".into()),
            emails: vec!["ada@example.com".into()],
            phones: vec!["+447700900123".into()],
            total_spend: Some(12.5),
            visits: Some(3),
            last_order_at: Some(t),
            tags: vec!["vip".into()],
            metadata: [("a.b".to_string(), "x".to_string())].into_iter().collect(),
            created_at: Some(t),
        }
        .into_lead(7, t);
        assert_eq!(lead_from_doc(&lead_doc(&lead)), Ok(lead.clone()));
        lead.last_order_at = None;
        let d = lead_doc(&lead);
        assert!(!d.contains_key("last_order_at"));
        assert_eq!(d.get_str("search").ok(), Some("ada lovelace\u{1f}ada@example.com\u{1f}+447700900123"));
        assert_eq!(lead_from_doc(&d), Ok(lead));
    }
}
