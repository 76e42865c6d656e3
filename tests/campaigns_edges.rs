//! Campaign and worker rough edges, with real processes but tiny data and no rate limits: the
//! demo never touches a configured store, a failed `campaigns create` saves nothing, cancelled
//! campaigns count their unsent messages as cancelled, killed workers show as stale, the
//! dead-letter queue takes campaign names, and a listen address in use is a usage error.

mod common;

use common::processes::{Proc, start_sim_with, start_worker};
use common::{Crm, describe, stderr, stdout};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Five leads with UK mobile numbers and one without a phone (never messaged: skipped).
fn write_leads(crm: &Crm) {
    let mut csv = String::from("name,email,phone\n");
    for i in 0..5 {
        csv.push_str(&format!("Lead {i},lead{i}@example.com,+447911{i:06}\n"));
    }
    csv.push_str("No Phone,nophone@example.com,\n");
    crm.import(&crm.write("leads.csv", csv), &["--default-region", "GB"], 0);
}

fn start_sim(crm: &Crm, args: &[&str]) -> (Proc, String) {
    start_sim_with(crm, 20, 40, args)
}

/// Leads, segment `all`, and the DRAFT campaign `promo` over it (id 1).
fn with_campaign() -> Crm {
    let crm = Crm::new();
    write_leads(&crm);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    crm.json(&["campaigns", "create", "promo", "--segment", "all", "--template", "Hi {{first_name|there}}!"], 0);
    crm
}

fn status(crm: &Crm, campaign: &str) -> Value {
    crm.json(&["campaigns", "status", campaign], 0)
}

fn stat(s: &Value, key: &str) -> u64 {
    s["stats"][key].as_u64().unwrap_or_else(|| panic!("no stat {key}: {s}"))
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lines_of(value: &Value) -> usize {
    value.as_array().unwrap_or_else(|| panic!("not an array: {value}")).len()
}

#[test]
fn the_demo_never_writes_a_configured_store_but_uses_its_own_store_flag() {
    let crm = Crm::new();
    // The user's real store, named by CRM_STORE and by a config file.
    crm.import(&crm.write("mine.csv", "Email\nme@example.com\nyou@example.com\n"), &[], 0);
    crm.json(&["segments", "create", "mine", "--rule", "visits >= 0"], 0);
    let real = crm.store();
    let before = (crm.count(), crm.json(&["segments", "list"], 0));
    let tmp = crm.path("tmp");
    std::fs::create_dir(&tmp).expect("mkdir tmp");
    let config = crm.write("config.toml", format!("store = {:?}\n", real.display().to_string()));

    let demo = |env: (&str, &std::path::Path), extra: &[&str]| {
        let out = crm
            .bare()
            .env(env.0, env.1)
            .env("TMPDIR", &tmp)
            .arg("demo")
            .args(["--rate-per-minute", "0"])
            .args(extra)
            .timeout(Duration::from_secs(120))
            .output()
            .expect("run crm demo");
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let text = stdout(&out);
        let store = text
            .lines()
            .find_map(|l| l.strip_prefix("Store: "))
            .unwrap_or_else(|| panic!("the demo names its store: {text}"))
            .to_string();
        assert!(text.contains("Final: campaign") && text.contains("COMPLETED"), "{text}");
        store
    };
    let unchanged = |why: &str| {
        assert_eq!((crm.count(), crm.json(&["segments", "list"], 0)), before, "{why}: the demo wrote the real store");
        assert_eq!(lines_of(&crm.json(&["campaigns", "list"], 0)), 0, "{why}");
    };

    for (var, value) in [("CRM_STORE", real.as_path()), ("CRM_CONFIG", config.as_path())] {
        let used = demo((var, value), &[]);
        assert!(used.starts_with(&tmp.display().to_string()), "{var}: the demo used {used}");
        assert_ne!(used, real.display().to_string());
        unchanged(var);
    }

    // `--store X` on the demo's own command line: X gets the demo's data (CRM_STORE loses).
    let own = crm.path("demo.db");
    let used = demo(("CRM_STORE", real.as_path()), &["--store", own.to_str().expect("utf-8")]);
    assert_eq!(used, own.display().to_string());
    unchanged("--store");
    let count = |store: &std::path::Path| {
        let out = crm.bare().arg("--store").arg(store).args(["--json", "leads", "count"]).output().expect("run crm");
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        serde_json::from_slice::<Value>(&out.stdout).expect("json")["count"].as_u64().expect("count")
    };
    assert!(count(&own) > 250, "the demo imported its sample into {}", own.display());
    let campaigns = crm.bare().arg("--store").arg(&own).args(["--json", "campaigns", "list"]).output();
    let campaigns: Value = serde_json::from_slice(&campaigns.expect("run crm").stdout).expect("json");
    assert_eq!(lines_of(&campaigns), 1, "{campaigns}");
}

#[test]
fn a_failed_create_saves_no_campaign_and_digit_names_are_refused() {
    let crm = Crm::new();
    write_leads(&crm);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let create = |name: &str, extra: &[&str]| {
        let args: Vec<&str> = ["campaigns", "create", name, "--segment", "all", "--template", "Hi {{name}}"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        crm.run(&args)
    };
    let out = create("promo", &["--preview-lead", "99999"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("99999") && stderr(&out).contains("nothing was saved"), "{}", describe(&out));
    assert_eq!(lines_of(&crm.json(&["campaigns", "list"], 0)), 0, "a campaign was saved");

    for name in ["2024", "  42 ", "007"] {
        let out = create(name, &[]);
        assert_eq!(out.status.code(), Some(2), "'{name}'\n{}", describe(&out));
        assert!(stderr(&out).contains("would read as a campaign id"), "{}", describe(&out));
    }
    assert_eq!(lines_of(&crm.json(&["campaigns", "list"], 0)), 0, "a campaign was saved");

    // The same name then works, with a real preview lead; ids and names still resolve.
    let out = create("promo", &["--preview-lead", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains("Preview for lead 1: Hi Lead 0"), "{}", describe(&out));
    let out = create("spring-2024", &[]);
    assert_eq!(out.status.code(), Some(0), "names with digits and letters are fine\n{}", describe(&out));
    assert_eq!(lines_of(&crm.json(&["campaigns", "list"], 0)), 2);
    assert_eq!(status(&crm, "1")["id"], 1);
    assert_eq!(status(&crm, "SPRING-2024")["id"], 2);
}

#[test]
fn a_cancelled_campaign_counts_its_unsent_messages_as_cancelled() {
    let crm = with_campaign();
    let draft = status(&crm, "promo");
    let mut keys: Vec<&str> =
        draft["stats"].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    let expected = ["audience", "cancelled", "delivered", "failed", "pending", "read", "sent", "skipped", "uncertain"];
    assert_eq!(keys, expected, "{draft}");

    crm.json(&["campaigns", "run", "promo"], 0);
    // Expansion only, no sender: the lead without a phone is skipped, the rest wait.
    let expander = start_worker(&crm, &["expand"], "expand.log");
    let running = wait_for(Duration::from_secs(20), "expansion", || {
        let s = status(&crm, "promo");
        (stat(&s, "skipped") == 1).then_some(s)
    });
    assert_eq!((stat(&running, "pending"), stat(&running, "cancelled")), (5, 0), "{running}");
    drop(expander);

    crm.json(&["campaigns", "cancel", "promo"], 0);
    let cancelled = status(&crm, "promo");
    assert_eq!(cancelled["status"], "CANCELLED", "{cancelled}");
    let counts: Vec<u64> =
        ["audience", "pending", "cancelled", "skipped", "sent"].iter().map(|k| stat(&cancelled, k)).collect();
    assert_eq!(counts, [6, 0, 5, 1, 0], "{cancelled}");
    let shown = crm.json(&["campaigns", "show", "promo"], 0);
    assert_eq!(
        (shown["stats"]["pending"].as_u64(), shown["stats"]["cancelled"].as_u64()),
        (Some(0), Some(5)),
        "{shown}"
    );

    let text = crm.run(&["campaigns", "status", "promo"]);
    let line = stdout(&text);
    assert!(line.contains("pending 0") && line.contains("cancelled 5") && line.contains("skipped 1"), "{line}");
    let list = crm.run(&["campaigns", "list"]);
    let table = stdout(&list);
    let row = table.lines().nth(1).unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.last(), Some(&"0"), "PENDING of a cancelled campaign\n{table}");
}

#[test]
fn a_killed_worker_is_listed_as_stale() {
    let crm = with_campaign();
    let worker = start_worker(&crm, &["expand"], "expand.log");
    let pid = worker.0.id();
    let find = |beats: &Value| beats.as_array().and_then(|a| a.iter().find(|b| b["pid"] == pid).cloned());
    let alive = wait_for(Duration::from_secs(15), "a heartbeat", || find(&crm.json(&["worker", "list"], 0)));
    let mut keys: Vec<&str> = alive.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["id", "kind", "last_seen", "pid", "processed", "rate", "stale", "started"], "{alive}");
    assert_eq!((alive["kind"].as_str(), alive["stale"].as_bool()), (Some("expand"), Some(false)), "{alive}");
    let text = stdout(&crm.run(&["worker", "list"]));
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["ID", "KIND", "PID", "LAST", "SEEN", "STATE", "PROCESSED", "RATE/S"], "{text}");
    assert!(text.lines().nth(1).is_some_and(|l| l.contains(" alive ")), "{text}");

    drop(worker); // SIGKILL: no goodbye, the heartbeats just stop.
    let killed = Instant::now();
    let stale = wait_for(Duration::from_secs(15), "the stale flag", || {
        find(&crm.json(&["worker", "list"], 0)).filter(|b| b["stale"] == true)
    });
    assert!(killed.elapsed() >= Duration::from_secs(3), "stale too soon: {stale}");
    let text = stdout(&crm.run(&["worker", "list"]));
    let row = text.lines().find(|l| l.contains(&format!(" {pid} "))).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" stale "), "STATE of a killed worker\n{text}");
    assert!(row.trim_end().ends_with(" -"), "a stale worker has no rate\n{text}");
    let all = crm.json(&["worker", "list", "--all"], 0);
    assert_eq!(find(&all).map(|b| b["stale"].clone()), Some(Value::Bool(true)), "{all}");
}

#[test]
fn dead_letters_are_listed_and_replayed_by_campaign_name() {
    let crm = with_campaign();
    let (_sim, url) = start_sim(&crm, &["--server-error-rate", "1"]);
    crm.json(&["campaigns", "run", "promo"], 0);
    let args = [
        "all",
        "--sim-url",
        &url,
        "--rate-per-minute",
        "0",
        "--max-attempts",
        "1",
        "--backoff-base-ms",
        "10",
        "--backoff-cap-ms",
        "50",
        "--breaker-cooldown-ms",
        "50",
    ];
    let worker = start_worker(&crm, &args, "worker.log");
    let done = wait_for(Duration::from_secs(60), "the campaign to complete", || {
        let s = status(&crm, "promo");
        (s["status"] == "COMPLETED").then_some(s)
    });
    assert_eq!(stat(&done, "failed"), 5, "{done}");
    drop(worker);

    let by_name = crm.json(&["dlq", "list", "--campaign", "promo"], 0);
    assert_eq!(lines_of(&by_name), 5, "{by_name}");
    assert_eq!(crm.json(&["dlq", "list", "--campaign", "PROMO"], 0), by_name, "names ignore case");
    assert_eq!(crm.json(&["dlq", "list", "--campaign", "1"], 0), by_name, "an id works too");
    let text = stdout(&crm.run(&["dlq", "list", "--campaign", "promo"]));
    assert_eq!(text.lines().count(), 6, "a header and five dead letters\n{text}");

    for args in [
        ["dlq", "list", "--campaign", "nope"],
        ["dlq", "replay", "--campaign", "nope"],
        ["dlq", "list", "--campaign", "99"],
        ["dlq", "replay", "--campaign", "99"],
    ] {
        let out = crm.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{}", describe(&out));
        assert!(stderr(&out).contains("no campaign has the id or name"), "{}", describe(&out));
        assert_eq!(stdout(&out), "");
    }
    assert_eq!(lines_of(&crm.json(&["dlq", "list"], 0)), 5, "refused replays replayed nothing");

    let replayed = crm.json(&["dlq", "replay", "--campaign", "promo"], 0);
    assert_eq!(replayed["replayed"], 5, "{replayed}");
    assert_eq!(lines_of(&crm.json(&["dlq", "list", "--campaign", "promo"], 0)), 0);
    assert_eq!(lines_of(&crm.json(&["dlq", "list", "--campaign", "promo", "--all"], 0)), 5);
    assert_eq!(stat(&status(&crm, "promo"), "pending"), 5, "replayed messages are pending again");
}

#[test]
fn a_listen_address_in_use_exits_2_from_sim_and_worker() {
    let crm = with_campaign();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let busy = listener.local_addr().expect("local address").to_string();
    let cases: [&[&str]; 3] = [
        &["sim", "--listen", &busy],
        &["worker", "status", "--webhook-listen", &busy],
        &["worker", "all", "--webhook-listen", &busy, "--rate-per-minute", "0"],
    ];
    for args in cases {
        let out = crm.cmd().args(args).timeout(Duration::from_secs(20)).output().expect("run crm");
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("cannot listen") && err.contains(&busy), "{args:?}\n{err}");
    }
    drop(listener);
}
