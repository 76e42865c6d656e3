//! Properties of the whole import (decode, sniff, parse, normalize, store) on random files:
//! it never panics, never rejects a good row, and never loses a row: every row is counted
//! once, as inserted, updated, skipped or rejected, and every rejection is reported at the
//! row's own line.
//!
//! Files are built from a plan: random columns (recognised headers of every field, metadata,
//! an ignored `id`), a random separator (sniffed, or given as `--delimiter`), encoding (UTF-8
//! with or without BOM, UTF-16 LE/BE) and line ending, random quoting and padding, blank lines,
//! duplicates of earlier rows, and rows made bad in one known way. Identities are unique per
//! row, so a good row can only be inserted, or merged into the row it duplicates.

use super::{ImportOptions, ImportReport, ImportSource, decode, import_csv};
use crate::engine::error::Error;
use crate::engine::store::sqlite::SqliteStore;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Email,
    Phone,
    Name,
    Spend,
    Visits,
    Date,
    Tags,
    Meta,
    Ignore,
}

const COLUMNS: &[(&str, Kind)] = &[
    ("Email", Kind::Email),
    ("E-mail Address", Kind::Email),
    ("Phone", Kind::Phone),
    ("Mobile", Kind::Phone),
    ("Name", Kind::Name),
    ("First Name", Kind::Name),
    ("Last Name", Kind::Name),
    ("Total Spent", Kind::Spend),
    ("Visits", Kind::Visits),
    ("Last Order", Kind::Date),
    ("Created", Kind::Date),
    ("Tags", Kind::Tags),
    ("City", Kind::Meta),
    ("Notes", Kind::Meta),
    ("id", Kind::Ignore),
];
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

fn identity(kind: Kind) -> bool {
    matches!(kind, Kind::Email | Kind::Phone)
}

/// A valid value of `kind` for row `i` (emails and phones unique to `i`); `""` where allowed.
fn good(kind: Kind, i: usize, pick: u32) -> String {
    let p = pick as usize;
    let pick = |options: &[&str]| options[p % options.len()].to_string();
    match kind {
        Kind::Email => [
            format!("ada{i}@example.com"),
            format!("Zoë{i}@Bücher.de"),
            format!(" o'brien+{i}@mail.co.uk "),
            format!("pat.{i}@xn--bcher-kva.de; PAT.{i}@example.com"),
        ][p % 4]
            .clone(),
        Kind::Phone => {
            [format!("+1 212 555 {i:04}"), format!("+1 (212) 555-{i:04}"), format!("001 212 555 {i:04}")][p % 3].clone()
        }
        Kind::Name => pick(&["Ada Lovelace", "Zoë", "O'Brien, Pat", "名前", "Say \"hi\"", "", "  padded  "]),
        Kind::Spend => pick(&["0", "12.50", "-0", "1234", "", " 7 "]),
        Kind::Visits => pick(&["0", "3", ""]),
        Kind::Date => pick(&["2024-03-31", "2024-03-31T14:05:00Z", "9999-12-31T23:59:59Z", "0001-01-01", ""]),
        Kind::Tags => pick(&["vip", "vip;new", " a ; b ;; ", ""]),
        Kind::Meta => pick(&["London", "multi\nline", "", "São Paulo, SP", "x|y", "tab\there", "crlf\r\nend"]),
        Kind::Ignore => pick(&["1", "", "abc"]),
    }
}

/// A value of `kind` that must get the row rejected.
fn bad(kind: Kind, pick: u32) -> String {
    let options: Vec<String> = match kind {
        Kind::Email => ["nope", "a@b.c", "ü@ü.ü", "a\0b@x.com", "x@-y.com"].map(String::from).into(),
        Kind::Phone => {
            ["+44 7911 ABC 123", "+44 20 7946 0018 ext. 12", "+1 212 555 1234 x9", "12", "+1 212 555 12\u{7}"]
                .map(String::from)
                .into()
        }
        Kind::Name => vec!["A\tB".into(), "A\nB".into(), "n".repeat(201), "\u{1b}[31m".into()],
        Kind::Spend => ["NaN", "1e309", "-5", "1,234", "$5"].map(String::from).into(),
        Kind::Visits => ["-1", "1.5", "many"].map(String::from).into(),
        Kind::Date => ["0000-01-01", "10000-01-01", "31/12/2024", "9999-12-31T23:00:00-02:00"].map(String::from).into(),
        Kind::Tags => {
            vec!["t".repeat(65), "a\0b".into(), (0..101).map(|i| format!("t{i}")).collect::<Vec<_>>().join(";")]
        }
        Kind::Meta => vec!["\0".into(), "v".repeat(1001), "\u{1b}".into()],
        Kind::Ignore => vec![String::new()],
    };
    options[pick as usize % options.len()].clone()
}

#[derive(Debug, Clone)]
struct RowPlan {
    /// 0–5 good, 6–7 one bad value, 8 an extra field, 9 a duplicate of an earlier row.
    kind: u8,
    pick: u32,
    cells: Vec<u32>,
    quote: Vec<bool>,
    blank_before: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    columns: Vec<usize>,
    delimiter: usize,
    encoding: u8,
    crlf: bool,
    pass_delimiter: bool,
    with_identity: bool,
    final_newline: bool,
    rows: Vec<RowPlan>,
}

fn plan() -> impl Strategy<Value = Plan> {
    let row = (0u8..10, any::<u32>(), vec(any::<u32>(), 16), vec(any::<bool>(), 16), prop::bool::weighted(0.1))
        .prop_map(|(kind, pick, cells, quote, blank_before)| RowPlan { kind, pick, cells, quote, blank_before });
    (
        vec(0..COLUMNS.len(), 1..8),
        0..DELIMITERS.len(),
        0u8..4,
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.9),
        any::<bool>(),
        vec(row, 0..40),
    )
        .prop_map(|(columns, delimiter, encoding, crlf, pass_delimiter, with_identity, final_newline, rows)| {
            Plan { columns, delimiter, encoding, crlf, pass_delimiter, with_identity, final_newline, rows }
        })
}

/// A built file and what importing it must report.
struct Built {
    bytes: Vec<u8>,
    delimiter: Option<u8>,
    headers: Vec<String>,
    has_identity: bool,
    good: u64,
    /// The line of every bad row.
    bad_lines: Vec<u64>,
}

fn cell(value: &str, delimiter: u8, quote: bool) -> String {
    let must = value.bytes().any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
    if must || quote { format!("\"{}\"", value.replace('"', "\"\"")) } else { value.to_string() }
}

fn build(plan: &Plan) -> Built {
    let mut columns: Vec<usize> = Vec::new();
    for c in &plan.columns {
        if !columns.contains(c) && (plan.with_identity || !identity(COLUMNS[*c].1)) {
            columns.push(*c);
        }
    }
    if columns.is_empty() {
        columns.push(12);
    }
    let has_identity = columns.iter().any(|c| identity(COLUMNS[*c].1));
    if plan.with_identity && !has_identity {
        columns.push(0);
    }
    let has_identity = plan.with_identity;
    let kinds: Vec<Kind> = columns.iter().map(|c| COLUMNS[*c].1).collect();
    let headers: Vec<String> = columns.iter().map(|c| COLUMNS[*c].0.to_string()).collect();
    let d = DELIMITERS[plan.delimiter];
    let sep = (d as char).to_string();
    let eol = if plan.crlf { "\r\n" } else { "\n" };
    let mut text = headers.join(&sep);
    let (mut line, mut good_rows, mut bad_lines) = (1u64, 0u64, Vec::new());
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (i, row) in plan.rows.iter().enumerate() {
        let first_identity = kinds.iter().position(|k| identity(*k));
        let mut values: Vec<String> = kinds
            .iter()
            .enumerate()
            .map(|(c, k)| {
                let v = good(*k, i, row.cells[c % 16]);
                // Identity cells are sometimes empty, but never all of them.
                if identity(*k) && Some(c) != first_identity && row.cells[c % 16] % 3 == 0 { String::new() } else { v }
            })
            .collect();
        let is_bad = match row.kind {
            6 | 7 => {
                let usable: Vec<usize> = (0..kinds.len()).filter(|c| kinds[*c] != Kind::Ignore).collect();
                match usable.get(row.pick as usize % usable.len().max(1)) {
                    Some(&c) => values[c] = bad(kinds[c], row.pick / 7),
                    // Only ignored columns (a file without identity): any row shape will do.
                    None => values.push("extra".into()),
                }
                true
            }
            8 => {
                values.push("extra".into());
                true
            }
            9 if !rows.is_empty() => {
                // Same identity as an earlier row (good or bad), other cells of its own.
                let earlier = &rows[row.pick as usize % rows.len()];
                for (c, k) in kinds.iter().enumerate() {
                    if identity(*k) {
                        values[c] = earlier[c].clone();
                    }
                }
                let has_value = (0..kinds.len()).any(|c| identity(kinds[c]) && !values[c].trim().is_empty());
                if !has_value {
                    // The earlier row was bad in its only identity cell, or had it empty.
                    values[first_identity.unwrap_or(0)] = good(kinds[first_identity.unwrap_or(0)], i, row.pick);
                }
                // A bad identity value copied from a bad row makes this row bad too.
                (0..kinds.len()).any(|c| identity(kinds[c]) && values[c] != good_or_empty(&values[c], kinds[c]))
            }
            _ => false,
        };
        if row.blank_before {
            text.push_str(eol);
            line += 1;
        }
        let cells: Vec<String> = values.iter().enumerate().map(|(c, v)| cell(v, d, row.quote[c % 16])).collect();
        let joined = cells.join(&sep);
        text.push_str(eol);
        line += 1;
        if is_bad {
            bad_lines.push(line);
        } else {
            good_rows += 1;
        }
        line += joined.matches('\n').count() as u64;
        text.push_str(&joined);
        rows.push(values);
    }
    if plan.final_newline {
        text.push_str(eol);
    }
    let bytes = match plan.encoding {
        0 => text.into_bytes(),
        1 => [&b"\xef\xbb\xbf"[..], text.as_bytes()].concat(),
        2 => [0xFF, 0xFE].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect(),
        _ => [0xFE, 0xFF].into_iter().chain(text.encode_utf16().flat_map(u16::to_be_bytes)).collect(),
    };
    // A single column has no separator to sniff: the flag says which it is.
    let delimiter = (plan.pass_delimiter || headers.len() == 1).then_some(d);
    Built { bytes, delimiter, headers, has_identity, good: good_rows, bad_lines }
}

/// `value` when it is a valid identity value (or empty), else something else: a copied
/// identity cell of a bad row may be one of the bad values.
fn good_or_empty(value: &str, kind: Kind) -> String {
    let ok = value.trim().is_empty()
        || crate::engine::normalize::split_multi(value).all(|v| match kind {
            Kind::Email => crate::engine::normalize::normalize_email(v).is_ok(),
            _ => crate::engine::phone::normalize_phone(v, None).is_ok(),
        });
    if ok { value.to_string() } else { format!("{value}!") }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

async fn run(dir: &Path, bytes: Vec<u8>, options: &ImportOptions) -> crate::engine::Result<ImportReport> {
    let store = SqliteStore::open(&dir.join("crm.db")).await?;
    let source = ImportSource {
        name: "in.csv".into(),
        size: Some(bytes.len() as u64),
        reader: Box::new(std::io::Cursor::new(bytes)),
    };
    import_csv(&store, source, options, &()).await
}

fn lines_of(report: &ImportReport) -> Vec<u64> {
    let mut lines: Vec<u64> = report.errors.iter().map(|e| e.line).collect();
    lines.dedup();
    lines
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() })
}

#[test]
fn random_files_count_every_row_once_and_reject_only_bad_ones() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let outcome = runner().run(&plan(), |plan| {
        let built = build(&plan);
        let dir = tempfile::tempdir().map_err(fail)?;
        let errors = dir.path().join("errors.csv");
        let options =
            ImportOptions { delimiter: built.delimiter, errors_file: Some(errors.clone()), ..Default::default() };
        let result = runtime.block_on(run(dir.path(), built.bytes.clone(), &options));
        if !built.has_identity {
            prop_assert!(
                matches!(result, Err(Error::Usage(_))),
                "no identity column: {:?}",
                result.map(|r| r.rejected)
            );
            return Ok(());
        }
        let report = result.map_err(fail)?;
        let bad = built.bad_lines.len() as u64;
        prop_assert_eq!(report.rejected, bad, "errors: {:?}", report.errors);
        prop_assert_eq!(report.accepted, built.good);
        prop_assert_eq!(report.inserted + report.updated + report.skipped, built.good);
        prop_assert_eq!(lines_of(&report), built.bad_lines.clone(), "errors: {:?}", report.errors);

        // The errors file has one row per rejection and one `error` column, also after a
        // second round through it.
        let mut expected_header = built.headers.clone();
        expected_header.push("error".into());
        let again = dir.path().join("again.csv");
        let options = ImportOptions { errors_file: Some(again.clone()), ..Default::default() };
        let second =
            runtime.block_on(run(dir.path(), std::fs::read(&errors).map_err(fail)?, &options)).map_err(fail)?;
        prop_assert_eq!((second.rejected, second.accepted), (bad, 0));
        for file in [&errors, &again] {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(file).map_err(fail)?;
            let header: Vec<String> = reader.headers().map_err(fail)?.iter().map(String::from).collect();
            prop_assert_eq!(&header, &expected_header);
            prop_assert_eq!(reader.byte_records().count() as u64, bad);
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// Bytes biased toward what CSV parsing and decoding care about, after an optional BOM and
/// an optional header that maps.
fn noisy_file() -> impl Strategy<Value = Vec<u8>> {
    const BYTES: &[u8] = b"a@.,;\"\n\r\t|+14 xm\0\xff\xc3\xa9\xfe";
    let byte = prop_oneof![3 => prop::sample::select(BYTES), 1 => any::<u8>()];
    let start = prop::sample::select(vec![
        &b""[..],
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"\xfe\xff",
        b"Email,Phone,Name\n",
        b"Email;Tags\r\n",
    ]);
    (start, vec(byte, 0..600)).prop_map(|(start, rest)| [start, &rest].concat())
}

/// Rows the CSV reader yields that are not blank: what the import must account for.
fn rows_in(bytes: &[u8]) -> Option<u64> {
    let decoded = decode::decode(Box::new(std::io::Cursor::new(bytes.to_vec())), None).ok()?.ok()?;
    let mut csv = csv::ReaderBuilder::new().flexible(true).delimiter(decoded.delimiter).from_reader(decoded.reader);
    let mut n = 0;
    for record in csv.byte_records() {
        if !record.ok()?.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            n += 1;
        }
    }
    Some(n)
}

#[test]
fn arbitrary_bytes_never_panic_or_lose_rows() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let outcome = runner().run(&noisy_file(), |bytes| {
        let dir = tempfile::tempdir().map_err(fail)?;
        let options = ImportOptions { errors_file: Some(dir.path().join("errors.csv")), ..Default::default() };
        match runtime.block_on(run(dir.path(), bytes.clone(), &options)) {
            Ok(report) => {
                prop_assert_eq!(report.accepted, report.inserted + report.updated + report.skipped);
                prop_assert!(report.errors.len() as u64 >= report.rejected, "a rejection without a reason");
                prop_assert_eq!(Some(report.accepted + report.rejected), rows_in(&bytes));
            }
            Err(Error::Usage(_) | Error::Input { .. }) => {}
            Err(other) => prop_assert!(false, "not a file-level error: {other}"),
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
