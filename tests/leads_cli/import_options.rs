//! `leads import` options and merge rules: `--errors`, re-imports, `--on-conflict`, in-file
//! duplicates, `--dry-run` and `--map`.

use crate::common::{Crm, MESSY_SAMPLE, counts, describe, stderr, stdout, time};
use serde_json::json;

#[test]
fn errors_file_holds_rejected_rows_and_imports_once_fixed() {
    let crm = Crm::new();
    let text = "Name,Email,Total Spent,City\n\
                Ada,ada@example.com,10,London\n\
                Bad Spend,spend@example.com,\"1,234.50\",\"Leeds, UK\"\n\
                Bad Email,bad.example.com,5,Paris\n";
    let file = crm.write("in.csv", text);
    let errors = crm.path("rejected.csv");
    let out = crm.run(&["leads", "import", file.to_str().expect("utf-8"), "--errors", errors.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).ends_with(&format!(
            "all 2 rejected rows are in {} (fix them there and import that file).\n",
            errors.display()
        )),
        "{}",
        describe(&out)
    );

    let mut reader = csv::Reader::from_path(&errors).expect("errors file is CSV");
    let header: Vec<String> = reader.headers().expect("header").iter().map(String::from).collect();
    assert_eq!(header, ["Name", "Email", "Total Spent", "City", "error"]);
    let rows: Vec<Vec<String>> =
        reader.records().map(|r| r.expect("record").iter().map(String::from).collect()).collect();
    let spend = "Total Spent: '1,234.50' is not a number; expected digits with an optional decimal point, like 1234.50";
    let email = "Email: email 'bad.example.com' is missing '@' (expected name@example.com)";
    assert_eq!(
        rows,
        [
            vec!["Bad Spend", "spend@example.com", "1,234.50", "Leeds, UK", spend],
            vec!["Bad Email", "bad.example.com", "5", "Paris", email],
        ]
    );

    let fixed = std::fs::read_to_string(&errors)
        .expect("read errors file")
        .replace("\"1,234.50\"", "1234.50")
        .replace(",bad.example.com,", ",bad@example.com,");
    std::fs::write(&errors, fixed).expect("write the fixed file");
    let report = crm.import(&errors, &[], 0);
    assert_eq!(counts(&report), [2, 2, 0, 0, 0], "{report}");
    let spender = crm.show("spend@example.com");
    assert_eq!(spender["total_spend"], 1234.5);
    assert_eq!(spender["metadata"], json!({ "city": "Leeds, UK" }), "the old error must not become metadata");
    assert_eq!(crm.show("bad@example.com")["metadata"], json!({ "city": "Paris" }));
    assert_eq!(crm.count(), 3);
}

#[test]
fn reimporting_the_same_file_changes_nothing() {
    let crm = Crm::new();
    let first = crm.import(MESSY_SAMPLE.as_ref(), &["--default-region", "GB"], 1);
    let before = crm.run(&["--json", "leads", "list", "--limit", "1000"]);
    let second = crm.import(MESSY_SAMPLE.as_ref(), &["--default-region", "GB"], 1);
    let after = crm.run(&["--json", "leads", "list", "--limit", "1000"]);
    assert_eq!(counts(&second), [287, 0, 0, 287, 14], "{second}");
    assert_eq!(second["errors"], first["errors"]);
    assert!(before.status.success() && before.stdout.len() > 50_000, "{}", describe(&before));
    assert!(stdout(&before) == stdout(&after), "leads changed (or updated_at moved) on re-import");
}

#[test]
fn reimporting_a_file_with_inner_duplicates_changes_nothing() {
    let crm = Crm::new();
    let file = crm.write("dups.csv", "Email,Name\nada@example.com,Ada\nada@example.com,Ada L\n");
    assert_eq!(counts(&crm.import(&file, &[], 0)), [2, 1, 1, 0, 0]);
    let before = crm.show("ada@example.com");
    assert_eq!(counts(&crm.import(&file, &[], 0)), [2, 0, 0, 2, 0]);
    assert_eq!(crm.show("ada@example.com"), before);
}

#[test]
fn merge_adds_what_is_new_and_keeps_the_rest() {
    let crm = Crm::new();
    let first = crm.write("a.csv", "Email,Name,Total Spent,Tags,City\nada@example.com,Ada,10.5,vip,London\n");
    assert_eq!(counts(&crm.import(&first, &[], 0)), [1, 1, 0, 0, 0]);
    let before = crm.show("ada@example.com");
    let second =
        crm.write("b.csv", "Email,Phone,Total Spent,Tags\nADA@Example.com,+44 7911 123456,99,newsletter;vip\n");

    assert_eq!(counts(&crm.import(&second, &["--on-conflict", "skip"], 0)), [1, 0, 0, 1, 0]);
    assert_eq!(crm.show("1"), before, "skip leaves the lead untouched");

    assert_eq!(counts(&crm.import(&second, &[], 0)), [1, 0, 1, 0, 0]);
    let merged = crm.show("+447911123456");
    let expected = json!({
        "id": 1, "name": "Ada", "emails": ["ada@example.com"], "phones": ["+447911123456"],
        "total_spend": 99.0, "visits": 0, "last_order_at": null, "tags": ["vip", "newsletter"],
        "metadata": { "city": "London" },
        "created_at": before["created_at"], "updated_at": merged["updated_at"],
    });
    assert_eq!(merged, expected);
    assert!(time(&merged["updated_at"]) > time(&before["updated_at"]));
    assert_eq!(crm.count(), 1);
}

#[test]
fn overwrite_replaces_fields_but_keeps_id_and_created_at() {
    let crm = Crm::new();
    let first = "Email,Phone,Name,Total Spent,Tags,City\nada@example.com,+447911123456,Ada,10.5,vip,London\n";
    crm.import(&crm.write("a.csv", first), &[], 0);
    let before = crm.show("ada@example.com");
    let second = crm.write("b.csv", "Email,Name,Visits\nada@example.com,Ada Byron,7\n");
    assert_eq!(counts(&crm.import(&second, &["--on-conflict", "overwrite"], 0)), [1, 0, 1, 0, 0]);
    let after = crm.show("ada@example.com");
    let expected = json!({
        "id": 1, "name": "Ada Byron", "emails": ["ada@example.com"], "phones": [],
        "total_spend": 0.0, "visits": 7, "last_order_at": null, "tags": [], "metadata": {},
        "created_at": before["created_at"], "updated_at": after["updated_at"],
    });
    assert_eq!(after, expected);
    let out = crm.run(&["leads", "show", "+447911123456"]);
    assert_eq!(out.status.code(), Some(1), "the dropped phone no longer finds the lead\n{}", describe(&out));
}

#[test]
fn duplicates_inside_one_file_become_one_lead() {
    let crm = Crm::new();
    let text = "Email,Name,Phone,Tags\nada@example.com,Ada,,vip\nbob@example.com,Bob,,\n\
                Ada@Example.com,Ada L,+447911123456,new\n";
    let report = crm.import(&crm.write("dups.csv", text), &[], 0);
    assert_eq!(counts(&report), [3, 2, 1, 0, 0], "{report}");
    let ada = crm.show("+447911123456");
    assert_eq!(
        (&ada["id"], &ada["name"], &ada["emails"], &ada["tags"]),
        (&json!(1), &json!("Ada L"), &json!(["ada@example.com"]), &json!(["vip", "new"]))
    );
    assert_eq!(crm.count(), 2);
}

#[test]
fn dry_run_writes_nothing_and_counts_like_a_real_run() {
    let crm = Crm::new();
    let dry = crm.import(MESSY_SAMPLE.as_ref(), &["--default-region", "GB", "--dry-run"], 1);
    assert_eq!(crm.count(), 0);
    assert_eq!(dry["dry_run"], true);
    let real = crm.import(MESSY_SAMPLE.as_ref(), &["--default-region", "GB"], 1);
    assert_eq!(real["dry_run"], false);
    assert_eq!(counts(&dry), counts(&real));
    assert_eq!(dry["errors"], real["errors"]);
    assert_eq!(crm.count(), 284);

    // Against stored leads: merges are counted as updates, and still nothing is written.
    let before = crm.run(&["--json", "leads", "list", "--limit", "1000"]);
    let change = crm.write("change.csv", "Email,Visits\ngrace.mensah0@proton.me,99\nnew@example.com,1\n");
    let file = change.to_str().expect("utf-8");
    let out = crm.run(&["leads", "import", file, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with(&format!("Checked (dry run, nothing written) {file} in ")), "{summary}");
    assert!(summary.ends_with(" s: accepted 2, inserted 1, updated 1, skipped 0, rejected 0.\n"), "{summary}");
    let after = crm.run(&["--json", "leads", "list", "--limit", "1000"]);
    assert!(before.stdout == after.stdout, "a dry run changed the store");
    assert_eq!(counts(&crm.import(&change, &[], 0)), [2, 1, 1, 0, 0]);
}

#[test]
fn map_overrides_a_column_and_unknown_columns_become_metadata() {
    let crm = Crm::new();
    let file =
        crm.write("in.csv", "Email,Contact No,Spend (GBP),Loyalty Tier\nada@example.com,07911 123456,12.5,gold\n");
    let file_arg = file.to_str().expect("utf-8");

    let args = ["--map", "contact no=phones", "--map", "Spend (GBP)=total_spend", "--default-region", "GB"];
    assert_eq!(counts(&crm.import(&file, &args, 0)), [1, 1, 0, 0, 0]);
    let ada = crm.show("1");
    assert_eq!(ada["phones"], json!(["+447911123456"]));
    assert_eq!(ada["total_spend"], 12.5);
    assert_eq!(ada["metadata"], json!({ "loyalty_tier": "gold" }));

    // Without --map the same columns are kept as metadata.
    let other = Crm::new();
    other.import(&file, &[], 0);
    let meta = &other.show("ada@example.com")["metadata"];
    assert_eq!(meta, &json!({ "contact_no": "07911 123456", "loyalty_tier": "gold", "spend_gbp": "12.5" }));

    let out = crm.run(&["leads", "import", file_arg, "--map", "Mobile=phones"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(stdout(&out), "");
    let message = "--map names column 'Mobile', which is not in the file \
                   (columns: Email, Contact No, Spend (GBP), Loyalty Tier)\n";
    assert!(stderr(&out).starts_with("error: ") && stderr(&out).ends_with(message), "{}", describe(&out));

    let out = crm.run(&["leads", "import", file_arg, "--map", "Contact No=price"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("unknown field 'price'; expected one of: name, first_name"), "{}", describe(&out));
    assert_eq!(crm.count(), 1);
}
