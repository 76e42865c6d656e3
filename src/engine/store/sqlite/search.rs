//! Substring search over names, emails and phones, fast on a million leads.
//!
//! A row per lead scanned with `instr()` costs ~180 ms on a million leads, almost all of it
//! SQLite's per-row overhead. Instead, leads are grouped by id ([`GROUP_SIZE`] to a row) and
//! each group's search text is one small blob (`lead_search(grp, body)`), so a search reads
//! ~30,000 rows and runs a SIMD substring scan (memchr's `memmem`) over them in Rust.
//!
//! A group body is a sequence of records `ID \x1f TEXT \x1e`, in id order, where TEXT is the
//! lower-cased name, emails and phones joined by `\x1f` (so a match never spans two fields
//! or two leads; the separators are removed from the text itself).

use crate::engine::lead::{Lead, LeadId};
use rusqlite::{Connection, OptionalExtension, params};

/// Leads per search group: small enough that a body fits one 4 KiB page.
pub const GROUP_SIZE: i64 = 32;
const FIELD: u8 = 0x1f;
const RECORD: u8 = 0x1e;

pub fn group_of(id: LeadId) -> i64 {
    id / GROUP_SIZE
}

/// The lower-cased text a search looks in, as stored.
pub fn search_text(lead: &Lead) -> String {
    text_of(&lead.name, &lead.emails, &lead.phones)
}

/// The stored search text from a name, emails and phones (also used by the import, which has
/// them before the lead exists).
pub fn text_of(name: &str, emails: &[String], phones: &[String]) -> String {
    let mut text = String::with_capacity(name.len() + emails.iter().chain(phones).map(|v| v.len() + 1).sum::<usize>());
    push_text(&mut text, name, emails, phones);
    text
}

/// Appends the search text of `text_of` to `out` (the import writes it beside other values).
pub fn push_text(out: &mut String, name: &str, emails: &[String], phones: &[String]) {
    let kept = |out: &mut String, piece: &str| match memchr::memchr(RECORD, piece.as_bytes()) {
        None => out.push_str(piece),
        Some(_) => out.extend(piece.chars().filter(|&c| c != RECORD as char)),
    };
    if name.is_ascii() {
        let start = out.len();
        kept(out, name);
        out[start..].make_ascii_lowercase();
    } else {
        kept(out, &name.to_lowercase());
    }
    for v in emails.iter().chain(phones) {
        out.push(FIELD as char);
        kept(out, v);
    }
}

/// Appends one lead's record to a group body.
pub fn push_record(body: &mut Vec<u8>, id: LeadId, text: &str) {
    body.extend_from_slice(id.to_string().as_bytes());
    body.push(FIELD);
    body.extend_from_slice(text.as_bytes());
    body.push(RECORD);
}

/// Records of a body as (id, start, end) spans, end including the terminator.
fn records(body: &[u8]) -> impl Iterator<Item = (LeadId, usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= body.len() {
            return None;
        }
        let end = start + memchr::memchr(RECORD, &body[start..])? + 1;
        let id_end = start + memchr::memchr(FIELD, &body[start..end])?;
        let id = std::str::from_utf8(&body[start..id_end]).ok()?.parse().ok()?;
        let span = (id, start, end);
        start = end;
        Some(span)
    })
}

/// The largest id in a body (records are in id order, so the last one).
pub fn last_id(body: &[u8]) -> Option<LeadId> {
    records(body).last().map(|r| r.0)
}

/// `body` with `id`'s record replaced by `text` (inserted in id order; removed when `None`).
pub fn with_record(body: &[u8], id: LeadId, text: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut placed = text.is_none();
    let mut copied_to = 0;
    for (rid, start, end) in records(body) {
        if rid == id {
            out.extend_from_slice(&body[copied_to..start]);
            if let Some(text) = text {
                push_record(&mut out, id, text);
                placed = true;
            }
            copied_to = end;
        } else if rid > id && !placed {
            out.extend_from_slice(&body[copied_to..start]);
            if let Some(text) = text {
                push_record(&mut out, id, text);
            }
            placed = true;
            copied_to = start;
        }
    }
    out.extend_from_slice(&body[copied_to..]);
    if !placed {
        if let Some(text) = text {
            push_record(&mut out, id, text);
        }
    }
    out
}

pub fn load_group(conn: &Connection, grp: i64) -> rusqlite::Result<Vec<u8>> {
    Ok(conn
        .prepare_cached("SELECT body FROM lead_search WHERE grp = ?1")?
        .query_row([grp], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
        .unwrap_or_default())
}

pub fn store_group(conn: &Connection, grp: i64, body: &[u8]) -> rusqlite::Result<()> {
    if body.is_empty() {
        conn.prepare_cached("DELETE FROM lead_search WHERE grp = ?1")?.execute([grp])?;
    } else {
        conn.prepare_cached("INSERT OR REPLACE INTO lead_search (grp, body) VALUES (?1, ?2)")?
            .execute(params![grp, body])?;
    }
    Ok(())
}

/// Sets (or, with `None`, removes) one lead's search record.
pub fn set_record(conn: &Connection, id: LeadId, text: Option<&str>) -> rusqlite::Result<()> {
    let grp = group_of(id);
    let body = load_group(conn, grp)?;
    store_group(conn, grp, &with_record(&body, id, text))
}

/// The search term as the stored text is written: lower-cased, separators removed; a
/// phone-like term (digits with spaces, dashes, dots, parentheses) loses its punctuation so
/// `7700 900` finds `+447700900123`.
pub fn normalize_term(term: &str) -> String {
    let term = term.trim();
    let phone_like = term.chars().filter(|c| c.is_ascii_digit()).count() >= 3
        && term.chars().all(|c| c.is_ascii_digit() || " -.()+".contains(c));
    if phone_like {
        term.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect()
    } else {
        term.to_lowercase().chars().filter(|c| !c.is_control()).collect()
    }
}

/// Where in a lead's search text a term must be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The name, an email or a phone.
    Anywhere,
    /// The name only (the text's first field): what a segment's `name CONTAINS` tests.
    Name,
}

/// The query every scan of the search text runs.
pub const SCAN_SQL: &str = "SELECT body FROM lead_search ORDER BY grp";

/// Ids of every lead whose name, an email or a phone contains `term` (already normalized),
/// in ascending order.
pub fn matching_ids(conn: &Connection, term: &str) -> rusqlite::Result<Vec<LeadId>> {
    scan(conn, term, Scope::Anywhere, usize::MAX)
}

/// Ids, ascending and at most `limit`, of the leads whose text holds `term` (lower-cased, no
/// control characters) within `scope`.
pub fn scan(conn: &Connection, term: &str, scope: Scope, limit: usize) -> rusqlite::Result<Vec<LeadId>> {
    let finder = memchr::memmem::Finder::new(term.as_bytes());
    let mut ids = Vec::new();
    let mut stmt = conn.prepare_cached(SCAN_SQL)?;
    let mut rows = stmt.query([])?;
    while ids.len() < limit {
        let Some(row) = rows.next()? else { break };
        ids.extend(ids_in_body(&finder, row.get_ref(0)?.as_blob()?, scope));
    }
    ids.truncate(limit);
    Ok(ids)
}

/// The ids of the records of `body` whose text holds the finder's needle.
///
/// Linear in the body: after a hit the scan resumes at the end of its record (one hit per lead
/// is enough), and the backward look for the record's start never goes before the previous
/// resume point. Finding every hit and walking back from each, as this once did, is quadratic
/// on a long name full of matches (10 MB of `a` searched for `a`: ten minutes).
/// With [`Scope::Name`] a record counts only when the hit lies in its name; the name comes first,
/// so the first hit in a record past its name means the name has none.
fn ids_in_body(finder: &memchr::memmem::Finder<'_>, body: &[u8], scope: Scope) -> Vec<LeadId> {
    let mut ids = Vec::new();
    // `from` is where the scan resumes; `record` the start of the record holding `from`.
    let (mut from, mut record) = (0, 0);
    while let Some(hit) = finder.find(&body[from..]).map(|at| from + at) {
        let start = memchr::memrchr(RECORD, &body[record..hit]).map_or(record, |p| record + p + 1);
        let end = memchr::memchr(RECORD, &body[hit..]).map_or(body.len(), |p| hit + p + 1);
        let Some(id_end) = memchr::memchr(FIELD, &body[start..end]).map(|p| start + p) else {
            (from, record) = (end, end);
            continue;
        };
        if hit <= id_end {
            // The hit is in the id digits (or spans into the text): look again after the id.
            (from, record) = (id_end + 1, start);
            continue;
        }
        if scope == Scope::Name {
            // The name ends at the next separator, or before the record's terminator.
            let name_end = memchr::memchr(FIELD, &body[id_end + 1..end]).map_or(end - 1, |p| id_end + 1 + p);
            if hit + finder.needle().len() > name_end {
                (from, record) = (end, end);
                continue;
            }
        }
        if let Some(id) = std::str::from_utf8(&body[start..id_end]).ok().and_then(|s| s.parse().ok()) {
            ids.push(id);
        }
        (from, record) = (end, end);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_text_is_lower_case_fields_without_record_marks() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            text_of("Ada LOVELACE", &v(&["ada@x.io"]), &v(&["+447700900123"])),
            "ada lovelace\x1fada@x.io\x1f+447700900123"
        );
        assert_eq!(text_of("ÉMILE Zola", &[], &[]), "émile zola");
        assert_eq!(text_of("A\x1eB", &v(&["c\x1e@d.io"]), &[]), "ab\x1fc@d.io", "a record mark never reaches a body");
        assert_eq!(text_of("", &[], &v(&["+1"])), "\x1f+1");
        let mut out = "kept".to_string();
        push_text(&mut out, "Grace", &[], &[]);
        assert_eq!(out, "keptgrace", "appended, what was there stays");
    }

    #[test]
    fn records_are_replaced_in_id_order() {
        let mut body = Vec::new();
        push_record(&mut body, 1, "ada");
        push_record(&mut body, 3, "grace");
        let body = with_record(&body, 2, Some("alan"));
        let ids: Vec<_> = records(&body).map(|r| r.0).collect();
        assert_eq!(ids, [1, 2, 3]);
        let body = with_record(&body, 2, Some("alan turing"));
        assert!(String::from_utf8_lossy(&body).contains("alan turing"));
        let body = with_record(&body, 1, None);
        assert_eq!(records(&body).map(|r| r.0).collect::<Vec<_>>(), [2, 3]);
        let body = with_record(&body, 9, Some("last"));
        assert_eq!(records(&body).map(|r| r.0).collect::<Vec<_>>(), [2, 3, 9]);
    }

    fn found(body: &[u8], term: &str) -> Vec<LeadId> {
        ids_in_body(&memchr::memmem::Finder::new(term.as_bytes()), body, Scope::Anywhere)
    }

    fn in_names(body: &[u8], term: &str) -> Vec<LeadId> {
        ids_in_body(&memchr::memmem::Finder::new(term.as_bytes()), body, Scope::Name)
    }

    #[test]
    fn names_only_match_in_the_name_field() {
        let mut body = Vec::new();
        push_record(&mut body, 7, "ada lovelace\x1fada@x.io\x1f+447700");
        push_record(&mut body, 12, "grace\x1fada@y.io");
        push_record(&mut body, 13, "");
        push_record(&mut body, 14, "\x1fada@z.io");
        push_record(&mut body, 120, "alan ada");
        assert_eq!(in_names(&body, "ada"), [7, 120], "not grace's or 14's email");
        assert_eq!(in_names(&body, "lovelace"), [7]);
        assert_eq!(in_names(&body, "ce"), [7, 12]);
        assert_eq!(in_names(&body, "12"), Vec::<LeadId>::new(), "ids are not names");
        assert_eq!(in_names(&body, "x.io"), Vec::<LeadId>::new());
        assert_eq!(in_names(&body, "ada lovelace"), [7]);
        assert_eq!(in_names(&body, "lovelace\x1fada"), Vec::<LeadId>::new(), "never across fields");
        assert_eq!(found(&body, "ada"), [7, 12, 14, 120]);
    }

    #[test]
    fn each_matching_record_is_found_once() {
        let mut body = Vec::new();
        push_record(&mut body, 7, "ada\x1fada@x.io");
        push_record(&mut body, 12, "grace");
        push_record(&mut body, 120, "alan\x1f+44120");
        assert_eq!(found(&body, "ada"), [7]);
        assert_eq!(found(&body, "a"), [7, 12, 120]);
        assert_eq!(found(&body, "12"), [120], "ids are not text");
        assert_eq!(found(&body, "7"), Vec::<LeadId>::new(), "nor is a lone id");
        assert_eq!(found(&body, "zzz"), Vec::<LeadId>::new());
    }

    #[test]
    fn a_long_text_full_of_hits_is_scanned_in_linear_time() {
        let mut body = Vec::new();
        push_record(&mut body, 1, &"a".repeat(10_000_000));
        push_record(&mut body, 2, "b");
        let started = std::time::Instant::now();
        assert_eq!(found(&body, "a"), [1]);
        assert_eq!(found(&body, "ab"), Vec::<LeadId>::new());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn terms_are_normalized_like_the_text() {
        assert_eq!(normalize_term("7700 900"), "7700900");
        assert_eq!(normalize_term("+44 (0)7700"), "+4407700");
        assert_eq!(normalize_term("Ada LOVELACE"), "ada lovelace");
        assert_eq!(normalize_term("ÉCOLE"), "école");
    }
}
