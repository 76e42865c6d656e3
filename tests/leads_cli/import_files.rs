//! `leads import` of files that are wrong, or unusual, as a whole: no header row, no email or
//! phone column, other separators, UTF-16, and errors files imported again. A file that cannot
//! be read as leads fails once (exit 2) with the fix, never as one error per row.

use crate::common::{Crm, counts, describe, stderr, stdout};
use serde_json::{Value, json};

/// Runs `crm leads import FILE EXTRA…`, expecting exit 2 and nothing imported; returns the
/// one error line.
fn file_error(crm: &Crm, file: &std::path::Path, extra: &[&str]) -> String {
    let file = file.to_str().expect("utf-8 path");
    let args: Vec<&str> = ["leads", "import", file].into_iter().chain(extra.iter().copied()).collect();
    let out = crm.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(stdout(&out), "", "no report for a file-level error");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one error, not one per row: {err}");
    assert!(!crm.store().exists() || crm.count() == 0, "nothing imported (and no store created when none existed)");
    err
}

/// (line, column) of every reported error.
fn errors_at(report: &Value) -> Vec<(u64, String)> {
    let errors = report["errors"].as_array().expect("errors array");
    errors.iter().map(|e| (e["line"].as_u64().expect("line"), e["column"].as_str().expect("column").into())).collect()
}

#[test]
fn a_file_without_a_header_row_is_one_error() {
    let crm = Crm::new();
    let file = crm.write("noheader.csv", "ada@example.com,Ada Lovelace\ngrace@example.com,Grace Hopper\n");
    let err = file_error(&crm, &file, &[]);
    assert!(err.contains("the file seems to have no header row"), "{err}");
    assert!(err.contains("'ada@example.com', 'Ada Lovelace'"), "{err}");

    let phones = crm.write("phones.csv", "+44 7911 123456,Ada\n+1 212 555 1234,Grace\n");
    assert!(file_error(&crm, &phones, &[]).contains("seems to have no header row"));
}

#[test]
fn a_header_without_email_or_phone_lists_the_columns_and_the_fix() {
    let crm = Crm::new();
    let text = "Customer,Contact Info,City\nAda,ada@example.com,London\nGrace,grace@example.com,NYC\n";
    let file = crm.write("in.csv", text);
    let err = file_error(&crm, &file, &[]);
    assert!(
        err.starts_with(&format!("error: importing {0}: {0}: no column holds emails or phones", file.display())),
        "{err}"
    );
    assert!(err.contains("'Customer', 'Contact Info', 'City'"), "{err}");
    assert!(err.contains("--map 'Contact Info=phones'") || err.contains("--map 'Contact Info=emails'"), "{err}");

    // The fix it names works.
    let report = crm.import(&file, &["--map", "Contact Info=emails"], 0);
    assert_eq!(counts(&report), [2, 2, 0, 0, 0], "{report}");
}

#[test]
fn semicolon_tab_and_pipe_files_are_read_by_their_header() {
    for (name, sep) in [("semicolon", ";"), ("tab", "\t"), ("pipe", "|")] {
        let crm = Crm::new();
        let text = "Name,Email,Phone,City\n\
                    \"Lovelace, Ada\",ada@example.com,+447911123456,\"London, UK\"\n\
                    Bad Email,nope,,Paris\n\
                    \n\
                    Grace Hopper,grace@example.com,,\"Multi\nLine\"\n\
                    No Contact,,,Rome\n"
            .replace(',', sep)
            .replace(&format!("Lovelace{sep} Ada"), "Lovelace, Ada")
            .replace(&format!("London{sep} UK"), "London, UK");
        let report = crm.import(&crm.write(&format!("{name}.csv"), text), &[], 1);
        assert_eq!(counts(&report), [2, 2, 0, 0, 2], "{name}: {report}");
        assert_eq!(errors_at(&report), [(3, "Email".to_string()), (7, String::new())], "{name}: {report}");
        let ada = crm.show("ada@example.com");
        assert_eq!((&ada["name"], &ada["metadata"]), (&json!("Lovelace, Ada"), &json!({ "city": "London, UK" })));
        assert_eq!(crm.show("grace@example.com")["metadata"]["city"], "Multi\nLine");
    }
}

#[test]
fn delimiter_flag_overrides_the_sniff() {
    let crm = Crm::new();
    // The header has more commas than semicolons, but the file is separated by semicolons.
    let text = "Name, as written;Email, work\nAda;ada@example.com\n";
    let file = crm.write("in.csv", text);
    let report = crm.import(&file, &["--delimiter", ";", "--map", "Email, work=emails"], 0);
    assert_eq!(counts(&report), [1, 1, 0, 0, 0], "{report}");

    let tsv = crm.write("in.tsv", "Email\tName\nbob@example.com\tBob\n");
    assert_eq!(counts(&crm.import(&tsv, &["--delimiter", "tab"], 0)), [1, 1, 0, 0, 0]);
    assert_eq!(crm.show("bob@example.com")["name"], "Bob");

    let out = crm.run(&["leads", "import", file.to_str().expect("utf-8"), "--delimiter", ":"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("one of , ; | or tab"), "{}", describe(&out));
}

#[test]
fn a_wrong_delimiter_flag_is_one_error_naming_the_right_one() {
    let crm = Crm::new();
    let file = crm.write("in.csv", "Email;Name\nada@example.com;Ada\ngrace@example.com;Grace\n");
    let err = file_error(&crm, &file, &["--delimiter", ","]);
    assert!(err.contains("'Email;Name'") && err.contains("pass --delimiter ';'"), "{err}");
}

fn utf16(text: &str, little_endian: bool) -> Vec<u8> {
    let mut out = if little_endian { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if little_endian { unit.to_le_bytes() } else { unit.to_be_bytes() });
    }
    out
}

#[test]
fn utf16_with_a_bom_is_transcoded_and_keeps_line_numbers() {
    for little_endian in [true, false] {
        let crm = Crm::new();
        // What Excel writes as "Unicode Text": UTF-16 LE with a BOM, tab-separated, CRLF.
        let text = "Name\tEmail\tCity\r\nZoë Müller\tzoe@example.com\t\"Köln\r\nNord\"\r\nBad\tnope\tX\r\n\
                    \r\nJosé\tjose@example.com\tMadrid\r\n";
        let file = crm.write("unicode.txt", utf16(text, little_endian));
        let report = crm.import(&file, &[], 1);
        assert_eq!(counts(&report), [2, 2, 0, 0, 1], "{report}");
        assert_eq!(errors_at(&report), [(4, "Email".to_string())], "{report}");
        let zoe = crm.show("zoe@example.com");
        assert_eq!((&zoe["name"], &zoe["metadata"]["city"]), (&json!("Zoë Müller"), &json!("Köln\r\nNord")));
        assert_eq!(crm.show("jose@example.com")["name"], "José");
    }
}

#[test]
fn utf16_without_a_bom_and_utf32_are_refused_with_the_fix() {
    let crm = Crm::new();
    let mut bom_less = utf16("Email,Name\r\nada@example.com,Ada\r\n", true);
    bom_less.drain(..2);
    let err = file_error(&crm, &crm.write("nobom.csv", bom_less), &[]);
    assert!(err.contains("looks like UTF-16 saved without a byte-order mark; save it as CSV UTF-8"), "{err}");

    let utf32: Vec<u8> = [0xFF, 0xFE, 0, 0].into_iter().chain("E".bytes().flat_map(|b| [b, 0, 0, 0])).collect();
    let err = file_error(&crm, &crm.write("utf32.csv", utf32), &[]);
    assert!(err.contains("UTF-32, which is not supported"), "{err}");
}

#[test]
fn reimporting_an_errors_file_keeps_one_error_column() {
    let crm = Crm::new();
    let file = crm.write("in.csv", "Name,Email,Visits\nAda,ada@example.com,1\nBad,bad.example.com,many\n");
    let first = crm.path("first-errors.csv");
    let out = crm.run(&["leads", "import", file.to_str().expect("utf-8"), "--errors", first.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    // Half fixed: the email is right now, the visits still are not.
    let half = std::fs::read_to_string(&first).expect("errors file").replace("bad.example.com", "bad@example.com");
    let half_fixed = crm.write("half-fixed.csv", half);
    let second = crm.path("second-errors.csv");
    let args = ["leads", "import", half_fixed.to_str().expect("utf-8"), "--errors", second.to_str().expect("utf-8")];
    let out = crm.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    let mut reader = csv::Reader::from_path(&second).expect("errors file is CSV");
    let header: Vec<String> = reader.headers().expect("header").iter().map(String::from).collect();
    assert_eq!(header, ["Name", "Email", "Visits", "error"]);
    let rows: Vec<Vec<String>> =
        reader.records().map(|r| r.expect("record").iter().map(String::from).collect()).collect();
    assert_eq!(rows, [["Bad", "bad@example.com", "many", "Visits: 'many' is not a whole number of 0 or more"]]);
    assert_eq!(crm.count(), 1, "the rejected row is still out");
}
