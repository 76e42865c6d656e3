//! Rules as a parameterized SQLite `WHERE` fragment over `leads l`, so a segment is counted and
//! listed inside the database instead of by loading every lead.
//!
//! The fragment renders the evaluator's compiled tests (`eval::Test`) one for one and must
//! select exactly the leads [`Rule::matches`] accepts; the property test in `proptests.rs` holds
//! it to that. Three design points make that possible:
//!
//! - Every leaf is two-valued (0 or 1, never NULL): a nullable column is guarded with
//!   `col IS NOT NULL AND …`, so `NOT (…)` negates exactly as the evaluator does.
//! - Text tests run in Rust, through SQL functions that apply the evaluator's own matcher
//!   (`crm_match`, `crm_any` over a JSON list, `crm_meta` for a metadata key; see
//!   `sql_functions.rs`): case folds exactly as in memory, and a list costs one call per lead
//!   instead of a `json_each` table. Call [`register_functions`] on the connection first.
//! - No user text is ever part of the SQL string: values, tests and metadata keys are `?N`
//!   parameters, and nothing is a `LIKE` pattern, so `%` and `_` are plain text.
//!
//! Size stays within SQLite's limits for any rule validation accepts (`engine::limits`):
//! a condition binds at most `MAX_PARAMS_PER_CONDITION` parameters (a long number list is one
//! blob tested by `crm_in_int` / `crm_in_real`, a text list is one test spec), and a group is
//! rendered as a balanced tree, nested same-operator groups flattened into it, because SQLite
//! parses `a OR b OR c …` into a chain as deep as it is long and refuses chains over 1,000
//! (`SQLITE_MAX_EXPR_DEPTH`).

use super::ast::{Field, Operator, Rule};
use super::eval::{NumberTest, Test, TextMatcher, compile};
use super::relative_date::DateTest;
use super::sql_functions::{number_list, spec};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

/// A `WHERE` fragment (without the keyword) and its parameters, numbered `?N` in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlWhere {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

/// The fragment for `rule` with relative dates pinned to `now`; parameters start at `?1`.
pub fn to_sql(rule: &Rule, now: DateTime<Utc>) -> SqlWhere {
    to_sql_from(rule, now, 1)
}

/// Like [`to_sql`], with parameters numbered from `?first_param`, for queries that bind
/// parameters of their own before the fragment's.
pub fn to_sql_from(rule: &Rule, now: DateTime<Utc>, first_param: usize) -> SqlWhere {
    let mut builder = Builder { params: Vec::new(), first: first_param.max(1), now };
    let sql = builder.rule(rule);
    SqlWhere { sql, params: builder.params }
}

/// Registers the functions the fragments call (`crm_match`, `crm_any`, `crm_meta`) on `conn`.
/// Once per connection is enough.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    super::sql_functions::register(conn)
}

struct Builder {
    params: Vec<SqlValue>,
    first: usize,
    now: DateTime<Utc>,
}

impl Builder {
    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, value: SqlValue) -> String {
        self.params.push(value);
        format!("?{}", self.first + self.params.len() - 1)
    }

    fn bind_all<T: Copy>(&mut self, values: &[T], to_sql: fn(T) -> SqlValue) -> String {
        values.iter().map(|v| self.bind(to_sql(*v))).collect::<Vec<_>>().join(", ")
    }

    fn rule(&mut self, rule: &Rule) -> String {
        match rule {
            Rule::And(children) => self.group(children, true),
            Rule::Or(children) => self.group(children, false),
            Rule::Not(child) => format!("NOT ({})", self.rule(child)),
            Rule::Condition(c) => {
                let test = compile(c, self.now);
                self.condition(&c.field, &test)
            }
        }
    }

    /// An AND (`and` true) or OR group. Children that are groups of the same operator are
    /// flattened into it (an empty one is that operator's identity and adds nothing).
    fn group(&mut self, children: &[Rule], and: bool) -> String {
        let mut parts = Vec::new();
        self.collect(children, and, &mut parts);
        if parts.is_empty() {
            return if and { "1" } else { "0" }.into();
        }
        balanced(&parts, if and { " AND " } else { " OR " })
    }

    /// Renders `children` into `parts`, descending into same-operator groups (at most
    /// `MAX_DEPTH` levels, as validation guarantees).
    fn collect(&mut self, children: &[Rule], and: bool, parts: &mut Vec<String>) {
        for child in children {
            match child {
                Rule::And(inner) if and => self.collect(inner, and, parts),
                Rule::Or(inner) if !and => self.collect(inner, and, parts),
                other => parts.push(self.rule(other)),
            }
        }
    }

    fn condition(&mut self, field: &Field, test: &Test) -> String {
        match test {
            Test::Never => "0".into(),
            Test::Text { matcher, negate } => self.text(field, matcher, *negate),
            Test::Real(test) => self.number("l.total_spend", test, SqlValue::Real),
            Test::Whole(test) => self.number("l.visits", test, SqlValue::Integer),
            Test::Date(test) => {
                let column = match field {
                    Field::LastOrderAt => "l.last_order_at",
                    Field::CreatedAt => "l.created_at",
                    Field::UpdatedAt => "l.updated_at",
                    _ => return "0".into(),
                };
                let predicate = self.date(column, *test);
                if field.is_optional() { format!("({column} IS NOT NULL AND {predicate})") } else { predicate }
            }
        }
    }

    fn text(&mut self, field: &Field, matcher: &TextMatcher, negate: bool) -> String {
        if let Field::Metadata(key) = field {
            // The key passed validation (letters, digits, _) and is still only a parameter.
            let key = self.bind(SqlValue::Text(key.clone()));
            let test = self.bind(SqlValue::Text(spec(matcher)));
            // crm_meta is NULL for a missing key, which `IS` turns into false either way.
            return format!("crm_meta(l.metadata, {key}, {test}) IS {}", if negate { 0 } else { 1 });
        }
        if matches!(matcher, TextMatcher::OneOf(values) if values.is_empty()) {
            return if negate { "1" } else { "0" }.into();
        }
        let not = if negate { "NOT " } else { "" };
        let test = self.bind(SqlValue::Text(spec(matcher)));
        let list = match field {
            Field::Name => return format!("{not}crm_match(l.name, {test})"),
            Field::Emails => "l.emails",
            Field::Phones => "l.phones",
            _ => "l.tags",
        };
        // An empty list matches no positive test; comparing the text first spares the call.
        format!("{not}({list} <> '[]' AND crm_any({list}, {test}))")
    }

    fn number<T: Copy>(&mut self, column: &str, test: &NumberTest<T>, to_sql: fn(T) -> SqlValue) -> String {
        match test {
            NumberTest::Compare(op, v) => format!("{column} {} {}", comparison(*op), self.bind(to_sql(*v))),
            NumberTest::OneOf(values) if values.is_empty() => "0".into(),
            NumberTest::NoneOf(values) if values.is_empty() => "1".into(),
            NumberTest::OneOf(values) | NumberTest::NoneOf(values) if values.len() > SHORT_LIST => {
                // One blob for the whole list, looked up by a Rust function (see `number_list`).
                let not = if matches!(test, NumberTest::NoneOf(_)) { "NOT " } else { "" };
                let (function, blob) = number_list(values, to_sql);
                format!("{not}{function}({column}, {})", self.bind(SqlValue::Blob(blob)))
            }
            NumberTest::OneOf(values) => format!("{column} IN ({})", self.bind_all(values, to_sql)),
            NumberTest::NoneOf(values) => format!("{column} NOT IN ({})", self.bind_all(values, to_sql)),
        }
    }

    fn date(&mut self, column: &str, test: DateTest) -> String {
        let mut one = |op: &str, ms: i64| format!("{column} {op} {}", self.bind(SqlValue::Integer(ms)));
        match test {
            DateTest::Eq(v) => one("=", v),
            DateTest::Ne(v) => one("<>", v),
            DateTest::Gt(v) => one(">", v),
            DateTest::Ge(v) => one(">=", v),
            DateTest::Lt(v) => one("<", v),
            DateTest::Le(v) => one("<=", v),
            DateTest::Within(start, end) => format!("({} AND {})", one(">=", start), one("<", end)),
            DateTest::Outside(start, end) => format!("({} OR {})", one("<", start), one(">=", end)),
        }
    }
}

/// Number lists up to this long bind one parameter per value (`IN (?1, ?2)`, which reads well
/// in `--explain`); longer ones bind a single blob, so no condition binds more than
/// `MAX_PARAMS_PER_CONDITION` parameters.
const SHORT_LIST: usize = 3;

/// Groups up to this many terms are written flat; SQLite nests them `SHORT_GROUP - 1` deep.
const SHORT_GROUP: usize = 4;

/// `parts` joined by `joiner` as a balanced tree of parenthesised halves, so the expression
/// SQLite builds is about log2(n) deep instead of n.
fn balanced(parts: &[String], joiner: &str) -> String {
    if parts.len() <= SHORT_GROUP {
        return format!("({})", parts.join(joiner));
    }
    let (left, right) = parts.split_at(parts.len() / 2);
    format!("({}{joiner}{})", balanced(left, joiner), balanced(right, joiner))
}

fn comparison(op: Operator) -> &'static str {
    match op {
        Operator::Eq => "=",
        Operator::Ne => "<>",
        Operator::Gt => ">",
        Operator::Lt => "<",
        Operator::Ge => ">=",
        _ => "<=",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::segment::Value;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-31T15:20:00Z").expect("valid").with_timezone(&Utc)
    }

    fn sql(text: &str) -> SqlWhere {
        to_sql(&Rule::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}")), now())
    }

    fn texts(params: &[SqlValue]) -> Vec<String> {
        params.iter().map(|p| format!("{p:?}")).collect()
    }

    #[test]
    fn user_text_only_travels_as_parameters() {
        let w = sql(r#"name contains "'; DROP TABLE leads; --%" and metadata.city = "x\"y""#);
        assert_eq!(w.sql, "(crm_match(l.name, ?1) AND crm_meta(l.metadata, ?2, ?3) IS 1)");
        assert!(!w.sql.contains("DROP") && !w.sql.contains("city"));
        assert_eq!(
            texts(&w.params),
            [
                r#"Text("[\"contains\",\"'; drop table leads; --%\"]")"#,
                r#"Text("city")"#,
                r#"Text("[\"=\",\"x\\\"y\"]")"#
            ]
        );
    }

    #[test]
    fn lists_test_any_element_and_negate_the_whole_test() {
        let w = sql(r#"tags not in ["VIP", "Gold"] and emails in []"#);
        assert_eq!(w.sql, "(NOT (l.tags <> '[]' AND crm_any(l.tags, ?1)) AND 0)");
        assert_eq!(texts(&w.params), [r#"Text("[\"in\",\"vip\",\"gold\"]")"#]);
    }

    #[test]
    fn a_missing_metadata_key_fails_negative_tests_too() {
        let w = sql(r#"not city != "Lagos""#);
        assert_eq!(w.sql, "NOT (crm_meta(l.metadata, ?1, ?2) IS 0)");
    }

    #[test]
    fn nullable_columns_are_guarded_so_not_stays_two_valued() {
        let w = sql(r#"not last_order_at = "2024-03-31""#);
        assert_eq!(w.sql, "NOT ((l.last_order_at IS NOT NULL AND (l.last_order_at >= ?1 AND l.last_order_at < ?2)))");
        assert_eq!(w.params, [SqlValue::Integer(1_711_843_200_000), SqlValue::Integer(1_711_929_600_000)]);
        assert_eq!(
            sql(r#"created_at > "2024-03-31""#).sql,
            "l.created_at >= ?1",
            "> a day starts at the next midnight"
        );
    }

    #[test]
    fn numbers_bind_with_the_column_type() {
        let w = sql("total_spend > 500 or visits in [1, 2] or visits not in []");
        assert_eq!(w.sql, "(l.total_spend > ?1 OR l.visits IN (?2, ?3) OR 1)");
        assert_eq!(w.params, [SqlValue::Real(500.0), SqlValue::Integer(1), SqlValue::Integer(2)]);
    }

    /// Prepares and runs `rule`'s count on an empty leads table, as the store would.
    fn runs_on_sqlite(rule: &Rule) -> rusqlite::Result<i64> {
        let conn = Connection::open_in_memory()?;
        register_functions(&conn)?;
        conn.execute_batch(
            "CREATE TABLE leads (id INTEGER PRIMARY KEY, name TEXT, emails TEXT, phones TEXT, total_spend REAL,
             visits INTEGER, last_order_at INTEGER, tags TEXT, metadata TEXT, created_at INTEGER, updated_at INTEGER);
             INSERT INTO leads VALUES (1, 'Ada', '[]', '[]', 2.5, 7, NULL, '[\"vip\"]', '{\"city\":\"x\"}', 0, 0);",
        )?;
        let w = to_sql(rule, now());
        let sql = format!("SELECT count(*) FROM leads l WHERE {}", w.sql);
        conn.query_row(&sql, rusqlite::params_from_iter(&w.params), |r| r.get(0))
    }

    #[test]
    fn rules_at_the_size_limits_fit_sqlite() {
        use crate::engine::limits::{MAX_LIST_VALUES, MAX_RULE_CONDITIONS};
        let leaf = |i: usize| match i % 4 {
            0 => format!("visits in [{i}, 1, 2, 3]"),
            1 => format!("not city = \"c{i}\""),
            2 => format!("last_order_at = \"2024-01-0{}\"", i % 9 + 1),
            _ => format!("tags not in [\"t{i}\"]"),
        };
        // Wide: one OR of every condition (SQLite chains a flat OR as deep as it is long).
        let wide = (0..MAX_RULE_CONDITIONS).map(leaf).collect::<Vec<_>>().join(" or ");
        let rule = Rule::parse_text(&wide).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(runs_on_sqlite(&rule).expect("runs"), 1);
        // Deep and wide: 15 alternating `not (… or/and (…))` levels (two tree levels each), each
        // with hundreds of conditions beside the next level.
        let per_level = MAX_RULE_CONDITIONS / 15;
        let mut deep = leaf(0);
        for level in 0..15 {
            let joiner = if level % 2 == 0 { " or " } else { " and " };
            let siblings = (1..per_level).map(leaf).collect::<Vec<_>>().join(joiner);
            deep = format!("not ({siblings}{joiner}({deep}))");
        }
        let rule = Rule::parse_text(&deep).unwrap_or_else(|e| panic!("{e}"));
        assert!(rule.depth() >= 30 && rule.conditions() > 9_900, "{} {}", rule.depth(), rule.conditions());
        runs_on_sqlite(&rule).expect("runs");
        // Nested same-operator groups are flattened.
        let visits = |n: i64| Rule::condition(Field::Visits, Operator::Eq, Value::Number(n.into()));
        let mut nested = visits(7);
        for _ in 0..31 {
            nested = Rule::Or(vec![nested, visits(1)]);
        }
        let flat = Rule::Or(std::iter::once(visits(7)).chain((0..31).map(|_| visits(1))).collect());
        assert_eq!(to_sql(&nested, now()), to_sql(&flat, now()));
        assert_eq!(runs_on_sqlite(&nested).expect("runs"), 1);
        // Long lists bind one parameter, and match exactly.
        let many: Vec<Value> = (0..MAX_LIST_VALUES as i64).map(|i| Value::Number((i * 3 + 1).into())).collect();
        let list = Rule::condition(Field::Visits, Operator::In, Value::List(many.clone()));
        assert_eq!(to_sql(&list, now()).params.len(), 1);
        assert_eq!(runs_on_sqlite(&list).expect("runs"), 1, "7 = 2 * 3 + 1");
        let none = Rule::condition(Field::Visits, Operator::NotIn, Value::List(many));
        assert_eq!(runs_on_sqlite(&none).expect("runs"), 0);
        let texts: Vec<Value> = (0..MAX_LIST_VALUES).map(|i| Value::Text(format!("T{i}"))).collect();
        let tags = Rule::condition(Field::Tags, Operator::In, Value::List(texts));
        assert_eq!(runs_on_sqlite(&tags).expect("runs"), 0);
    }

    #[test]
    fn parameters_can_start_later() {
        let rule = Rule::parse_text("visits = 3").expect("parses");
        assert_eq!(to_sql_from(&rule, now(), 4).sql, "l.visits = ?4");
    }
}
