//! Message templates: the text a campaign sends, with `{{field}}` placeholders filled per lead.
//!
//! A template is parsed once, when the campaign is created, so that a typo (`{{frist_name}}`)
//! is refused with its line and column instead of sending "Hi ," to ten thousand people.
//! Placeholders name a lead field (`name`, `first_name`, `total_spend`, `visits`,
//! `last_order_at`, `email`, `phone`) or an imported column (`metadata.city`), may carry a
//! default used when the lead has no value (`{{first_name|there}}`), and tolerate whitespace
//! inside the braces (`{{ first_name | there }}`).
//!
//! Rendering never fails: a missing value without a default renders as the empty string, so a
//! campaign never stops halfway because one lead lacks a city. Numbers are formatted for people:
//! `total_spend` with two decimals (`1234.50`), `visits` as a whole number, `last_order_at` as a
//! date (`2024-05-01`, UTC). `email` and `phone` are the lead's first ones.
//!
//! A campaign's template must also fit its channel for every lead: [`Template::check_sendable`]
//! refuses an empty template and one whose longest rendering (literal text plus, for each
//! placeholder, the longest value its field may hold, `engine::limits`) exceeds the channel's
//! maximum length, at create time rather than at the ten-thousandth send.
//!
//! Braces: `{{` opens a placeholder and `}}` closes it; a `}}` outside a placeholder, or a `{{`
//! that is never closed (or opens inside another), is an error. Single `{` and `}` are plain
//! text. There is no escape for a literal `{{`.

use crate::engine::lead::Lead;
use crate::engine::limits;
use crate::engine::segment::is_valid_metadata_key;
use std::fmt;
use thiserror::Error;

/// A field a placeholder can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    FirstName,
    TotalSpend,
    Visits,
    LastOrderAt,
    /// The lead's first email.
    Email,
    /// The lead's first phone (E.164).
    Phone,
    /// An imported column, `metadata.KEY`.
    Metadata(String),
}

const BUILT_IN: &[(&str, Field)] = &[
    ("name", Field::Name),
    ("first_name", Field::FirstName),
    ("total_spend", Field::TotalSpend),
    ("visits", Field::Visits),
    ("last_order_at", Field::LastOrderAt),
    ("email", Field::Email),
    ("phone", Field::Phone),
];

const METADATA_PREFIX: &str = "metadata.";

/// What error messages list as valid placeholder names.
pub fn valid_fields_help() -> String {
    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
    format!("{}, or metadata.KEY (KEY: letters, digits and _)", names.join(", "))
}

impl Field {
    /// The field a placeholder spells `name`, if it is valid.
    fn from_name(name: &str) -> Option<Field> {
        if let Some(key) = name.strip_prefix(METADATA_PREFIX) {
            return is_valid_metadata_key(key).then(|| Field::Metadata(key.to_string()));
        }
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, f)| f.clone())
    }

    /// The most characters this field's value can render as (see `engine::limits`).
    fn max_chars(&self) -> usize {
        match self {
            Field::Name | Field::FirstName => limits::MAX_NAME_CHARS,
            Field::TotalSpend => limits::MAX_AMOUNT_CHARS,
            Field::Visits => limits::MAX_WHOLE_NUMBER_CHARS,
            Field::LastOrderAt => limits::MAX_DATE_CHARS,
            Field::Email => limits::MAX_EMAIL_CHARS,
            Field::Phone => limits::MAX_PHONE_CHARS,
            Field::Metadata(_) => limits::MAX_METADATA_VALUE_CHARS,
        }
    }

    /// The value of this field for `lead`, `None` when the lead has none.
    fn value(&self, lead: &Lead) -> Option<String> {
        let text = match self {
            Field::Name => lead.name.clone(),
            Field::FirstName => lead.first_name().to_string(),
            Field::TotalSpend => format!("{:.2}", lead.total_spend),
            Field::Visits => lead.visits.to_string(),
            Field::LastOrderAt => lead.last_order_at?.format("%Y-%m-%d").to_string(),
            Field::Email => lead.emails.first()?.clone(),
            Field::Phone => lead.phones.first()?.clone(),
            Field::Metadata(key) => lead.metadata.get(key)?.clone(),
        };
        (!text.is_empty()).then_some(text)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Metadata(key) => write!(f, "{METADATA_PREFIX}{key}"),
            other => {
                let name = BUILT_IN.iter().find(|(_, b)| b == other).map_or("?", |(n, _)| *n);
                f.write_str(name)
            }
        }
    }
}

/// Why a template was refused. Positions are 1-based; columns count characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("unknown field `{field}` at line {line}, column {column}{hint}; valid fields: {valid}")]
    UnknownField { field: String, line: usize, column: usize, hint: String, valid: String },
    #[error("empty placeholder at line {line}, column {column}; write a field name, e.g. {{{{first_name}}}}")]
    EmptyPlaceholder { line: usize, column: usize },
    #[error("`{{{{` at line {line}, column {column} is never closed with `}}}}`")]
    Unclosed { line: usize, column: usize },
    #[error("`{{{{` at line {line}, column {column} opens inside another placeholder; close the first with `}}}}`")]
    Nested { line: usize, column: usize },
    #[error("`}}}}` at line {line}, column {column} closes nothing; a placeholder starts with `{{{{`")]
    UnexpectedClose { line: usize, column: usize },
    #[error("the message is {length} characters long; this channel allows at most {max}")]
    TooLong { length: usize, max: usize },
    #[error("the template is empty; write the message to send, e.g. \"Hi {{{{first_name|there}}}}!\"")]
    Empty,
    #[error(
        "the message can reach {bound} characters for some leads ({breakdown}); this channel allows at most {max}: \
         shorten the text or use fewer long fields"
    )]
    MayBeTooLong { bound: usize, max: usize, breakdown: String },
}

/// One `{{field|default}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    pub field: Field,
    /// Used when the lead has no value for the field; `None` renders the empty string.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Slot(Placeholder),
}

/// A parsed message template. Build it with [`Template::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, refusing unknown fields and unbalanced braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0; // byte offset of `rest` in `text`
        loop {
            let open = rest.find("{{");
            let close = rest.find("}}");
            match (open, close) {
                (_, Some(c)) if open.is_none_or(|o| c < o) => {
                    return Err(at(text, offset + c, |line, column| TemplateError::UnexpectedClose { line, column }));
                }
                (None, _) => {
                    push_text(&mut parts, rest);
                    break;
                }
                (Some(o), _) => {
                    push_text(&mut parts, &rest[..o]);
                    let inner_start = o + 2;
                    let Some(len) = rest[inner_start..].find("}}") else {
                        return Err(at(text, offset + o, |line, column| TemplateError::Unclosed { line, column }));
                    };
                    let inner = &rest[inner_start..inner_start + len];
                    if let Some(nested) = inner.find("{{") {
                        let pos = offset + inner_start + nested;
                        return Err(at(text, pos, |line, column| TemplateError::Nested { line, column }));
                    }
                    parts.push(Part::Slot(placeholder(text, offset + o, inner)?));
                    let consumed = inner_start + len + 2;
                    rest = &rest[consumed..];
                    offset += consumed;
                }
            }
        }
        Ok(Template { source: text.to_string(), parts })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The message for `lead`. Missing values use the placeholder's default, or render empty.
    pub fn render(&self, lead: &Lead) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Slot(slot) => match slot.field.value(lead) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(slot.default.as_deref().unwrap_or("")),
                },
            }
        }
        out
    }

    /// The longest message this template can render, in characters: its text plus, for each
    /// placeholder, the longer of its default and the longest value its field may hold.
    pub fn max_rendered_length(&self) -> usize {
        self.parts.iter().map(part_max_chars).sum()
    }

    /// Refuses a template that is empty (or only whitespace), or that could render longer
    /// than `max_length` characters for some lead.
    pub fn check_sendable(&self, max_length: usize) -> Result<(), TemplateError> {
        if self.source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let bound = self.max_rendered_length();
        if bound <= max_length {
            return Ok(());
        }
        let text: usize = self.parts.iter().filter(|p| matches!(p, Part::Text(_))).map(part_max_chars).sum();
        let mut breakdown = vec![format!("{text} of text")];
        breakdown.extend(
            self.placeholders()
                .map(|slot| format!("{} up to {}", slot.field, part_max_chars(&Part::Slot(slot.clone())))),
        );
        Err(TemplateError::MayBeTooLong { bound, max: max_length, breakdown: breakdown.join(", ") })
    }

    /// The distinct fields the template uses, in order of first appearance (for previews).
    pub fn fields(&self) -> Vec<&Field> {
        let mut seen: Vec<&Field> = Vec::new();
        for slot in self.placeholders() {
            if !seen.contains(&&slot.field) {
                seen.push(&slot.field);
            }
        }
        seen
    }

    /// Every placeholder, in order, with its default.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Slot(slot) => Some(slot),
            Part::Text(_) => None,
        })
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Refuses a rendered message longer than `max` characters (Unicode scalar values, which is how
/// messaging apps count; SMS segment arithmetic is the channel's business).
pub fn check_length(rendered: &str, max: usize) -> Result<(), TemplateError> {
    let length = rendered.chars().count();
    if length > max { Err(TemplateError::TooLong { length, max }) } else { Ok(()) }
}

fn part_max_chars(part: &Part) -> usize {
    match part {
        Part::Text(text) => text.chars().count(),
        Part::Slot(slot) => slot.field.max_chars().max(slot.default.as_deref().map_or(0, |d| d.chars().count())),
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if !text.is_empty() {
        parts.push(Part::Text(text.to_string()));
    }
}

/// The placeholder whose `{{` is at byte `pos` of `text` and whose inside is `inner`.
fn placeholder(text: &str, pos: usize, inner: &str) -> Result<Placeholder, TemplateError> {
    let (name, default) = match inner.split_once('|') {
        Some((name, default)) => (name.trim(), Some(default.trim().to_string())),
        None => (inner.trim(), None),
    };
    if name.is_empty() {
        return Err(at(text, pos, |line, column| TemplateError::EmptyPlaceholder { line, column }));
    }
    let Some(field) = Field::from_name(name) else {
        return Err(at(text, pos, |line, column| TemplateError::UnknownField {
            field: name.to_string(),
            line,
            column,
            hint: hint_for(name),
            valid: valid_fields_help(),
        }));
    };
    Ok(Placeholder { field, default })
}

/// " (did you mean `x`?)" when the name is a valid one in the wrong case.
fn hint_for(name: &str) -> String {
    let lower = name.to_lowercase();
    match Field::from_name(&lower) {
        Some(field) if lower != name => format!(" (did you mean `{field}`?)"),
        _ => String::new(),
    }
}

/// Builds an error at byte `pos` of `text`, converted to a 1-based line and character column.
fn at(text: &str, pos: usize, make: impl FnOnce(usize, usize) -> TemplateError) -> TemplateError {
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    make(line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use std::collections::BTreeMap;

    fn lead() -> Lead {
        let t = DateTime::from_timestamp(1_714_555_800, 0).expect("valid"); // 2024-05-01 09:30 UTC
        Lead {
            id: 1,
            name: "Ada Lovelace".into(),
            emails: vec!["ada@example.com".into(), "ada@work.example".into()],
            phones: vec!["+447700900123".into()],
            total_spend: 1234.5,
            visits: 12,
            last_order_at: Some(t),
            tags: vec![],
            metadata: BTreeMap::from([("city".to_string(), "London".to_string())]),
            created_at: t,
            updated_at: t,
        }
    }

    fn empty_lead() -> Lead {
        Lead {
            name: String::new(),
            emails: vec![],
            phones: vec![],
            last_order_at: None,
            metadata: BTreeMap::new(),
            ..lead()
        }
    }

    fn render(text: &str, lead: &Lead) -> String {
        Template::parse(text).expect("valid template").render(lead)
    }

    #[test]
    fn every_field_renders() {
        let text = "{{name}}|{{first_name}}|{{total_spend}}|{{visits}}|{{last_order_at}}|{{email}}|{{phone}}|{{metadata.city}}";
        assert_eq!(
            render(text, &lead()),
            "Ada Lovelace|Ada|1234.50|12|2024-05-01|ada@example.com|+447700900123|London"
        );
    }

    #[test]
    fn defaults_fill_missing_values_and_whitespace_is_tolerated() {
        let text = "Hi {{ first_name | there }}, from {{metadata.city|your town}}{{ email }}.";
        assert_eq!(render(text, &empty_lead()), "Hi there, from your town.");
        assert_eq!(render(text, &lead()), "Hi Ada, from Londonada@example.com.");
    }

    #[test]
    fn missing_values_without_default_render_empty_but_numbers_never_miss() {
        let text = "[{{name}}][{{last_order_at}}][{{phone}}][{{metadata.tier}}][{{total_spend}}][{{visits}}]";
        assert_eq!(render(text, &empty_lead()), "[][][][][1234.50][12]");
        let zero = Lead { total_spend: 0.0, visits: 0, ..empty_lead() };
        assert_eq!(render("{{total_spend}} {{visits}}", &zero), "0.00 0");
    }

    #[test]
    fn unicode_text_and_values_survive() {
        let lead = Lead { name: "Zoë Ñúñez-李".into(), ..lead() };
        assert_eq!(render("¡Hola {{first_name}}! 🎉 — {{ name }}", &lead), "¡Hola Zoë! 🎉 — Zoë Ñúñez-李");
        assert_eq!(render("{{first_name|amigo 😊}}", &empty_lead()), "amigo 😊");
    }

    #[test]
    fn single_braces_are_plain_text() {
        assert_eq!(render("{a} } { {{visits}}", &lead()), "{a} } { 12");
    }

    #[test]
    fn fields_are_distinct_in_order() {
        let t = Template::parse("{{visits}} {{first_name}} {{visits|0}} {{metadata.city}}").expect("valid");
        let names: Vec<String> = t.fields().iter().map(|f| f.to_string()).collect();
        assert_eq!(names, ["visits", "first_name", "metadata.city"]);
        assert_eq!(t.placeholders().count(), 4);
        assert_eq!(t.source(), "{{visits}} {{first_name}} {{visits|0}} {{metadata.city}}");
    }

    #[test]
    fn unknown_field_names_the_column_and_the_valid_fields() {
        let err = Template::parse("Hi 😊 {{frist_name}}").expect_err("unknown");
        assert!(matches!(&err, TemplateError::UnknownField { field, line: 1, column: 6, .. } if field == "frist_name"));
        let text = err.to_string();
        assert!(text.contains("line 1, column 6"), "{text}");
        assert!(text.contains("first_name") && text.contains("metadata.KEY"), "{text}");
    }

    #[test]
    fn wrong_case_gets_a_hint() {
        let err = Template::parse("{{First_Name}}").expect_err("unknown");
        assert!(err.to_string().contains("did you mean `first_name`?"), "{err}");
    }

    #[test]
    fn bad_metadata_keys_are_unknown_fields() {
        for text in ["{{metadata.}}", "{{metadata.postal code}}", "{{metadata}}", "{{metadata.a-b}}"] {
            assert!(matches!(Template::parse(text), Err(TemplateError::UnknownField { .. })), "{text}");
        }
        assert!(Template::parse("{{metadata.código_2}}").is_ok(), "unicode letters are valid key characters");
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let err = Template::parse("Hello\nñ {{nope}}").expect_err("unknown");
        assert!(matches!(err, TemplateError::UnknownField { line: 2, column: 3, .. }), "{err:?}");
    }

    #[test]
    fn every_brace_error() {
        assert_eq!(Template::parse("Hi {{name"), Err(TemplateError::Unclosed { line: 1, column: 4 }));
        assert_eq!(Template::parse("Hi name}} x"), Err(TemplateError::UnexpectedClose { line: 1, column: 8 }));
        assert_eq!(Template::parse("{{name}} }}"), Err(TemplateError::UnexpectedClose { line: 1, column: 10 }));
        assert_eq!(Template::parse("{{a {{name}}"), Err(TemplateError::Nested { line: 1, column: 5 }));
        assert_eq!(Template::parse("x {{ }}"), Err(TemplateError::EmptyPlaceholder { line: 1, column: 3 }));
        assert_eq!(Template::parse("{{|there}}"), Err(TemplateError::EmptyPlaceholder { line: 1, column: 1 }));
        for err in [
            TemplateError::Unclosed { line: 1, column: 4 },
            TemplateError::UnexpectedClose { line: 1, column: 8 },
            TemplateError::Nested { line: 1, column: 5 },
            TemplateError::EmptyPlaceholder { line: 1, column: 3 },
        ] {
            assert!(err.to_string().contains("column"), "{err}");
        }
    }

    #[test]
    fn text_without_placeholders_is_fine() {
        assert_eq!(render("", &lead()), "");
        assert_eq!(render("plain ✓", &lead()), "plain ✓");
        assert!(Template::parse("plain").expect("valid").fields().is_empty());
    }

    #[test]
    fn sendable_templates_are_not_empty_and_fit_the_channel() {
        let t = |text: &str| Template::parse(text).expect("valid");
        assert_eq!(t("").check_sendable(4_096), Err(TemplateError::Empty));
        assert_eq!(t(" \n\t ").check_sendable(4_096), Err(TemplateError::Empty));
        assert_eq!(t("Hi {{first_name|there}}!").max_rendered_length(), 4 + 200);
        let default = "x".repeat(300);
        assert_eq!(t(&format!("{{{{phone|{default}}}}}")).max_rendered_length(), 300, "a long default counts");
        let fits = format!("{}{{{{metadata.note}}}}", "a".repeat(4_096 - 1_000));
        assert_eq!(t(&fits).check_sendable(4_096), Ok(()));
        let err = t(&format!("{fits}{{{{name}}}}")).check_sendable(4_096).expect_err("too long");
        assert_eq!(
            err.to_string(),
            "the message can reach 4296 characters for some leads (3096 of text, metadata.note up to 1000, name up to 200); this channel allows at most 4096: shorten the text or use fewer long fields"
        );
    }

    #[test]
    fn length_counts_characters() {
        assert_eq!(check_length("ñññ", 3), Ok(()));
        assert_eq!(check_length("😊😊😊😊", 3), Err(TemplateError::TooLong { length: 4, max: 3 }));
        let err = check_length("abcd", 2).expect_err("too long");
        assert_eq!(err.to_string(), "the message is 4 characters long; this channel allows at most 2");
    }
}
