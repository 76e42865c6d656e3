//! End-to-end tests of `crm segments …`: each test runs the real binary against its own
//! temporary store and checks the exit code, stdout and stderr.

mod common;

#[path = "segments_cli/export.rs"]
mod export;
#[path = "segments_cli/limits.rs"]
mod limits;
#[path = "segments_cli/manage.rs"]
mod manage;
#[path = "segments_cli/preview.rs"]
mod preview;
#[path = "segments_cli/rules.rs"]
mod rules;
#[path = "segments_cli/suggest.rs"]
mod suggest;

use common::Crm;
use serde_json::Value;

/// A store holding `examples/leads.csv` (284 leads; 14 rows rejected, so the import exits 1).
pub fn sample_store() -> Crm {
    let crm = Crm::new();
    let report = crm.import(common::MESSY_SAMPLE.as_ref(), &["--default-region", "GB"], 1);
    assert_eq!(report["inserted"], 284, "{report}");
    crm
}

/// `crm --json segments create NAME --rule RULE`, which must succeed; returns the segment.
pub fn create(crm: &Crm, name: &str, rule: &str) -> Value {
    crm.json(&["segments", "create", name, "--rule", rule], 0)
}

/// The ids of a JSON array of leads (or segments).
pub fn ids(items: &Value) -> Vec<i64> {
    let items = items.as_array().unwrap_or_else(|| panic!("not an array: {items}"));
    items.iter().map(|l| l["id"].as_i64().expect("numeric id")).collect()
}
