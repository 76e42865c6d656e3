//! Saving, showing, listing, renaming and deleting segments; names and ids; delete protection.

use crate::common::{Crm, describe, stderr, stdout};
use crate::{create, ids, sample_store};
use serde_json::json;

#[test]
fn create_show_list_update_delete() {
    let crm = sample_store();
    let big = create(&crm, "Big spenders", "total_spend > 500");
    assert_eq!(big["id"], 1);
    assert_eq!(big["name"], "Big spenders");
    assert_eq!(big["owner_user_id"], json!(null));
    assert_eq!(big["rule_ast"], json!({"type": "condition", "field": "total_spend", "operator": ">", "value": 500}));
    assert_eq!(big["created_at"], big["updated_at"]);
    let keys: Vec<&str> = big.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{big}");
    for key in ["id", "name", "owner_user_id", "rule_ast", "created_at", "updated_at"] {
        assert!(keys.contains(&key), "{key} missing from {big}");
    }

    let out = crm.run(&["segments", "create", "vips", "--rule", "tags = \"VIP\"", "--owner", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let vip_count = crm.list(&["--tag", "vip", "--limit", "1000"]).len();
    assert_eq!(stdout(&out), format!("Created segment 2 (vips): {vip_count} leads match now.\n"));

    // show: by id or by name in any case; text form and the stored tree.
    assert_eq!(crm.json(&["segments", "show", "1"], 0), big);
    assert_eq!(crm.json(&["segments", "show", "BIG SPENDERS"], 0), big);
    let out = crm.run(&["segments", "show", "vips"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("owner_user_id  alice\n"), "{text}");
    assert!(text.contains("rule           tags = \"VIP\"\n"), "{text}");
    assert!(text.contains("rule_ast\n  {\n    \"type\": \"condition\",\n    \"field\": \"tags\",\n"), "{text}");

    // list: every segment with its count now.
    let listed = crm.json(&["segments", "list"], 0);
    assert_eq!(ids(&listed), [1, 2]);
    let spenders = crm.list(&["--min-spend", "500.01", "--limit", "1000"]).len();
    assert_eq!(listed[0]["count"], spenders, "{listed}");
    assert_eq!(listed[1]["count"], vip_count, "{listed}");
    let table = stdout(&crm.run(&["segments", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID  NAME"), "{table}");
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row[..4], ["2", "vips", &vip_count.to_string(), "alice"], "{table}");
    assert_eq!(row.last(), Some(&"\"VIP\""), "{table}");

    // update: rule, name and owner; updated_at moves, created_at stays.
    let updated = crm.json(&["segments", "update", "big spenders", "--rule", "total_spend > 1000", "--name", "top"], 0);
    assert_eq!(updated["name"], "top");
    assert_eq!(updated["rule_ast"]["value"], 1000);
    assert_eq!(updated["created_at"], big["created_at"]);
    assert!(crate::common::time(&updated["updated_at"]) >= crate::common::time(&big["updated_at"]));
    assert_eq!(crm.json(&["segments", "show", "top"], 0), updated);
    let out = crm.run(&["segments", "update", "top", "--name", "top"]);
    assert_eq!(stdout(&out), "Segment 1 already had those values; nothing changed.\n", "{}", describe(&out));
    let cleared = crm.json(&["segments", "update", "vips", "--owner", ""], 0);
    assert_eq!(cleared["owner_user_id"], json!(null));

    // delete, then it is gone.
    let out = crm.run(&["segments", "delete", "top"]);
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), "Deleted segment 1 (top).\n".into()), "{}", describe(&out));
    assert_eq!(ids(&crm.json(&["segments", "list"], 0)), [2]);
    assert_eq!(crm.json(&["segments", "delete", "2"], 0), json!({"deleted": 2}));
    let out = crm.run(&["segments", "list"]);
    assert_eq!(stdout(&out), "ID  NAME  LEADS  OWNER  UPDATED  RULE\n");
    assert!(stderr(&out).starts_with("No segments yet"), "{}", describe(&out));
}

#[test]
fn names_are_unique_ignoring_case_and_never_look_like_ids() {
    let crm = Crm::new();
    create(&crm, "École VIPs", "visits > 1");
    let out = crm.run(&["segments", "create", "école vips", "--rule", "visits > 2"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(stderr(&out), "error: segment 1 is already named 'École VIPs' (names ignore case); pick another name\n");
    create(&crm, "other", "visits > 2");
    let out = crm.run(&["segments", "update", "other", "--name", "ÉCOLE VIPS"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    for (name, message) in [("42", "'42' would read as a segment id"), ("  ", "a segment name cannot be empty")] {
        let out = crm.run(&["segments", "create", name, "--rule", "visits > 1"]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(stderr(&out).starts_with(&format!("error: {message}")), "{}", describe(&out));
    }
}

#[test]
fn unknown_segments_exit_1() {
    let crm = Crm::new();
    create(&crm, "vips", "tags = \"vip\"");
    for args in [
        &["segments", "show", "7"][..],
        &["segments", "show", "nope"],
        &["segments", "preview", "nope"],
        &["segments", "update", "7", "--name", "x"],
        &["segments", "delete", "nope"],
        &["segments", "export", "nope"],
    ] {
        let out = crm.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{}", describe(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
        let reference = args[2];
        assert_eq!(
            stderr(&out),
            format!("error: no segment has the id or name '{reference}' (see `crm segments list`)\n"),
            "{args:?}"
        );
    }
}

#[test]
fn delete_is_refused_while_a_running_or_paused_campaign_uses_the_segment() {
    let crm = Crm::new();
    create(&crm, "vips", "tags = \"vip\"");
    create(&crm, "others", "visits > 3");
    // Whether or not a migration has created the campaigns table yet, give it two campaigns.
    let conn = rusqlite::Connection::open(crm.store()).expect("open the store");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS campaigns (
             id INTEGER PRIMARY KEY, name TEXT NOT NULL, segment_id INTEGER NOT NULL, status TEXT NOT NULL)",
    )
    .expect("campaigns");
    add_campaign(&conn, 7, "Spring sale", 1, "RUNNING");
    add_campaign(&conn, 8, "Old", 2, "COMPLETED");

    let out = crm.run(&["segments", "delete", "vips"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        stderr(&out),
        "error: segment 1 is the audience of campaign 7 'Spring sale' (RUNNING); \
         delete it once the campaign has finished or been cancelled\n"
    );
    conn.execute("UPDATE campaigns SET status = 'PAUSED' WHERE id = 7", []).expect("pause");
    assert_eq!(crm.run(&["segments", "delete", "1"]).status.code(), Some(1));
    conn.execute("UPDATE campaigns SET status = 'COMPLETED' WHERE id = 7", []).expect("complete");
    assert_eq!(crm.json(&["segments", "delete", "vips"], 0), json!({"deleted": 1}));
    assert_eq!(
        crm.json(&["segments", "delete", "others"], 0),
        json!({"deleted": 2}),
        "completed campaigns do not hold"
    );
}

/// Inserts a campaign row with the given id, name, segment and status, and a plain value for
/// any other required column, whatever the campaigns table's exact shape.
fn add_campaign(conn: &rusqlite::Connection, id: i64, name: &str, segment_id: i64, status: &str) {
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value IS NULL, pk FROM pragma_table_info('campaigns')")
        .expect("columns");
    let columns: Vec<(String, String, bool, bool, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)? > 0)))
        .expect("columns")
        .collect::<Result<_, _>>()
        .expect("columns");
    let (mut names, mut values): (Vec<String>, Vec<rusqlite::types::Value>) = (Vec::new(), Vec::new());
    for (column, kind, not_null, no_default, _) in columns {
        use rusqlite::types::Value::{Integer, Text};
        let value = match column.as_str() {
            "id" => Integer(id),
            "name" => Text(name.into()),
            "name_key" => Text(name.to_lowercase()),
            "segment_id" => Integer(segment_id),
            "status" => Text(status.into()),
            _ if not_null && no_default && kind.eq_ignore_ascii_case("INTEGER") => Integer(0),
            _ if not_null && no_default => Text(String::new()),
            _ => continue,
        };
        names.push(column);
        values.push(value);
    }
    let marks = vec!["?"; names.len()].join(", ");
    conn.execute(
        &format!("INSERT INTO campaigns ({}) VALUES ({marks})", names.join(", ")),
        rusqlite::params_from_iter(values),
    )
    .expect("a campaign");
}
