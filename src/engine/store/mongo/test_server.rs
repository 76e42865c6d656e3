//! A MongoDB-wire server for tests, shared by every test of one test process: the server
//! `CRM_TEST_MONGODB_URI` names (a real `mongod`), or else a SecantusDB started once, on a free
//! port, in memory. SecantusDB (GPL-2.0, `pip install SecantusDB`) is only ever run as a
//! separate process by tests; nothing links it or ships it.
//!
//! The server is found through `CRM_SECANTUSD`, `/var/tmp/crm-venv-mongo/bin/secantusd-py`, or
//! `secantusd-py` on the PATH. Without one, tests fail when `CI` is set and are skipped (with a
//! notice) otherwise. A watchdog shell stops the server once the test process has gone, however
//! it ended (the harness has no "after all tests" hook).
//!
//! This file is also compiled into `tests/mongo_store.rs` (`#[path]`), so it uses only std,
//! tokio, bson and the driver.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the `.ci/run` script installs SecantusDB.
const VENV_SERVER: &str = "/var/tmp/crm-venv-mongo/bin/secantusd-py";
const SERVER_NAME: &str = "secantusd-py";

/// The base URI of the shared server (no database), or why there is none.
static SERVER: OnceLock<Result<String, Missing>> = OnceLock::new();

#[derive(Clone, Debug)]
enum Missing {
    /// No server binary: skip (or fail under CI).
    NoBinary,
    /// The server was found but did not come up: always a failure.
    Broken(String),
}

/// The server's base URI (`mongodb://127.0.0.1:PORT/?directConnection=true`), starting it on
/// first use; None when the tests should be skipped. Panics when the server cannot be used.
pub fn base_uri() -> Option<String> {
    match SERVER.get_or_init(start) {
        Ok(uri) => Some(uri.clone()),
        Err(Missing::NoBinary) if std::env::var_os("CI").is_some() => panic!(
            "no MongoDB-wire server for the MongoDB tests: install SecantusDB (python3 -m venv \
             /var/tmp/crm-venv-mongo && /var/tmp/crm-venv-mongo/bin/pip install SecantusDB==0.7.0b3), set \
             CRM_SECANTUSD to its secantusd-py, or set CRM_TEST_MONGODB_URI to a running mongod"
        ),
        Err(Missing::NoBinary) => {
            eprintln!(
                "skipped: no SecantusDB server (set CRM_SECANTUSD, install it in /var/tmp/crm-venv-mongo, or set \
                 CRM_TEST_MONGODB_URI)"
            );
            None
        }
        Err(Missing::Broken(why)) => panic!("the MongoDB test server is not usable: {why}"),
    }
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
    let Some(server) = find_server() else { return Err(Missing::NoBinary) };
    let port = free_port().map_err(|e| Missing::Broken(format!("no free port: {e}")))?;
    let log = std::env::temp_dir().join(format!("crm-secantusd-{port}.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| Missing::Broken(format!("{}: {e}", log.display())))?;
    // The watchdog: runs the server, and stops it (SIGTERM, then waits) once this process is gone.
    let script = r#"
        "$1" --host 127.0.0.1 --port "$2" --storage-path :memory: --log-level WARNING &
        child=$!
        while kill -0 "$3" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
        kill "$child" 2>/dev/null
        wait "$child"
    "#;
    let mut watchdog = Command::new("sh")
        .args(["-c", script, "crm-secantusd-watchdog"])
        .arg(&server)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| Missing::Broken(format!("cannot start {}: {e}", server.display())))?;
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = watchdog.try_wait() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Missing::Broken(format!("{} exited ({status}): {said}", server.display())));
        }
        if ping(&uri, Duration::from_millis(500)) {
            return Ok(uri);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Missing::Broken(format!("{} did not answer a ping within 60 s (log: {})", server.display(), log.display())))
}

fn find_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRM_SECANTUSD") {
        return Some(PathBuf::from(path));
    }
    let venv = PathBuf::from(VENV_SERVER);
    if venv.is_file() {
        return Some(venv);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(SERVER_NAME)).find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
