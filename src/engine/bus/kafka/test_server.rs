//! A Kafka-protocol broker for tests, shared by every test of one test process: `tansu`
//! (`cargo install tansu --version 0.6.0 --locked --features dynostore`), started once on a
//! free port with in-memory storage. It does not create topics on its own (the bus does) and
//! holds each JoinGroup for about half the session timeout, so tests use a short one
//! (`session_timeout_ms=6000`) and fresh group ids.
//!
//! The broker is found through `CRM_TANSU`, `~/.cargo/bin/tansu`, or `tansu` on the PATH, and
//! run as `engine::test_process` runs test servers.
//!
//! This file is also compiled into integration tests (`#[path]`), so it uses only std.

use crate::engine::test_process::{Missing, find_program, free_port, resolve, start_watched};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

/// The bus URL settings tests use with this broker: a short session (tansu holds a JoinGroup
/// for about half of it), and one record per producer batch, because tansu 0.6 reports a
/// partition's end offset as the last *batch's* base offset + 1, which makes lag (depth)
/// undercount multi-record batches. (Real brokers need neither.)
pub const CLIENT_SETTINGS: &str = "session_timeout_ms=6000&rdkafka.batch.num.messages=1";

static BROKER: OnceLock<Result<String, Missing>> = OnceLock::new();

/// `host:port` of the shared broker, starting it on first use; None when the tests should be
/// skipped. Panics when the broker cannot be used, or is missing under `CI`.
pub fn broker() -> Option<String> {
    resolve(
        BROKER.get_or_init(start),
        "Kafka broker for the Kafka bus tests",
        "install tansu with cargo install tansu --version 0.6.0 --locked --features dynostore and set CRM_TANSU \
         to it; .ci/run does both",
    )
}

/// A name no other test (or test process) uses, for topics and consumer groups.
pub fn fresh_name(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

fn start() -> Result<String, Missing> {
    let home = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin/tansu"));
    let Some(tansu) = find_program("CRM_TANSU", home, "tansu") else { return Err(Missing::NoBinary) };
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let command = r#"url="tcp://127.0.0.1:$2"; "$1" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/"#;
    let listening =
        || TcpStream::connect_timeout(&addr.parse().expect("an address"), Duration::from_millis(200)).is_ok();
    start_watched("tansu", &tansu, command, port, &[("RUST_LOG", "warn")], Duration::from_secs(30), listening)?;
    Ok(addr)
}
