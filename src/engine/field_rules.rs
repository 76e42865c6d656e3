//! What a lead's text fields may hold, and how big they may be: one set of rules for imports,
//! `leads add` and `leads update`, so a value accepted one way is accepted every way (and an
//! export always imports back).
//!
//! Values are never truncated or cleaned up silently: a value breaking a rule is refused with
//! the rule it breaks. Lengths are counted in characters (Unicode scalar values). The limits
//! are documented in README, "Import rules".

use crate::engine::lead::{Lead, LeadDraft};
use std::collections::BTreeMap;

/// Longest name (also first + last name together).
pub const MAX_NAME_CHARS: usize = 200;
/// Longest phone number as written, before normalization.
pub const MAX_PHONE_CHARS: usize = 64;
/// Most emails, or phones, in one cell.
pub const MAX_VALUES_PER_CELL: usize = 100;
pub const MAX_TAG_CHARS: usize = 64;
/// Most tags on one lead (and in one row).
pub const MAX_TAGS: usize = 100;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 1_000;
/// Most metadata keys on one lead (and columns that become metadata in one file).
pub const MAX_METADATA_KEYS: usize = 100;

/// The first control character in `text` (C0, DEL, C1), with its 1-based character position.
/// With `allow_breaks`, tabs and line breaks are allowed (multi-line notes in metadata).
pub fn control_char(text: &str, allow_breaks: bool) -> Option<(usize, char)> {
    text.chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !(allow_breaks && matches!(c, '\t' | '\n' | '\r')))
        .map(|(i, c)| (i + 1, c))
}

/// "a tab (U+0009) at character 4", for reasons.
pub fn describe_control(position: usize, c: char) -> String {
    let what = match c {
        '\t' => "a tab",
        '\n' => "a line break",
        '\r' => "a carriage return",
        '\0' => "a NUL byte",
        _ => "a control character",
    };
    format!("{what} (U+{:04X}) at character {position}", u32::from(c))
}

/// A value for an error message: control characters escaped (they could rewrite the terminal
/// the message is printed on) and long values cut, so a reason stays one readable line.
pub fn shown(value: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn single_line(text: &str, rule: &str) -> Result<(), String> {
    match control_char(text, false) {
        Some((at, c)) => Err(format!("contains {}; {rule}", describe_control(at, c))),
        None => Ok(()),
    }
}

fn at_most(text: &str, max: usize, what: &str) -> Result<(), String> {
    let n = text.chars().count();
    if n > max { Err(format!("is {n} characters long; {what} has at most {max}")) } else { Ok(()) }
}

/// A name: one line of printable text (no tabs or line breaks), at most 200 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    single_line(name, "a name must be one line of printable text (no tabs or line breaks)")?;
    at_most(name, MAX_NAME_CHARS, "a name")
}

/// A tag: printable text, at most 64 characters.
pub fn check_tag(tag: &str) -> Result<(), String> {
    single_line(tag, "a tag must be printable text")?;
    at_most(tag, MAX_TAG_CHARS, "a tag")
}

/// The number of tags in one row or on one lead.
pub fn check_tag_count(n: usize) -> Result<(), String> {
    if n > MAX_TAGS { Err(format!("has {n} tags; a lead has at most {MAX_TAGS}")) } else { Ok(()) }
}

/// A metadata key (already in `metadata_key` form): at most 64 characters.
pub fn check_metadata_key(key: &str) -> Result<(), String> {
    single_line(key, "a metadata key must be printable text")?;
    at_most(key, MAX_METADATA_KEY_CHARS, "a metadata key")
}

/// A metadata value: printable text where tabs and line breaks are allowed (notes and
/// addresses span lines), at most 1,000 characters.
pub fn check_metadata_value(value: &str) -> Result<(), String> {
    if let Some((at, c)) = control_char(value, true) {
        return Err(format!(
            "contains {}; metadata values may hold tabs and line breaks but no other control characters",
            describe_control(at, c)
        ));
    }
    at_most(value, MAX_METADATA_VALUE_CHARS, "a metadata value")
}

/// The number of metadata keys on one lead.
pub fn check_metadata_count(n: usize) -> Result<(), String> {
    if n > MAX_METADATA_KEYS {
        Err(format!("has {n} metadata keys; a lead has at most {MAX_METADATA_KEYS}"))
    } else {
        Ok(())
    }
}

/// Every text rule for the fields of a lead, with the field named: `name: contains …`.
/// Emails and phones are checked by their normalizers, so only their text is checked here.
fn check_parts(
    name: &str,
    emails: &[String],
    phones: &[String],
    tags: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<(), String> {
    check_name(name).map_err(|r| format!("name {r}"))?;
    for e in emails {
        single_line(e, "an email must be printable text").map_err(|r| format!("email '{}' {r}", shown(e)))?;
    }
    for p in phones {
        single_line(p, "a phone must be printable text").map_err(|r| format!("phone '{}' {r}", shown(p)))?;
    }
    for t in tags {
        check_tag(t).map_err(|r| format!("tag '{}' {r}", shown(t)))?;
    }
    check_tag_count(tags.len()).map_err(|r| format!("the lead {r}"))?;
    for (k, v) in metadata {
        check_metadata_key(k).map_err(|r| format!("metadata key '{}' {r}", shown(k)))?;
        check_metadata_value(v).map_err(|r| format!("metadata.{} {r}", shown(k)))?;
    }
    check_metadata_count(metadata.len()).map_err(|r| format!("the lead {r}"))
}

/// Every field rule, for a whole lead.
pub fn check_lead(lead: &Lead) -> Result<(), String> {
    check_parts(&lead.name, &lead.emails, &lead.phones, &lead.tags, &lead.metadata)
}

/// The field rules for what an edit (`leads update`) changed: values stored before these
/// rules existed do not block an edit of another field, but every value typed is checked.
pub fn check_update(before: &Lead, after: &Lead) -> Result<(), String> {
    let new = |values: &[String], old: &[String]| -> Vec<String> {
        values.iter().filter(|v| !old.contains(v)).cloned().collect()
    };
    let tags = new(&after.tags, &before.tags);
    let metadata: BTreeMap<String, String> = after
        .metadata
        .iter()
        .filter(|(k, v)| before.metadata.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let name = if after.name == before.name { "" } else { after.name.as_str() };
    check_parts(name, &new(&after.emails, &before.emails), &new(&after.phones, &before.phones), &tags, &metadata)?;
    // Counts only when they grew past the limit (a lead stored with more may shrink).
    if after.tags.len() > before.tags.len() {
        check_tag_count(after.tags.len()).map_err(|r| format!("the lead {r}"))?;
    }
    if after.metadata.len() > before.metadata.len() {
        check_metadata_count(after.metadata.len()).map_err(|r| format!("the lead {r}"))?;
    }
    Ok(())
}

/// Every field rule, for a lead about to be added (`leads add`).
pub fn check_draft(draft: &LeadDraft) -> Result<(), String> {
    check_parts(draft.name.as_deref().unwrap_or(""), &draft.emails, &draft.phones, &draft.tags, &draft.metadata)
}

/// The lead-wide limits a merge can break although every row kept them (tags and metadata
/// keys accumulate): checked on the merged lead before an import writes it. Only a count the
/// merge made grow past its limit is refused, so a lead stored before the limits existed can
/// still be updated.
pub fn check_merged(before: &Lead, after: &Lead) -> Result<(), String> {
    if after.tags.len() > before.tags.len() {
        check_tag_count(after.tags.len())?;
    }
    if after.metadata.len() > before.metadata.len() {
        check_metadata_count(after.metadata.len())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_and_described() {
        assert_eq!(control_char("Ada\tL", false), Some((4, '\t')));
        assert_eq!(control_char("a\nb", true), None);
        assert_eq!(control_char("a\u{1b}[2J", true), Some((2, '\u{1b}')));
        assert_eq!(control_char("a\u{85}", false), Some((2, '\u{85}')), "C1 controls count");
        assert_eq!(describe_control(1, '\0'), "a NUL byte (U+0000) at character 1");
        assert!(check_name("Ada\nLovelace").unwrap_err().contains("a line break (U+000A) at character 4"));
        assert!(check_name("Ada Lovelace").is_ok());
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(check_name(&"é".repeat(201)).unwrap_err(), "is 201 characters long; a name has at most 200");
        assert!(check_tag(&"t".repeat(65)).is_err());
        assert!(check_metadata_value(&"v".repeat(1000)).is_ok());
        assert!(check_metadata_value(&"v".repeat(1001)).is_err());
        assert!(check_metadata_value("line one\nline two\tand a tab").is_ok());
        assert!(check_metadata_value("nul\0").is_err());
        assert!(check_tag_count(101).is_err() && check_tag_count(100).is_ok());
    }

    #[test]
    fn shown_values_are_safe_to_print() {
        assert_eq!(shown("a\u{1b}b"), "a\\u{1b}b");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 61);
    }

    #[test]
    fn leads_are_checked_field_by_field() {
        let mut draft =
            LeadDraft { name: Some("Ada".into()), emails: vec!["a@example.com".into()], ..Default::default() };
        assert!(check_draft(&draft).is_ok());
        draft.metadata.insert("city".into(), "Lon\u{7}don".into());
        assert!(check_draft(&draft).unwrap_err().starts_with("metadata.city contains a control character"));
        draft.metadata.clear();
        draft.tags = (0..101).map(|i| format!("t{i}")).collect();
        assert_eq!(check_draft(&draft).unwrap_err(), "the lead has 101 tags; a lead has at most 100");
    }

    #[test]
    fn updates_are_checked_on_what_they_change() {
        let t = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        let draft =
            LeadDraft { name: Some("Old\nName".into()), emails: vec!["a@example.com".into()], ..Default::default() };
        let before = draft.into_lead(1, t);
        let mut after = before.clone();
        after.total_spend = 5.0;
        assert!(check_update(&before, &after).is_ok(), "a stored value does not block another edit");
        assert!(check_lead(&after).is_err());
        after.name = "New\tName".into();
        assert!(check_update(&before, &after).unwrap_err().starts_with("name contains a tab"));
        after.name = "New Name".into();
        after.metadata.insert("k".into(), "\u{1b}".into());
        assert!(check_update(&before, &after).unwrap_err().starts_with("metadata.k contains"));
        after.metadata.clear();
        after.tags = (0..101).map(|i| i.to_string()).collect();
        assert!(check_merged(&before, &after).is_err() && check_update(&before, &after).is_err());
        assert!(check_merged(&after, &before).is_ok(), "shrinking is fine");
    }
}
