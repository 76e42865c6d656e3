//! Date values in rules: ISO dates, RFC 3339 times, and relative dates (`"30 days ago"`,
//! `"today"`), and what each comparison operator means for them.
//!
//! A rule keeps its date text; the text is resolved against a `now` given at evaluation time,
//! so a segment such as "ordered in the last 30 days" moves with the calendar. Resolution and
//! the per-operator tests ([`DateTest`]) live here so that the in-memory evaluator, the SQL and
//! the MongoDB translations cannot drift apart.
//!
//! Semantics:
//! - A *day* value (`2024-03-31`, `today`, `yesterday`, `N days|weeks|months|years ago`)
//!   stands for that whole UTC day, `[midnight, next midnight)`. Comparing a time with a day
//!   compares the time's UTC day: `= D` is any time on D, `!= D` any time on another day,
//!   `> D` from the next midnight on, `>= D` from D's midnight on, `< D` before D's midnight,
//!   `<= D` before the next midnight.
//! - Relative values are counted in calendar days from now's UTC date: `today` is the day of
//!   `now`, `7 days ago` the day seven days before, `3 months ago` the same day of the month
//!   three months before (clamped to the month's last day), `1 year ago` twelve months before.
//! - An RFC 3339 value is an instant; comparisons are exact at millisecond precision, the
//!   precision the stores keep (finer digits are truncated on both sides).

use super::ast::Operator;
use chrono::{DateTime, Days, Months, NaiveDate, Utc};

/// The largest count a relative date accepts (`100000 days ago`), far beyond any real use, so
/// that date arithmetic stays in chrono's range.
const MAX_AGO: u32 = 100_000;

/// What a date text means, before it is pinned to a `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateValue {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
    Today,
    Yesterday,
    Ago { amount: u32, unit: Unit },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Day,
    Week,
    Month,
    Year,
}

/// A date value resolved against `now`, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateBound {
    /// A whole UTC day: `start` inclusive, `end` (the next midnight) exclusive.
    Day {
        start: i64,
        end: i64,
    },
    Instant(i64),
}

/// The test a stored time (Unix ms) must pass; every translation renders one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTest {
    Eq(i64),
    Ne(i64),
    Gt(i64),
    Ge(i64),
    Lt(i64),
    Le(i64),
    /// `start <= t < end`.
    Within(i64, i64),
    /// `t < start || t >= end`.
    Outside(i64, i64),
}

/// What a valid date text looks like, for error messages.
pub const DATE_EXPECTED: &str =
    "a date such as \"2024-03-31\", an RFC 3339 time, \"today\", \"yesterday\" or \"30 days ago\"";

/// Parses a date text. The error says what was wrong with it.
pub fn parse_date_value(text: &str) -> Result<DateValue, String> {
    let trimmed = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        return Ok(DateValue::Day(day));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(DateValue::Instant(t.with_timezone(&Utc)));
    }
    let lower = trimmed.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["today"] => Ok(DateValue::Today),
        ["yesterday"] => Ok(DateValue::Yesterday),
        [amount, unit, "ago"] => {
            let unit = parse_unit(unit).ok_or_else(|| format!("unknown unit {unit:?} in {text:?}"))?;
            let amount = amount
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_AGO && amount.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("{amount:?} is not a count from 0 to {MAX_AGO}"))?;
            Ok(DateValue::Ago { amount, unit })
        }
        _ => Err(format!("{text:?} is not a date")),
    }
}

fn parse_unit(word: &str) -> Option<Unit> {
    match word {
        "day" | "days" => Some(Unit::Day),
        "week" | "weeks" => Some(Unit::Week),
        "month" | "months" => Some(Unit::Month),
        "year" | "years" => Some(Unit::Year),
        _ => None,
    }
}

impl DateValue {
    /// Pins the value to `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> DateBound {
        let today = now.date_naive();
        let day = match self {
            DateValue::Instant(t) => return DateBound::Instant(t.timestamp_millis()),
            DateValue::Day(day) => Some(day),
            DateValue::Today => Some(today),
            DateValue::Yesterday => today.pred_opt(),
            DateValue::Ago { amount, unit } => match unit {
                Unit::Day => today.checked_sub_days(Days::new(amount.into())),
                Unit::Week => today.checked_sub_days(Days::new(u64::from(amount) * 7)),
                Unit::Month => today.checked_sub_months(Months::new(amount)),
                Unit::Year => today.checked_sub_months(Months::new(amount.saturating_mul(12))),
            },
        };
        day_bound(day.unwrap_or(NaiveDate::MIN))
    }
}

fn day_bound(day: NaiveDate) -> DateBound {
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
    let start = midnight(day).unwrap_or(i64::MIN);
    let end = day.succ_opt().and_then(midnight).unwrap_or(i64::MAX);
    DateBound::Day { start, end }
}

/// Parses and resolves in one step; `None` for text that is not a date.
pub fn resolve_text(text: &str, now: DateTime<Utc>) -> Option<DateBound> {
    parse_date_value(text).ok().map(|v| v.resolve(now))
}

impl DateBound {
    /// The test `operator` means against this bound; `None` for operators dates do not take.
    pub fn test_for(self, operator: Operator) -> Option<DateTest> {
        Some(match (self, operator) {
            (DateBound::Instant(t), Operator::Eq) => DateTest::Eq(t),
            (DateBound::Instant(t), Operator::Ne) => DateTest::Ne(t),
            (DateBound::Instant(t), Operator::Gt) => DateTest::Gt(t),
            (DateBound::Instant(t), Operator::Ge) => DateTest::Ge(t),
            (DateBound::Instant(t), Operator::Lt) => DateTest::Lt(t),
            (DateBound::Instant(t), Operator::Le) => DateTest::Le(t),
            (DateBound::Day { start, end }, Operator::Eq) => DateTest::Within(start, end),
            (DateBound::Day { start, end }, Operator::Ne) => DateTest::Outside(start, end),
            (DateBound::Day { end, .. }, Operator::Gt) => DateTest::Ge(end),
            (DateBound::Day { start, .. }, Operator::Ge) => DateTest::Ge(start),
            (DateBound::Day { start, .. }, Operator::Lt) => DateTest::Lt(start),
            (DateBound::Day { end, .. }, Operator::Le) => DateTest::Lt(end),
            _ => return None,
        })
    }
}

impl DateTest {
    /// Whether a stored time (Unix ms) passes.
    pub fn holds(self, t: i64) -> bool {
        match self {
            DateTest::Eq(v) => t == v,
            DateTest::Ne(v) => t != v,
            DateTest::Gt(v) => t > v,
            DateTest::Ge(v) => t >= v,
            DateTest::Lt(v) => t < v,
            DateTest::Le(v) => t <= v,
            DateTest::Within(start, end) => start <= t && t < end,
            DateTest::Outside(start, end) => t < start || t >= end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("valid").with_timezone(&Utc)
    }

    fn ms(text: &str) -> i64 {
        at(text).timestamp_millis()
    }

    fn day(text: &str, now: &str) -> (String, String) {
        match resolve_text(text, at(now)) {
            Some(DateBound::Day { start, end }) => {
                let show = |m| DateTime::from_timestamp_millis(m).map(|t| t.to_rfc3339()).unwrap_or_default();
                (show(start), show(end))
            }
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn relative_dates_resolve_to_calendar_days() {
        let now = "2024-05-31T15:20:00Z";
        assert_eq!(day("today", now).0, "2024-05-31T00:00:00+00:00");
        assert_eq!(day("TODAY", now).1, "2024-06-01T00:00:00+00:00");
        assert_eq!(day("Yesterday", now).0, "2024-05-30T00:00:00+00:00");
        assert_eq!(day("7 days ago", now).0, "2024-05-24T00:00:00+00:00");
        assert_eq!(day("1 day ago", now).0, "2024-05-30T00:00:00+00:00");
        assert_eq!(day("0 days ago", now).0, "2024-05-31T00:00:00+00:00");
        assert_eq!(day("2 Weeks  Ago", now).0, "2024-05-17T00:00:00+00:00");
        assert_eq!(day("3 months ago", now).0, "2024-02-29T00:00:00+00:00", "clamped to February's end");
        assert_eq!(day("1 month ago", now).0, "2024-04-30T00:00:00+00:00");
        assert_eq!(day("1 year ago", now).0, "2023-05-31T00:00:00+00:00");
        assert!(day("100000 years ago", now).0.starts_with("-97976-"), "far past, no panic");
    }

    #[test]
    fn absolute_dates() {
        let now = at("2024-05-31T15:20:00Z");
        assert_eq!(
            resolve_text("2024-03-31", now),
            Some(DateBound::Day { start: ms("2024-03-31T00:00:00Z"), end: ms("2024-04-01T00:00:00Z") })
        );
        assert_eq!(
            resolve_text("2024-03-31T10:00:00+02:00", now),
            Some(DateBound::Instant(ms("2024-03-31T08:00:00Z")))
        );
        assert_eq!(
            resolve_text("2024-03-31T10:00:00.0009Z", now),
            Some(DateBound::Instant(ms("2024-03-31T10:00:00Z"))),
            "sub-millisecond digits are truncated"
        );
    }

    #[test]
    fn bad_dates_are_rejected() {
        for bad in [
            "",
            "soon",
            "2024-02-30",
            "31/03/2024",
            "days ago",
            "x days ago",
            "-1 days ago",
            "+1 days ago",
            "1 fortnight ago",
            "100001 days ago",
            "7 days",
            "1 2 3 ago",
            "4294967296 days ago",
        ] {
            assert!(parse_date_value(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn day_comparisons_compare_the_utc_day() {
        let now = at("2024-05-31T15:20:00Z");
        let bound = resolve_text("2024-03-31", now).expect("date");
        let test = |op, t: &str| bound.test_for(op).expect("date op").holds(ms(t));
        assert!(test(Operator::Eq, "2024-03-31T00:00:00Z"));
        assert!(test(Operator::Eq, "2024-03-31T23:59:59.999Z"));
        assert!(!test(Operator::Eq, "2024-04-01T00:00:00Z"));
        assert!(!test(Operator::Eq, "2024-03-30T23:59:59.999Z"));
        assert!(test(Operator::Ne, "2024-04-01T00:00:00Z"));
        assert!(!test(Operator::Ne, "2024-03-31T12:00:00Z"));
        assert!(!test(Operator::Gt, "2024-03-31T23:59:59.999Z"), "> means after the whole day");
        assert!(test(Operator::Gt, "2024-04-01T00:00:00Z"));
        assert!(test(Operator::Ge, "2024-03-31T00:00:00Z"));
        assert!(!test(Operator::Ge, "2024-03-30T23:59:59.999Z"));
        assert!(test(Operator::Lt, "2024-03-30T23:59:59.999Z"));
        assert!(!test(Operator::Lt, "2024-03-31T00:00:00Z"));
        assert!(test(Operator::Le, "2024-03-31T23:59:59.999Z"));
        assert!(!test(Operator::Le, "2024-04-01T00:00:00Z"));
        assert_eq!(bound.test_for(Operator::Contains), None);
    }

    #[test]
    fn instant_comparisons_are_exact() {
        let bound = DateBound::Instant(1000);
        assert!(bound.test_for(Operator::Eq).is_some_and(|t| t.holds(1000) && !t.holds(1001)));
        assert!(bound.test_for(Operator::Gt).is_some_and(|t| t.holds(1001) && !t.holds(1000)));
        assert!(bound.test_for(Operator::Le).is_some_and(|t| t.holds(1000) && !t.holds(1001)));
    }
}
