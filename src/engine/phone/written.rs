//! What a written phone number may contain before libphonenumber sees it.

use super::PhoneError;
use crate::engine::field_rules::{self, MAX_PHONE_CHARS};

/// Refuses what libphonenumber would otherwise read generously: letters (it maps them to
/// keypad digits, so `+44 7911 ABC 123` would become a different, real number) and extensions
/// (it parses and keeps them apart, and a lead has nowhere to keep one: dropping it silently
/// would send messages to a switchboard). Control characters and overlong text are refused too.
pub(super) fn refuse_unreadable(text: &str) -> Result<(), PhoneError> {
    let chars = text.chars().count();
    if chars > MAX_PHONE_CHARS {
        return Err(PhoneError::TooLong(chars));
    }
    if let Some((at, c)) = field_rules::control_char(text, false) {
        return Err(PhoneError::Control(field_rules::describe_control(at, c)));
    }
    if !text.chars().any(char::is_numeric) {
        return Err(PhoneError::NotANumber);
    }
    if text.contains('#') || text.chars().any(char::is_alphabetic) {
        return Err(if has_extension(text) { PhoneError::Extension } else { PhoneError::Letters });
    }
    Ok(())
}

/// A number followed by an extension marker and digits: `… ext. 12`, `…x12`, `… #12`,
/// `… extension 12`, `…, ext: 12`.
fn has_extension(text: &str) -> bool {
    let lower = text.trim_end().to_lowercase();
    let before_digits = lower.trim_end_matches(|c: char| c.is_ascii_digit());
    if before_digits.len() == lower.len() {
        return false;
    }
    let marker = before_digits.trim_end().trim_end_matches(['.', ':', '=']).trim_end();
    let number = ["extension", "ext", "x", "#"].iter().find_map(|m| marker.strip_suffix(m));
    number.is_some_and(|n| {
        n.trim_end().trim_end_matches([',', ';', '.']).ends_with(|c: char| c.is_ascii_digit() || c == ')')
    })
}

#[cfg(test)]
mod tests {
    use super::super::{PhoneError, normalize_phone};

    #[test]
    fn letters_are_never_read_as_keypad_digits() {
        assert_eq!(normalize_phone("+44 7911 ABC 123", None), Err(PhoneError::Letters));
        assert_eq!(normalize_phone("1-800-FLOWERS", Some("US".parse().expect("US"))), Err(PhoneError::Letters));
        assert_eq!(normalize_phone("tel:+447911123456", None), Err(PhoneError::Letters));
    }

    #[test]
    fn extensions_are_refused_not_dropped() {
        for ext in [
            "+44 20 7946 0018 ext. 12",
            "+44 20 7946 0018 x12",
            "+44 20 7946 0018x12",
            "+44 20 7946 0018 #12",
            "+44 20 7946 0018 extension 12",
            "+44 (20) 7946 0018, ext: 12",
            "+1 212 555 1234 EXT 9",
        ] {
            assert_eq!(normalize_phone(ext, None), Err(PhoneError::Extension), "{ext}");
        }
        assert_eq!(normalize_phone("x12", None), Err(PhoneError::Letters), "no number before the marker");
    }

    #[test]
    fn control_characters_and_long_text_are_refused() {
        assert!(matches!(normalize_phone("+44 7911\t123456", None), Err(PhoneError::Control(_))));
        assert!(matches!(normalize_phone("+44 7911 123456\u{0}", None), Err(PhoneError::Control(_))));
        let long = format!("+44 7911 123456{}", " ".repeat(50) + "1");
        assert_eq!(normalize_phone(&long, None), Err(PhoneError::TooLong(66)));
    }
}
