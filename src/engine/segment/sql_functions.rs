//! The SQL functions segment fragments call, registered on each connection by
//! [`super::sql::register_functions`].
//!
//! Text tests run in Rust with the evaluator's own [`TextMatcher`], so SQLite and
//! `Rule::matches` fold case identically (SQLite's `lower()` only folds ASCII), and a test on
//! a list or a metadata key costs one call per lead rather than a `json_each` table per lead,
//! which is what keeps a million-lead preview interactive.
//!
//! - `crm_match(text, spec)`: 1 when the text passes the test, else 0.
//! - `crm_any(list, spec)`: 1 when any string of a JSON array passes.
//! - `crm_meta(object, key, spec)`: NULL when the JSON object lacks `key`, else 1 or 0.
//! - `crm_in_int(number, list)` / `crm_in_real(number, list)`: 1 when the number is in
//!   `list`, a blob of little-endian `i64` / `f64` values (exact, unlike decimal text), which
//!   is how a long `in [...]` on visits or total_spend binds one parameter instead of one per
//!   value (SQLite allows 32,766 parameters a statement).
//!
//! `spec` is the positive test as JSON, values already lower-cased: `["=", v]`,
//! `["contains", v]` or `["in", v, …]`. It is bound as a parameter, so SQLite keeps the parsed
//! test for the whole statement (auxiliary data) instead of parsing it again for every lead;
//! a long `in` list is kept as a hash set and a number list sorted, so a 100,000-value list
//! costs one lookup per lead, not 100,000 comparisons.

use super::eval::TextMatcher;
use ahash::AHashSet;
use memchr::memchr;
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::sync::Arc;

/// The `spec` argument for `matcher`.
pub(crate) fn spec(matcher: &TextMatcher) -> String {
    let parts: Vec<&str> = match matcher {
        TextMatcher::Equals(v) => vec!["=", v],
        TextMatcher::Contains(v) => vec!["contains", v],
        TextMatcher::OneOf(values) => std::iter::once("in").chain(values.iter().map(String::as_str)).collect(),
    };
    serde_json::to_string(&parts).unwrap_or_default()
}

fn parse_spec(text: &str) -> Option<TextMatcher> {
    let mut parts: Vec<String> = serde_json::from_str(text).ok()?;
    if parts.is_empty() {
        return None;
    }
    let op = parts.remove(0);
    match (op.as_str(), parts.len()) {
        ("=", 1) => parts.pop().map(TextMatcher::Equals),
        ("contains", 1) => parts.pop().map(TextMatcher::Contains),
        ("in", _) => Some(TextMatcher::OneOf(parts)),
        _ => None,
    }
}

/// The function and blob argument testing membership in `values`, bound as `to_sql` binds
/// one value (`Integer` for visits, `Real` for total_spend).
pub(crate) fn number_list<T: Copy>(values: &[T], to_sql: fn(T) -> SqlValue) -> (&'static str, Vec<u8>) {
    let mut blob = Vec::with_capacity(values.len() * 8);
    let mut function = "crm_in_int";
    for value in values {
        match to_sql(*value) {
            SqlValue::Real(f) => {
                function = "crm_in_real";
                blob.extend_from_slice(&f.to_le_bytes());
            }
            SqlValue::Integer(i) => blob.extend_from_slice(&i.to_le_bytes()),
            // Lists hold numbers only (validation); anything else could match no lead.
            _ => {}
        }
    }
    (function, blob)
}

/// A text test as SQLite keeps it between rows: a long `in` list also as a set.
struct Prepared {
    matcher: TextMatcher,
    set: Option<AHashSet<String>>,
}

/// `in` lists longer than this are looked up in a hash set.
const SET_FROM: usize = 8;

impl Prepared {
    fn new(matcher: TextMatcher) -> Prepared {
        let set = match &matcher {
            TextMatcher::OneOf(values) if values.len() > SET_FROM => Some(values.iter().cloned().collect()),
            _ => None,
        };
        Prepared { matcher, set }
    }

    fn holds_lowered(&self, lower: &str) -> bool {
        match &self.set {
            Some(set) => set.contains(lower),
            None => self.matcher.holds_lowered(lower),
        }
    }
}

/// A number list as SQLite keeps it between rows: sorted for binary search.
enum NumberSet {
    Whole(Vec<i64>),
    Real(Vec<f64>),
}

impl NumberSet {
    fn parse(blob: &[u8], real: bool) -> Option<NumberSet> {
        if blob.len() % 8 != 0 {
            return None;
        }
        let words = blob.chunks_exact(8).map(|w| <[u8; 8]>::try_from(w).unwrap_or_default());
        if real {
            let mut values: Vec<f64> = words.map(f64::from_le_bytes).filter(|f| f.is_finite()).collect();
            values.sort_by(f64::total_cmp);
            Some(NumberSet::Real(values))
        } else {
            let mut values: Vec<i64> = words.map(i64::from_le_bytes).collect();
            values.sort_unstable();
            Some(NumberSet::Whole(values))
        }
    }

    /// Whether the list holds `value` (an integer or a real, as SQLite hands the column over),
    /// compared as the evaluator does: `==` on the field's type.
    fn contains(&self, value: ValueRef<'_>) -> bool {
        match (self, value) {
            (NumberSet::Whole(values), ValueRef::Integer(i)) => values.binary_search(&i).is_ok(),
            (NumberSet::Whole(values), ValueRef::Real(f)) => {
                f.fract() == 0.0 && f.abs() < 9.2e18 && values.binary_search(&(f as i64)).is_ok()
            }
            (NumberSet::Real(values), ValueRef::Real(f)) => real_in(values, f),
            (NumberSet::Real(values), ValueRef::Integer(i)) => real_in(values, i as f64),
            _ => false,
        }
    }
}

/// `==` membership in a sorted list of finite values (`-0.0 == 0.0`, as in the evaluator).
fn real_in(values: &[f64], x: f64) -> bool {
    let at = values.partition_point(|v| *v < x);
    values.get(at).is_some_and(|v| *v == x)
}

pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    for (name, real) in [("crm_in_int", false), ("crm_in_real", true)] {
        conn.create_scalar_function(name, 2, flags, move |ctx| {
            let set: Arc<NumberSet> = ctx.get_or_create_aux(1, |value| {
                let blob = value.as_blob().map_err(|e| e.to_string())?;
                NumberSet::parse(blob, real).ok_or_else(|| "not a segment number list".to_string())
            })?;
            Ok(set.contains(ctx.get_raw(0)))
        })?;
    }
    conn.create_scalar_function("crm_match", 2, flags, |ctx| {
        let matcher = matcher_arg(ctx, 1)?;
        Ok(text_of(ctx.get_raw(0)).is_some_and(|text| passes(&matcher, &text)))
    })?;
    conn.create_scalar_function("crm_any", 2, flags, |ctx| {
        let matcher = matcher_arg(ctx, 1)?;
        let ValueRef::Text(list) = ctx.get_raw(0) else { return Ok(false) };
        Ok(any_string(list, |text| passes(&matcher, text)))
    })?;
    conn.create_scalar_function("crm_meta", 3, flags, |ctx| {
        let matcher = matcher_arg(ctx, 2)?;
        let (ValueRef::Text(object), Some(key)) = (ctx.get_raw(0), text_of(ctx.get_raw(1))) else { return Ok(None) };
        Ok(metadata_value(object, &key).map(|value| passes(&matcher, &value)))
    })
}

/// The parsed `spec` argument, kept by SQLite between rows.
fn matcher_arg(ctx: &Context<'_>, arg: usize) -> rusqlite::Result<Arc<Prepared>> {
    ctx.get_or_create_aux(arg as std::ffi::c_int, |value| {
        let text = value.as_str().map_err(|e| e.to_string())?;
        // The spec may be a whole 100,000-value list: the error names it without quoting it.
        parse_spec(text).map(Prepared::new).ok_or_else(|| "not a segment text test".to_string())
    })
}

/// A value as SQL text: text as is, numbers as their digits, None for NULL.
fn text_of(value: ValueRef<'_>) -> Option<Cow<'_, str>> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Cow::Owned(i.to_string())),
        ValueRef::Real(f) => Some(Cow::Owned(f.to_string())),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(String::from_utf8_lossy(bytes)),
    }
}

/// Whether `text`, lower-cased, passes; ASCII text is lower-cased without a Unicode pass, and
/// without a copy when it has no capitals.
fn passes(matcher: &Prepared, text: &str) -> bool {
    if !text.is_ascii() {
        return matcher.holds_lowered(&text.to_lowercase());
    }
    if !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return matcher.holds_lowered(text);
    }
    matcher.holds_lowered(&text.to_ascii_lowercase())
}

/// Whether `visit` holds for some string of a JSON array.
fn any_string(list: &[u8], mut visit: impl FnMut(&str) -> bool) -> bool {
    if let Some(found) = walk_plain(list, b'[', |_, text| visit(text)) {
        return found;
    }
    match serde_json::from_slice::<Json>(list) {
        Ok(Json::Array(items)) => items.iter().filter_map(scalar_text).any(|text| visit(&text)),
        _ => false,
    }
}

/// The value under `key` in a JSON object, as `json_extract` would give it.
fn metadata_value<'a>(object: &'a [u8], key: &str) -> Option<Cow<'a, str>> {
    let (mut value, mut at_key) = (None, false);
    let plain = walk_plain(object, b'{', |index, text| {
        if index % 2 == 0 {
            at_key = text == key;
            false
        } else {
            value = at_key.then_some(text);
            at_key
        }
    });
    if plain.is_some() {
        return value.map(Cow::Borrowed);
    }
    match serde_json::from_slice::<Json>(object) {
        Ok(Json::Object(map)) => map.get(key).and_then(scalar_text).map(|text| Cow::Owned(text.into_owned())),
        _ => None,
    }
}

/// SQLite's text for a JSON scalar (`json_each`/`json_extract`, then text conversion).
fn scalar_text(value: &Json) -> Option<Cow<'_, str>> {
    match value {
        Json::Null => None,
        Json::String(text) => Some(Cow::Borrowed(text)),
        Json::Bool(b) => Some(Cow::Borrowed(if *b { "1" } else { "0" })),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Walks the strings of a flat JSON array (`open` = `[`) or object (`{`, keys and values in
/// turn) with no backslash escapes, which is how the store writes lists and metadata, calling
/// `visit(index, text)` until it returns true. `None` when the text has any other shape
/// (escapes, numbers, nesting): the caller then parses it fully.
fn walk_plain<'a>(json: &'a [u8], open: u8, mut visit: impl FnMut(usize, &'a str) -> bool) -> Option<bool> {
    if memchr(b'\\', json).is_some() {
        return None;
    }
    let close = if open == b'[' { b']' } else { b'}' };
    let mut at = skip_space(json, 0);
    if json.get(at) != Some(&open) {
        return None;
    }
    at = skip_space(json, at + 1);
    if json.get(at) == Some(&close) {
        return Some(false);
    }
    for index in 0.. {
        if json.get(at) != Some(&b'"') {
            return None;
        }
        let start = at + 1;
        // Without escapes a string ends at the next quote.
        let end = start + memchr(b'"', json.get(start..)?)?;
        let text = std::str::from_utf8(json.get(start..end)?).ok()?;
        if visit(index, text) {
            return Some(true);
        }
        at = skip_space(json, end + 1);
        let before_value = open == b'{' && index % 2 == 0;
        match json.get(at) {
            Some(b':') if before_value => {}
            Some(b',') if !before_value => {}
            Some(c) if *c == close && !before_value => return Some(false),
            _ => return None,
        }
        at = skip_space(json, at + 1);
    }
    None
}

fn skip_space(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &str) -> Vec<String> {
        let mut seen = Vec::new();
        any_string(list.as_bytes(), |s| {
            seen.push(s.to_string());
            false
        });
        seen
    }

    #[test]
    fn lists_are_walked_plain_or_parsed() {
        assert_eq!(strings(r#"["vip","news letter",""]"#), ["vip", "news letter", ""]);
        assert_eq!(strings("[ ]"), Vec::<String>::new());
        assert_eq!(strings(r#"[ "a" , "b" ]"#), ["a", "b"]);
        assert_eq!(walk_plain(br#"["x\"y"]"#, b'[', |_, _| false), None, "escapes take the full parser");
        assert_eq!(strings(r#"["x\"y","a\\b"]"#), ["x\"y", "a\\b"]);
        assert!(any_string(br#"["a",1,null]"#, |s| s == "1"), "other scalars compare as their text");
        assert!(!any_string(br#"["a",1,null]"#, |s| s.is_empty()), "null is no value");
        assert_eq!(strings("not json"), Vec::<String>::new());
    }

    #[test]
    fn metadata_values_are_found_by_exact_key() {
        let object = br#"{"city":"Lagos","country":"NG"}"#;
        assert_eq!(metadata_value(object, "country").as_deref(), Some("NG"));
        assert_eq!(metadata_value(object, "City"), None);
        assert_eq!(metadata_value(object, "Lagos"), None, "values are not keys");
        assert_eq!(metadata_value(b"{}", "city"), None);
        assert_eq!(metadata_value(br#"{"a\"b":"x","city":"Ab\"uja"}"#, "city").as_deref(), Some("Ab\"uja"));
        assert_eq!(metadata_value(br#"{"n":12}"#, "n").as_deref(), Some("12"));
    }

    #[test]
    fn specs_round_trip() {
        for matcher in [
            TextMatcher::Equals("vip".into()),
            TextMatcher::Contains("\"]".into()),
            TextMatcher::OneOf(vec![]),
            TextMatcher::OneOf(vec!["lagos".into(), "berlin".into()]),
        ] {
            assert_eq!(parse_spec(&spec(&matcher)), Some(matcher));
        }
        assert_eq!(parse_spec(r#"["like","x"]"#), None);
    }

    #[test]
    fn functions_fold_case_like_the_evaluator() {
        let conn = Connection::open_in_memory().expect("opens");
        register(&conn).expect("registers");
        let one = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |r| r.get(0)).expect("runs") };
        assert_eq!(one(r#"SELECT crm_match('ÉCOLE', '["=","école"]')"#), Some(1));
        assert_eq!(one(r#"SELECT crm_any('["VIP","b2b"]', '["in","x","vip"]')"#), Some(1));
        assert_eq!(one(r#"SELECT crm_any('[]', '["contains",""]')"#), Some(0));
        assert_eq!(one(r#"SELECT crm_meta('{"city":"LAGOS"}', 'city', '["contains","ago"]')"#), Some(1));
        assert_eq!(one(r#"SELECT crm_meta('{"city":"LAGOS"}', 'town', '["contains","ago"]')"#), None);
        let err = conn.query_row(r#"SELECT crm_match('a', '["like","a"]')"#, [], |r| r.get::<_, i64>(0));
        assert!(err.is_err());
        let many: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        let spec = spec(&TextMatcher::OneOf(many));
        let hit = |text: &str| -> i64 {
            conn.query_row("SELECT crm_match(?1, ?2)", [text, spec.as_str()], |r| r.get(0)).expect("runs")
        };
        assert_eq!((hit("V42"), hit("v100")), (1, 0), "long lists are a set of lower-cased values");
    }

    #[test]
    fn number_lists_are_exact() {
        let conn = Connection::open_in_memory().expect("opens");
        register(&conn).expect("registers");
        let (function, blob) = number_list(&[0.1, 2.5, -0.0, 1e300], SqlValue::Real);
        assert_eq!(function, "crm_in_real");
        let test = |x: SqlValue| -> i64 {
            let sql = format!("SELECT {function}(?1, ?2)");
            conn.query_row(&sql, rusqlite::params![x, blob], |r| r.get(0)).expect("runs")
        };
        assert_eq!(test(SqlValue::Real(0.1)), 1);
        assert_eq!(test(SqlValue::Real(0.1 + f64::EPSILON)), 0);
        assert_eq!(test(SqlValue::Real(0.0)), 1, "0.0 == -0.0, as in Rust");
        assert_eq!(test(SqlValue::Real(1e300)), 1);
        assert_eq!(test(SqlValue::Integer(2)), 0);
        let (function, blob) = number_list(&[i64::MIN, 3, i64::MAX], SqlValue::Integer);
        assert_eq!(function, "crm_in_int");
        let test = |x: i64| -> i64 {
            conn.query_row(&format!("SELECT {function}(?1, ?2)"), rusqlite::params![x, blob], |r| r.get(0))
                .expect("runs")
        };
        assert_eq!((test(i64::MIN), test(3), test(i64::MAX), test(4)), (1, 1, 1, 0));
    }
}
