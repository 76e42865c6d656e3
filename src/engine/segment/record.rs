//! A saved segment: a named rule with its owner and timestamps, as stores keep it and `--json`
//! prints it.
//!
//! Field names are the old system's (`owner_user_id`, `rule_ast`) so exported segments stay
//! readable by it; `rule_ast` is the Node-compatible JSON tree (see `json.rs`), never the text
//! form, which is only a way to type and show rules.

use super::Rule;
use crate::engine::lead::format_time;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

/// Numeric id assigned by the store, stable for the segment's life.
pub type SegmentId = i64;

/// The longest segment name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Segment {
    #[cfg_attr(feature = "api", schema(value_type = i64))]
    pub id: SegmentId,
    /// Unique among segments, ignoring case.
    pub name: String,
    pub owner_user_id: Option<String>,
    pub rule_ast: Rule,
    #[serde(serialize_with = "time")]
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "time")]
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
}

/// What `segments create` saves; the store assigns the id and timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSegment {
    pub name: String,
    pub owner_user_id: Option<String>,
    pub rule: Rule,
}

fn time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

/// Checks a segment name and returns it trimmed. Names are what operators type to pick a
/// segment, so they must be printable, and must not be all digits (that would read as an id).
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a segment name cannot be empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("a segment name is at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a segment name cannot contain control characters (tabs, newlines)".into());
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{name}' would read as a segment id; add a letter (e.g. 'segment-{name}')"));
    }
    Ok(name.to_string())
}

/// The form names are compared in: two names clash when their keys are equal.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_printable_and_not_ids() {
        assert_eq!(check_name("  Big spenders "), Ok("Big spenders".into()));
        assert_eq!(check_name("2024-vip"), Ok("2024-vip".into()));
        for bad in ["", "   ", "a\tb", "42", &"n".repeat(MAX_NAME_CHARS + 1)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn name_keys_ignore_unicode_case() {
        assert_eq!(name_key("ÉCOLE Clients"), name_key("école clients"));
        assert_ne!(name_key("vip"), name_key("vips"));
    }

    #[test]
    fn json_uses_the_old_field_names_and_the_ast() {
        let at = DateTime::parse_from_rfc3339("2024-05-31T15:20:00Z").expect("valid").with_timezone(&Utc);
        let segment = Segment {
            id: 3,
            name: "vip".into(),
            owner_user_id: None,
            rule_ast: Rule::parse_text("total_spend > 500").expect("parses"),
            created_at: at,
            updated_at: at,
        };
        let json = serde_json::to_value(&segment).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "id": 3, "name": "vip", "owner_user_id": null,
                "rule_ast": {"type": "condition", "field": "total_spend", "operator": ">", "value": 500},
                "created_at": "2024-05-31T15:20:00Z", "updated_at": "2024-05-31T15:20:00Z"
            })
        );
    }
}
