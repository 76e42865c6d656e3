//! `segments preview`: counts that agree with `leads list` filters, the sample, `--json`,
//! `--explain`, saved segments, and relative dates resolved when the preview runs.

use crate::common::{Crm, describe, stderr, stdout};
use crate::{create, ids, sample_store};
use chrono::{Duration, Utc};
use serde_json::Value;

fn preview(crm: &Crm, args: &[&str]) -> Value {
    let args: Vec<&str> = ["segments", "preview"].into_iter().chain(args.iter().copied()).collect();
    crm.json(&args, 0)
}

#[test]
fn counts_and_samples_match_the_leads_list_filters() {
    let crm = sample_store();
    let cases: [(&str, &[&str]); 6] = [
        ("total_spend >= 500", &["--min-spend", "500"]),
        ("total_spend <= 100", &["--max-spend", "100"]),
        ("total_spend >= 100 and total_spend <= 1000", &["--min-spend", "100", "--max-spend", "1000"]),
        ("tags = \"vip\"", &["--tag", "vip"]),
        ("tags = \"VIP\" and tags = \"newsletter\"", &["--tag", "vip", "--tag", "newsletter"]),
        ("tags in [\"loyalty\"] and total_spend >= 1500", &["--tag", "Loyalty", "--min-spend", "1500"]),
    ];
    for (rule, filters) in cases {
        let listed: Vec<&str> = filters.iter().copied().chain(["--limit", "1000"]).collect();
        let expected = crm.ids(&listed);
        assert!(!expected.is_empty() && expected.len() < 284, "{rule}: the case should split the leads");
        let found = preview(&crm, &["--rule", rule, "--sample", "1000"]);
        assert_eq!(found["count"], expected.len(), "{rule}");
        assert_eq!(ids(&found["sample"]), expected, "{rule}");
        let first = preview(&crm, &["--rule", rule]);
        assert_eq!(first["count"], expected.len(), "{rule}");
        assert_eq!(ids(&first["sample"]), expected[..expected.len().min(10)], "{rule}: the first ten by id");
    }
}

#[test]
fn json_is_exactly_count_and_sample() {
    let crm = sample_store();
    let found = preview(&crm, &["--rule", "visits >= 30", "--sample", "3"]);
    let keys: Vec<&String> = found.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["count", "sample"]);
    assert_eq!(found["sample"].as_array().map(Vec::len), Some(3));
    assert_eq!(found["sample"][0], crm.show(&found["sample"][0]["id"].to_string()), "sample items are whole leads");
    let none = preview(&crm, &["--rule", "visits >= 30", "--sample", "0"]);
    assert_eq!((none["count"].clone(), none["sample"].clone()), (found["count"].clone(), serde_json::json!([])));
    let nobody = preview(&crm, &["--rule", "visits > 1000"]);
    assert_eq!(nobody, serde_json::json!({"count": 0, "sample": []}));
}

#[test]
fn text_output_is_a_count_then_the_leads_table() {
    let crm = sample_store();
    let out = crm.run(&["segments", "preview", "--rule", "tags = \"vip\" and visits >= 30", "--sample", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stderr(&out), "");
    let expected = crm.ids(&["--tag", "vip", "--limit", "1000"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let matching = preview(&crm, &["--rule", "tags = \"vip\" and visits >= 30", "--sample", "0"])["count"].clone();
    assert!(matching.as_u64() < Some(expected.len() as u64) && matching.as_u64() > Some(2), "{matching}");
    assert_eq!(lines[0], format!("{matching} leads match."));
    assert_eq!(lines[1], "");
    assert!(lines[2].starts_with("ID  NAME") && lines[2].ends_with("LAST ORDER  TAGS"), "{text}");
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(lines[6], "The first 2 by id; --sample N shows more, `crm segments export` writes them all.");
    let out = crm.run(&["segments", "preview", "--rule", "visits > 1000"]);
    assert_eq!(stdout(&out), "0 leads match.\n", "{}", describe(&out));
}

#[test]
fn saved_segments_preview_by_id_or_name() {
    let crm = sample_store();
    create(&crm, "Regulars", "visits >= 20");
    let by_rule = preview(&crm, &["--rule", "visits >= 20", "--sample", "5"]);
    assert_eq!(preview(&crm, &["regulars", "--sample", "5"]), by_rule);
    assert_eq!(preview(&crm, &["1", "--sample", "5"]), by_rule);
    let out = crm.run(&["segments", "preview", "1", "--rule", "visits > 1"]);
    assert_eq!(out.status.code(), Some(2), "one source only\n{}", describe(&out));
    let out = crm.run(&["segments", "preview"]);
    assert_eq!(out.status.code(), Some(2), "a source is required\n{}", describe(&out));
}

#[test]
fn explain_shows_the_sql_its_parameters_and_the_plan() {
    let crm = sample_store();
    let rule = "total_spend > 500 and (last_order_at > \"30 days ago\" or visits >= 10)";
    let out = crm.run(&["segments", "preview", "--rule", rule, "--sample", "1", "--explain"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "count query:\n  SELECT count(*) FROM leads l WHERE (l.total_spend > ?1 AND \
             ((l.last_order_at IS NOT NULL AND l.last_order_at >= ?2) OR l.visits >= ?3))\n  ?1 = 500.0\n"
        ),
        "{text}"
    );
    assert!(text.contains("  ?3 = 10\nplan:\n  SCAN l USING COVERING INDEX leads_numbers\n"), "{text}");
    assert!(text.contains("sample query:\n  SELECT l.id, l.name"), "{text}");

    let json = crm.json(&["segments", "preview", "--rule", "tags contains \"vip\"", "--explain"], 0);
    let plans = json["explain"].as_array().expect("explain is a list");
    assert_eq!(plans[0]["purpose"], "count");
    assert_eq!(plans[0]["query"], "SELECT count(*) FROM leads l WHERE (l.tags <> '[]' AND crm_any(l.tags, ?1))");
    assert_eq!(plans[0]["params"], serde_json::json!(["'[\"contains\",\"vip\"]'"]));
    assert_eq!(plans[0]["plan"], serde_json::json!(["SCAN l"]));
}

#[test]
fn relative_dates_resolve_when_the_preview_runs() {
    let crm = Crm::new();
    for (email, days_ago) in [("recent@example.com", 10), ("older@example.com", 45)] {
        let day = (Utc::now() - Duration::days(days_ago)).format("%Y-%m-%d").to_string();
        let out = crm.run(&["leads", "add", "--email", email, "--last-order-at", &day]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    create(&crm, "recent", "last_order_at > \"30 days ago\"");
    assert_eq!(ids(&preview(&crm, &["recent"])["sample"]), [1]);
    assert_eq!(ids(&preview(&crm, &["--rule", "last_order_at > \"60 days ago\""])["sample"]), [1, 2]);
    assert_eq!(ids(&preview(&crm, &["--rule", "not last_order_at > \"30 days ago\""])["sample"]), [2]);
    let shown = crm.json(&["segments", "show", "recent"], 0);
    assert_eq!(shown["rule_ast"]["value"], "30 days ago", "the rule keeps its words, not a date");
}
