//! `leads import` of messy files: every kind of bad row is reported with its line, column and
//! reason, never costs the good rows beside it, and makes the exit code 1.

use crate::common::{Crm, MESSY_SAMPLE, counts, describe, stderr, stdout};
use serde_json::{Value, json};

const HEADER: &str = "Name,Email,Phone,Total Spent,Visits,Last Order\n";
const ADA: &str = "Ada Lovelace,ada@example.com,+447911123456,10.50,3,2024-01-31\n";
const GRACE: &str = "Grace Hopper,grace@example.com,+12125551234,20,4,2024-02-29\n";

/// Imports a file whose line 3 is `bad`, between two good rows, and checks that exactly that
/// row was rejected and both good ones stored. Returns the report's `errors`.
fn errors_for_bad_row(bad: &[u8]) -> Value {
    let crm = Crm::new();
    let file = crm.write("in.csv", [HEADER.as_bytes(), ADA.as_bytes(), bad, b"\n", GRACE.as_bytes()].concat());
    let report = crm.import(&file, &[], 1);
    assert_eq!(counts(&report), [2, 2, 0, 0, 1], "{report}");
    assert_eq!(crm.count(), 2);
    assert_eq!(crm.show("ada@example.com")["name"], "Ada Lovelace");
    assert_eq!(crm.show("grace@example.com")["total_spend"], 20.0);
    report["errors"].clone()
}

fn one_error(line: u64, column: &str, reason: &str) -> Value {
    json!([{ "line": line, "column": column, "reason": reason }])
}

#[test]
fn invalid_email() {
    let errors = errors_for_bad_row(b"Bad Email,bad.example.com,,1,1,2024-01-01");
    let reason = "email 'bad.example.com' is missing '@' (expected name@example.com)";
    assert_eq!(errors, one_error(3, "Email", reason));
}

#[test]
fn invalid_phone() {
    let errors = errors_for_bad_row(b"Short Phone,short@example.com,+44 12,1,1,2024-01-01");
    assert_eq!(errors, one_error(3, "Phone", "phone '+44 12' is not a valid number for its country (+44)"));
}

#[test]
fn national_phone_needs_a_default_region() {
    let bad = "National,nat@example.com,07911 123457,1,1,2024-01-01";
    let errors = errors_for_bad_row(bad.as_bytes());
    let reason = "phone '07911 123457' has no country code; write it as +<country code> <number> \
                  or pass --default-region (e.g. GB)";
    assert_eq!(errors, one_error(3, "Phone", reason));

    let crm = Crm::new();
    let file = crm.write("in.csv", format!("{HEADER}{ADA}{bad}\n"));
    let report = crm.import(&file, &["--default-region", "GB"], 0);
    assert_eq!(counts(&report), [2, 2, 0, 0, 0], "{report}");
    assert_eq!(crm.show("nat@example.com")["phones"], json!(["+447911123457"]));
}

#[test]
fn amount_with_thousands_separator() {
    let errors = errors_for_bad_row(b"Bad Spend,spend@example.com,,\"1,234.50\",1,2024-01-01");
    let reason = "'1,234.50' is not a number; expected digits with an optional decimal point, like 1234.50";
    assert_eq!(errors, one_error(3, "Total Spent", reason));
}

#[test]
fn negative_spend() {
    let errors = errors_for_bad_row(b"Refund,refund@example.com,,-5,1,2024-01-01");
    assert_eq!(errors, one_error(3, "Total Spent", "'-5' is negative; expected an amount of 0 or more"));
}

#[test]
fn visits_that_are_not_a_count() {
    let errors = errors_for_bad_row(b"Bad Visits,visits@example.com,,1,many,2024-01-01");
    assert_eq!(errors, one_error(3, "Visits", "'many' is not a whole number of 0 or more"));
}

#[test]
fn date_in_a_local_format() {
    let errors = errors_for_bad_row(b"Bad Date,date@example.com,,1,1,31/12/2024");
    let reason = "'31/12/2024' is not a date; expected YYYY-MM-DD or an ISO 8601 time like 2024-03-31T14:05:00Z";
    assert_eq!(errors, one_error(3, "Last Order", reason));
}

#[test]
fn row_without_email_or_phone() {
    let errors = errors_for_bad_row(b"No Contact,,,1,1,2024-01-01");
    assert_eq!(errors, one_error(3, "", "has no email or phone; a lead needs at least one to be identified"));
}

#[test]
fn row_with_too_few_fields() {
    let errors = errors_for_bad_row(b"Too Few,few@example.com");
    assert_eq!(errors, one_error(3, "", "has 2 fields but the header has 6; check for unquoted commas"));
}

#[test]
fn bytes_that_are_not_utf8() {
    let errors = errors_for_bad_row(b"Jos\xe9 N\xfa\xf1ez,jose@example.com,,1,1,2024-01-01");
    let reason = "contains bytes that are not UTF-8 (byte 0xE9 at position 4); save the file as UTF-8";
    assert_eq!(errors, one_error(3, "Name", reason));
}

#[test]
fn row_matching_two_stored_leads_is_a_conflict() {
    let crm = Crm::new();
    let first = crm.write("first.csv", "Email,Phone\none@example.com,+447911123456\ntwo@example.com,+12125551234\n");
    assert_eq!(counts(&crm.import(&first, &[], 0)), [2, 2, 0, 0, 0]);
    let (one, two) = (crm.show("1"), crm.show("2"));

    let clash =
        "Email,Phone,Name\nnew@example.com,,New\none@example.com,+12125551234,Clash\nthree@example.com,,Three\n";
    let report = crm.import(&crm.write("clash.csv", clash), &[], 1);
    assert_eq!(counts(&report), [2, 2, 0, 0, 1], "{report}");
    let reason = "matches more than one lead (email one@example.com belongs to lead 1, phone +12125551234 \
                  belongs to lead 2); update or delete one of leads 1 and 2, or split the row";
    assert_eq!(report["errors"], one_error(3, "", reason));
    assert_eq!((crm.show("1"), crm.show("2")), (one, two), "the clashing row must not touch either lead");
    assert_eq!(crm.count(), 4);
}

#[test]
fn utf8_bom_does_not_hide_the_first_header() {
    let crm = Crm::new();
    let file = crm.write("bom.csv", b"\xef\xbb\xbfEmail,Name\nada@example.com,Ada\n");
    assert_eq!(counts(&crm.import(&file, &[], 0)), [1, 1, 0, 0, 0]);
    let ada = crm.show("ada@example.com");
    assert_eq!((&ada["name"], &ada["metadata"]), (&json!("Ada"), &json!({})), "{ada}");
}

#[test]
fn crlf_line_endings_keep_line_numbers_right() {
    let crm = Crm::new();
    let text = format!("{HEADER}{ADA}Bad Visits,v@example.com,,1,many,\n\n{GRACE}bad.example.com,x,,1,1,\n")
        .replace('\n', "\r\n");
    let report = crm.import(&crm.write("crlf.csv", text), &[], 1);
    assert_eq!(counts(&report), [2, 2, 0, 0, 2], "{report}");
    let lines: Vec<(u64, &str)> = errors_at(&report);
    assert_eq!(lines, [(3, "Visits"), (6, "Email")], "{report}");
    assert_eq!(crm.show("grace@example.com")["name"], "Grace Hopper", "no \\r left in values");
    assert_eq!(crm.show("ada@example.com")["last_order_at"], "2024-01-31T00:00:00Z");
}

#[test]
fn quoted_commas_and_newlines_keep_later_line_numbers_right() {
    let crm = Crm::new();
    let text = format!(
        "{HEADER}\"Lovelace, Ada\",ada@example.com,,1,1,2024-01-01\n\
         \"Multi\nLine\nName\",multi@example.com,,2,2,2024-01-01\n\
         Bad Date,date@example.com,,1,1,yesterday\n\n{GRACE}No Contact,,,1,1,\n"
    );
    let report = crm.import(&crm.write("quoted.csv", text), &[], 1);
    // A name is one line: the quoted multi-line one is refused, and the lines after it still
    // count right.
    assert_eq!(counts(&report), [2, 2, 0, 0, 3], "{report}");
    assert_eq!(errors_at(&report), [(3, "Name"), (6, "Last Order"), (9, "")], "{report}");
    assert_eq!(crm.show("ada@example.com")["name"], "Lovelace, Ada");
}

#[test]
fn clean_file_exits_0_and_says_so() {
    let crm = Crm::new();
    let file = crm.write("clean.csv", format!("{HEADER}{ADA}{GRACE}"));
    let out = crm.run(&["leads", "import", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let summary = stdout(&out);
    assert!(
        summary.starts_with(&format!("Imported {} in ", file.display()))
            && summary.ends_with(" s: accepted 2, inserted 2, updated 0, skipped 0, rejected 0.\n"),
        "{summary}"
    );
    assert_eq!(stderr(&out), format!("Created a new store at sqlite:{}.\n", crm.store().display()));
    let again = crm.run(&["leads", "import", file.to_str().expect("utf-8")]);
    assert_eq!(stderr(&again), "", "only the import that creates the store says so");
}

#[test]
fn rejections_are_listed_on_stderr_in_human_mode() {
    let crm = Crm::new();
    let file = crm.write("in.csv", format!("{HEADER}{ADA}Bad Visits,v@example.com,,1,many,\nNo Contact,,,1,1,\n"));
    let out = crm.run(&["leads", "import", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stdout(&out).ends_with(" s: accepted 1, inserted 1, updated 0, skipped 0, rejected 2.\n"));
    assert_eq!(
        stderr(&out),
        format!(
            "Created a new store at sqlite:{}.\n\
             line 3, column Visits: 'many' is not a whole number of 0 or more\n\
             line 4: has no email or phone; a lead needs at least one to be identified\n\
             Add --errors FILE to get the rejected rows as a CSV you can fix and re-import.\n",
            crm.store().display()
        )
    );
}

#[test]
fn messy_sample_reports_every_bad_row() {
    let crm = Crm::new();
    let report = crm.import(MESSY_SAMPLE.as_ref(), &["--default-region", "GB"], 1);
    assert_eq!(counts(&report), [287, 284, 3, 0, 14], "{report}");
    let expected = [
        (9, "Email Address"),
        (29, "Phone Number"),
        (49, "Total Spent"),
        (69, "Last Order"),
        (89, ""),
        (109, "Visits"),
        (129, ""),
        (150, "First Name"),
        (150, "Last Name"),
        (191, "Phone Number"),
        (211, "Email Address"),
        (231, "Phone Number"),
        (251, "Total Spent"),
        (271, "Last Order"),
        (291, ""),
    ];
    assert_eq!(errors_at(&report), expected);
    assert_eq!(crm.count(), 284);
    let quoted = crm.show("quoted167@example.com");
    assert_eq!(
        (&quoted["name"], &quoted["metadata"]["city"]),
        (&json!("Quoted, Comma Multiline"), &json!("San Francisco,\nCA"))
    );
}

/// (line, column) of every reported error.
fn errors_at(report: &Value) -> Vec<(u64, &str)> {
    let errors = report["errors"].as_array().expect("errors array");
    errors.iter().map(|e| (e["line"].as_u64().expect("line"), e["column"].as_str().expect("column"))).collect()
}
