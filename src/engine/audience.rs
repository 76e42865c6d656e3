//! Who a segment reaches: finding a segment by id or name, previewing a rule (how many leads,
//! and the first few), and exporting its leads. The CLI and the dashboard both call these, so a
//! preview costs the same wherever it is asked for.
//!
//! Every call takes `now`: relative dates in a rule ("30 days ago") are resolved when it runs,
//! which keeps segments dynamic; an export pins one `now` for all its pages.

use crate::engine::error::{Error, Result};
use crate::engine::export::write_pages;
use crate::engine::lead::Lead;
use crate::engine::segment::{Advice, Field, Operator, Rule, Segment, Value, metadata_fields, suggest};
use crate::engine::store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Write;

/// Leads an export fetches per store call.
const EXPORT_PAGE: usize = 2000;

/// How many leads match a rule, and the first of them by id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Preview {
    pub count: u64,
    pub sample: Vec<Lead>,
}

/// Counts the leads `rule` matches and fetches the first `sample` of them.
///
/// The sample runs first: when it comes back short it holds every match, and the count query
/// (a full pass over the leads for text tests) is skipped.
pub async fn preview(store: &dyn Store, rule: &Rule, now: DateTime<Utc>, sample: usize) -> Result<Preview> {
    let leads = if sample > 0 { store.sample_matching(rule, now, sample).await? } else { Vec::new() };
    let count =
        if sample > 0 && leads.len() < sample { leads.len() as u64 } else { store.count_matching(rule, now).await? };
    Ok(Preview { count, sample: leads })
}

/// "Did you mean" advice on the metadata keys `rule` names that no stored lead has (see
/// `segment::suggest`). A rule without metadata fields costs nothing, and one whose keys all
/// exist one short query per key (the first lead having it ends the search); only a missing
/// key pays for the list of every key in use.
pub async fn check_fields(store: &dyn Store, rule: &Rule, now: DateTime<Utc>) -> Result<Vec<Advice>> {
    for key in metadata_fields(rule) {
        let has_key = Rule::condition(Field::Metadata(key), Operator::Contains, Value::Text(String::new()));
        if store.sample_matching(&has_key, now, 1).await?.is_empty() {
            return Ok(suggest(rule, &store.metadata_keys().await?));
        }
    }
    Ok(Vec::new())
}

/// The segment a user named: an id (digits only) or a name, ignoring case.
pub async fn find_segment(store: &dyn Store, reference: &str) -> Result<Segment> {
    let reference = reference.trim();
    let by_id = match reference.parse::<i64>() {
        Ok(id) if reference.bytes().all(|b| b.is_ascii_digit()) => store.get_segment(id).await?,
        _ => None,
    };
    let found = match by_id {
        Some(segment) => Some(segment),
        None => store.get_segment_by_name(reference).await?,
    };
    found.ok_or_else(|| Error::NotFound(format!("no segment has the id or name '{reference}'")))
}

/// Streams the leads `rule` matches to `out` as CSV (the `leads export` format), a page at a
/// time. Returns how many were written.
pub async fn export_csv(
    store: &dyn Store,
    rule: &Rule,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    target: &str,
) -> Result<u64> {
    write_pages(store, out, target, async |after| store.scan_matching(rule, now, after, EXPORT_PAGE).await).await
}
