//! The reference semantics: whether a rule matches one [`Lead`], in memory.
//!
//! A condition is first compiled into a [`Test`] (values lower-cased, dates pinned to `now`,
//! invalid conditions turned into [`Test::Never`]); the SQL translation renders the very same
//! `Test`, which is how the two agree to the row (a property test checks it). The rules:
//!
//! - Text comparisons (`=`, `IN`, `CONTAINS`) ignore case, by Rust's `to_lowercase` on both sides.
//!   `CONTAINS` is a plain substring test: the user's text is never a pattern.
//! - A list field (emails, phones, tags) matches a positive operator when *any* element does;
//!   `!=`, `NOT_IN` and `NOT_CONTAINS` on a list mean "no element matches", so they hold for an
//!   empty list.
//! - A missing value (no `last_order_at`, no such metadata key) makes *every* operator false,
//!   negative ones included. Use `NOT (…)` to include missing values: `not last_order_at > X` holds
//!   for a lead that never ordered, `last_order_at <= X` does not.
//! - A condition that does not validate never matches (and `NOT` of it always does); rules are
//!   validated when loaded, so this only guards hand-built trees.

use super::ast::{Condition, Field, FieldKind, Operator, Rule, Value};
use super::relative_date::{DateTest, resolve_text};
use super::validate::check_condition;
use crate::engine::lead::Lead;
use chrono::{DateTime, Utc};

/// The needle (lower-cased) and negation when `rule` is one `name CONTAINS` test (or `NOT
/// CONTAINS`, or either inside a one-child group or a `NOT`), the shape a store may answer from
/// a text index of names instead of testing every lead: `None` for anything else, and for a
/// needle that is empty or has control characters (which stored search text never holds).
pub(crate) fn name_contains(rule: &super::Rule, now: DateTime<Utc>) -> Option<(String, bool)> {
    use super::Rule;
    match rule {
        Rule::Condition(c) if c.field == super::Field::Name => match compile(c, now) {
            Test::Text { matcher: TextMatcher::Contains(needle), negate }
                if !needle.is_empty() && !needle.chars().any(char::is_control) =>
            {
                Some((needle, negate))
            }
            _ => None,
        },
        Rule::And(children) | Rule::Or(children) if children.len() == 1 => name_contains(&children[0], now),
        Rule::Not(child) => name_contains(child, now).map(|(needle, negate)| (needle, !negate)),
        _ => None,
    }
}

/// A condition ready to run: what every backend renders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    /// Matches no lead: the condition is invalid.
    Never,
    /// For text and list-of-text fields; `negate` for `!=`, `NOT_IN`, `NOT_CONTAINS`.
    Text {
        matcher: TextMatcher,
        negate: bool,
    },
    Real(NumberTest<f64>),
    Whole(NumberTest<i64>),
    Date(DateTest),
}

/// A positive text test; every string in it is already lower-cased.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TextMatcher {
    Equals(String),
    OneOf(Vec<String>),
    Contains(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NumberTest<T> {
    /// `=`, `!=`, `>`, `<`, `>=` or `<=` against a value.
    Compare(Operator, T),
    OneOf(Vec<T>),
    NoneOf(Vec<T>),
}

/// Compiles a condition against `now`.
pub(crate) fn compile(c: &Condition, now: DateTime<Utc>) -> Test {
    if check_condition(c).is_err() {
        return Test::Never;
    }
    let test = match c.field.kind() {
        FieldKind::Text | FieldKind::TextList => TextMatcher::new(c.operator, &c.value)
            .map(|matcher| Test::Text { matcher, negate: c.operator.is_negative() }),
        FieldKind::Number => NumberTest::new(c.operator, &c.value, Value::as_f64).map(Test::Real),
        FieldKind::WholeNumber => NumberTest::new(c.operator, &c.value, Value::as_whole).map(Test::Whole),
        FieldKind::Date => c
            .value
            .as_text()
            .and_then(|text| resolve_text(text, now))
            .and_then(|bound| bound.test_for(c.operator))
            .map(Test::Date),
    };
    test.unwrap_or(Test::Never)
}

impl TextMatcher {
    fn new(operator: Operator, value: &Value) -> Option<TextMatcher> {
        match operator.positive() {
            Operator::Eq => value.as_text().map(|t| TextMatcher::Equals(t.to_lowercase())),
            Operator::Contains => value.as_text().map(|t| TextMatcher::Contains(t.to_lowercase())),
            Operator::In => value
                .as_list()?
                .iter()
                .map(|v| v.as_text().map(str::to_lowercase))
                .collect::<Option<Vec<_>>>()
                .map(TextMatcher::OneOf),
            _ => None,
        }
    }

    pub(crate) fn holds(&self, text: &str) -> bool {
        self.holds_lowered(&text.to_lowercase())
    }

    /// Like [`TextMatcher::holds`], for text already lower-cased (the SQL functions lower-case
    /// without allocating when they can, then share this test).
    pub(crate) fn holds_lowered(&self, lower: &str) -> bool {
        match self {
            TextMatcher::Equals(v) => lower == v,
            TextMatcher::OneOf(values) => values.iter().any(|v| v == lower),
            TextMatcher::Contains(v) => lower.contains(v.as_str()),
        }
    }
}

impl<T: PartialOrd + Copy> NumberTest<T> {
    fn new(operator: Operator, value: &Value, get: fn(&Value) -> Option<T>) -> Option<NumberTest<T>> {
        let list = || value.as_list()?.iter().map(get).collect::<Option<Vec<T>>>();
        match operator {
            Operator::In => list().map(NumberTest::OneOf),
            Operator::NotIn => list().map(NumberTest::NoneOf),
            Operator::Contains | Operator::NotContains => None,
            compare => get(value).map(|v| NumberTest::Compare(compare, v)),
        }
    }

    pub(crate) fn holds(&self, x: T) -> bool {
        match self {
            NumberTest::Compare(op, v) => match op {
                Operator::Eq => x == *v,
                Operator::Ne => x != *v,
                Operator::Gt => x > *v,
                Operator::Lt => x < *v,
                Operator::Ge => x >= *v,
                Operator::Le => x <= *v,
                _ => false,
            },
            NumberTest::OneOf(values) => values.contains(&x),
            NumberTest::NoneOf(values) => !values.contains(&x),
        }
    }
}

impl Rule {
    /// Whether `lead` is in the segment, with relative dates counted from `now`.
    pub fn matches(&self, lead: &Lead, now: DateTime<Utc>) -> bool {
        match self {
            Rule::And(children) => children.iter().all(|r| r.matches(lead, now)),
            Rule::Or(children) => children.iter().any(|r| r.matches(lead, now)),
            Rule::Not(child) => !child.matches(lead, now),
            Rule::Condition(c) => condition_matches(c, lead, now),
        }
    }
}

fn condition_matches(c: &Condition, lead: &Lead, now: DateTime<Utc>) -> bool {
    match compile(c, now) {
        Test::Never => false,
        Test::Text { matcher, negate } => match &c.field {
            Field::Name => matcher.holds(&lead.name) != negate,
            Field::Metadata(key) => lead.metadata.get(key).is_some_and(|v| matcher.holds(v) != negate),
            list => list_of(list, lead).iter().any(|v| matcher.holds(v)) != negate,
        },
        Test::Real(test) => test.holds(lead.total_spend),
        Test::Whole(test) => test.holds(lead.visits),
        Test::Date(test) => date_of(&c.field, lead).is_some_and(|t| test.holds(t.timestamp_millis())),
    }
}

fn list_of<'a>(field: &Field, lead: &'a Lead) -> &'a [String] {
    match field {
        Field::Emails => &lead.emails,
        Field::Phones => &lead.phones,
        Field::Tags => &lead.tags,
        _ => &[],
    }
}

fn date_of(field: &Field, lead: &Lead) -> Option<DateTime<Utc>> {
    match field {
        Field::LastOrderAt => lead.last_order_at,
        Field::CreatedAt => Some(lead.created_at),
        Field::UpdatedAt => Some(lead.updated_at),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::lead::LeadDraft;
    use std::collections::BTreeMap;

    fn now() -> DateTime<Utc> {
        at("2024-05-31T15:20:00Z")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("valid").with_timezone(&Utc)
    }

    fn lead() -> Lead {
        LeadDraft {
            name: Some("ÉCOLE Ada".into()),
            emails: vec!["ada@example.com".into(), "ada@work.example".into()],
            phones: vec!["+447700900123".into()],
            total_spend: Some(500.0),
            visits: Some(10),
            last_order_at: Some(at("2024-05-01T09:30:00Z")),
            tags: vec!["VIP".into(), "newsletter".into()],
            metadata: BTreeMap::from([("city".to_string(), "Lagos".to_string())]),
            created_at: Some(at("2024-03-31T23:59:59.999Z")),
        }
        .into_lead(1, at("2024-05-30T10:00:00Z"))
    }

    fn is(rule: &str, lead: &Lead) -> bool {
        Rule::parse_text(rule).unwrap_or_else(|e| panic!("{rule}: {e}")).matches(lead, now())
    }

    #[test]
    fn text_comparisons_ignore_case_with_unicode_folding() {
        let l = lead();
        assert!(is(r#"name contains "école""#, &l));
        assert!(is(r#"name = "école ada""#, &l));
        assert!(is(r#"name in ["x", "ÉCOLE ADA"]"#, &l));
        assert!(!is(r#"name contains "ecole""#, &l), "accents are not folded away");
        assert!(is(r#"name not contains "%""#, &l), "user text is not a LIKE pattern");
        assert!(is(r#"city = "lagos""#, &l));
        assert!(is(r#"tags = "vip""#, &l));
    }

    #[test]
    fn lists_match_when_any_element_does() {
        let l = lead();
        assert!(is(r#"emails contains "@work""#, &l));
        assert!(is(r#"emails = "ada@example.com""#, &l));
        assert!(!is(r#"emails != "ada@example.com""#, &l), "!= means no element is equal");
        assert!(is(r#"tags not in ["churn", "lapsed"]"#, &l));
        assert!(!is(r#"tags not contains "news""#, &l));
        assert!(is(r#"phones contains "7700""#, &l));
    }

    #[test]
    fn empty_lists_match_only_negative_operators() {
        let mut l = lead();
        l.tags.clear();
        assert!(!is(r#"tags = "vip""#, &l));
        assert!(!is(r#"tags contains """#, &l));
        assert!(!is(r#"tags in ["vip"]"#, &l));
        assert!(is(r#"tags != "vip""#, &l));
        assert!(is(r#"tags not contains "vip""#, &l));
        assert!(is(r#"tags not in []"#, &l));
    }

    #[test]
    fn missing_values_fail_every_operator_until_negated() {
        let mut l = lead();
        l.last_order_at = None;
        for op in ["=", "!=", ">", "<", ">=", "<="] {
            assert!(!is(&format!(r#"last_order_at {op} "2024-01-01""#), &l), "{op}");
            assert!(is(&format!(r#"not last_order_at {op} "2024-01-01""#), &l), "not {op}");
        }
        for rule in
            [r#"country = "NG""#, r#"country != "NG""#, r#"country not in ["NG"]"#, r#"country not contains "x""#]
        {
            assert!(!is(rule, &l), "{rule}");
        }
        assert!(is(r#"not country = "NG""#, &l));
    }

    #[test]
    fn numbers_compare_exactly() {
        let l = lead();
        assert!(is("total_spend = 500", &l));
        assert!(is("total_spend >= 500.0", &l));
        assert!(!is("total_spend > 500", &l));
        assert!(is("visits in [1, 10]", &l));
        assert!(is("visits not in []", &l));
        assert!(!is("visits != 10", &l));
    }

    #[test]
    fn date_equality_covers_the_whole_day() {
        let l = lead();
        assert!(is(r#"created_at = "2024-03-31""#, &l));
        assert!(!is(r#"created_at > "2024-03-31""#, &l));
        assert!(is(r#"created_at <= "2024-03-31""#, &l));
        assert!(is(r#"created_at < "2024-04-01T00:00:00Z""#, &l));
        assert!(is(r#"created_at = "2024-03-31T23:59:59.999Z""#, &l));
        assert!(is(r#"last_order_at > "31 days ago""#, &l), "May 1 is after April 30");
        assert!(is(r#"last_order_at >= "30 days ago""#, &l), "May 1 is the day 30 days ago");
        assert!(!is(r#"last_order_at > "30 days ago""#, &l), "> starts the day after");
    }

    #[test]
    fn relative_dates_follow_now() {
        let l = lead();
        let rule = Rule::parse_text(r#"updated_at = "yesterday""#).expect("parses");
        assert!(rule.matches(&l, now()));
        assert!(!rule.matches(&l, at("2024-06-02T00:00:00Z")));
        assert!(Rule::parse_text(r#"updated_at = "today""#).expect("parses").matches(&l, at("2024-05-30T23:00:00Z")));
    }

    #[test]
    fn invalid_hand_built_conditions_never_match() {
        let l = lead();
        let bad = Rule::condition(Field::TotalSpend, Operator::Contains, Value::Text("5".into()));
        assert!(!bad.matches(&l, now()));
        assert!(Rule::Not(Box::new(bad)).matches(&l, now()));
        assert!(Rule::And(vec![]).matches(&l, now()), "an empty AND is vacuously true");
        assert!(!Rule::Or(vec![]).matches(&l, now()));
    }
}
