//! Child processes of the pipeline tests: `crm sim` on a free port and `crm worker …`, each
//! killed when dropped so a failing test leaves nothing running.

use super::Crm;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn sigkill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// Starts `crm sim --listen 127.0.0.1:0 --delivered-after-ms D --read-after-ms R ARGS`;
/// returns it and its base URL.
pub fn start_sim_with(crm: &Crm, delivered_after_ms: u64, read_after_ms: u64, args: &[&str]) -> (Proc, String) {
    let (d, r) = (delivered_after_ms.to_string(), read_after_ms.to_string());
    let mut child = crm
        .std_bare()
        .args(["sim", "--listen", "127.0.0.1:0", "--json", "--delivered-after-ms", &d, "--read-after-ms", &r])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start crm sim");
    let stdout = child.stdout.take().expect("sim stdout");
    let mut url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read sim stdout");
        if let Some(rest) = line.trim().strip_prefix("\"url\": \"") {
            url = Some(rest.trim_end_matches(['"', ',']).to_string());
            break;
        }
    }
    (Proc(child), url.expect("the simulator printed its URL"))
}

/// Starts `crm --store … -v worker ARGS` with its logs in the sandbox file `log`
/// (`CRM_TEST_WORKER_LOG=crm=debug` in the test's environment: the workers' `CRM_LOG`).
pub fn start_worker(crm: &Crm, args: &[&str], log: &str) -> Proc {
    let log = std::fs::File::create(crm.path(log)).expect("worker log");
    let mut worker = crm.std_bare();
    if let Some(filter) = std::env::var_os("CRM_TEST_WORKER_LOG") {
        worker.env("CRM_LOG", filter);
    }
    let child = worker
        .arg("--store")
        .arg(crm.store())
        .arg("-v")
        .arg("worker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start crm worker");
    Proc(child)
}

/// The secret the tests' `crm serve` signs tokens with.
pub const API_SECRET: &str = "test-secret-0123456789";

/// Starts `crm --store … --json serve --listen 127.0.0.1:0 ARGS` with [`API_SECRET`] (its logs,
/// at debug level, in the sandbox file `serve.log`); returns it and its base URL.
pub fn start_serve(crm: &Crm, args: &[&str]) -> (Proc, String) {
    let log = std::fs::File::create(crm.path("serve.log")).expect("serve log");
    let mut child = crm
        .std_bare()
        .env("CRM_JWT_SECRET", API_SECRET)
        .arg("--store")
        .arg(crm.store())
        .args(["-v", "--json", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start crm serve");
    let stdout = child.stdout.take().expect("serve stdout");
    let line = BufReader::new(stdout).lines().next().expect("serve printed a line").expect("read line");
    let listen: serde_json::Value = serde_json::from_str(&line).expect("serve prints {\"listen\": …}");
    let addr = listen["listen"].as_str().expect("listen address").to_string();
    (Proc(child), format!("http://{addr}"))
}
