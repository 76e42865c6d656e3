//! Segment rules: which leads a segment holds, as a tree of conditions over lead fields.
//!
//! A rule arrives as JSON (the shape the old Node system stored, [`Rule::from_json`]) or as
//! text typed at the terminal ([`Rule::parse_text`]); both are validated before anything runs,
//! with errors that point at the JSON path or the column. A rule then runs three ways that must
//! agree: in memory ([`Rule::matches`], the reference), as a SQLite `WHERE` fragment
//! ([`sql::to_sql`]) and as a MongoDB filter ([`mongo::to_filter`]). Relative dates
//! (`"30 days ago"`) are resolved against a `now` passed at run time, so segments stay dynamic.
//! This module is pure: no I/O, no clock.
//!
//! Semantics, in one place (details in `eval.rs` and `relative_date.rs`):
//! - Text comparisons (`=`, `!=`, `IN`, `NOT_IN`, `CONTAINS`, `NOT_CONTAINS`) ignore case
//!   (Unicode, via Rust's `to_lowercase`); `CONTAINS` is a plain substring test.
//! - Lists (emails, phones, tags) match when any element matches; the negative operators on a
//!   list mean "no element matches" and so hold for an empty list.
//! - A missing value (`last_order_at` never set, an absent metadata key) fails every operator,
//!   negative ones too; `NOT (…)` is how to include it.
//! - A date-only or relative value means a whole UTC day: `= D` is any time that day, `> D`
//!   from the next midnight, `>= D` from D's midnight, `< D` before D's midnight, `<= D` before
//!   the next midnight. RFC 3339 values compare as instants, to the millisecond.
//! - Numbers compare exactly; `visits` takes whole numbers only.

mod ast;
mod error;
mod eval;
mod json;
#[cfg(feature = "mongodb")]
pub mod mongo;
mod parse;
mod print;
mod record;
pub mod relative_date;
pub mod sql;
mod sql_functions;
mod suggest;
mod validate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod text_tests;

use crate::engine::limits::{MAX_RULE_FILE_BYTES, MAX_RULE_TEXT_BYTES};
pub use ast::{Condition, Field, FieldKind, MAX_DEPTH, Operator, Rule, Value, is_valid_metadata_key};
pub use error::{RuleError, TextError};
pub(crate) use eval::name_contains;
pub use record::{MAX_NAME_CHARS, NewSegment, Segment, SegmentId, check_name, name_key};
pub use suggest::{Advice, metadata_fields, suggest};

impl Rule {
    /// Loads a rule from its stored JSON form, validating it; errors carry the JSON path.
    /// Text over [`MAX_RULE_FILE_BYTES`] is refused before parsing.
    pub fn from_json(text: &str) -> Result<Rule, RuleError> {
        check_size(text, MAX_RULE_FILE_BYTES)?;
        json::rule_from_json(text)
    }

    /// Like [`Rule::from_json`], from an already parsed JSON value.
    pub fn from_json_value(json: &serde_json::Value) -> Result<Rule, RuleError> {
        json::rule_from_value(json)
    }

    /// Parses and validates the text form; errors carry the line and column. Text over
    /// [`MAX_RULE_TEXT_BYTES`] is refused before parsing.
    pub fn parse_text(text: &str) -> Result<Rule, RuleError> {
        check_size(text, MAX_RULE_TEXT_BYTES)?;
        parse::parse_rule(text)
    }

    /// Either form: JSON when the input starts with `{`, text otherwise.
    pub fn parse_any(input: &str) -> Result<Rule, RuleError> {
        if input.trim_start().starts_with('{') { Rule::from_json(input) } else { Rule::parse_text(input) }
    }

    /// The text form; [`Rule::parse_text`] reads it back to the same rule.
    pub fn to_text(&self) -> String {
        print::rule_to_text(self)
    }

    /// The stored JSON form (compact).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".into())
    }

    /// Checks a rule built in code, as loading does; errors carry the JSON path.
    pub fn validate(&self) -> Result<(), RuleError> {
        validate::validate_tree(self)
    }
}

/// Refuses rule input over `limit` bytes, before any parsing allocates for it.
fn check_size(text: &str, limit: usize) -> Result<(), RuleError> {
    if text.len() <= limit {
        return Ok(());
    }
    Err(RuleError::invalid(
        "",
        format!("the rule is {} bytes, over the limit of {limit}", text.len()),
        "a smaller rule",
    ))
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    /// Parses either form, as [`Rule::parse_any`].
    fn from_str(s: &str) -> Result<Rule, RuleError> {
        Rule::parse_any(s)
    }
}
