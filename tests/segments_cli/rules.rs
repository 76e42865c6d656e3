//! How rules get in: text with a caret under the mistake, JSON files with the path of the
//! mistake, the old Node system's stored trees, and stdin. A bad rule is a usage error (exit 2)
//! and changes nothing.

use crate::common::{Crm, describe, stderr, stdout};
use crate::{create, ids, sample_store};
use serde_json::json;

/// A rule as the Node system stored it: lower-case operator names, extra keys, nested groups.
const NODE_AST: &str = r#"{"op":"AND","id":"root","children":[
    {"type":"condition","field":"total_spend","operator":">","value":500,"id":"c1"},
    {"op":"or","children":[
        {"type":"condition","field":"last_order_at","operator":">","value":"30 days ago"},
        {"type":"condition","field":"visits","operator":">=","value":10}]},
    {"op":"NOT","children":[{"type":"condition","field":"tags","operator":"contains","value":"churn"}]},
    {"type":"condition","field":"metadata.city","operator":"not_in","value":["Lagos","Berlin"]}]}"#;

#[test]
fn a_text_rule_error_points_at_the_column_and_exits_2() {
    let crm = Crm::new();
    let out = crm.run(&["segments", "create", "x", "--rule", "total_spend >> 500"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("error: --rule: ") && lines[0].ends_with(" at column 14:"), "{err}");
    assert_eq!(lines[1], "  total_spend >> 500");
    assert!(lines[2].starts_with("               ^ expected "), "the caret is under the second '>'\n{err}");
    assert!(!crm.store().exists(), "a bad rule must not create the store");

    let out = crm.run(&["segments", "preview", "--rule", "visits >= 10 and tags contain \"vip\""]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("  visits >= 10 and tags contain \"vip\"\n                        ^ expected"), "{err}");
}

#[test]
fn a_json_rule_error_names_the_path_and_exits_2() {
    let crm = Crm::new();
    let bad = r#"{"op":"AND","children":[{"type":"condition","field":"visits","operator":">","value":1},
        {"op":"OR","children":[{"type":"condition","field":"total_spend","operator":">","value":"lots"}]}]}"#;
    let file = crm.write("bad.json", bad);
    let file = file.to_str().expect("utf-8");
    let out = crm.run(&["segments", "create", "x", "--ast", file]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with(&format!("error: --ast {file}: children[1].children[0].value: ")), "{err}");
    assert!(err.contains("(expected a number"), "{err}");

    let not_json = crm.write("not.json", "{\"op\": ");
    let out = crm.run(&["segments", "preview", "--ast", not_json.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("the rule is not valid JSON"), "{}", describe(&out));

    let missing = crm.path("missing.json");
    let out = crm.run(&["segments", "preview", "--ast", missing.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).starts_with(&format!("error: cannot read {}", missing.display())), "{}", describe(&out));
}

#[test]
fn node_style_trees_load_and_are_saved_in_the_same_shape() {
    let crm = sample_store();
    let file = crm.write("node.json", NODE_AST);
    let saved = crm.json(&["segments", "create", "from node", "--ast", file.to_str().expect("utf-8")], 0);
    let expected = json!({"op": "AND", "children": [
        {"type": "condition", "field": "total_spend", "operator": ">", "value": 500},
        {"op": "OR", "children": [
            {"type": "condition", "field": "last_order_at", "operator": ">", "value": "30 days ago"},
            {"type": "condition", "field": "visits", "operator": ">=", "value": 10}]},
        {"op": "NOT", "children": [{"type": "condition", "field": "tags", "operator": "CONTAINS", "value": "churn"}]},
        {"type": "condition", "field": "metadata.city", "operator": "NOT_IN", "value": ["Lagos", "Berlin"]}]});
    assert_eq!(saved["rule_ast"], expected);

    let out = crm.run(&["segments", "show", "from node"]);
    let text = stdout(&out);
    let rule_line = text.lines().find(|l| l.starts_with("rule ")).expect("a rule line");
    let rule_text = rule_line.trim_start_matches("rule").trim();
    assert_eq!(
        rule_text,
        "total_spend > 500 and (last_order_at > \"30 days ago\" or visits >= 10) and not tags contains \"churn\" \
         and metadata.city not in [\"Lagos\", \"Berlin\"]"
    );
    let by_text = crm.json(&["segments", "preview", "--rule", rule_text, "--sample", "1000"], 0);
    let by_ast = crm.json(&["segments", "preview", "from node", "--sample", "1000"], 0);
    assert_eq!(by_text, by_ast, "the text form and the tree select the same leads");
    assert!(by_ast["count"].as_u64() > Some(0));
}

#[test]
fn rules_can_come_from_stdin() {
    let crm = Crm::new();
    create(&crm, "x", "visits > 1");
    let out = crm
        .cmd()
        .args(["--json", "segments", "update", "x", "--ast", "-"])
        .write_stdin(r#"{"type":"condition","field":"city","operator":"=","value":"Lagos"}"#)
        .output()
        .expect("run crm");
    assert_eq!(out.status.code(), Some(2), "bare metadata names are for text rules only\n{}", describe(&out));
    assert!(stderr(&out).starts_with("error: --ast stdin: field: "), "{}", describe(&out));

    let out = crm
        .cmd()
        .args(["--json", "segments", "update", "x", "--ast", "-"])
        .write_stdin(r#"{"type":"condition","field":"metadata.city","operator":"=","value":"Lagos"}"#)
        .output()
        .expect("run crm");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let updated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(updated["rule_ast"]["field"], "metadata.city");
    assert_eq!(ids(&crm.json(&["segments", "list"], 0)), [1]);
}
