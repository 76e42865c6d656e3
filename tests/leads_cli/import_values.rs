//! The value rules of issue 8, through the real binary: one key per internationalised email,
//! phones never guessed at, no control characters, bounded field sizes, timestamps that
//! round-trip, and the same rules in `leads add` / `leads update` and the spend filters.

use crate::common::{Crm, counts, describe, stderr, stdout};
use serde_json::{Value, json};

/// Imports `HEADER` + a good row + `bad` + a good row; checks only `bad` (line 3) was rejected
/// and returns its errors as (column, reason).
fn rejected(header: &str, bad: &str) -> Vec<(String, String)> {
    let crm = Crm::new();
    let columns = header.split(',').count();
    let good = |email: &str| {
        let mut cells = vec![String::new(); columns];
        cells[0] = email.to_string();
        cells.join(",")
    };
    let text = format!("{header}\n{}\n{bad}\n{}\n", good("ada@example.com"), good("grace@example.com"));
    let report = crm.import(&crm.write("in.csv", text), &[], 1);
    assert_eq!(counts(&report), [2, 2, 0, 0, 1], "{bad:?}: {report}");
    let errors = report["errors"].as_array().expect("errors");
    assert!(errors.iter().all(|e| e["line"] == 3), "{report}");
    errors
        .iter()
        .map(|e| (e["column"].as_str().expect("column").into(), e["reason"].as_str().expect("reason").into()))
        .collect()
}

fn one(header: &str, bad: &str) -> (String, String) {
    let mut errors = rejected(header, bad);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn internationalised_domains_are_one_lead() {
    let crm = Crm::new();
    let file = crm.write("in.csv", "Email,Name\nuser@bücher.de,Unicode\nUSER@XN--BCHER-KVA.DE,Ascii\n");
    let report = crm.import(&file, &[], 0);
    assert_eq!(counts(&report), [2, 1, 1, 0, 0], "{report}");
    let lead = crm.show("user@bücher.de");
    assert_eq!((&lead["emails"], &lead["name"]), (&json!(["user@xn--bcher-kva.de"]), &json!("Ascii")));
    assert_eq!(crm.show("user@xn--bcher-kva.de")["id"], lead["id"]);
}

#[test]
fn email_rules_do_not_depend_on_the_script() {
    for bad in ["a@b.c", "ü@ü.ü"] {
        let (column, reason) = one("Email,Name", &format!("{bad},X"));
        assert_eq!(
            (column.as_str(), reason),
            (
                "Email",
                format!(
                    "email '{bad}' has an invalid domain ('{}'; expected something like example.com)",
                    &bad[bad.find('@').expect("@") + 1..]
                )
            )
        );
    }
    let long_local = format!("{}@example.com", "a".repeat(65));
    let (_, reason) = one("Email,Name", &format!("{long_local},X"));
    assert!(reason.ends_with("has 65 bytes before '@'; at most 64 are allowed"), "{reason}");
}

#[test]
fn phones_with_letters_or_extensions_are_refused() {
    let (column, reason) = one("Email,Phone", "x@example.com,+44 7911 ABC 123");
    assert_eq!(column, "Phone");
    assert_eq!(
        reason,
        "phone '+44 7911 ABC 123' contains letters; write the number in digits (letters are never read as phone \
         keypad digits)"
    );
    for ext in ["+44 20 7946 0018 ext. 12", "+44 20 7946 0018 x12"] {
        let (_, reason) = one("Email,Phone", &format!("x@example.com,{ext}"));
        assert!(
            reason.starts_with(&format!("phone '{ext}' has an extension; extensions are not supported")),
            "{reason}"
        );
    }
}

#[test]
fn control_characters_are_refused_in_every_text_field() {
    let header = "Email,Name,Tags,City,Phone";
    for (bad, column) in [
        ("x@example.com,Ada\tL,,,", "Name"),
        ("x@example.com,\"Ada\nL\",,,", "Name"),
        ("x@example.com,,vip\u{0},,", "Tags"),
        ("x@example.com,,,Lon\u{1b}[2Jdon,", "City"),
        ("x@exa\u{7}mple.com,,,,", "Email"),
        ("x@example.com,,,,+44 7911\u{0}123456", "Phone"),
    ] {
        let (col, reason) = one(header, bad);
        assert_eq!(col, column, "{bad:?}: {reason}");
        assert!(reason.contains("(U+00"), "{bad:?}: {reason}");
        assert!(!reason.chars().any(char::is_control), "reasons are safe to print: {reason:?}");
    }
    // Metadata values may span lines (notes, addresses).
    let crm = Crm::new();
    let file = crm.write("in.csv", "Email,Notes\nx@example.com,\"first line\nsecond\tline\"\n");
    assert_eq!(counts(&crm.import(&file, &[], 0)), [1, 1, 0, 0, 0]);
    assert_eq!(crm.show("x@example.com")["metadata"]["notes"], "first line\nsecond\tline");
}

#[test]
fn field_sizes_are_bounded_and_never_truncated() {
    let header = "Email,Name,Tags,City,Phone";
    let too_many_tags = (0..101).map(|i| format!("t{i}")).collect::<Vec<_>>().join(";");
    let long_phone = format!("+44 7911 123456{}", " ".repeat(49) + "7");
    for (bad, column, reason) in [
        (
            format!("x@example.com,{},,,", "n".repeat(201)),
            "Name",
            "name is 201 characters long; a name has at most 200",
        ),
        (format!("x@example.com,,{},,", "t".repeat(65)), "Tags", "is 65 characters long; a tag has at most 64"),
        (format!("x@example.com,,{too_many_tags},,"), "Tags", "the row has 101 tags; a lead has at most 100"),
        (
            format!("x@example.com,,,{},", "c".repeat(1001)),
            "City",
            "value is 1001 characters long; a metadata value has at most 1000",
        ),
        (
            format!("x@example.com,,,,{long_phone}"),
            "Phone",
            "is 65 characters long; a phone number as written has at most 64",
        ),
        (
            format!("{}@{}.com,,,,", "a".repeat(64), ["d".repeat(63), "d".repeat(63), "d".repeat(62)].join(".")),
            "Email",
            "an email address has at most 254",
        ),
    ] {
        let (col, why) = one(header, &bad);
        assert_eq!(col, column, "{why}");
        assert!(why.ends_with(reason), "{why}");
    }
    // At the limits, everything is kept as written.
    let crm = Crm::new();
    let (name, city) = ("n".repeat(200), "c".repeat(1000));
    let tags = (0..100).map(|i| format!("t{i}")).collect::<Vec<_>>();
    let file = crm.write("in.csv", format!("Email,Name,Tags,City\nx@example.com,{name},{},{city}\n", tags.join(";")));
    assert_eq!(counts(&crm.import(&file, &[], 0)), [1, 1, 0, 0, 0]);
    let lead = crm.show("x@example.com");
    assert_eq!((&lead["name"], &lead["tags"], &lead["metadata"]["city"]), (&json!(name), &json!(tags), &json!(city)));
}

#[test]
fn a_merge_past_a_lead_limit_is_rejected() {
    let crm = Crm::new();
    let tags = |from: usize| (from..from + 60).map(|i| format!("t{i}")).collect::<Vec<_>>().join(";");
    let first = crm.write("a.csv", format!("Email,Tags\nx@example.com,{}\n", tags(0)));
    assert_eq!(counts(&crm.import(&first, &[], 0)), [1, 1, 0, 0, 0]);
    let second = crm.write("b.csv", format!("Email,Tags\nx@example.com,{}\n", tags(60)));
    let report = crm.import(&second, &[], 1);
    assert_eq!(counts(&report), [0, 0, 0, 0, 1], "{report}");
    assert_eq!(
        report["errors"][0]["reason"],
        "would leave lead 1 over a limit: it has 120 tags; a lead has at most 100"
    );
    assert_eq!(crm.show("1")["tags"].as_array().expect("tags").len(), 60, "the lead is untouched");
}

#[test]
fn timestamps_outside_years_1_to_9999_are_refused() {
    for bad in ["9999-12-31T23:00:00-02:00", "0000-06-01"] {
        let (column, reason) = one("Email,Last Order", &format!("x@example.com,{bad}"));
        assert_eq!(column, "Last Order");
        assert_eq!(
            reason,
            format!("'{bad}' is outside the supported range; dates must fall between 0001-01-01 and 9999-12-31 (UTC)")
        );
    }
    // The edges themselves round-trip through export.
    let crm = Crm::new();
    let file = crm.write("in.csv", "Email,Last Order,Created\nx@example.com,9999-12-31T23:59:59Z,0001-01-01\n");
    assert_eq!(counts(&crm.import(&file, &[], 0)), [1, 1, 0, 0, 0]);
    let export = crm.path("export.csv");
    assert_eq!(crm.run(&["leads", "export", export.to_str().expect("utf-8")]).status.code(), Some(0));
    let again = Crm::new();
    assert_eq!(counts(&again.import(&export, &[], 0)), [1, 1, 0, 0, 0]);
    let (a, b) = (crm.show("x@example.com"), again.show("x@example.com"));
    assert_eq!(
        (&a["last_order_at"], &a["created_at"]),
        (&json!("9999-12-31T23:59:59Z"), &json!("0001-01-01T00:00:00Z"))
    );
    assert_eq!((&a["last_order_at"], &a["created_at"]), (&b["last_order_at"], &b["created_at"]));
}

/// Runs a command that must exit 2 with one `error: …` line, and returns it.
fn usage_error(crm: &Crm, args: &[&str]) -> String {
    let out = crm.run(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
    assert_eq!(stdout(&out), "", "{args:?}");
    stderr(&out)
}

#[test]
fn add_and_update_refuse_what_import_refuses() {
    let crm = Crm::new();
    let err = usage_error(&crm, &["leads", "add", "--email", "a@example.com", "--name", "Ada\nLovelace"]);
    assert!(err.starts_with("error: name contains a line break (U+000A) at character 4"), "{err}");
    let err = usage_error(&crm, &["leads", "add", "--email", "a@example.com", "--meta", "city=Lon\u{1b}don"]);
    assert!(err.starts_with("error: metadata.city contains a control character (U+001B)"), "{err}");
    let err = usage_error(&crm, &["leads", "add", "--email", "a@example.com", "--tag", &"t".repeat(65)]);
    assert!(err.contains("is 65 characters long; a tag has at most 64"), "{err}");
    let err = usage_error(&crm, &["leads", "add", "--phone", "+44 7911 ABC 123"]);
    assert!(err.contains("contains letters"), "{err}");
    assert!(!crm.store().exists(), "refused input creates no store");

    let added: Value = crm.json(&["leads", "add", "--email", "a@example.com", "--name", "Ada"], 0);
    let err = usage_error(&crm, &["leads", "update", "1", "--set", "name=Ada\tL"]);
    assert!(err.starts_with("error: name contains a tab (U+0009) at character 4"), "{err}");
    let err = usage_error(&crm, &["leads", "update", "1", "--set", &format!("name={}", "n".repeat(201))]);
    assert!(err.contains("a name has at most 200"), "{err}");
    let err = usage_error(&crm, &["leads", "update", "1", "--set", "last_order_at=10000-01-01T00:00:00+00:00"]);
    assert!(err.contains("last_order_at"), "{err}");
    assert_eq!(crm.show("1"), added, "nothing changed");
}

#[test]
fn spend_filters_parse_like_imports() {
    let crm = Crm::new();
    crm.json(&["leads", "add", "--email", "a@example.com", "--total-spend", "0"], 0);
    for bad in ["NaN", "inf", "1e309", "-5", "1,000"] {
        for flag in ["--min-spend", "--max-spend"] {
            for cmd in ["list", "count"] {
                let err = usage_error(&crm, &["leads", cmd, flag, bad]);
                assert!(
                    err.starts_with(&format!("error: invalid value '{bad}' for '{flag} <AMOUNT>': '{bad}' is")),
                    "{err}"
                );
            }
        }
    }
    assert_eq!(crm.json(&["leads", "count", "--min-spend", "-0", "--max-spend", "-0.00"], 0)["count"], 1);
}
