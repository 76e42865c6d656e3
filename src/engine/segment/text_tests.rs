//! Tests of the text form: what parses to what, what errors say and point at, the printer's
//! round trip, and that no input, however broken, makes the parser panic.

use super::{Field, Operator, Rule, RuleError, Value};
use proptest::prelude::*;

fn parse(text: &str) -> Rule {
    Rule::parse_text(text).unwrap_or_else(|e| panic!("{text}:\n{e}"))
}

fn cond(field: Field, operator: Operator, value: Value) -> Rule {
    Rule::condition(field, operator, value)
}

fn text(t: &str) -> Value {
    Value::Text(t.into())
}

fn num(n: i64) -> Value {
    Value::Number(n.into())
}

#[test]
fn the_issue_example_parses_to_the_expected_tree() {
    let rule =
        parse(r#"total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10) and not tags contains "churn""#);
    assert_eq!(
        rule,
        Rule::And(vec![
            cond(Field::TotalSpend, Operator::Gt, num(500)),
            Rule::Or(vec![
                cond(Field::LastOrderAt, Operator::Gt, text("30 days ago")),
                cond(Field::Visits, Operator::Ge, num(10)),
            ]),
            Rule::Not(Box::new(cond(Field::Tags, Operator::Contains, text("churn")))),
        ])
    );
    let city = parse(r#"city in ["Lagos", "Berlin"]"#);
    assert_eq!(
        city,
        cond(Field::Metadata("city".into()), Operator::In, Value::List(vec![text("Lagos"), text("Berlin")]))
    );
    assert_eq!(city.to_text(), r#"metadata.city in ["Lagos", "Berlin"]"#);
}

#[test]
fn precedence_is_not_then_and_then_or() {
    let (a, b, c) = (parse("visits = 1"), parse("visits = 2"), parse("visits = 3"));
    assert_eq!(
        parse("visits = 1 or visits = 2 and visits = 3"),
        Rule::Or(vec![a.clone(), Rule::And(vec![b.clone(), c.clone()])])
    );
    assert_eq!(parse("not visits = 1 and visits = 2"), Rule::And(vec![Rule::Not(Box::new(a.clone())), b.clone()]));
    assert_eq!(parse("not (visits = 1 and visits = 2)"), Rule::Not(Box::new(Rule::And(vec![a.clone(), b.clone()]))));
    assert_eq!(parse("(visits = 1 and visits = 2) and visits = 3"), Rule::And(vec![Rule::And(vec![a.clone(), b]), c]));
    assert_eq!(parse("((visits = 1))"), a);
}

#[test]
fn keywords_and_fields_ignore_case_and_spacing() {
    let rule = parse("NOT Tags NOT IN [\"a\"]\nAND metadata.Tier Not_Contains \"x\" Or TOTAL_SPEND<=1");
    assert_eq!(
        rule,
        Rule::Or(vec![
            Rule::And(vec![
                Rule::Not(Box::new(cond(Field::Tags, Operator::NotIn, Value::List(vec![text("a")])))),
                cond(Field::Metadata("Tier".into()), Operator::NotContains, text("x")),
            ]),
            cond(Field::TotalSpend, Operator::Le, num(1)),
        ])
    );
    assert_eq!(parse("tags not contains \"x\""), parse("tags not_contains \"x\""));
    assert_eq!(parse("name CONTAINS \"x\""), parse("name contains \"x\""));
}

#[test]
fn strings_unescape() {
    assert_eq!(
        parse(r#"name = "say \"hi\" \\ \n\t\r""#),
        cond(Field::Name, Operator::Eq, text("say \"hi\" \\ \n\t\r"))
    );
    assert_eq!(parse(r#"name = "ÉCOLE 東京""#), cond(Field::Name, Operator::Eq, text("ÉCOLE 東京")));
}

#[test]
fn numbers_print_canonically() {
    let rule = parse("total_spend >= 19.990 and total_spend < -1e3 and visits in []");
    assert_eq!(rule.to_text(), "total_spend >= 19.99 and total_spend < -1000.0 and visits in []");
}

fn error(text: &str) -> (usize, String) {
    match Rule::parse_text(text) {
        Err(RuleError::Text(e)) => (e.column, RuleError::Text(e).to_string()),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn errors_point_at_the_culprit() {
    let cases: [(&str, usize, &str); 18] = [
        ("total_spend >> 500", 14, "unexpected '>'"),
        ("tags > \"a\"", 6, "> does not apply to tags"),
        ("total_spend contains \"5\"", 13, "contains does not apply to total_spend"),
        ("total_spend > \"500\"", 15, "total_spend needs a number"),
        ("visits = 1.5", 10, "visits needs a whole number"),
        ("tags in \"vip\"", 9, "in needs a list"),
        ("tags in [\"a\", 2]", 15, "tags needs text, found the number 2"),
        ("created_at > \"next week\"", 14, "\"next week\" is not a date"),
        ("created_at > 2024-03-31", 14, "is not a number"),
        ("tags contains vip", 15, "vip is not quoted"),
        ("visits ~ 3", 8, "unknown operator \"~\""),
        ("visits like 3", 8, "unknown operator \"like\""),
        ("cty > 5", 5, "cty is not a built-in field, so it is read as metadata.cty"),
        ("visits = 1 and (visits = 2", 27, "the ( at column 16 is not closed"),
        ("visits = 1)", 11, "this ) closes nothing"),
        ("name = \"abc", 8, "this string is not closed"),
        ("name = \"a\\q\"", 10, "unknown escape"),
        ("metadata.a-b = \"x\"", 11, "unknown operator"),
    ];
    for (rule, column, message) in cases {
        let (at, shown) = error(rule);
        assert!(shown.contains(message), "{rule}: {shown}");
        assert_eq!(at, column, "{rule}: {shown}");
    }
    let (_, shown) = error("tags > \"a\"");
    assert_eq!(
        shown,
        "> does not apply to tags (a list of text) at column 6:\n  tags > \"a\"\n       ^ expected one of =, !=, in, not in, contains, not contains"
    );
}

#[test]
fn empty_and_dangling_rules_are_errors() {
    for (rule, message) in [
        ("", "the rule is empty"),
        ("   ", "the rule is empty"),
        ("visits", "the condition has no operator"),
        ("visits >", "the condition has no value"),
        ("visits > 1 and", "the rule ends where a condition should start"),
        ("visits > 1 visits < 2", "unexpected text after a condition"),
        ("tags in [\"a\",", "the condition has no value"),
        ("tags in [\"a\"", "this [ is not closed"),
        ("tags in [[\"a\"]]", "lists cannot be nested"),
        ("metadata.a.b = \"x\"", "not a valid metadata key"),
        ("a.b = \"x\"", "unknown field"),
        ("metadata = \"x\"", "unknown field"),
        ("not", "the rule ends where a condition should start"),
        ("()", "unexpected ')'"),
    ] {
        let (_, shown) = error(rule);
        assert!(shown.contains(message), "{rule:?}: {shown}");
    }
}

#[test]
fn depth_is_limited_and_deep_input_never_overflows() {
    let mut ok = "visits = 1".to_string();
    for _ in 1..32 {
        ok = format!("not {ok}");
    }
    assert_eq!(parse(&ok).depth(), 32);
    let (_, shown) = error(&format!("not {ok}"));
    assert!(shown.contains("deeper than 32"), "{shown}");
    for deep in
        ["(".repeat(100_000), "not ".repeat(100_000), format!("{}visits = 1{}", "(".repeat(101), ")".repeat(101))]
    {
        let (_, shown) = error(&deep);
        assert!(shown.contains("nested parentheses and nots"), "{shown}");
    }
    assert!(Rule::parse_text(&format!("{}visits = 1{}", "(".repeat(50), ")".repeat(50))).is_ok());
}

#[test]
fn long_or_chains_parse_without_recursion_and_stop_at_the_condition_limit() {
    let chain = |n: usize| vec![r#"a = """#; n].join(" or ");
    let rule = parse(&chain(1_000));
    assert!(matches!(&rule, Rule::Or(children) if children.len() == 1_000));
    assert!(Rule::parse_text(&chain(10_000)).is_ok());
    // 100,000 terms fit in the size limit; the parser refuses the 10,001st, and never recurses.
    let long = chain(100_000);
    assert!(long.len() < crate::engine::limits::MAX_RULE_TEXT_BYTES);
    let (column, shown) = error(&long);
    assert!(shown.contains("more than 10000 conditions"), "{}", &shown[..200]);
    assert_eq!(column, 10_000 * 10 + 1, "at the 10,001st condition");
    let mixed = vec![r#"(a = "" and not b = "")"#; 6_000].join(" or ");
    assert!(error(&mixed).1.contains("more than 10000 conditions"));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let huge = format!("visits = 1{}", " ".repeat(crate::engine::limits::MAX_RULE_TEXT_BYTES));
    let err = Rule::parse_text(&huge).expect_err("too big");
    assert!(err.to_string().contains("over the limit of 1048576"), "{err}");
    let json =
        format!("{}{}", r#"{"type":"condition","field":"visits","operator":">","value":1}"#, " ".repeat(16 << 20));
    assert!(Rule::from_json(&json).expect_err("too big").to_string().contains("over the limit of 16777216"));
}

#[test]
fn printing_then_parsing_gives_the_same_rule() {
    for rule in [
        r#"total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10) and not tags contains "churn""#,
        r#"not (name = "a" or name = "b") and (emails contains "x" and phones in [])"#,
        r#"(visits = 1 or visits = 2) or visits = 3"#,
        r#"not not metadata.not = "\"quoted\"""#,
        r#"metadata.and in ["x"] or metadata.name != "y""#,
    ] {
        let parsed = parse(rule);
        assert_eq!(parse(&parsed.to_text()), parsed, "{rule} printed as {}", parsed.to_text());
    }
    assert_eq!(
        parse("(visits = 1 and visits = 2) and visits = 3").to_text(),
        "(visits = 1 and visits = 2) and visits = 3"
    );
}

#[test]
fn one_child_groups_print_as_their_child() {
    let single = Rule::And(vec![Rule::Or(vec![parse("visits = 1")])]);
    assert_eq!(single.to_text(), "visits = 1");
    assert_eq!(Rule::Not(Box::new(single)).to_text(), "not visits = 1");
}

#[test]
fn parse_any_picks_the_form() {
    let json = r#"{"type":"condition","field":"visits","operator":">","value":1}"#;
    assert_eq!(Rule::parse_any(json), Rule::parse_text("visits > 1"));
    assert_eq!("visits > 1".parse::<Rule>(), Rule::parse_text("visits > 1"));
    assert_eq!(parse("visits > 1").to_string(), "visits > 1");
}

/// Fragments of valid and invalid syntax, so random rules get past the first character.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("and"),
        Just("or"),
        Just("not"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(","),
        Just("\""),
        Just("\\"),
        Just("="),
        Just("!="),
        Just(">="),
        Just("<"),
        Just("in"),
        Just("not in"),
        Just("contains"),
        Just("tags"),
        Just("visits"),
        Just("metadata."),
        Just("city"),
        Just("created_at"),
        Just("\"x\""),
        Just("\"today\""),
        Just("12"),
        Just("-1.5e3"),
        Just("1e999"),
        Just("É"),
        Just("\n"),
        Just(" "),
        Just("東"),
    ];
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn garbage_text_never_panics(text in prop_oneof![".*", token_soup()]) {
        if let Err(e) = Rule::parse_text(&text) {
            let shown = e.to_string();
            prop_assert!(shown.contains('^'), "{shown}");
        }
    }

    #[test]
    fn garbage_json_never_panics(text in prop_oneof![".*", token_soup().prop_map(|t| format!("{{\"op\": {t}}}"))]) {
        let _ = Rule::from_json(&text);
    }
}
