//! A server process for tests (the Kafka broker, the MongoDB-wire server), shared by every test
//! of one test process: found on disk, started once on a free port under a watchdog shell that
//! stops it once the test process has gone (however it ended: the harness has no "after all
//! tests" hook), and waited for until it answers. Without the program, tests fail when `CI` is
//! set and are skipped (with a notice) otherwise.
//!
//! Both launchers are also compiled into integration tests (`#[path]`), and so is this file
//! through them: it uses only std.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub enum Missing {
    /// No program: skip (or fail under CI).
    NoBinary,
    /// The program was found but the server did not come up: always a failure.
    Broken(String),
}

/// The server a launcher started (`Ok`), or None when tests should be skipped. `needed` says
/// what the tests lack ("a Kafka broker for the Kafka bus tests"), `how` how to get it.
/// Panics when the server is broken, or missing under `CI`.
pub fn resolve<T: Clone>(found: &Result<T, Missing>, needed: &str, how: &str) -> Option<T> {
    match found {
        Ok(server) => Some(server.clone()),
        Err(Missing::NoBinary) if std::env::var_os("CI").is_some() => panic!("no {needed}: {how}"),
        Err(Missing::NoBinary) => {
            eprintln!("skipped: no {needed} ({how})");
            None
        }
        Err(Missing::Broken(why)) => panic!("{needed}: not usable: {why}"),
    }
}

/// The program named by `env_var`, else `fixed` when it exists, else `name` on the PATH.
pub fn find_program(env_var: &str, fixed: Option<PathBuf>, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    if let Some(path) = fixed.filter(|p| p.is_file()) {
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

pub fn free_port() -> Result<u16, Missing> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Missing::Broken(format!("no free port: {e}")))
}

/// Runs `command` (shell words; `"$1"` is `program`, `"$2"` the port) under a watchdog that
/// stops it (SIGTERM, then waits) once this process is gone, and waits up to `wait` for
/// `ready` to say it answers. Its stderr goes to a log file named after `label` and the port.
/// Returns the pid of the shell that runs `command` in the background (the server itself when
/// `command` starts with `exec`); the watchdog ends when it does.
pub fn start_watched(
    label: &str,
    program: &Path,
    command: &str,
    port: u16,
    env: &[(&str, &str)],
    wait: Duration,
    ready: impl Fn() -> bool,
) -> Result<u32, Missing> {
    let log = std::env::temp_dir().join(format!("crm-{label}-{port}.log"));
    let pid_file = std::env::temp_dir().join(format!("crm-{label}-{port}.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let log_file = std::fs::File::create(&log).map_err(|e| Missing::Broken(format!("{}: {e}", log.display())))?;
    let script = format!(
        r#"
        {command} &
        child=$!
        echo "$child" > "$4"
        while kill -0 "$3" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
        kill "$child" 2>/dev/null
        wait "$child"
        "#
    );
    let mut watchdog = Command::new("sh")
        .args(["-c", &script, &format!("crm-{label}-watchdog")])
        .arg(program)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .arg(&pid_file)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| Missing::Broken(format!("cannot start {}: {e}", program.display())))?;
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = watchdog.try_wait() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Missing::Broken(format!("{} exited ({status}): {said}", program.display())));
        }
        if ready() {
            let pid = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok());
            return pid.ok_or_else(|| Missing::Broken(format!("no pid in {}", pid_file.display())));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Missing::Broken(format!(
        "{} did not answer within {} s (log: {})",
        program.display(),
        wait.as_secs(),
        log.display()
    )))
}
