//! The segment rule tree: groups (AND, OR, NOT) over conditions `field operator value`.
//!
//! The types mirror the JSON the old Node system stored, so a rule loads and saves unchanged
//! (see `json.rs`). Values stay as written (a date stays the text `"30 days ago"`) and are only
//! interpreted when a rule runs, which keeps segments dynamic and round trips exact. Which
//! operators and values fit which field is decided here, once, by [`FieldKind`], and used by
//! validation, the evaluator and both translations alike.

use std::borrow::Cow;

/// The deepest tree accepted: a lone condition has depth 1, a group over conditions depth 2.
pub const MAX_DEPTH: usize = 32;

/// A segment rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Every child matches (`{"op": "AND", "children": [...]}`).
    And(Vec<Rule>),
    /// At least one child matches.
    Or(Vec<Rule>),
    /// The child does not match (`{"op": "NOT", "children": [child]}`).
    Not(Box<Rule>),
    /// `{"type": "condition", "field": F, "operator": O, "value": V}`.
    Condition(Condition),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub operator: Operator,
    pub value: Value,
}

/// A lead attribute a condition tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Name,
    Emails,
    Phones,
    TotalSpend,
    Visits,
    LastOrderAt,
    CreatedAt,
    UpdatedAt,
    Tags,
    /// An imported extra column, `metadata.KEY`; its values are text and it may be absent.
    Metadata(String),
}

/// What a field holds, which decides the operators and values it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// One string (name, metadata values).
    Text,
    /// A list of strings (emails, phones, tags): a condition holds when any element matches.
    TextList,
    /// A real number (total_spend).
    Number,
    /// A whole number (visits).
    WholeNumber,
    /// A point in time (stored at millisecond precision).
    Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    In,
    NotIn,
    Contains,
    NotContains,
}

/// A condition's value exactly as written: numbers keep their spelling (`10` vs `10.0`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(serde_json::Number),
    List(Vec<Value>),
}

const BUILT_IN: [(&str, Field); 9] = [
    ("name", Field::Name),
    ("emails", Field::Emails),
    ("phones", Field::Phones),
    ("total_spend", Field::TotalSpend),
    ("visits", Field::Visits),
    ("last_order_at", Field::LastOrderAt),
    ("created_at", Field::CreatedAt),
    ("updated_at", Field::UpdatedAt),
    ("tags", Field::Tags),
];

/// The prefix that names a metadata field in JSON and in text rules.
pub const METADATA_PREFIX: &str = "metadata.";

impl Field {
    /// The built-in field spelled exactly `name` (lower case), if any.
    pub fn built_in(name: &str) -> Option<Field> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, f)| f.clone())
    }

    /// The field a JSON rule names: a built-in name or `metadata.KEY` (the key is checked by
    /// validation, not here).
    pub fn from_name(name: &str) -> Option<Field> {
        match name.strip_prefix(METADATA_PREFIX) {
            Some(key) => Some(Field::Metadata(key.to_string())),
            None => Field::built_in(name),
        }
    }

    /// The names every built-in field goes by, for error messages.
    pub fn built_in_names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(n, _)| *n)
    }

    /// The name as JSON and text rules write it (`total_spend`, `metadata.city`).
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Field::Metadata(key) => Cow::Owned(format!("{METADATA_PREFIX}{key}")),
            other => Cow::Borrowed(BUILT_IN.iter().find(|(_, f)| f == other).map(|(n, _)| *n).unwrap_or("?")),
        }
    }

    pub fn kind(&self) -> FieldKind {
        match self {
            Field::Name | Field::Metadata(_) => FieldKind::Text,
            Field::Emails | Field::Phones | Field::Tags => FieldKind::TextList,
            Field::TotalSpend => FieldKind::Number,
            Field::Visits => FieldKind::WholeNumber,
            Field::LastOrderAt | Field::CreatedAt | Field::UpdatedAt => FieldKind::Date,
        }
    }

    /// Whether a lead may lack a value for this field (no order yet, no such metadata column).
    pub fn is_optional(&self) -> bool {
        matches!(self, Field::LastOrderAt | Field::Metadata(_))
    }
}

/// Whether `key` can name a metadata column: letters, digits and `_`, as imports produce them.
/// Restricting keys keeps them safe as MongoDB paths and as SQLite JSON paths.
pub fn is_valid_metadata_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= crate::engine::limits::MAX_METADATA_KEY_CHARS
        && key.chars().all(|c| c.is_alphanumeric() || c == '_')
}

impl FieldKind {
    pub fn operators(self) -> &'static [Operator] {
        use Operator::*;
        match self {
            FieldKind::Text | FieldKind::TextList => &[Eq, Ne, In, NotIn, Contains, NotContains],
            FieldKind::Number | FieldKind::WholeNumber => &[Eq, Ne, Gt, Lt, Ge, Le, In, NotIn],
            FieldKind::Date => &[Eq, Ne, Gt, Lt, Ge, Le],
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::TextList => "a list of text",
            FieldKind::Number => "a number",
            FieldKind::WholeNumber => "a whole number",
            FieldKind::Date => "a date",
        }
    }
}

const OPERATORS: [(Operator, &str, &str); 10] = [
    (Operator::Eq, "=", "="),
    (Operator::Ne, "!=", "!="),
    (Operator::Gt, ">", ">"),
    (Operator::Lt, "<", "<"),
    (Operator::Ge, ">=", ">="),
    (Operator::Le, "<=", "<="),
    (Operator::In, "IN", "in"),
    (Operator::NotIn, "NOT_IN", "not in"),
    (Operator::Contains, "CONTAINS", "contains"),
    (Operator::NotContains, "NOT_CONTAINS", "not contains"),
];

impl Operator {
    pub const ALL: [Operator; 10] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Lt,
        Operator::Ge,
        Operator::Le,
        Operator::In,
        Operator::NotIn,
        Operator::Contains,
        Operator::NotContains,
    ];

    /// The JSON spelling, upper case (`NOT_IN`); lower case is accepted on input.
    pub fn json_name(self) -> &'static str {
        OPERATORS.iter().find(|(o, _, _)| *o == self).map(|(_, j, _)| *j).unwrap_or("?")
    }

    /// The text-rule spelling (`not in`).
    pub fn text_name(self) -> &'static str {
        OPERATORS.iter().find(|(o, _, _)| *o == self).map(|(_, _, t)| *t).unwrap_or("?")
    }

    pub fn from_json_name(name: &str) -> Option<Operator> {
        OPERATORS.iter().find(|(_, j, _)| j.eq_ignore_ascii_case(name)).map(|(o, _, _)| *o)
    }

    /// `!=`, `NOT_IN` and `NOT_CONTAINS`: each holds exactly when its positive form does not
    /// (on a present value).
    pub fn is_negative(self) -> bool {
        matches!(self, Operator::Ne | Operator::NotIn | Operator::NotContains)
    }

    /// The positive form of a negative operator (`NOT_IN` → `IN`); others are their own.
    pub fn positive(self) -> Operator {
        match self {
            Operator::Ne => Operator::Eq,
            Operator::NotIn => Operator::In,
            Operator::NotContains => Operator::Contains,
            other => other,
        }
    }

    /// A list of the operators, as the text form spells them, for error messages.
    pub fn list_text(ops: &[Operator]) -> String {
        ops.iter().map(|o| o.text_name()).collect::<Vec<_>>().join(", ")
    }
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// The value as a whole number: an integer, or a float with no fraction (`10.0`) that is
    /// exactly representable.
    pub fn as_whole(&self) -> Option<i64> {
        let Value::Number(n) = self else { return None };
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
        let f = n.as_f64()?;
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        (f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
    }
}

impl Rule {
    /// The number of levels in the tree: 1 for a lone condition.
    pub fn depth(&self) -> usize {
        match self {
            Rule::Condition(_) => 1,
            Rule::Not(child) => 1 + child.depth(),
            Rule::And(children) | Rule::Or(children) => 1 + children.iter().map(Rule::depth).max().unwrap_or(0),
        }
    }

    /// The number of conditions (leaves) in the tree.
    pub fn conditions(&self) -> usize {
        match self {
            Rule::Condition(_) => 1,
            Rule::Not(child) => child.conditions(),
            Rule::And(children) | Rule::Or(children) => children.iter().map(Rule::conditions).sum(),
        }
    }

    /// A condition, for building rules in code.
    pub fn condition(field: Field, operator: Operator, value: Value) -> Rule {
        Rule::Condition(Condition { field, operator, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_round_trip() {
        for name in Field::built_in_names() {
            let field = Field::from_name(name).expect("built in");
            assert_eq!(field.name(), name);
        }
        assert_eq!(Field::from_name("metadata.city"), Some(Field::Metadata("city".into())));
        assert_eq!(Field::Metadata("city".into()).name(), "metadata.city");
        assert_eq!(Field::from_name("city"), None);
        assert_eq!(Field::from_name("Name"), None, "JSON field names are exact");
    }

    #[test]
    fn operator_names_round_trip() {
        for (op, json, text) in OPERATORS {
            assert_eq!(Operator::from_json_name(json), Some(op));
            assert_eq!(Operator::from_json_name(&json.to_lowercase()), Some(op));
            assert_eq!(op.text_name(), text);
        }
        assert_eq!(Operator::from_json_name("LIKE"), None);
    }

    #[test]
    fn whole_numbers_accept_integral_floats_only() {
        let num = |s: &str| Value::Number(serde_json::from_str(s).expect("number"));
        assert_eq!(num("10").as_whole(), Some(10));
        assert_eq!(num("10.0").as_whole(), Some(10));
        assert_eq!(num("-3").as_whole(), Some(-3));
        assert_eq!(num("10.5").as_whole(), None);
        assert_eq!(num("1e300").as_whole(), None);
        assert_eq!(Value::Text("10".into()).as_whole(), None);
    }

    #[test]
    fn metadata_keys_are_word_characters() {
        assert!(is_valid_metadata_key("city"));
        assert!(is_valid_metadata_key("postal_code_2"));
        assert!(is_valid_metadata_key("ville_été"));
        for bad in ["", "a.b", "a b", "$where", "a\"b", &"k".repeat(65)] {
            assert!(!is_valid_metadata_key(bad), "{bad:?}");
        }
    }
}
