//! The real `crm` binary on a MongoDB store: importing `examples/leads.csv`, listing, counting
//! and previewing a segment give what the same commands give on SQLite. The server is the
//! shared test server of `src/engine/store/mongo/test_server.rs` (SecantusDB, or the mongod that
//! `CRM_TEST_MONGODB_URI` names); without one these tests are skipped, or fail under `CI`.

#![cfg(feature = "mongodb")]

mod common;

#[path = "../src/engine/test_process.rs"]
pub mod test_process;
/// `crate::engine::test_process`, as the test-server launchers below name it inside the crate.
mod engine {
    pub use super::test_process;
}

#[path = "../src/engine/store/mongo/test_server.rs"]
mod test_server;

use common::{Crm, counts, describe, stderr, without_ids};
use serde_json::Value;

/// A sandbox and a fresh database on the test server (dropped at the end).
struct Mongo {
    crm: Crm,
    base: String,
    database: String,
}

impl Mongo {
    fn new() -> Option<Mongo> {
        let base = test_server::base_uri()?;
        Some(Mongo { crm: Crm::new(), base, database: test_server::fresh_database("crm_cli") })
    }

    fn url(&self) -> String {
        test_server::with_database(&self.base, &self.database)
    }

    /// `crm --store URL --json ARGS`, expecting exit `code`.
    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut cmd = self.crm.bare();
        cmd.arg("--store").arg(self.url());
        json_of(cmd, args, code)
    }

    /// The same on the sandbox's SQLite store.
    fn sqlite_json(&self, args: &[&str], code: i32) -> Value {
        json_of(self.crm.cmd(), args, code)
    }
}

/// Runs `cmd --json ARGS`, expecting exit `code` (stderr may hold notes, such as paging hints).
fn json_of(mut cmd: assert_cmd::Command, args: &[&str], code: i32) -> Value {
    let out = cmd.arg("--json").args(args).output().expect("run crm");
    assert_eq!(out.status.code(), Some(code), "crm {args:?}\n{}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("crm {args:?}: {e}\n{}", describe(&out)))
}

impl Drop for Mongo {
    fn drop(&mut self) {
        test_server::drop_database(&self.base, &self.database);
    }
}

/// Leads without what each store sets on its own: id, updated_at, and created_at (the time of
/// the import for rows without one).
fn comparable(list: &Value) -> Vec<Value> {
    let leads = list.as_array().unwrap_or_else(|| panic!("not a list: {list}"));
    leads
        .iter()
        .map(|lead| {
            let mut lead = without_ids(lead);
            lead.as_object_mut().map(|fields| fields.remove("created_at"));
            lead
        })
        .collect()
}

/// The same leads in the same order, or the first difference.
#[track_caller]
fn assert_same_leads(mongo: &Value, sqlite: &Value, what: &str) {
    let (m, s) = (comparable(mongo), comparable(sqlite));
    if let Some(i) = (0..m.len().max(s.len())).find(|&i| m.get(i) != s.get(i)) {
        panic!(
            "{what}: lead {i} of {} (mongo) / {} (sqlite) differs:\nmongo  {:?}\nsqlite {:?}",
            m.len(),
            s.len(),
            m.get(i),
            s.get(i)
        );
    }
}

#[test]
fn the_sample_imports_lists_and_previews_as_on_sqlite() {
    let Some(mongo) = Mongo::new() else { return };
    let sample = common::MESSY_SAMPLE;
    let import = ["leads", "import", sample, "--default-region", "GB"];
    let on_sqlite = mongo.sqlite_json(&import, 1);
    let on_mongo = mongo.json(&import, 1);
    assert_eq!(counts(&on_mongo), counts(&on_sqlite), "import reports\nmongo {on_mongo}\nsqlite {on_sqlite}");
    assert_eq!(on_mongo["inserted"], 284);
    assert_eq!(on_mongo["errors"], on_sqlite["errors"], "the same rows are rejected, for the same reasons");

    for args in [
        &["leads", "list", "--limit", "1000"][..],
        &["leads", "list", "--sort", "total_spend", "--desc", "--limit", "20"],
        &["leads", "list", "--sort", "last_order_at", "--limit", "1000"],
        &["leads", "list", "--sort", "name", "--desc", "--page", "2"],
        &["leads", "list", "--search", "gmail", "--tag", "vip"],
    ] {
        let (m, s) = (mongo.json(args, 0), mongo.sqlite_json(args, 0));
        assert_same_leads(&m, &s, &format!("crm {args:?}"));
    }
    assert_eq!(mongo.json(&["leads", "count"], 0), mongo.sqlite_json(&["leads", "count"], 0));

    for rule in ["total_spend > 500", r#"tags contains "vip" and last_order_at > "2020-01-01""#] {
        let args = ["segments", "preview", "--rule", rule, "--sample", "1000"];
        let (m, s) = (mongo.json(&args, 0), mongo.sqlite_json(&args, 0));
        assert_eq!(m["count"], s["count"], "{rule}");
        assert!(m["count"].as_u64().is_some_and(|n| n > 0), "{rule}: {m}");
        assert_same_leads(&m["sample"], &s["sample"], rule);
    }

    // Importing the same file again changes nothing, as on SQLite.
    let again = mongo.json(&import, 1);
    assert_eq!(counts(&again), counts(&mongo.sqlite_json(&import, 1)));
    assert_eq!(again["inserted"], 0);
}

#[test]
fn reading_a_database_without_crm_data_creates_nothing_and_says_so() {
    let Some(mongo) = Mongo::new() else { return };
    let out = mongo.crm.bare().arg("--store").arg(mongo.url()).args(["leads", "list"]).output().expect("run crm");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr(&out).contains("nothing was created"), "{}", describe(&out));
    assert_eq!(mongo.json(&["leads", "count"], 0)["count"], 0);
    let add = ["--store", &mongo.url(), "leads", "add", "--email", "a@example.com"].map(str::to_string);
    let out = mongo.crm.bare().args(add).output().expect("run crm");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr(&out).contains("Created a new store at mongodb://"), "{}", describe(&out));
}

#[test]
fn an_unreachable_server_is_a_backend_error_in_plain_words() {
    let crm = Crm::new();
    let url = "mongodb://ada:s3cret@127.0.0.1:1/crm?serverSelectionTimeoutMS=300";
    let out = crm.bare().args(["--store", url, "leads", "count"]).output().expect("run crm");
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the MongoDB server"), "{err}");
    assert!(err.contains("mongodb://127.0.0.1:1/crm"), "names the store: {err}");
    assert!(!err.contains("s3cret") && !err.contains("Server selection"), "no credentials, no driver text: {err}");
    let out = crm.bare().args(["--store", "mongodb://h:notaport/x", "leads", "count"]).output().expect("run crm");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
