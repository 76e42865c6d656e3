//! `segments export`: the segment's leads, in the `leads export` CSV format.

use crate::common::{describe, stderr, stdout};
use crate::{create, sample_store};

#[test]
fn exports_exactly_the_matching_leads_as_csv() {
    let crm = sample_store();
    create(&crm, "vips", "tags = \"vip\"");
    let expected = crm.ids(&["--tag", "vip", "--limit", "1000"]);

    let out = crm.run(&["segments", "export", "vips"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stderr(&out), "");
    let csv = stdout(&out);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().expect("a header").clone();
    assert_eq!(&header[0], "id");
    assert!(header.iter().any(|h| h == "metadata.city"), "{header:?}");
    let exported: Vec<i64> = reader.records().map(|r| r.expect("a record")[0].parse().expect("numeric id")).collect();
    assert_eq!(exported, expected);

    let file = crm.path("vips.csv");
    let out = crm.run(&["segments", "export", "1", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), format!("Exported {} leads of segment 1 (vips) to {}.\n", expected.len(), file.display()));
    assert_eq!(std::fs::read_to_string(&file).expect("the export"), csv, "file and stdout exports agree");

    // What `leads import` reads back: the same leads, in a fresh store.
    let other = crate::common::Crm::new();
    let report = other.import(&file, &[], 0);
    assert_eq!(report["inserted"], expected.len(), "{report}");
}

#[test]
fn an_empty_segment_exports_just_the_header() {
    let crm = sample_store();
    create(&crm, "nobody", "visits > 1000");
    let out = crm.run(&["segments", "export", "nobody"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
}
