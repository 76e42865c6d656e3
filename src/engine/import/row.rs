//! One CSV row → a [`LeadDraft`], or every reason it cannot be one.

use super::headers::Field;
use crate::engine::field_rules::{self, shown};
use crate::engine::lead::LeadDraft;
use crate::engine::normalize::{normalize_email, parse_amount, parse_count, parse_date, parse_tags, split_multi};
use crate::engine::phone::{Region, normalize_phone};
use csv::ByteRecord;

/// A problem with one cell (or, with an empty column, the whole row).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldError {
    pub column: String,
    pub reason: String,
}

/// How to read rows: the field of each column and the region for national phone numbers.
pub struct RowReader {
    pub headers: Vec<String>,
    pub fields: Vec<Field>,
    pub region: Option<Region>,
    /// The file was UTF-16, transcoded on the way in: bytes that are not UTF-8 here stand for
    /// UTF-16 that did not decode, and the reason says so.
    pub from_utf16: bool,
    /// The field separator, for reasons.
    pub delimiter: u8,
}

/// "commas", "semicolons"…, for reasons.
pub fn delimiter_name(delimiter: u8) -> &'static str {
    match delimiter {
        b';' => "semicolons",
        b'\t' => "tabs",
        b'|' => "pipes",
        _ => "commas",
    }
}

impl RowReader {
    /// `Ok(None)` for a row with nothing in it (skipped, not an error).
    pub fn read(&self, record: &ByteRecord) -> Result<Option<LeadDraft>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if record.len() != self.headers.len() {
            if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                return Ok(None);
            }
            errors.push(FieldError {
                column: String::new(),
                reason: format!(
                    "has {} fields but the header has {}; check for unquoted {}",
                    record.len(),
                    self.headers.len(),
                    delimiter_name(self.delimiter)
                ),
            });
            return Err(errors);
        }
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            return Ok(None);
        }
        let mut draft = LeadDraft::default();
        let (mut first, mut last) = (None::<&str>, None::<(&str, &String)>);
        for ((bytes, field), header) in record.iter().zip(&self.fields).zip(&self.headers) {
            if *field == Field::Ignore {
                continue;
            }
            let mut fail = |reason: String| errors.push(FieldError { column: header.clone(), reason });
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t.trim(),
                Err(e) => {
                    fail(self.not_text(bytes, e));
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            match field {
                Field::Name | Field::FirstName | Field::LastName => match field_rules::check_name(text) {
                    Err(reason) => fail(format!("name {reason}")),
                    Ok(()) if *field == Field::Name => draft.name = Some(text.to_string()),
                    Ok(()) if *field == Field::FirstName => first = Some(text),
                    Ok(()) => last = Some((text, header)),
                },
                Field::Emails => {
                    if let Err(reason) = values_in_cell(text, "emails") {
                        fail(reason);
                        continue;
                    }
                    for value in split_multi(text) {
                        match normalize_email(value) {
                            Ok(e) if !draft.emails.contains(&e) => draft.emails.push(e),
                            Ok(_) => {}
                            Err(reason) => fail(format!("email '{}' {reason}", shown(value))),
                        }
                    }
                }
                Field::Phones => {
                    if let Err(reason) = values_in_cell(text, "phones") {
                        fail(reason);
                        continue;
                    }
                    for value in split_multi(text) {
                        match normalize_phone(value, self.region) {
                            Ok(p) if !draft.phones.contains(&p) => draft.phones.push(p),
                            Ok(_) => {}
                            Err(reason) => fail(format!("phone '{}' {reason}", shown(value))),
                        }
                    }
                }
                Field::TotalSpend => match parse_amount(text) {
                    Ok(v) => draft.total_spend = Some(v),
                    Err(reason) => fail(reason),
                },
                Field::Visits => match parse_count(text) {
                    Ok(v) => draft.visits = Some(v),
                    Err(reason) => fail(reason),
                },
                Field::LastOrderAt => match parse_date(text) {
                    Ok(v) => draft.last_order_at = Some(v),
                    Err(reason) => fail(reason),
                },
                Field::CreatedAt => match parse_date(text) {
                    Ok(v) => draft.created_at = Some(v),
                    Err(reason) => fail(reason),
                },
                Field::Tags => {
                    for tag in parse_tags(text) {
                        if let Err(reason) = field_rules::check_tag(&tag) {
                            fail(format!("tag '{}' {reason}", shown(&tag)));
                        } else if !draft.tags.contains(&tag) {
                            draft.tags.push(tag);
                        }
                    }
                    if let Err(reason) = field_rules::check_tag_count(draft.tags.len()) {
                        fail(format!("the row {reason}"));
                    }
                }
                Field::Metadata(key) => match field_rules::check_metadata_value(text) {
                    Ok(()) => {
                        draft.metadata.insert(key.clone(), text.to_string());
                    }
                    Err(reason) => fail(format!("value {reason}")),
                },
                Field::Ignore => {}
            }
        }
        if draft.name.is_none() {
            draft.name = match (first, last) {
                (Some(f), Some((l, column))) => {
                    // The joined name has the limit of a name.
                    let mut joined = String::with_capacity(f.len() + 1 + l.len());
                    joined.extend([f, " ", l]);
                    if let Err(reason) = field_rules::check_name(&joined) {
                        let reason = format!("first and last name together {reason}");
                        errors.push(FieldError { column: column.clone(), reason });
                    }
                    Some(joined)
                }
                (f, l) => f.or(l.map(|(l, _)| l)).map(str::to_string),
            };
        }
        if errors.is_empty() && draft.emails.is_empty() && draft.phones.is_empty() {
            errors.push(FieldError {
                column: String::new(),
                reason: "has no email or phone; a lead needs at least one to be identified".into(),
            });
        }
        if errors.is_empty() { Ok(Some(draft)) } else { Err(errors) }
    }

    fn not_text(&self, bytes: &[u8], e: std::str::Utf8Error) -> String {
        let valid = e.valid_up_to();
        if self.from_utf16 {
            // The transcoder writes one invalid byte where UTF-16 did not decode.
            let at = String::from_utf8_lossy(&bytes[..valid]).chars().count() + 1;
            return format!(
                "contains UTF-16 that does not decode (an unpaired surrogate) at character {at}; re-save the file as UTF-8 or UTF-16"
            );
        }
        format!(
            "contains bytes that are not UTF-8 (byte 0x{:02X} at position {}); save the file as UTF-8",
            bytes[valid],
            valid + 1
        )
    }
}

/// Emails and phones in one cell: at most [`field_rules::MAX_VALUES_PER_CELL`].
fn values_in_cell(text: &str, what: &str) -> Result<(), String> {
    let n = split_multi(text).count();
    if n > field_rules::MAX_VALUES_PER_CELL {
        return Err(format!("has {n} {what} in one cell; at most {} are allowed", field_rules::MAX_VALUES_PER_CELL));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::import::headers::map_headers;

    fn reader(headers: &[&str]) -> RowReader {
        let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        let fields = map_headers(&headers, &[]).expect("maps");
        RowReader { headers, fields, region: Some("GB".parse().expect("region")), from_utf16: false, delimiter: b',' }
    }

    #[test]
    fn a_good_row_becomes_a_draft() {
        let r = reader(&["First Name", "Last Name", "Email", "Mobile", "Total Spent", "City", "Tags"]);
        let rec = ByteRecord::from(vec![
            "Ada",
            "Lovelace",
            "ADA@x.com; ada@y.org",
            "07911 123456",
            "12.5",
            "London",
            "vip;new",
        ]);
        let d = r.read(&rec).expect("valid").expect("not empty");
        assert_eq!(d.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(d.emails, ["ada@x.com", "ada@y.org"]);
        assert_eq!(d.phones, ["+447911123456"]);
        assert_eq!(d.total_spend, Some(12.5));
        assert_eq!(d.metadata.get("city").map(String::as_str), Some("London"));
        assert_eq!(d.tags, ["vip", "new"]);
    }

    #[test]
    fn every_bad_cell_is_reported_by_column() {
        let r = reader(&["Email", "Phone", "Visits", "Last Order"]);
        let rec = ByteRecord::from(vec!["nope", "12", "many", "31/12/2024"]);
        let errors = r.read(&rec).unwrap_err();
        let columns: Vec<_> = errors.iter().map(|e| e.column.as_str()).collect();
        assert_eq!(columns, ["Email", "Phone", "Visits", "Last Order"]);
    }

    #[test]
    fn non_utf8_and_short_rows_are_errors_not_panics() {
        let r = reader(&["Name", "Email"]);
        let rec = ByteRecord::from(vec![&b"Jos\xe9"[..], &b"jose@x.com"[..]]);
        let errors = r.read(&rec).unwrap_err();
        assert!(errors[0].reason.contains("0xE9"), "{errors:?}");
        let short = ByteRecord::from(vec!["only one"]);
        assert!(r.read(&short).unwrap_err()[0].reason.contains("has 1 fields"));
        assert!(r.read(&ByteRecord::from(vec!["", " "])).expect("blank").is_none());
    }

    #[test]
    fn text_rules_and_limits_name_the_column() {
        let r = reader(&["Email", "First Name", "Last Name", "Tags", "Notes"]);
        let long = "n".repeat(150);
        let rec = ByteRecord::from(vec!["a@example.com", long.as_str(), long.as_str(), "ok", "two\nlines"]);
        let errors = r.read(&rec).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].column, "Last Name");
        assert_eq!(errors[0].reason, "first and last name together is 301 characters long; a name has at most 200");
        let rec = ByteRecord::from(vec!["a@example.com", "Ada\tL", "", "vip\u{0}", "\u{1b}[2J"]);
        let columns: Vec<_> = r.read(&rec).unwrap_err().into_iter().map(|e| e.column).collect();
        assert_eq!(columns, ["First Name", "Tags", "Notes"]);
        let rec = ByteRecord::from(vec!["a@example.com", "Ada", "Lovelace", "", "two\nlines\tok"]);
        let d = r.read(&rec).expect("valid").expect("not empty");
        assert_eq!(d.name.as_deref(), Some("Ada Lovelace"));
    }

    #[test]
    fn rows_need_an_identity() {
        let r = reader(&["Name", "Email"]);
        let errors = r.read(&ByteRecord::from(vec!["Ada", ""])).unwrap_err();
        assert!(errors[0].reason.contains("no email or phone"));
    }
}
