//! Campaigns end to end with real processes: `crm sim` as the vendor, `crm worker …` as the
//! pipeline. The promise under test: every eligible lead gets the message exactly once (the
//! simulator counts distinct idempotency keys it accepted), through worker crashes, competing
//! senders, vendor errors and 429s.

mod common;

use common::campaigns::{
    assert_sim_accepted, create_campaign, http_get, killed_and_competing_senders_send_once, start_sim, stat, status,
    wait_completed, write_leads,
};
use common::processes::start_worker;
use common::{Crm, describe};
use std::time::{Duration, Instant};

/// Whether transparent huge pages are on for process `pid` (Linux's `THP_enabled` status line;
/// `None` on a kernel without that line).
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("THP_enabled:"))?;
    Some(line.trim() != "0")
}

#[test]
fn a_campaign_reaches_every_eligible_lead_once() {
    let crm = Crm::new();
    let eligible = write_leads(&crm, 3000) as u64;
    let id = create_campaign(&crm);
    let (sim, url) = start_sim(&crm, &[]);
    let ran = crm.json(&["campaigns", "run", &id.to_string()], 0);
    assert_eq!(ran["audience"].as_u64(), Some(3000));
    let worker = start_worker(
        &crm,
        &["all", "--sim-url", &url, "--rate-per-minute", "0", "--concurrency", "16", "--webhook-listen", "127.0.0.1:0"],
        "worker.log",
    );
    let done = wait_completed(&crm, id, Duration::from_secs(90));
    assert_eq!(stat(&done, "sent"), eligible, "{done}");
    assert_eq!(stat(&done, "failed") + stat(&done, "uncertain") + stat(&done, "pending"), 0, "{done}");
    assert_sim_accepted(&url, eligible);
    // Both long-running processes turned transparent huge pages off for themselves.
    for (name, pid) in [("simulator", sim.pid()), ("worker", worker.pid())] {
        assert_ne!(thp_enabled(pid), Some(true), "the {name} runs with transparent huge pages on");
    }
    // The status --json shape is exactly this (the same stats as `show --json`).
    let mut keys: Vec<&str> =
        done["stats"].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    let expected = ["audience", "cancelled", "delivered", "failed", "pending", "read", "sent", "skipped", "uncertain"];
    assert_eq!(keys, expected, "{done}");
    // Receipts arrive through the webhook: delivered catches up with sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stat(&status(&crm, id), "delivered") < eligible {
        assert!(Instant::now() < deadline, "receipts did not arrive: {}", status(&crm, id));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn killed_and_competing_senders_still_send_once() {
    killed_and_competing_senders_send_once(&Crm::new(), 2000, 300..1000, 20);
}

#[test]
fn vendor_errors_are_retried_then_dead_lettered_and_replayable() {
    let crm = Crm::new();
    let eligible = write_leads(&crm, 700) as u64;
    let id = create_campaign(&crm);
    let (_sim, url) =
        start_sim(&crm, &["--server-error-rate", "0.35", "--rate-limit-rate", "0.1", "--retry-after-secs", "1"]);
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let worker_args = [
        "all",
        "--sim-url",
        &url,
        "--rate-per-minute",
        "0",
        "--concurrency",
        "8",
        "--max-attempts",
        "3",
        "--backoff-base-ms",
        "10",
        "--backoff-cap-ms",
        "100",
        "--breaker-cooldown-ms",
        "100",
    ];
    let worker = start_worker(&crm, &worker_args, "worker.log");
    let done = wait_completed(&crm, id, Duration::from_secs(120));
    let (sent, failed) = (stat(&done, "sent"), stat(&done, "failed"));
    assert_eq!(sent + failed, eligible, "{done}");
    assert!(failed > 0, "with 45% errors and 3 tries some messages should fail: {done}");
    let stats = http_get(&url, "/stats?by_key=false");
    assert_eq!(stats["accepted"].as_u64(), Some(sent), "{stats}");
    assert!(stats["errors_5xx"].as_u64().unwrap_or(0) > 0 && stats["rejected_429"].as_u64().unwrap_or(0) > 0);
    let dlq = crm.json(&["dlq", "list", "--campaign", &id.to_string()], 0);
    assert_eq!(dlq.as_array().map(|a| a.len() as u64), Some(failed), "{dlq}");
    drop(worker);

    // Replay with a healthy vendor: the dead letters are sent, once.
    let (_healthy, healthy_url) = start_sim(&crm, &[]);
    let replayed = crm.json(&["dlq", "replay", "--campaign", &id.to_string()], 0);
    assert_eq!(replayed["replayed"].as_u64(), Some(failed));
    let healthy_args = ["all", "--sim-url", &healthy_url, "--rate-per-minute", "0"];
    let _worker = start_worker(&crm, &healthy_args, "worker2.log");
    let done = wait_completed(&crm, id, Duration::from_secs(60));
    assert_eq!(stat(&done, "sent"), eligible, "{done}");
    assert_eq!(http_get(&healthy_url, "/stats?by_key=false")["accepted"].as_u64(), Some(failed));
    let left = crm.json(&["dlq", "list", "--campaign", &id.to_string()], 0);
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{}", describe(&crm.run(&["dlq", "list"])));
}

#[test]
fn templates_are_checked_and_drafts_only_are_deleted() {
    let crm = Crm::new();
    write_leads(&crm, 10);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let bad = crm.run(&["campaigns", "create", "x", "--segment", "all", "--template", "Hi {{frist_name}}"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(common::stderr(&bad).contains("column 4"), "{}", describe(&bad));
    let c = crm
        .json(&["campaigns", "create", "x", "--segment", "all", "--template", "Hi {{name}}", "--preview-lead", "1"], 0);
    assert_eq!(c["preview"], "Hi Lead 0");
    // Nothing would ever finish a draft: waiting for one is refused, not endless.
    let draft = crm.run(&["campaigns", "wait", "x"]);
    assert_eq!(draft.status.code(), Some(2), "{}", describe(&draft));
    assert!(common::stderr(&draft).contains("is a DRAFT"), "{}", describe(&draft));
    crm.json(&["campaigns", "run", "x"], 0);
    let del = crm.run(&["campaigns", "delete", "x"]);
    assert_ne!(del.status.code(), Some(0), "{}", describe(&del));
    crm.json(&["campaigns", "pause", "x"], 0);
    assert_eq!(status(&crm, 1)["status"], "PAUSED");
    crm.json(&["campaigns", "cancel", "x"], 0);
    assert_eq!(status(&crm, 1)["status"], "CANCELLED");
}

#[test]
fn pause_stops_sends_within_a_second_and_resume_finishes_once() {
    let crm = Crm::new();
    let eligible = write_leads(&crm, 350) as u64;
    let id = create_campaign(&crm);
    let (_sim, url) = start_sim(&crm, &[]);
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let mut worker = start_worker(&crm, &["all", "--sim-url", &url, "--rate-per-minute", "1200"], "worker.log");
    let accepted = || http_get(&url, "/stats?by_key=false")["accepted"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted() < 40 {
        assert!(Instant::now() < deadline, "sending did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    crm.json(&["campaigns", "pause", &id.to_string()], 0);
    std::thread::sleep(Duration::from_millis(1200));
    let paused_at = accepted();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(accepted(), paused_at, "sends continued after the pause");
    assert!(paused_at < eligible, "the pause came too late to test anything");
    // The paused campaign's unsent jobs wait in the send queue, and its status says so. A job
    // whose message went out just before the pause is acknowledged with the rest of its batch,
    // once every job of that batch has had its rate-limit slot and been held (at 20 a second, up
    // to a few seconds): until then it is still in flight, so the count may be one or two over.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let paused = status(&crm, id);
        assert_eq!(paused["status"], "PAUSED");
        let send_queue = paused["queues"]
            .as_array()
            .and_then(|q| q.iter().find(|q| q["topic"] == "campaign.send_jobs"))
            .unwrap_or_else(|| panic!("no send queue in {paused}"))
            .clone();
        let waiting = ["ready", "in_flight", "delayed"].iter().filter_map(|k| send_queue[k].as_u64()).sum::<u64>();
        assert!(waiting > 0, "{send_queue}");
        if waiting <= eligible - paused_at {
            break;
        }
        assert!(Instant::now() < deadline, "{send_queue} with {paused_at} of {eligible} sent");
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = String::from_utf8_lossy(&crm.run(&["campaigns", "status", &id.to_string()]).stdout).into_owned();
    assert!(text.contains("  queues: campaign.jobs "), "{text}");
    // `campaigns wait` gives up when told to (exit 4), leaving the campaign as it is...
    let waited = crm.run(&["campaigns", "wait", &id.to_string(), "--timeout", "1s"]);
    assert_eq!(waited.status.code(), Some(4), "{}", describe(&waited));
    assert!(common::stderr(&waited).contains("is still PAUSED after 1s"), "{}", describe(&waited));
    assert_eq!(status(&crm, id)["status"], "PAUSED");
    crm.json(&["campaigns", "resume", &id.to_string()], 0);
    // ...and returns once the campaign is finished, with its final stats.
    let done = crm.json(&["campaigns", "wait", &id.to_string(), "--timeout", "60s"], 0);
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(stat(&done, "sent"), eligible, "{done}");
    assert_sim_accepted(&url, eligible);

    // SIGTERM: the worker finishes what it holds and exits 0.
    let term = std::process::Command::new("kill").arg("-TERM").arg(worker.pid().to_string()).status();
    assert!(term.map(|s| s.success()).unwrap_or(false), "kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = worker.0.try_wait().expect("wait for the worker") {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let beats = crm.json(&["worker", "list"], 0);
    let kinds: Vec<&str> =
        beats.as_array().map(|a| a.iter().filter_map(|b| b["kind"].as_str()).collect()).unwrap_or_default();
    for kind in ["expand", "send", "status"] {
        assert!(kinds.contains(&kind), "no {kind} heartbeat: {beats}");
    }
}

#[test]
fn empty_templates_and_templates_that_can_outgrow_the_channel_are_refused() {
    let crm = Crm::new();
    write_leads(&crm, 3);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    for empty in ["", "   \n\t "] {
        let out = crm.run(&["campaigns", "create", "x", "--segment", "all", "--template", empty]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(common::stderr(&out).contains("the template is empty"), "{}", describe(&out));
    }
    // 3,100 characters of text and a metadata value (up to 1,000): past sim's 4,096.
    let long = format!("{} {{{{metadata.note}}}}", "x".repeat(3_100));
    let out = crm.run(&["campaigns", "create", "x", "--segment", "all", "--template", &long]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = common::stderr(&out);
    assert!(err.contains("can reach 4101 characters") && err.contains("at most 4096"), "{err}");
    assert!(err.contains("metadata.note up to 1000"), "{err}");
    let file = crm.write("t.txt", format!("{} {{{{name}}}}", "x".repeat(3_000)));
    let ok = crm
        .json(&["campaigns", "create", "x", "--segment", "all", "--template-file", file.to_str().expect("utf-8")], 0);
    assert_eq!(ok["status"], "DRAFT", "{ok}");
    let list = crm.json(&["campaigns", "list"], 0);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "only the fitting template made a campaign: {list}");
}
