//! Why a rule was refused, and where: a JSON path for rules stored as JSON (`children[1].value`),
//! a line and column with a caret under the offending text for rules typed as text.
//!
//! Every message says what was expected, because the person reading it is usually fixing a
//! rule by hand in a terminal.

use thiserror::Error;
use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum RuleError {
    /// The rule text is not JSON at all.
    #[error("the rule is not valid JSON: {0}")]
    Json(String),
    /// A rule tree (from JSON or built in code) breaks a rule; `path` points at the culprit.
    #[error("{}: {message} (expected {expected})", if path.is_empty() { "rule" } else { path })]
    Invalid { path: String, message: String, expected: String },
    /// A text rule does not parse or does not validate.
    #[error("{0}")]
    Text(TextError),
}

/// A problem in a text rule, located by line and column (both from 1, columns in characters).
#[derive(Debug, Clone, PartialEq)]
pub struct TextError {
    pub line: usize,
    pub column: usize,
    /// The line of the rule the problem is on, for the caret display.
    pub line_text: String,
    pub message: String,
    pub expected: String,
}

impl RuleError {
    pub(crate) fn invalid(path: &str, message: impl Into<String>, expected: impl Into<String>) -> RuleError {
        RuleError::Invalid { path: path.to_string(), message: message.into(), expected: expected.into() }
    }

    /// A text error at character index `at` of `source`.
    pub(crate) fn text(source: &str, at: usize, message: impl Into<String>, expected: impl Into<String>) -> RuleError {
        let mut line = 1;
        let mut line_start = 0;
        for (i, c) in source.chars().enumerate().take(at) {
            if c == '\n' {
                line += 1;
                line_start = i + 1;
            }
        }
        let line_text: String = source.chars().skip(line_start).take_while(|c| *c != '\n').collect();
        RuleError::Text(TextError {
            line,
            column: at - line_start + 1,
            line_text,
            message: message.into(),
            expected: expected.into(),
        })
    }

    /// The JSON path, for an error on a rule tree.
    pub fn path(&self) -> Option<&str> {
        match self {
            RuleError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The (line, column), for an error on a text rule.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            RuleError::Text(e) => Some((e.line, e.column)),
            _ => None,
        }
    }
}

/// The most characters of a rule's line an error shows.
const WINDOW: usize = 100;

impl std::fmt::Display for TextError {
    /// ```text
    /// unknown operator ">>" at column 13:
    ///   total_spend >> 500
    ///               ^ expected one of =, !=, >, <, >=, <=, in, not in
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tabs and control characters would shift the caret; show them as spaces.
        let chars: Vec<char> = self.line_text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        // A long line (a generated rule) shows a window around the column, not the whole line.
        let at = self.column.saturating_sub(1).min(chars.len());
        let start = at.saturating_sub(WINDOW / 2);
        let end = chars.len().min(start + WINDOW);
        let (open, close) = (if start > 0 { "…" } else { "" }, if end < chars.len() { "…" } else { "" });
        let shown = format!("{open}{}{close}", chars[start..end].iter().collect::<String>());
        let before: String = chars[start..at].iter().collect();
        let pad = " ".repeat(open.width() + before.width());
        if self.line > 1 {
            write!(f, "{} at line {}, column {}:", self.message, self.line, self.column)?;
        } else {
            write!(f, "{} at column {}:", self.message, self.column)?;
        }
        write!(f, "\n  {shown}\n  {pad}^ expected {}", self.expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_errors_put_a_caret_under_the_column() {
        let err = RuleError::text("total_spend >> 500", 12, "unknown operator \">>\"", "=, !=");
        assert_eq!(err.position(), Some((1, 13)));
        assert_eq!(
            err.to_string(),
            "unknown operator \">>\" at column 13:\n  total_spend >> 500\n              ^ expected =, !="
        );
    }

    #[test]
    fn carets_follow_wide_characters_and_later_lines() {
        let err = RuleError::text("name = \"x\"\nand 東京 ?", 18, "bad", "a value");
        assert_eq!(err.position(), Some((2, 8)));
        assert_eq!(err.to_string(), "bad at line 2, column 8:\n  and 東京 ?\n           ^ expected a value");
    }

    #[test]
    fn an_error_past_the_end_points_after_the_text() {
        let err = RuleError::text("visits >", 8, "missing value", "a number");
        assert!(err.to_string().ends_with("  visits >\n          ^ expected a number"), "{err}");
    }

    #[test]
    fn long_lines_show_a_window_around_the_column() {
        let line = format!("{}visits >> 1{}", "a = 1 or ".repeat(1_000), " or b = 2".repeat(1_000));
        let at = line.find(">>").expect("there") + 1;
        let err = RuleError::text(&line, at, "bad", "a value").to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[1].starts_with("  …") && lines[1].ends_with('…') && lines[1].chars().count() < 110, "{err}");
        let caret = lines[2].find('^').expect("caret");
        assert_eq!(lines[1].chars().nth(caret), Some('>'), "{err}");
    }

    #[test]
    fn path_errors_name_the_path() {
        let err = RuleError::invalid("children[1].value", "\"abc\" is not a number", "a number");
        assert_eq!(err.to_string(), "children[1].value: \"abc\" is not a number (expected a number)");
        assert_eq!(err.path(), Some("children[1].value"));
        assert_eq!(RuleError::invalid("", "empty", "x").to_string(), "rule: empty (expected x)");
    }
}
