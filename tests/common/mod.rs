//! Running the real `crm` binary in isolation: every test gets its own temporary directory
//! holding the store, its input files, and an empty HOME/XDG tree, and the `CRM_*` variables of
//! the developer's shell are removed, so neither their data nor their configuration can leak in.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod api;
pub mod campaigns;
pub mod fake_twilio;
pub mod processes;
pub mod proxy;
pub mod tmux;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_crm");

/// The messy sample from `examples/gen_leads.rs --messy`; import it with `--default-region GB`.
pub const MESSY_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/leads.csv");

/// Variables that change what `crm` does (or how wide a table is) if the caller's shell has them.
const CALLER_ENV: &[&str] = &[
    "CRM_STORE",
    "CRM_CONFIG",
    "CRM_DEFAULT_REGION",
    "CRM_BUS",
    "CRM_LOG",
    "RUST_LOG",
    "COLUMNS",
    "CRM_TWILIO_ACCOUNT_SID",
    "CRM_TWILIO_AUTH_TOKEN",
    "CRM_TWILIO_FROM",
    "CRM_TWILIO_API_BASE",
    "CRM_WEBHOOK_PUBLIC_URL",
    "CRM_STOP_WORDS",
    "CRM_JWT_SECRET",
    "CRM_API_LISTEN",
    "CRM_CORS_ORIGINS",
    "CRM_RATE_PER_MINUTE",
    "CRM_CONCURRENCY",
    "CRM_SIM_URL",
    "CRM_WEBHOOK_LISTEN",
    "CRM_CALLBACK_URL",
];

/// One test's sandbox: a temporary directory with the store at `crm.db`.
pub struct Crm {
    dir: tempfile::TempDir,
    /// A store URL instead of the sandbox's SQLite file (`mongodb://…`).
    store_url: Option<String>,
    /// Environment every `crm` of this sandbox gets (`CRM_BUS`).
    env: Vec<(String, String)>,
}

impl Crm {
    pub fn new() -> Crm {
        Crm { dir: tempfile::tempdir().expect("create a temporary directory"), store_url: None, env: Vec::new() }
    }

    /// A sandbox whose `crm` processes use the bus `url` (`CRM_BUS`) and, when given, the store
    /// `store_url` instead of the sandbox's SQLite file.
    pub fn with_backends(bus: &str, store_url: Option<String>) -> Crm {
        let mut crm = Crm::new();
        crm.env.push(("CRM_BUS".into(), bus.into()));
        crm.store_url = store_url;
        crm
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The store every `crm` of this sandbox uses: its SQLite file, or the URL it was given.
    pub fn store(&self) -> PathBuf {
        self.store_url.as_ref().map_or_else(|| self.path("crm.db"), PathBuf::from)
    }

    /// Writes a file into the sandbox and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// `crm` in the sandboxed environment, without `--store`.
    pub fn std_bare(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        for var in CALLER_ENV {
            cmd.env_remove(var);
        }
        cmd.env("NO_COLOR", "1")
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("xdg/config"))
            .env("XDG_DATA_HOME", self.path("xdg/data"))
            .current_dir(self.dir());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn bare(&self) -> Command {
        Command::from_std(self.std_bare())
    }

    /// `crm --store <sandbox>/crm.db`.
    pub fn cmd(&self) -> Command {
        let mut cmd = self.bare();
        cmd.arg("--store").arg(self.store());
        cmd
    }

    /// Runs `crm --store … ARGS` and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run crm")
    }

    /// Runs `crm --store … --json ARGS`, checks the exit code and a quiet stderr, and parses
    /// stdout.
    pub fn json(&self, args: &[&str], code: i32) -> Value {
        let out = self.cmd().arg("--json").args(args).output().expect("run crm");
        assert_eq!(out.status.code(), Some(code), "crm {args:?}\n{}", describe(&out));
        assert_eq!(stderr(&out), "", "crm {args:?} should print nothing on stderr");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("crm {args:?}: {e}\n{}", describe(&out)))
    }

    /// `crm --json leads import FILE EXTRA…`, expecting exit `code`; returns the report.
    pub fn import(&self, file: &Path, extra: &[&str], code: i32) -> Value {
        let file = file.to_str().expect("utf-8 path");
        let args: Vec<&str> = ["leads", "import", file].into_iter().chain(extra.iter().copied()).collect();
        self.json(&args, code)
    }

    /// `crm --json leads list ARGS` (exit 0), as an array of leads.
    pub fn list(&self, args: &[&str]) -> Vec<Value> {
        let args: Vec<&str> = ["leads", "list"].into_iter().chain(args.iter().copied()).collect();
        match self.json(&args, 0) {
            Value::Array(leads) => leads,
            other => panic!("leads list --json printed {other}"),
        }
    }

    /// The ids `leads list ARGS` prints, in order.
    pub fn ids(&self, args: &[&str]) -> Vec<i64> {
        self.list(args).iter().map(|l| l["id"].as_i64().expect("numeric id")).collect()
    }

    pub fn count(&self) -> u64 {
        self.json(&["leads", "count"], 0)["count"].as_u64().expect("count is a number")
    }

    /// `crm --json leads show REF`, which must succeed: the lead alone, so it compares equal to
    /// the lead `add`/`update` print (its `replies`, checked to be a list, are left out; read them
    /// with `json(&["leads", "show", REF], 0)`).
    pub fn show(&self, lead: &str) -> Value {
        let mut shown = self.json(&["leads", "show", lead], 0);
        assert!(shown["replies"].is_array(), "leads show --json has replies: {shown}");
        if let Some(fields) = shown.as_object_mut() {
            fields.remove("replies");
        }
        shown
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!("exit: {:?}\n--- stdout\n{}--- stderr\n{}", out.status.code(), stdout(out), stderr(out))
}

/// An import report's counts: accepted, inserted, updated, skipped, rejected.
pub fn counts(report: &Value) -> [u64; 5] {
    ["accepted", "inserted", "updated", "skipped", "rejected"]
        .map(|k| report[k].as_u64().unwrap_or_else(|| panic!("report has no count {k}: {report}")))
}

/// A lead's JSON without the fields a store assigns on its own (id, updated_at).
pub fn without_ids(lead: &Value) -> Value {
    let mut lead = lead.clone();
    if let Some(fields) = lead.as_object_mut() {
        fields.remove("id");
        fields.remove("updated_at");
    }
    lead
}

/// Parses an RFC 3339 timestamp as `crm` prints it.
pub fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value.as_str().unwrap_or_else(|| panic!("{value} is not a timestamp string"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}
