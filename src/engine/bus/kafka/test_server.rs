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
use std::path::{Path, PathBuf};
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

fn tansu() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    find_program("CRM_TANSU", home, "tansu")
}

fn listening(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().expect("an address"), Duration::from_millis(200)).is_ok()
}

fn start() -> Result<String, Missing> {
    let Some(tansu) = tansu() else { return Err(Missing::NoBinary) };
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let command = r#"url="tcp://127.0.0.1:$2"; "$1" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/"#;
    start_watched("tansu", &tansu, command, port, &[("RUST_LOG", "warn")], Duration::from_secs(30), || {
        listening(&addr)
    })?;
    Ok(addr)
}

/// A broker of one test's own. By default it keeps its data in a SQLite file (tansu's `libsql`
/// storage, `--features dynostore,libsql`), so the test can kill it and start it again on the
/// same port with the same topics, offsets and groups: a broker restart. Killed when dropped.
#[allow(dead_code)] // used by tests/kafka_pipeline.rs, not by the library's tests
pub struct RestartableBroker {
    program: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The port clients are told to connect to (a proxy's), when not `port`.
    advertised: u16,
    storage: &'static str,
    pid: Option<u32>,
}

#[allow(dead_code)]
impl RestartableBroker {
    /// Starts one keeping its data in `dir`; None when the tests should be skipped (no tansu,
    /// or one built without SQLite storage, outside CI).
    pub fn start(dir: &Path) -> Option<RestartableBroker> {
        RestartableBroker::start_with(dir, "sqlite://tansu.db", None)
    }

    /// One on in-memory storage that tells its clients to connect to `advertised_port` (a
    /// proxy in front of it): it cannot be restarted without losing its data, but a proxy can
    /// cut it off. None as for [`RestartableBroker::start`].
    pub fn behind_proxy(advertised_port: u16) -> Option<RestartableBroker> {
        RestartableBroker::start_with(&std::env::temp_dir(), "memory://tansu/", Some(advertised_port))
    }

    fn start_with(dir: &Path, storage: &'static str, advertised: Option<u16>) -> Option<RestartableBroker> {
        let skip = |e: Missing| {
            let how = "install tansu with cargo install tansu --version 0.6.0 --locked --features \
                       dynostore,libsql and set CRM_TANSU to it; .ci/run does both";
            resolve::<()>(&Err(e), "Kafka broker with SQLite storage for the broker restart test", how);
            None
        };
        let Some(program) = tansu() else { return skip(Missing::NoBinary) };
        let port = match free_port() {
            Ok(port) => port,
            Err(e) => return skip(e),
        };
        let advertised = advertised.unwrap_or(port);
        let mut broker = RestartableBroker { program, dir: dir.to_path_buf(), port, advertised, storage, pid: None };
        match broker.run() {
            Ok(()) => Some(broker),
            // A tansu built without `libsql`: as good as none.
            Err(Missing::Broken(why)) if why.contains("FeatureNotEnabled") => skip(Missing::NoBinary),
            Err(e) => skip(e),
        }
    }

    fn run(&mut self) -> Result<(), Missing> {
        let dir = self.dir.to_str().ok_or_else(|| Missing::Broken("a data dir that is not UTF-8".into()))?;
        assert!(!dir.contains('\''), "a data dir without quotes: {dir}");
        let (advertised, storage) = (self.advertised, self.storage);
        let command = format!(
            r#"cd '{dir}' && exec "$1" broker --listener-url "tcp://127.0.0.1:$2" --advertised-listener-url "tcp://127.0.0.1:{advertised}" --storage-engine {storage}"#
        );
        let addr = format!("127.0.0.1:{}", self.port);
        let env = [("RUST_LOG", "warn")];
        let pid =
            start_watched("tansu-sqlite", &self.program, &command, self.port, &env, Duration::from_secs(30), || {
                listening(&addr)
            })?;
        self.pid = Some(pid);
        Ok(())
    }

    /// `host:port` clients connect to (the proxy's, behind one).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// `host:port` the broker itself listens on.
    pub fn listener(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL: no goodbye to its clients) and waits until it is gone.
    pub fn kill(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        // Gone once its process entry is (or is only a zombie the watchdog has yet to reap).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker again, on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.run() {
            panic!("the broker did not come back: {e:?}");
        }
    }
}

impl Drop for RestartableBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
