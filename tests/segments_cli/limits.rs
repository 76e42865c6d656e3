//! Rule size limits (README, "Limits"; docs/segments.md): what is reasonable works, what is
//! past a documented limit is a usage error (exit 2) naming the limit, and no SQLite text or
//! query ever reaches the operator.

use crate::common::{Crm, describe, stderr};
use crate::sample_store;
use serde_json::{Value, json};

fn condition(field: &str, operator: &str, value: Value) -> Value {
    json!({"type": "condition", "field": field, "operator": operator, "value": value})
}

/// `crm --json segments preview --ast FILE --sample 0` with `rule` written to FILE.
fn preview_ast(crm: &Crm, rule: &Value) -> std::process::Output {
    let file = crm.write("rule.json", rule.to_string());
    crm.cmd().args(["--json", "segments", "preview", "--sample", "0", "--ast"]).arg(file).output().expect("run crm")
}

fn count_of(out: &std::process::Output) -> u64 {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    let value: Value = serde_json::from_slice(&out.stdout).expect("json");
    value["count"].as_u64().unwrap_or_else(|| panic!("no count: {value}"))
}

#[test]
fn a_thousand_or_terms_of_text_work() {
    let crm = sample_store();
    let rule = (0..1_000).map(|i| format!("visits = {i}")).collect::<Vec<_>>().join(" or ");
    let all = crm.json(&["segments", "preview", "--sample", "0", "--rule", &rule], 0);
    let same = crm.json(&["segments", "preview", "--sample", "0", "--rule", "visits >= 0 and visits < 1000"], 0);
    assert_eq!(all["count"], same["count"]);
    assert!(all["count"].as_u64().is_some_and(|n| n > 0), "{all}");
}

#[test]
fn ten_thousand_conditions_work_and_one_more_is_refused() {
    let crm = sample_store();
    let wide = |n: i64| json!({"op": "OR", "children": (0..n).map(|i| condition("visits", "=", json!(i))).collect::<Vec<_>>()});
    let all = crm.json(&["segments", "preview", "--sample", "0", "--rule", "visits >= 0 and visits < 10000"], 0);
    assert_eq!(count_of(&preview_ast(&crm, &wide(10_000))), all["count"].as_u64().expect("count"));

    let out = preview_ast(&crm, &wide(10_001));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("children[10000]: the rule has more than 10000 conditions"), "{err}");
    assert!(err.lines().count() <= 3 && err.len() < 500, "{err}");
}

#[test]
fn a_hundred_thousand_values_in_a_list_work_and_more_are_refused() {
    let crm = sample_store();
    // Every whole number up to 99,999 but 3 (SQLite alone allows 32,766 parameters a query).
    let visits: Vec<i64> = (0..100_000).filter(|v| *v != 3).collect();
    let not_three = crm.json(&["segments", "preview", "--sample", "0", "--rule", "visits != 3"], 0);
    let out = preview_ast(&crm, &condition("visits", "IN", json!(visits)));
    assert_eq!(count_of(&out), not_three["count"].as_u64().expect("count"));
    let out = preview_ast(&crm, &condition("visits", "NOT_IN", json!(visits)));
    let three = crm.json(&["segments", "preview", "--sample", "0", "--rule", "visits = 3"], 0);
    assert_eq!(count_of(&out), three["count"].as_u64().expect("count"));

    let spends: Vec<f64> = (0..100_000).map(|i| i as f64 / 100.0).collect();
    let out = preview_ast(&crm, &condition("total_spend", "IN", json!(spends)));
    let cents = crm.json(&["segments", "preview", "--sample", "0", "--rule", "total_spend < 1000"], 0);
    assert!(count_of(&out) <= cents["count"].as_u64().expect("count"));

    let cities: Vec<String> = (0..100_000).map(|i| format!("city {i}")).chain(["Lagos".into()]).collect();
    let out = preview_ast(&crm, &condition("tags", "IN", json!(cities)));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("value: the list has 100001 values; a list holds at most 100000"),
        "{}",
        describe(&out)
    );
}

#[test]
fn an_oversized_rule_file_is_refused_before_parsing() {
    let crm = Crm::new();
    // A valid rule padded past 16 MiB: refused for its size, without reading it all.
    let mut text = condition("visits", ">", json!(1)).to_string();
    text.push_str(&" ".repeat(16 << 20));
    let file = crm.write("huge.json", text);
    let out = crm.cmd().args(["segments", "create", "huge", "--ast"]).arg(&file).output().expect("run crm");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("the file is over 16777216 bytes, the limit"), "{}", describe(&out));
    assert!(!crm.store().exists(), "a refused rule creates no store");
}

#[test]
fn a_backend_failure_names_no_sql() {
    let crm = sample_store();
    // Damage the store behind crm's back: queries then fail to prepare, which rusqlite reports
    // with the whole statement ("no such column: l.visits in SELECT … at offset 20").
    let conn = rusqlite::Connection::open(crm.store()).expect("open the store");
    conn.execute_batch("DROP INDEX leads_numbers; ALTER TABLE leads DROP COLUMN visits;").expect("damage");
    drop(conn);
    for args in [
        &["segments", "preview", "--rule", "visits > 3 and city = \"Lagos\""][..],
        &["leads", "list", "--search", "a"][..],
    ] {
        let out = crm.run(args);
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("the query failed: no such column: "), "{err}");
        assert!(err.len() < 200, "{err}");
        for sql in ["SELECT", "WHERE", "crm_", "?1", "offset"] {
            assert!(!err.contains(sql), "{sql:?} in {err}");
        }
    }
}
