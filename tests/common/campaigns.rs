//! Campaign helpers shared by the pipeline tests, on whatever backends a [`Crm`] sandbox names:
//! leads to send to, the simulator, campaign status, and the crash story every bus must pass.

use super::Crm;
use super::processes::{Proc, start_sim_with, start_worker};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `n` leads with valid UK mobile numbers; every seventh has no phone (not eligible).
pub fn write_leads(crm: &Crm, n: usize) -> usize {
    let mut csv = String::from("name,email,phone\n");
    let mut eligible = 0;
    for i in 0..n {
        if i % 7 == 6 {
            csv.push_str(&format!("Lead {i},lead{i}@example.com,\n"));
        } else {
            eligible += 1;
            csv.push_str(&format!("Lead {i},lead{i}@example.com,+447911{i:06}\n"));
        }
    }
    let file = crm.write("leads.csv", csv);
    crm.import(&file, &["--default-region", "GB"], 0);
    eligible
}

pub fn start_sim(crm: &Crm, args: &[&str]) -> (Proc, String) {
    start_sim_with(crm, 50, 100, args)
}

pub fn http_get(base: &str, path: &str) -> Value {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the simulator");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read response");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Creates segment `all` and a campaign over it; returns the campaign id.
pub fn create_campaign(crm: &Crm) -> i64 {
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let c =
        crm.json(&["campaigns", "create", "promo", "--segment", "all", "--template", "Hi {{first_name|there}}!"], 0);
    c["id"].as_i64().expect("campaign id")
}

pub fn status(crm: &Crm, id: i64) -> Value {
    crm.json(&["campaigns", "status", &id.to_string()], 0)
}

/// Polls the campaign until COMPLETED, or panics after `limit`.
pub fn wait_completed(crm: &Crm, id: i64, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(crm, id);
        if s["status"] == "COMPLETED" {
            return s;
        }
        assert!(Instant::now() < deadline, "campaign not completed in {limit:?}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints the last `lines` lines of every `*.log` in the sandbox (the workers' logs), for a
/// failing test's output.
pub fn print_log_tails(crm: &Crm, lines: usize) {
    let Ok(entries) = std::fs::read_dir(crm.dir()) else { return };
    let mut logs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    logs.retain(|p| p.extension().is_some_and(|x| x == "log"));
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        eprintln!("--- {} (last {lines} of {} lines)", log.display(), all.len());
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("{line}");
        }
    }
}

pub fn stat(s: &Value, key: &str) -> u64 {
    s["stats"][key].as_u64().unwrap_or_else(|| panic!("no stat {key}: {s}"))
}

/// Every accepted key was accepted once: the count of distinct keys is what we expect.
pub fn assert_sim_accepted(sim: &str, expected: u64) {
    let stats = http_get(sim, "/stats");
    assert_eq!(stats["accepted"].as_u64(), Some(expected), "sim stats: accepted");
    let keys = stats["by_key"].as_object().map(|o| o.len() as u64);
    assert_eq!(keys, Some(expected), "one key per eligible lead");
}

/// The crash story: a campaign over `leads` leads whose send worker is SIGKILLed and restarted
/// five times — each time once it has sent something (so every round interrupts real work,
/// however long its consumer takes to join: seconds on Kafka), at a pseudo-random moment in
/// `kill_after_ms` after that — then finished by two send workers competing for the same jobs.
/// Every eligible lead is accepted by the simulator exactly once, and the campaign is
/// COMPLETED. `crm` carries the backends (its store, and the bus through its environment).
/// `sim_latency_ms` paces the sender (8 sends in flight), so that its batches are still in hand
/// when the kills come: at most 90 ms, as a batch of 16 rounds must finish within the lease.
pub fn killed_and_competing_senders_send_once(
    crm: &Crm,
    leads: usize,
    kill_after_ms: std::ops::Range<u64>,
    sim_latency_ms: u64,
) {
    assert!(sim_latency_ms <= 90, "a batch would outlive its 1,500 ms lease");
    let eligible = write_leads(crm, leads) as u64;
    let id = create_campaign(crm);
    let (_sim, url) = start_sim(crm, &["--latency-ms", &sim_latency_ms.to_string()]);
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let _expand = start_worker(crm, &["expand"], "expand.log");
    let _status = start_worker(crm, &["status"], "status.log");
    let send_args = ["send", "--sim-url", &url, "--rate-per-minute", "0", "--concurrency", "8", "--lease-ms", "1500"];
    // Kill the sender at pseudo-random moments, restarting it each time.
    let mut seed = u64::from(std::process::id());
    for round in 0..5 {
        let before = stat(&status(crm, id), "sent");
        let sender = start_worker(crm, &send_args, &format!("send{round}.log"));
        let joined = Instant::now() + Duration::from_secs(60);
        loop {
            let now = status(crm, id);
            if stat(&now, "sent") != before || now["status"] == "COMPLETED" || Instant::now() > joined {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = kill_after_ms.start + (seed >> 33) % (kill_after_ms.end - kill_after_ms.start).max(1);
        std::thread::sleep(Duration::from_millis(wait));
        // Then at the next moment the simulator is taking its sends: the sender is mid-batch, with
        // sends done but not recorded and claimed logs not yet sent, however fast the backends
        // let it get through a batch (on a slow store most of a batch's time is recording it).
        let accepted = || http_get(&url, "/stats?by_key=false")["accepted"].as_u64().unwrap_or(0);
        let busy = Instant::now() + Duration::from_secs(10);
        let mut last = accepted();
        while Instant::now() < busy && last < eligible {
            std::thread::sleep(Duration::from_millis(5));
            let now = accepted();
            if now > last {
                break;
            }
            last = now;
        }
        let pid = sender.pid();
        sender.sigkill();
        eprintln!("round {round}: killed sender {pid} after {wait} ms: {}", status(crm, id));
    }
    // Two senders at once finish the job.
    let _a = start_worker(crm, &send_args, "send-a.log");
    let _b = start_worker(crm, &send_args, "send-b.log");
    let done = wait_completed(crm, id, Duration::from_secs(180));
    assert_eq!(stat(&done, "sent"), eligible, "{done}");
    assert_eq!(stat(&done, "failed") + stat(&done, "uncertain") + stat(&done, "pending"), 0, "{done}");
    assert_sim_accepted(&url, eligible);
    let logs: String = std::fs::read_dir(crm.dir())
        .expect("sandbox")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("send"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    let recovered = logs.matches("A crashed send").count();
    eprintln!("sends recovered after a crash: {recovered}");
    assert!(recovered > 0, "the kills should have interrupted some sends");
}
