//! Field normalization shared by imports and edits: strict, with reasons a person can act on.

use crate::engine::field_rules::{control_char, describe_control, shown};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

/// Longest email address (RFC 5321: a 254-octet path), counted on the stored form.
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest part before '@', in bytes (RFC 5321 counts octets).
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;

/// Trims, lower-cases and validates an email address, with its domain in ASCII (punycode)
/// form, so `user@bücher.de` and `user@xn--bcher-kva.de` are one key.
///
/// The rules, applied to every address the same way: at most 254 characters as stored; at
/// most 64 bytes before '@', made of letters, digits and ``!#$%&'*+/=?^_`{|}~.-`` with no
/// leading, trailing or doubled dot; a domain of at least two labels, each 1–63 letters,
/// digits or hyphens after IDNA (not starting or ending with '-'), the last one (the TLD) at
/// least two characters and not all digits.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if let Some((at, c)) = control_char(trimmed, false) {
        return Err(format!("contains {}; an email address is printable text", describe_control(at, c)));
    }
    // Bounds the work below on a huge cell; the exact limit is checked on the stored form.
    let chars = trimmed.chars().count();
    if chars > MAX_EMAIL_CHARS {
        return Err(format!("is {chars} characters long; an email address has at most {MAX_EMAIL_CHARS}"));
    }
    let email = trimmed.to_lowercase();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("is missing '@' (expected name@example.com)".into());
    };
    if local.is_empty() {
        return Err("has nothing before '@' (expected name@example.com)".into());
    }
    if local.len() > MAX_EMAIL_LOCAL_BYTES {
        return Err(format!("has {} bytes before '@'; at most {MAX_EMAIL_LOCAL_BYTES} are allowed", local.len()));
    }
    let local_ok = local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return Err(format!("has invalid characters before '@' ('{}')", shown(local)));
    }
    let ascii = ascii_domain(domain)
        .ok_or_else(|| format!("has an invalid domain ('{}'; expected something like example.com)", shown(domain)))?;
    // Nearly every address is stored as written (lower-cased): no second string for it.
    let stored = match ascii {
        std::borrow::Cow::Borrowed(_) => email,
        std::borrow::Cow::Owned(ascii) => format!("{local}@{ascii}"),
    };
    let chars = stored.chars().count();
    if chars > MAX_EMAIL_CHARS {
        let ascii = stored.rsplit_once('@').map_or("", |(_, domain)| domain);
        return Err(format!(
            "is {chars} characters long with its domain in ASCII form ({ascii}); an email address has at most {MAX_EMAIL_CHARS}"
        ));
    }
    Ok(stored)
}

/// The domain in ASCII (IDNA, UTS 46) form when it keeps the rules of [`normalize_email`]:
/// borrowed when it already was.
fn ascii_domain(domain: &str) -> Option<std::borrow::Cow<'_, str>> {
    // Plain ASCII domains (nearly all) need no IDNA processing; `xn--` labels do, so that
    // invalid punycode is refused.
    let ascii = if domain.is_ascii() && !domain.split('.').any(|l| l.starts_with("xn--")) {
        std::borrow::Cow::Borrowed(domain)
    } else {
        std::borrow::Cow::Owned(
            idna::domain_to_ascii_cow(domain.as_bytes(), idna::AsciiDenyList::STD3).ok()?.into_owned(),
        )
    };
    let labels_ok = ascii.split('.').nth(1).is_some()
        && ascii.len() <= 253
        && ascii.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let tld = ascii.rsplit('.').next()?;
    // The TLD's length is judged on what a person reads: `ü` is one character, not `xn--tda`.
    let tld_chars = if tld.starts_with("xn--") { idna::domain_to_unicode(tld).0.chars().count() } else { tld.len() };
    let tld_ok = tld_chars >= 2 && !tld.bytes().all(|b| b.is_ascii_digit());
    (labels_ok && tld_ok).then_some(ascii)
}

/// A non-negative decimal such as `1234.50`: no currency signs, no thousands separators, no
/// exponents, `NaN` or infinities. `-0` is zero.
pub fn parse_amount(raw: &str) -> Result<f64, String> {
    let text = raw.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let shaped = !digits.is_empty()
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !shaped {
        return Err(format!(
            "'{}' is not a number; expected digits with an optional decimal point, like 1234.50",
            shown(text)
        ));
    }
    match digits.parse::<f64>() {
        Ok(v) if !v.is_finite() => Err(format!("'{}' is too large to be an amount", shown(text))),
        // Written `-0` or `-0.00`: zero (positive, so it prints and compares as 0).
        Ok(0.0) => Ok(0.0),
        Ok(_) if negative => Err(format!("'{text}' is negative; expected an amount of 0 or more")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!(
            "'{}' is not a number; expected digits with an optional decimal point, like 1234.50",
            shown(text)
        )),
    }
}

/// A count such as `12`.
pub fn parse_count(raw: &str) -> Result<i64, String> {
    let text = raw.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = text.parse::<i64>() {
            return Ok(v);
        }
    }
    Err(format!("'{text}' is not a whole number of 0 or more"))
}

/// ISO 8601 / RFC 3339 date-times, or a plain `YYYY-MM-DD` (midnight UTC). Times without an
/// offset are taken as UTC. Only years 0001 to 9999 (in UTC) are accepted: those are the
/// times an export writes as RFC 3339 and an import reads back unchanged.
pub fn parse_date(raw: &str) -> Result<DateTime<Utc>, String> {
    let text = raw.trim();
    let time = parse_any_date(text).ok_or_else(|| {
        format!("'{}' is not a date; expected YYYY-MM-DD or an ISO 8601 time like 2024-03-31T14:05:00Z", shown(text))
    })?;
    if !(1..=9999).contains(&time.year()) {
        return Err(format!(
            "'{}' is outside the supported range; dates must fall between 0001-01-01 and 9999-12-31 (UTC)",
            shown(text)
        ));
    }
    Ok(time)
}

fn parse_any_date(text: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = parse_common_date(text) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if text.len() == 10 {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Some(t.and_utc());
            }
        }
    }
    None
}

/// The two shapes most exports use, `2024-03-31` and `2024-03-31T14:05:00Z`, without
/// chrono's general format machinery (a tenth of the cost on a million-row import).
fn parse_common_date(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, d| d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0')))
    };
    let (shape_date, shape_time) = (b.len() == 10, b.len() == 20 && b[10] == b'T' && b[19] == b'Z');
    if !(shape_date || shape_time) || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (h, m, s) = if shape_time {
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        (num(11..13)?, num(14..16)?, num(17..19)?)
    } else {
        (0, 0, 0)
    };
    Some(date.and_hms_opt(h, m, s)?.and_utc())
}

/// Splits a cell holding several values (`a@x.com; b@y.com`, `a|b`).
pub fn split_multi(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([';', '|']).map(str::trim).filter(|s| !s.is_empty())
}

/// Tags: split on `;`, trimmed, empty ones dropped, duplicates removed (first kept).
pub fn parse_tags(cell: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in cell.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// A metadata key from a column header: lower-case words joined by `_` (`Postal Code` →
/// `postal_code`), so rules can name it as `metadata.postal_code`.
pub fn metadata_key(header: &str) -> String {
    let mut key = String::new();
    for word in header.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !key.is_empty() {
            key.push('_');
        }
        key.push_str(&word.to_lowercase());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM ").as_deref(), Ok("ada@example.com"));
        assert_eq!(normalize_email("o'brien+tag@mail.co.uk").as_deref(), Ok("o'brien+tag@mail.co.uk"));
        for bad in
            ["ada", "@x.com", "ada@", "ada@com", "ada@@x.com", "a b@x.com", "ada@x..com", "ada@-x.com", ".a@x.com"]
        {
            assert!(normalize_email(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn internationalised_domains_have_one_key() {
        let ascii = normalize_email("user@xn--bcher-kva.de").expect("punycode");
        assert_eq!(ascii, "user@xn--bcher-kva.de");
        assert_eq!(normalize_email("User@Bücher.DE").as_deref(), Ok(ascii.as_str()));
        assert_eq!(normalize_email("jörg@müller.example").as_deref(), Ok("jörg@xn--mller-kva.example"));
        for bad in ["user@xn--a.de", "user@xn--.de", "user@xn--99999999.de"] {
            assert!(normalize_email(bad).is_err(), "{bad}: invalid punycode");
        }
    }

    #[test]
    fn email_rules_are_the_same_for_every_script() {
        // The TLD needs two characters whether it is written in ASCII or not.
        for bad in ["a@b.c", "ü@ü.ü", "a@b.123", "a@b_c.com", "a@b.com.", "a@-b.com", "a@b-.com"] {
            assert!(normalize_email(bad).is_err(), "{bad} should be rejected");
        }
        for good in ["a@b.co", "ü@ü.üü", "a@b.xn--p1ai", "a@1.com"] {
            assert!(normalize_email(good).is_ok(), "{good} should be accepted");
        }
        let local = "l".repeat(64);
        assert!(normalize_email(&format!("{local}@x.com")).is_ok());
        assert!(normalize_email(&format!("{local}l@x.com")).unwrap_err().contains("65 bytes before '@'"));
        assert!(normalize_email(&format!("{}@x.com", "ü".repeat(33))).is_err(), "64 bytes, not characters");
        let label = "d".repeat(63);
        assert!(normalize_email(&format!("a@{label}.com")).is_ok());
        assert!(normalize_email(&format!("a@{label}d.com")).is_err());
        let long = format!("{local}@{label}.{label}.{label}.com");
        assert!(long.len() > 254);
        assert!(normalize_email(&long).unwrap_err().contains("at most 254"), "{long}");
        assert!(normalize_email("a\u{0}b@x.com").is_err());
        assert!(normalize_email("ada@exam\tple.com").unwrap_err().contains("a tab (U+0009)"));
    }

    #[test]
    fn amounts_are_strict() {
        assert_eq!(parse_amount("1234.50"), Ok(1234.5));
        assert_eq!(parse_amount(" 0 "), Ok(0.0));
        for bad in ["1,234.50", "$12", "12abc", "", ".", "1.2.3", "-5", "inf", "NaN", "1e5"] {
            assert!(parse_amount(bad).is_err(), "{bad} should be rejected");
        }
        assert!(parse_amount("-5").unwrap_err().contains("negative"));
        for zero in ["-0", "-0.00", "0.0"] {
            let v = parse_amount(zero).expect("zero");
            assert!(v == 0.0 && v.is_sign_positive(), "{zero} is zero");
        }
        assert!(parse_amount(&format!("1{}", "0".repeat(400))).unwrap_err().contains("too large"));
        for bad in ["1e309", "-inf", "+5", "-", "--1"] {
            assert!(parse_amount(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn counts_are_whole_numbers() {
        assert_eq!(parse_count("12"), Ok(12));
        for bad in ["-1", "1.5", "ten", ""] {
            assert!(parse_count(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_accept_iso_forms_only() {
        let midnight = parse_date("2024-03-31").expect("date");
        assert_eq!(midnight.to_rfc3339(), "2024-03-31T00:00:00+00:00");
        let offset = parse_date("2024-03-31T14:05:00+02:00").expect("offset");
        assert_eq!(offset.to_rfc3339(), "2024-03-31T12:05:00+00:00");
        assert!(parse_date("2024-03-31T14:05:00Z").is_ok());
        assert!(parse_date("2024-03-31 14:05:00").is_ok());
        assert!(parse_date("9999-12-31T23:59:59Z").is_ok());
        assert!(parse_date("0001-01-01").is_ok());
        for out in ["0000-12-31", "9999-12-31T23:00:00-02:00", "+10000-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00"] {
            match parse_date(out) {
                Err(reason) => {
                    assert!(reason.contains("supported range") || reason.contains("not a date"), "{out}: {reason}")
                }
                Ok(t) => panic!("{out} parsed as {t}"),
            }
        }
        assert!(parse_date("9999-12-31T23:00:00-02:00").unwrap_err().contains("supported range"));
        for bad in ["31/03/2024", "2024-3-1", "2024-02-30", "yesterday", "2024-03-31x"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn multi_value_cells_split_on_semicolon_and_pipe() {
        assert_eq!(split_multi("a@x.com; b@y.com|c@z.com;").collect::<Vec<_>>(), ["a@x.com", "b@y.com", "c@z.com"]);
        assert_eq!(parse_tags(" vip ;; newsletter;vip"), ["vip", "newsletter"]);
    }

    #[test]
    fn metadata_keys_are_snake_case() {
        assert_eq!(metadata_key("Postal Code"), "postal_code");
        assert_eq!(metadata_key("  City "), "city");
        assert_eq!(metadata_key("Loyalty-Tier (2024)"), "loyalty_tier_2024");
    }
}
