//! The checks a rule passes before it runs: known fields, operators that fit the field, values
//! of the right type (dates that parse), non-empty groups, and the size limits of
//! `engine::limits`: at most [`MAX_DEPTH`] levels, [`MAX_RULE_CONDITIONS`] conditions and
//! [`MAX_LIST_VALUES`] values in a list. Size is checked here, before a rule runs, so that an
//! oversized rule is a usage error naming the limit rather than a SQLite error (too many
//! parameters, expression tree too large) or an exhausted stack.
//!
//! A condition's check reports *which part* is wrong ([`Spot`]) rather than where that part is,
//! because the JSON loader turns it into a path (`children[0].value[2]`) and the text parser
//! into a column; both share these messages.

use super::ast::{Condition, Field, FieldKind, MAX_DEPTH, Operator, Rule, Value, is_valid_metadata_key};
use super::error::RuleError;
use super::relative_date::{DATE_EXPECTED, parse_date_value};
use crate::engine::limits::{MAX_LIST_VALUES, MAX_RULE_CONDITIONS};

/// The part of a condition a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spot {
    Field,
    Operator,
    Value,
    /// The n-th element of a list value.
    Item(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub spot: Spot,
    pub message: String,
    pub expected: String,
}

fn problem(spot: Spot, message: impl Into<String>, expected: impl Into<String>) -> Problem {
    Problem { spot, message: message.into(), expected: expected.into() }
}

impl Spot {
    /// The JSON path segment of this part within a condition object.
    pub(crate) fn json_key(self) -> String {
        match self {
            Spot::Field => "field".into(),
            Spot::Operator => "operator".into(),
            Spot::Value => "value".into(),
            Spot::Item(i) => format!("value[{i}]"),
        }
    }
}

/// What the field of a JSON or text rule may be, for error messages.
pub(crate) fn fields_expected() -> String {
    format!("one of {}, or metadata.KEY", Field::built_in_names().collect::<Vec<_>>().join(", "))
}

const KEY_EXPECTED: &str = "metadata.KEY where KEY has only letters, digits and _";

/// Checks one condition: the field is usable, the operator fits it, the value fits both.
pub(crate) fn check_condition(c: &Condition) -> Result<(), Problem> {
    if let Field::Metadata(key) = &c.field {
        if !is_valid_metadata_key(key) {
            return Err(problem(Spot::Field, format!("{key:?} is not a valid metadata key"), KEY_EXPECTED));
        }
    }
    let kind = c.field.kind();
    if !kind.operators().contains(&c.operator) {
        return Err(problem(
            Spot::Operator,
            format!("{} does not apply to {} ({})", c.operator.text_name(), c.field.name(), kind.describe()),
            format!("one of {}", Operator::list_text(kind.operators())),
        ));
    }
    if matches!(c.operator, Operator::In | Operator::NotIn) {
        let Some(items) = c.value.as_list() else {
            return Err(problem(
                Spot::Value,
                format!("{} needs a list, found {}", c.operator.text_name(), describe(&c.value)),
                format!("a list of {}", scalar_expected(kind)),
            ));
        };
        if items.len() > MAX_LIST_VALUES {
            return Err(problem(
                Spot::Value,
                format!("the list has {} values; a list holds at most {MAX_LIST_VALUES}", items.len()),
                "a shorter list (split it into several conditions joined with or)",
            ));
        }
        for (i, item) in items.iter().enumerate() {
            check_scalar(&c.field, kind, item, Spot::Item(i))?;
        }
        return Ok(());
    }
    check_scalar(&c.field, kind, &c.value, Spot::Value)
}

fn check_scalar(field: &Field, kind: FieldKind, value: &Value, spot: Spot) -> Result<(), Problem> {
    let fits = match kind {
        FieldKind::Text | FieldKind::TextList => value.as_text().is_some(),
        FieldKind::Number => value.as_f64().is_some(),
        FieldKind::WholeNumber => value.as_whole().is_some(),
        FieldKind::Date => match value.as_text() {
            Some(text) => {
                return parse_date_value(text)
                    .map(|_| ())
                    .map_err(|why| problem(spot, format!("{why} for {}", field.name()), DATE_EXPECTED));
            }
            None => false,
        },
    };
    if fits {
        return Ok(());
    }
    let wanted = if kind == FieldKind::TextList { "text" } else { kind.describe() };
    Err(problem(spot, format!("{} needs {wanted}, found {}", field.name(), describe(value)), scalar_expected(kind)))
}

fn scalar_expected(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text | FieldKind::TextList => "a quoted string such as \"vip\"",
        FieldKind::Number => "a number such as 500 or 19.99",
        FieldKind::WholeNumber => "a whole number such as 10",
        FieldKind::Date => DATE_EXPECTED,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Text(t) => format!("the text {t:?}"),
        Value::Number(n) => format!("the number {n}"),
        Value::List(_) => "a list".into(),
    }
}

/// `path` extended by `segment`, without a leading dot at the root.
pub(crate) fn join(path: &str, segment: &str) -> String {
    if path.is_empty() { segment.to_string() } else { format!("{path}.{segment}") }
}

pub(crate) fn child_path(path: &str, index: usize) -> String {
    join(path, &format!("children[{index}]"))
}

pub(crate) fn too_deep(path: &str) -> RuleError {
    RuleError::invalid(path, format!("the rule nests deeper than {MAX_DEPTH} levels"), "a flatter rule")
}

/// The error for the condition that takes a rule past [`MAX_RULE_CONDITIONS`].
pub(crate) fn too_many_conditions(path: &str) -> RuleError {
    RuleError::invalid(path, too_many_message(), TOO_MANY_EXPECTED)
}

pub(crate) fn too_many_message() -> String {
    format!("the rule has more than {MAX_RULE_CONDITIONS} conditions")
}

/// What to do instead of a huge rule: the usual cause is a long `or` of `=` tests.
pub(crate) const TOO_MANY_EXPECTED: &str =
    "a smaller rule (many `field = value` joined with or read better as one `field in [...]` list)";

pub(crate) fn empty_group(path: &str, op: &str) -> RuleError {
    RuleError::invalid(&join(path, "children"), format!("{op} has no children"), "at least one rule")
}

/// Checks a whole tree; errors carry the JSON path of the culprit.
pub(crate) fn validate_tree(rule: &Rule) -> Result<(), RuleError> {
    walk(rule, "", 1, &mut 0)
}

/// Checks `rule` at `path`; `seen` counts the conditions met so far in the whole tree.
fn walk(rule: &Rule, path: &str, depth: usize, seen: &mut usize) -> Result<(), RuleError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    match rule {
        Rule::And(children) | Rule::Or(children) => {
            if children.is_empty() {
                return Err(empty_group(path, if matches!(rule, Rule::And(_)) { "AND" } else { "OR" }));
            }
            children.iter().enumerate().try_for_each(|(i, child)| walk(child, &child_path(path, i), depth + 1, seen))
        }
        Rule::Not(child) => walk(child, &child_path(path, 0), depth + 1, seen),
        Rule::Condition(c) => {
            *seen += 1;
            if *seen > MAX_RULE_CONDITIONS {
                return Err(too_many_conditions(path));
            }
            check_condition(c).map_err(|p| RuleError::invalid(&join(path, &p.spot.json_key()), p.message, p.expected))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(field: Field, operator: Operator, value: Value) -> Condition {
        Condition { field, operator, value }
    }

    fn text(t: &str) -> Value {
        Value::Text(t.into())
    }

    fn num(n: i64) -> Value {
        Value::Number(n.into())
    }

    fn spot_of(c: Condition) -> Option<Spot> {
        check_condition(&c).err().map(|p| p.spot)
    }

    #[test]
    fn operators_must_fit_the_field() {
        assert_eq!(spot_of(cond(Field::Tags, Operator::Gt, text("a"))), Some(Spot::Operator));
        assert_eq!(spot_of(cond(Field::TotalSpend, Operator::Contains, num(1))), Some(Spot::Operator));
        assert_eq!(spot_of(cond(Field::CreatedAt, Operator::In, Value::List(vec![]))), Some(Spot::Operator));
        assert_eq!(spot_of(cond(Field::Name, Operator::Le, text("a"))), Some(Spot::Operator));
        assert_eq!(spot_of(cond(Field::Tags, Operator::NotContains, text("a"))), None);
    }

    #[test]
    fn values_must_fit_the_field() {
        assert_eq!(spot_of(cond(Field::TotalSpend, Operator::Gt, text("500"))), Some(Spot::Value));
        assert_eq!(
            spot_of(cond(
                Field::Visits,
                Operator::Gt,
                Value::Number(serde_json::Number::from_f64(1.5).expect("finite"))
            )),
            Some(Spot::Value)
        );
        assert_eq!(spot_of(cond(Field::Name, Operator::Eq, num(3))), Some(Spot::Value));
        assert_eq!(spot_of(cond(Field::Tags, Operator::In, text("vip"))), Some(Spot::Value));
        assert_eq!(spot_of(cond(Field::Tags, Operator::In, Value::List(vec![text("a"), num(1)]))), Some(Spot::Item(1)));
        assert_eq!(
            spot_of(cond(Field::Tags, Operator::In, Value::List(vec![Value::List(vec![])]))),
            Some(Spot::Item(0))
        );
        assert_eq!(spot_of(cond(Field::Visits, Operator::NotIn, Value::List(vec![]))), None, "empty lists are allowed");
        assert_eq!(spot_of(cond(Field::LastOrderAt, Operator::Gt, text("last tuesday"))), Some(Spot::Value));
        assert_eq!(spot_of(cond(Field::LastOrderAt, Operator::Gt, num(1_700_000_000))), Some(Spot::Value));
        assert_eq!(spot_of(cond(Field::LastOrderAt, Operator::Gt, text("30 days ago"))), None);
    }

    #[test]
    fn metadata_keys_are_checked() {
        assert_eq!(spot_of(cond(Field::Metadata("a.b".into()), Operator::Eq, text("x"))), Some(Spot::Field));
        assert_eq!(spot_of(cond(Field::Metadata(String::new()), Operator::Eq, text("x"))), Some(Spot::Field));
        assert_eq!(spot_of(cond(Field::Metadata("city".into()), Operator::Eq, text("x"))), None);
    }

    #[test]
    fn trees_report_the_json_path() {
        let bad = Rule::And(vec![
            Rule::condition(Field::Visits, Operator::Gt, num(1)),
            Rule::Or(vec![Rule::condition(Field::Tags, Operator::In, Value::List(vec![text("a"), num(2)]))]),
        ]);
        let err = validate_tree(&bad).expect_err("invalid");
        assert_eq!(err.path(), Some("children[1].children[0].value[1]"));
        let empty = Rule::Not(Box::new(Rule::Or(vec![])));
        assert_eq!(validate_tree(&empty).expect_err("empty").path(), Some("children[0].children"));
    }

    #[test]
    fn depth_is_limited() {
        let mut rule = Rule::condition(Field::Visits, Operator::Gt, num(1));
        for _ in 1..MAX_DEPTH {
            rule = Rule::Not(Box::new(rule));
        }
        assert_eq!(rule.depth(), MAX_DEPTH);
        assert!(validate_tree(&rule).is_ok());
        let deeper = Rule::And(vec![rule]);
        let err = validate_tree(&deeper).expect_err("too deep");
        assert!(err.to_string().contains("deeper than 32"), "{err}");
    }

    #[test]
    fn conditions_and_lists_are_limited() {
        let one = || Rule::condition(Field::Visits, Operator::Gt, num(1));
        let wide = Rule::Or((0..MAX_RULE_CONDITIONS).map(|_| one()).collect());
        assert!(validate_tree(&wide).is_ok());
        let wider = Rule::Or((0..=MAX_RULE_CONDITIONS).map(|_| one()).collect());
        let err = validate_tree(&wider).expect_err("too many");
        assert_eq!(err.path(), Some(format!("children[{MAX_RULE_CONDITIONS}]").as_str()));
        assert!(err.to_string().contains("more than 10000 conditions"), "{err}");

        let list = |n: usize| Value::List((0..n).map(|i| num(i as i64)).collect());
        assert_eq!(spot_of(cond(Field::Visits, Operator::In, list(MAX_LIST_VALUES))), None);
        let err = check_condition(&cond(Field::Visits, Operator::NotIn, list(MAX_LIST_VALUES + 1))).expect_err("long");
        assert_eq!(err.spot, Spot::Value);
        assert!(err.message.contains("at most 100000"), "{}", err.message);
    }
}
