//! Rules as a MongoDB filter document for a `leads` collection whose documents use the lead's
//! field names (dates as BSON dates, lists as arrays, metadata as an embedded `metadata`
//! document), so the MongoDB store can count and list a segment on the server.
//!
//! Each condition is rendered from the evaluator's compiled test (`eval::Test`) and follows the
//! evaluator's semantics: array fields match when any element does (MongoDB's own rule for
//! arrays), negative operators on arrays are `$nor` of the positive filter ("no element
//! matches"), a missing optional value (`last_order_at`, a metadata key) fails every operator
//! (negative ones require `$type` first), and `NOT` is `$nor`, which negates per document
//! exactly like the evaluator. Case-insensitive text uses `$regex` with the `i` option over
//! `regex::escape`d user text, anchored with `\A…\z` for equality.
//!
//! Known difference: MongoDB's `i` option applies PCRE's simple case folding, whereas the
//! evaluator lower-cases with Rust's `to_lowercase`. They agree on ASCII and on ordinary
//! accented letters (`ÉCOLE` contains `école` in both); they can differ for characters whose
//! lower case is several characters or depends on context (`İ`, final `Σ`).

use super::ast::{Condition, Operator, Rule, Value};
use super::eval::{NumberTest, Test, compile};
use super::relative_date::DateTest;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};

/// The filter for `rule`, with relative dates pinned to `now`.
pub fn to_filter(rule: &Rule, now: DateTime<Utc>) -> Document {
    match rule {
        Rule::And(children) if children.is_empty() => Document::new(),
        Rule::Or(children) if children.is_empty() => never(),
        Rule::And(children) => doc! { "$and": filters(children, now) },
        Rule::Or(children) => doc! { "$or": filters(children, now) },
        Rule::Not(child) => doc! { "$nor": [to_filter(child, now)] },
        Rule::Condition(c) => condition(c, now),
    }
}

fn filters(rules: &[Rule], now: DateTime<Utc>) -> Vec<Bson> {
    rules.iter().map(|r| Bson::Document(to_filter(r, now))).collect()
}

/// Matches no document.
fn never() -> Document {
    doc! { "$expr": false }
}

fn condition(c: &Condition, now: DateTime<Utc>) -> Document {
    let path = c.field.name().into_owned();
    match compile(c, now) {
        Test::Never => never(),
        Test::Text { negate, .. } => {
            let Some(positive) = text_filter(c) else { return never() };
            let positive = doc! { path.as_str(): positive };
            match (negate, c.field.is_optional()) {
                (false, _) => positive,
                (true, false) => doc! { "$nor": [positive] },
                (true, true) => doc! { "$and": [{ path.as_str(): { "$type": "string" } }, { "$nor": [positive] }] },
            }
        }
        Test::Real(test) => number(&path, &test, Bson::Double),
        Test::Whole(test) => number(&path, &test, Bson::Int64),
        Test::Date(test) => date(&path, test, c.field.is_optional()),
    }
}

/// The positive text test on the user's own text (case is left to the `i` option).
fn text_filter(c: &Condition) -> Option<Bson> {
    let regex = |text: &str, anchored: bool| {
        let escaped = regex::escape(text);
        let pattern = if anchored { format!("\\A{escaped}\\z") } else { escaped };
        bson::Regex { pattern, options: "i".into() }
    };
    Some(match c.operator.positive() {
        Operator::Eq => {
            let r = regex(c.value.as_text()?, true);
            Bson::Document(doc! { "$regex": r.pattern, "$options": r.options })
        }
        Operator::Contains => {
            let r = regex(c.value.as_text()?, false);
            Bson::Document(doc! { "$regex": r.pattern, "$options": r.options })
        }
        Operator::In => {
            let items = c.value.as_list()?.iter().map(Value::as_text);
            let regexes =
                items.map(|t| t.map(|t| Bson::RegularExpression(regex(t, true)))).collect::<Option<Vec<_>>>()?;
            Bson::Document(doc! { "$in": regexes })
        }
        _ => return None,
    })
}

fn number<T: Copy>(path: &str, test: &NumberTest<T>, to_bson: fn(T) -> Bson) -> Document {
    let list = |values: &[T]| values.iter().map(|v| to_bson(*v)).collect::<Vec<_>>();
    let condition = match test {
        NumberTest::Compare(op, v) => doc! { comparison(*op): to_bson(*v) },
        NumberTest::OneOf(values) => doc! { "$in": list(values) },
        NumberTest::NoneOf(values) => doc! { "$nin": list(values) },
    };
    doc! { path: condition }
}

fn date(path: &str, test: DateTest, optional: bool) -> Document {
    let at = bson::DateTime::from_millis;
    match test {
        DateTest::Eq(v) => doc! { path: { "$eq": at(v) } },
        DateTest::Ne(v) if optional => doc! { path: { "$ne": at(v), "$type": "date" } },
        DateTest::Ne(v) => doc! { path: { "$ne": at(v) } },
        DateTest::Gt(v) => doc! { path: { "$gt": at(v) } },
        DateTest::Ge(v) => doc! { path: { "$gte": at(v) } },
        DateTest::Lt(v) => doc! { path: { "$lt": at(v) } },
        DateTest::Le(v) => doc! { path: { "$lte": at(v) } },
        DateTest::Within(start, end) => doc! { path: { "$gte": at(start), "$lt": at(end) } },
        DateTest::Outside(start, end) => {
            doc! { "$or": [{ path: { "$lt": at(start) } }, { path: { "$gte": at(end) } }] }
        }
    }
}

fn comparison(op: Operator) -> &'static str {
    match op {
        Operator::Eq => "$eq",
        Operator::Ne => "$ne",
        Operator::Gt => "$gt",
        Operator::Lt => "$lt",
        Operator::Ge => "$gte",
        _ => "$lte",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-31T15:20:00Z").expect("valid").with_timezone(&Utc)
    }

    fn filter(text: &str) -> Document {
        to_filter(&Rule::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}")), now())
    }

    fn ms(text: &str) -> bson::DateTime {
        let t = DateTime::parse_from_rfc3339(text).expect("valid");
        bson::DateTime::from_millis(t.timestamp_millis())
    }

    fn exact(text: &str) -> Bson {
        Bson::RegularExpression(bson::Regex { pattern: text.into(), options: "i".into() })
    }

    #[test]
    fn text_operators() {
        assert_eq!(filter(r#"name = "Ada""#), doc! { "name": { "$regex": "\\AAda\\z", "$options": "i" } });
        assert_eq!(
            filter(r#"name != "Ada""#),
            doc! { "$nor": [{ "name": { "$regex": "\\AAda\\z", "$options": "i" } }] }
        );
        assert_eq!(filter(r#"name contains "a.b*""#), doc! { "name": { "$regex": "a\\.b\\*", "$options": "i" } });
        assert_eq!(
            filter(r#"name not contains "x""#),
            doc! { "$nor": [{ "name": { "$regex": "x", "$options": "i" } }] }
        );
        assert_eq!(
            filter(r#"name in ["A", "B?"]"#),
            doc! { "name": { "$in": [exact("\\AA\\z"), exact("\\AB\\?\\z")] } }
        );
        assert_eq!(filter(r#"name not in []"#), doc! { "$nor": [{ "name": { "$in": [] } }] });
    }

    #[test]
    fn array_operators_match_any_element_and_negate_with_nor() {
        assert_eq!(filter(r#"tags = "vip""#), doc! { "tags": { "$regex": "\\Avip\\z", "$options": "i" } });
        assert_eq!(filter(r#"tags contains "(vip)""#), doc! { "tags": { "$regex": "\\(vip\\)", "$options": "i" } });
        assert_eq!(
            filter(r#"emails not contains "@x""#),
            doc! { "$nor": [{ "emails": { "$regex": "@x", "$options": "i" } }] }
        );
        assert_eq!(filter(r#"phones in ["+44"]"#), doc! { "phones": { "$in": [exact("\\A\\+44\\z")] } });
    }

    #[test]
    fn missing_metadata_fails_negative_operators_too() {
        assert_eq!(filter(r#"city = "Lagos""#), doc! { "metadata.city": { "$regex": "\\ALagos\\z", "$options": "i" } });
        assert_eq!(
            filter(r#"metadata.city != "Lagos""#),
            doc! { "$and": [
                { "metadata.city": { "$type": "string" } },
                { "$nor": [{ "metadata.city": { "$regex": "\\ALagos\\z", "$options": "i" } }] },
            ] }
        );
    }

    #[test]
    fn number_operators() {
        assert_eq!(filter("total_spend > 500"), doc! { "total_spend": { "$gt": 500.0 } });
        assert_eq!(filter("total_spend <= 19.99"), doc! { "total_spend": { "$lte": 19.99 } });
        assert_eq!(filter("visits = 3"), doc! { "visits": { "$eq": 3_i64 } });
        assert_eq!(filter("visits != 3"), doc! { "visits": { "$ne": 3_i64 } });
        assert_eq!(filter("visits >= 10"), doc! { "visits": { "$gte": 10_i64 } });
        assert_eq!(filter("visits < 1"), doc! { "visits": { "$lt": 1_i64 } });
        assert_eq!(filter("visits in [1, 2]"), doc! { "visits": { "$in": [1_i64, 2_i64] } });
        assert_eq!(filter("total_spend not in [5]"), doc! { "total_spend": { "$nin": [5.0] } });
    }

    #[test]
    fn date_operators() {
        let (start, end) = (ms("2024-03-31T00:00:00Z"), ms("2024-04-01T00:00:00Z"));
        assert_eq!(filter(r#"created_at = "2024-03-31""#), doc! { "created_at": { "$gte": start, "$lt": end } });
        assert_eq!(
            filter(r#"created_at != "2024-03-31""#),
            doc! { "$or": [{ "created_at": { "$lt": start } }, { "created_at": { "$gte": end } }] }
        );
        assert_eq!(filter(r#"created_at > "2024-03-31""#), doc! { "created_at": { "$gte": end } });
        assert_eq!(filter(r#"updated_at <= "2024-03-31""#), doc! { "updated_at": { "$lt": end } });
        assert_eq!(filter(r#"updated_at < "2024-03-31""#), doc! { "updated_at": { "$lt": start } });
        assert_eq!(filter(r#"updated_at >= "2024-03-31""#), doc! { "updated_at": { "$gte": start } });
        let t = ms("2024-03-31T10:00:00Z");
        assert_eq!(filter(r#"last_order_at = "2024-03-31T10:00:00Z""#), doc! { "last_order_at": { "$eq": t } });
        assert_eq!(
            filter(r#"last_order_at != "2024-03-31T10:00:00Z""#),
            doc! { "last_order_at": { "$ne": t, "$type": "date" } }
        );
        assert_eq!(
            filter(r#"last_order_at > "30 days ago""#),
            doc! { "last_order_at": { "$gte": ms("2024-05-02T00:00:00Z") } }
        );
    }

    #[test]
    fn groups_nest_with_and_or_nor() {
        let rule = r#"total_spend > 500 and (visits >= 10 or not tags contains "churn")"#;
        assert_eq!(
            filter(rule),
            doc! { "$and": [
                { "total_spend": { "$gt": 500.0 } },
                { "$or": [
                    { "visits": { "$gte": 10_i64 } },
                    { "$nor": [{ "tags": { "$regex": "churn", "$options": "i" } }] },
                ] },
            ] }
        );
        assert_eq!(filter("not not visits = 1"), doc! { "$nor": [{ "$nor": [{ "visits": { "$eq": 1_i64 } }] }] });
    }

    #[test]
    fn empty_and_invalid_rules_are_total() {
        assert_eq!(to_filter(&Rule::And(vec![]), now()), doc! {});
        assert_eq!(to_filter(&Rule::Or(vec![]), now()), doc! { "$expr": false });
        let bad =
            Rule::condition(super::super::ast::Field::Metadata("a.b".into()), Operator::Eq, Value::Text("x".into()));
        assert_eq!(to_filter(&bad, now()), doc! { "$expr": false }, "an invalid key never reaches a path");
    }
}
