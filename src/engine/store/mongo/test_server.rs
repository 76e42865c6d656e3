//! A MongoDB-wire server for tests, shared by every test of one test process: the server
//! `CRM_TEST_MONGODB_URI` names (a real `mongod`), or else a SecantusDB started once, on a free
//! port, in memory. SecantusDB (GPL-2.0, `pip install SecantusDB`) is only ever run as a
//! separate process by tests; nothing links it or ships it.
//!
//! The server is found through `CRM_SECANTUSD`, `/var/tmp/crm-venv-mongo/bin/secantusd-py`, or
//! `secantusd-py` on the PATH, and run as `engine::test_process` runs test servers.
//!
//! This file is also compiled into `tests/mongo_store.rs` (`#[path]`), so it uses only std,
//! tokio, bson and the driver.

use crate::engine::test_process::{Missing, find_program, free_port, resolve, start_watched};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// Where the `.ci/run` script installs SecantusDB.
const VENV_SERVER: &str = "/var/tmp/crm-venv-mongo/bin/secantusd-py";

/// The base URI of the shared server (no database), or why there is none.
static SERVER: OnceLock<Result<String, Missing>> = OnceLock::new();

/// The server's base URI (`mongodb://127.0.0.1:PORT/?directConnection=true`), starting it on
/// first use; None when the tests should be skipped. Panics when the server cannot be used.
pub fn base_uri() -> Option<String> {
    resolve(
        SERVER.get_or_init(start),
        "MongoDB-wire server for the MongoDB tests",
        "install SecantusDB with python3 -m venv /var/tmp/crm-venv-mongo && /var/tmp/crm-venv-mongo/bin/pip \
         install SecantusDB==0.7.0b3, set CRM_SECANTUSD to its secantusd-py, or set CRM_TEST_MONGODB_URI to a \
         running mongod",
    )
}

/// `uri` with its path set to `database` (options kept).
pub fn with_database(uri: &str, database: &str) -> String {
    let (head, query) = uri.split_once('?').map_or((uri, None), |(h, q)| (h, Some(q)));
    let (scheme, rest) = head.split_once("://").unwrap_or(("mongodb", head));
    let hosts = rest.split('/').next().unwrap_or_default();
    match query {
        Some(q) => format!("{scheme}://{hosts}/{database}?{q}"),
        None => format!("{scheme}://{hosts}/{database}"),
    }
}

/// A database name no other test uses.
pub fn fresh_database(prefix: &str) -> String {
    format!("{prefix}_{}_{:016x}", std::process::id(), rand::random::<u64>())
}

/// Drops `database` on a thread of its own (callable from `Drop`, inside a runtime).
pub fn drop_database(base: &str, database: &str) {
    let (uri, name) = (base.to_string(), database.to_string());
    let _ = std::thread::spawn(move || {
        on_own_runtime(async move {
            let client = mongodb::Client::with_uri_str(&uri).await.ok()?;
            client.database(&name).drop().await.ok()
        })
    })
    .join();
}

fn on_own_runtime<T>(f: impl std::future::Future<Output = Option<T>>) -> Option<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?.block_on(f)
}

fn start() -> Result<String, Missing> {
    if let Ok(uri) = std::env::var("CRM_TEST_MONGODB_URI") {
        return if ping(&uri, Duration::from_secs(10)) {
            Ok(uri)
        } else {
            Err(Missing::Broken(format!("CRM_TEST_MONGODB_URI ({uri}) does not answer a ping")))
        };
    }
    let venv = Some(PathBuf::from(VENV_SERVER));
    let Some(server) = find_program("CRM_SECANTUSD", venv, "secantusd-py") else { return Err(Missing::NoBinary) };
    let port = free_port()?;
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let command = r#""$1" --host 127.0.0.1 --port "$2" --storage-path :memory: --log-level WARNING"#;
    let answers = || ping(&uri, Duration::from_millis(500));
    start_watched("secantusd", &server, command, port, &[], Duration::from_secs(60), answers)?;
    Ok(uri)
}

/// Whether the server at `uri` answers `ping` within `wait`.
fn ping(uri: &str, wait: Duration) -> bool {
    let uri = uri.to_string();
    std::thread::spawn(move || {
        on_own_runtime(async move {
            let mut options = mongodb::options::ClientOptions::parse(&uri).await.ok()?;
            options.server_selection_timeout = Some(wait);
            let client = mongodb::Client::with_options(options).ok()?;
            client.database("admin").run_command(bson::doc! { "ping": 1 }).await.ok()
        })
    })
    .join()
    .ok()
    .flatten()
    .is_some()
}
