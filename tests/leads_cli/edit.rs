//! `leads add`, `show`, `update` and `delete`: finding a lead by id, email or phone, and the
//! exit codes of clashes (1), bad values (2) and missing leads (1).

use crate::common::{Crm, describe, stderr, stdout, time};
use serde_json::{Value, json};

fn add_ada(crm: &Crm) -> Value {
    let args = [
        "leads",
        "add",
        "--name",
        "Ada Lovelace",
        "--email",
        "Ada@Example.com",
        "--phone",
        "+44 7911 123456",
        "--total-spend",
        "120.50",
        "--visits",
        "3",
        "--last-order-at",
        "2024-03-31",
        "--tag",
        "vip",
        "--tag",
        "newsletter",
        "--meta",
        "City=London",
    ];
    crm.json(&args, 0)
}

/// Runs a command that must fail with `code` and an `error: …` line on stderr, and returns
/// that line without the prefix.
fn fails(crm: &Crm, args: &[&str], code: i32) -> String {
    let out = crm.run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}\n{}", describe(&out));
    assert_eq!(stdout(&out), "", "{args:?}");
    let err = stderr(&out);
    err.strip_prefix("error: ").and_then(|e| e.strip_suffix('\n')).unwrap_or_else(|| panic!("{err}")).to_string()
}

#[test]
fn add_then_show_by_id_email_and_phone() {
    let crm = Crm::new();
    let added = add_ada(&crm);
    let expected = json!({
        "id": 1, "name": "Ada Lovelace", "emails": ["ada@example.com"], "phones": ["+447911123456"],
        "total_spend": 120.5, "visits": 3, "last_order_at": "2024-03-31T00:00:00Z",
        "tags": ["vip", "newsletter"], "metadata": { "city": "London" },
        "created_at": added["created_at"], "updated_at": added["created_at"],
    });
    assert_eq!(added, expected);
    for reference in ["1", "ada@example.com", " ADA@example.COM ", "+447911123456", "+44 (0)7911 123-456"] {
        assert_eq!(crm.show(reference), added, "show {reference:?}");
    }
    // National numbers need a region; bare digits that are not an id are tried as a phone.
    for national in ["07911 123456", "07911123456"] {
        let out = crm.cmd().env("CRM_DEFAULT_REGION", "GB").args(["--json", "leads", "show", national]).output();
        let out = out.expect("run crm");
        assert_eq!(out.status.code(), Some(0), "{national}\n{}", describe(&out));
        let mut shown = serde_json::from_slice::<Value>(&out.stdout).expect("json");
        assert_eq!(shown.as_object_mut().and_then(|o| o.remove("replies")), Some(json!([])), "no replies yet");
        assert_eq!(shown, added);
    }
    let err = fails(&crm, &["leads", "show", "07911 123456"], 2);
    assert!(err.starts_with("'07911 123456' is not a lead id, email or phone: the phone has no country code"), "{err}");

    let out = crm.run(&["leads", "add", "--email", "grace@example.com"]);
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), "Added lead 2.\n".to_string()));
}

#[test]
fn show_prints_every_field() {
    let crm = Crm::new();
    let ada = add_ada(&crm);
    let out = crm.run(&["leads", "show", "ada@example.com"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let created = ada["created_at"].as_str().expect("created_at");
    let expected = format!(
        "id             1\n\
         name           Ada Lovelace\n\
         emails         ada@example.com\n\
         phones         +447911123456\n\
         total_spend    120.50\n\
         visits         3\n\
         last_order_at  2024-03-31T00:00:00Z\n\
         tags           vip, newsletter\n\
         metadata.city  London\n\
         created_at     {created}\n\
         updated_at     {created}\n"
    );
    assert_eq!(stdout(&out), expected);
}

#[test]
fn adding_an_existing_email_or_phone_is_refused() {
    let crm = Crm::new();
    add_ada(&crm);
    let err = fails(&crm, &["leads", "add", "--email", "ADA@example.com", "--name", "Other"], 1);
    let expected = "a lead with these details exists: email ada@example.com belongs to lead 1 (use `crm leads update` to change it)";
    assert_eq!(err, expected);
    let err = fails(&crm, &["leads", "add", "--email", "new@example.com", "--phone", "+447911123456"], 1);
    assert!(err.contains("phone +447911123456 belongs to lead 1"), "{err}");
    let err = fails(&crm, &["leads", "add", "--name", "Nobody"], 2);
    assert_eq!(err, "give at least one --email or --phone to identify the lead");
    let err = fails(&crm, &["leads", "add", "--email", "b@example.com", "--total-spend", "1,000"], 2);
    assert!(err.starts_with("--total-spend: '1,000' is not a number"), "{err}");
    assert_eq!(crm.count(), 1);
}

#[test]
fn update_sets_fields() {
    let crm = Crm::new();
    let before = add_ada(&crm);
    let sets = [
        "name=Ada King",
        "total_spend=99.95",
        "visits=4",
        "tags=vip; b2b",
        "metadata.city=Paris",
        "metadata.Postal Code=75001",
        "last_order_at=2024-05-01T10:30:00+02:00",
        "phones=+12125551234|+44 7911 123456",
    ];
    let mut args = vec!["leads", "update", "ada@example.com"];
    for set in &sets {
        args.extend(["--set", set]);
    }
    let after = crm.json(&args, 0);
    let expected = json!({
        "id": 1, "name": "Ada King", "emails": ["ada@example.com"],
        "phones": ["+12125551234", "+447911123456"],
        "total_spend": 99.95, "visits": 4, "last_order_at": "2024-05-01T08:30:00Z",
        "tags": ["vip", "b2b"], "metadata": { "city": "Paris", "postal_code": "75001" },
        "created_at": before["created_at"], "updated_at": after["updated_at"],
    });
    assert_eq!(after, expected);
    assert!(time(&after["updated_at"]) > time(&before["updated_at"]));
    assert_eq!(crm.show("+12125551234"), after, "stored, and the new phone finds it");

    let cleared = crm.json(&["leads", "update", "1", "--set", "last_order_at=", "--set", "metadata.city="], 0);
    assert_eq!((&cleared["last_order_at"], &cleared["metadata"]), (&Value::Null, &json!({ "postal_code": "75001" })));

    let out = crm.run(&["leads", "update", "1", "--set", "name=Ada King"]);
    assert_eq!(stdout(&out), "Lead 1 already had those values; nothing changed.\n", "{}", describe(&out));
    assert_eq!(crm.show("1"), cleared, "a no-op update must not move updated_at");
}

#[test]
fn update_with_bad_values_names_the_field_and_changes_nothing() {
    let crm = Crm::new();
    add_ada(&crm);
    let before = crm.show("1");
    let cases = [
        ("total_spend=abc", "--set total_spend: 'abc' is not a number"),
        ("visits=-1", "--set visits: '-1' is not a whole number of 0 or more"),
        ("last_order_at=yesterday", "--set last_order_at: 'yesterday' is not a date"),
        ("emails=nope", "--set emails: 'nope' is missing '@'"),
        ("phones=+44 12", "--set phones: '+44 12' is not a valid number for its country (+44)"),
        ("metadata.=x", "--set metadata.: needs a key, as in metadata.city=Lagos"),
        ("colour=red", "--set: unknown field 'colour'; expected name, emails, phones"),
        ("name", "--set: 'name' should look like field=value"),
    ];
    for (set, message) in cases {
        let err = fails(&crm, &["leads", "update", "1", "--set", "name=Changed", "--set", set], 2);
        assert!(err.starts_with(message), "--set {set}: {err}");
    }
    let err = fails(&crm, &["leads", "update", "1", "--set", "emails=", "--set", "phones="], 2);
    assert_eq!(err, "a lead needs at least one email or phone");
    assert_eq!(crm.show("1"), before);
}

#[test]
fn update_cannot_take_another_leads_email() {
    let crm = Crm::new();
    add_ada(&crm);
    crm.json(&["leads", "add", "--email", "grace@example.com"], 0);
    let err = fails(&crm, &["leads", "update", "2", "--set", "emails=grace@example.com;ada@example.com"], 1);
    assert_eq!(err, "cannot update lead 2: email ada@example.com belongs to lead 1");
    let err = fails(&crm, &["leads", "update", "99", "--set", "name=X"], 1);
    assert_eq!(err, "no lead matches '99'");
}

#[test]
fn delete_then_show_fails_and_frees_the_email() {
    let crm = Crm::new();
    add_ada(&crm);
    assert_eq!(crm.json(&["leads", "delete", "ada@example.com"], 0), json!({ "deleted": 1 }));
    assert_eq!(fails(&crm, &["leads", "show", "1"], 1), "no lead matches '1'");
    assert_eq!(fails(&crm, &["leads", "show", "+447911123456"], 1), "no lead matches '+447911123456'");
    assert_eq!(fails(&crm, &["leads", "delete", "1"], 1), "no lead matches '1'");
    assert_eq!(crm.count(), 0);
    let again = add_ada(&crm);
    assert_eq!(crm.show("+447911123456"), again, "the email and phone are free again");
    let out = crm.run(&["leads", "delete", "+447911123456"]);
    assert_eq!(stdout(&out), format!("Deleted lead {} (Ada Lovelace).\n", again["id"]), "{}", describe(&out));
    assert_eq!(crm.count(), 0);
}
