//! `leads export` writes what `leads import` reads back to the same leads.

use crate::common::{Crm, MESSY_SAMPLE, counts, describe, stderr, stdout, without_ids};

#[test]
fn export_then_import_gives_the_same_leads() {
    let a = Crm::new();
    a.import(MESSY_SAMPLE.as_ref(), &["--default-region", "GB"], 1);
    let file = a.path("export.csv");
    let out = a.run(&["leads", "export", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), format!("Exported 284 leads to {}.\n", file.display()));

    let to_stdout = a.run(&["leads", "export"]);
    assert_eq!(to_stdout.status.code(), Some(0), "{}", describe(&to_stdout));
    assert!(to_stdout.stdout == std::fs::read(&file).expect("read export"), "stdout and file exports differ");

    let b = Crm::new();
    let report = b.import(&file, &[], 0);
    assert_eq!(counts(&report), [284, 284, 0, 0, 0], "{report}");
    let (leads_a, leads_b) = (a.list(&["--limit", "1000"]), b.list(&["--limit", "1000"]));
    assert_eq!(leads_a.len(), 284);
    let (leads_a, leads_b): (Vec<_>, Vec<_>) =
        (leads_a.iter().map(without_ids).collect(), leads_b.iter().map(without_ids).collect());
    for (left, right) in leads_a.iter().zip(&leads_b) {
        assert_eq!(left, right, "lead differs after the round trip (created_at included)");
    }
    assert_eq!(leads_a.len(), leads_b.len());

    let again = b.import(&file, &[], 0);
    assert_eq!(counts(&again), [284, 0, 0, 284, 0], "importing an export twice changes nothing: {again}");
}
