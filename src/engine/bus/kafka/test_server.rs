//! A Kafka-protocol broker for tests, shared by every test of one test process: `tansu`
//! (`cargo install tansu --version 0.6.0 --locked --features dynostore`), started once on a
//! free port with in-memory storage. It does not create topics on its own (the bus does) and
//! holds each JoinGroup for about half the session timeout, so tests use a short one
//! (`session_timeout_ms=6000`) and fresh group ids.
//!
//! The broker is found through `CRM_TANSU`, `~/.cargo/bin/tansu`, or `tansu` on the PATH.
//! Without one, tests fail when `CI` is set and are skipped (with a notice) otherwise. A
//! watchdog shell stops the broker once the test process has gone, however it ended.
//!
//! This file is also compiled into integration tests (`#[path]`), so it uses only std.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The bus URL settings tests use with this broker: a short session (tansu holds a JoinGroup
/// for about half of it), and one record per producer batch, because tansu 0.6 reports a
/// partition's end offset as the last *batch's* base offset + 1, which makes lag (depth)
/// undercount multi-record batches. (Real brokers need neither.)
pub const CLIENT_SETTINGS: &str = "session_timeout_ms=6000&rdkafka.batch.num.messages=1";

static BROKER: OnceLock<Result<String, Missing>> = OnceLock::new();

#[derive(Clone, Debug)]
enum Missing {
    NoBinary,
    Broken(String),
}

/// `host:port` of the shared broker, starting it on first use; None when the tests should be
/// skipped. Panics when the broker cannot be used, or is missing under `CI`.
pub fn broker() -> Option<String> {
    match BROKER.get_or_init(start) {
        Ok(addr) => Some(addr.clone()),
        Err(Missing::NoBinary) if std::env::var_os("CI").is_some() => panic!(
            "no Kafka broker for the Kafka bus tests: install tansu (cargo install tansu --version 0.6.0 \
             --locked --features dynostore) and set CRM_TANSU to it (.ci/run does both)"
        ),
        Err(Missing::NoBinary) => {
            eprintln!(
                "skipped: no tansu broker for the Kafka tests (set CRM_TANSU, or cargo install tansu --version \
                 0.6.0 --locked --features dynostore)"
            );
            None
        }
        Err(Missing::Broken(why)) => panic!("the Kafka test broker is not usable: {why}"),
    }
}

/// A name no other test (or test process) uses, for topics and consumer groups.
pub fn fresh_name(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

fn start() -> Result<String, Missing> {
    let Some(tansu) = find_broker() else { return Err(Missing::NoBinary) };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Missing::Broken(format!("no free port: {e}")))?
        .port();
    let log = std::env::temp_dir().join(format!("crm-tansu-{port}.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| Missing::Broken(format!("{}: {e}", log.display())))?;
    let script = r#"
        url="tcp://127.0.0.1:$2"
        "$1" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/ &
        child=$!
        while kill -0 "$3" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
        kill "$child" 2>/dev/null
        wait "$child"
    "#;
    let mut watchdog = Command::new("sh")
        .args(["-c", script, "crm-tansu-watchdog"])
        .arg(&tansu)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| Missing::Broken(format!("cannot start {}: {e}", tansu.display())))?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = watchdog.try_wait() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Missing::Broken(format!("{} exited ({status}): {said}", tansu.display())));
        }
        if TcpStream::connect_timeout(&addr.parse().expect("an address"), Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Missing::Broken(format!("{} did not listen within 30 s (log: {})", tansu.display(), log.display())))
}

fn find_broker() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CRM_TANSU") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    if let Some(path) = home.filter(|p| p.is_file()) {
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("tansu")).find(|p| p.is_file())
}
