//! Messages whose outcome is unknown, with real `crm worker` processes and a fake Twilio (no
//! idempotency key, no lookup): a worker SIGKILLed while Twilio holds its requests leaves the
//! messages UNCERTAIN, the next worker never sends them again, `campaigns show` lists them with
//! the way out, and `campaigns resolve` marks them sent or sends them again.

mod common;

use common::fake_twilio::{FakeTwilio, write_config};
use common::processes::start_worker;
use common::{Crm, describe, stdout};
use serde_json::Value;
use std::time::{Duration, Instant};

fn status(crm: &Crm, id: &str) -> Value {
    crm.json(&["campaigns", "status", id], 0)
}

fn stat(s: &Value, key: &str) -> u64 {
    s["stats"][key].as_u64().unwrap_or_else(|| panic!("no stat {key}: {s}"))
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three leads and the campaign `promo` (id 1) on the `twilio` account, run; returns the phones.
fn with_running_campaign(crm: &Crm, twilio: &FakeTwilio) -> Vec<String> {
    write_config(crm, twilio, "");
    let phones: Vec<String> = (0..3).map(|i| format!("+447911{i:06}")).collect();
    let mut csv = String::from("name,email,phone\n");
    for (i, phone) in phones.iter().enumerate() {
        csv.push_str(&format!("Lead {i},lead{i}@example.com,{phone}\n"));
    }
    crm.import(&crm.write("leads.csv", csv), &[], 0);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let create = ["campaigns", "create", "promo", "--segment", "all", "--template", "Hi!", "--channel", "twilio"];
    crm.json(&create, 0);
    crm.json(&["campaigns", "run", "promo"], 0);
    phones
}

const WORKER: [&str; 7] = ["all", "--rate-per-minute", "0", "--concurrency", "4", "--lease-ms", "800"];

#[test]
fn a_send_killed_mid_request_is_uncertain_until_an_operator_resolves_it() {
    let crm = Crm::new();
    let twilio = FakeTwilio::start();
    twilio.hang(true);
    let phones = with_running_campaign(&crm, &twilio);
    let first = start_worker(&crm, &WORKER, "first.log");
    wait_until(Duration::from_secs(60), "Twilio holds all three sends", || twilio.hung() == 3);
    first.sigkill();
    twilio.hang(false);
    let second = start_worker(&crm, &WORKER, "second.log");
    wait_until(Duration::from_secs(60), "the campaign completes", || status(&crm, "1")["status"] == "COMPLETED");
    let s = status(&crm, "1");
    assert_eq!((stat(&s, "uncertain"), stat(&s, "sent")), (3, 0), "{s}");
    assert!(twilio.accepted().is_empty(), "an uncertain message is never sent again on its own");

    // `show` lists them, with where they went and the way out.
    let shown = crm.json(&["campaigns", "show", "promo"], 0);
    let uncertain = shown["uncertain"].as_array().cloned().unwrap_or_default();
    assert_eq!(uncertain.len(), 3, "{shown}");
    let mut to: Vec<String> = uncertain.iter().map(|m| m["to"].as_str().unwrap_or_default().to_string()).collect();
    to.sort();
    assert_eq!(to, phones);
    assert!(uncertain.iter().all(|m| m["channel"] == "twilio" && m["since"].is_string()), "{shown}");
    let text = stdout(&crm.run(&["campaigns", "show", "promo"]));
    assert!(text.contains("Uncertain: 3 messages may or may not have arrived"), "{text}");
    assert!(text.contains("crm campaigns resolve 1 --all --resend") && text.contains("+447911000002"), "{text}");

    // The operator knows the first lead got it: marked sent, nothing sent.
    let lead_of = |phone: &str| {
        let m = uncertain.iter().find(|m| m["to"] == phone).unwrap_or_else(|| panic!("{phone}: {shown}"));
        m["lead_id"].as_i64().expect("lead id").to_string()
    };
    let (a, b) = (lead_of(&phones[0]), lead_of(&phones[1]));
    let marked = crm.json(&["campaigns", "resolve", "promo", "--lead", &a, "--mark-sent"], 0);
    assert_eq!(marked["resolved"].as_array().map(Vec::len), Some(1), "{marked}");
    assert_eq!(marked["resolved"][0]["status"], "sent", "{marked}");
    let s = status(&crm, "1");
    assert_eq!((stat(&s, "uncertain"), stat(&s, "sent"), s["status"].as_str()), (2, 1, Some("COMPLETED")), "{s}");

    // Naming it again changes nothing and says so (exit 1).
    let again = crm.run(&["campaigns", "resolve", "1", "--lead", &format!("{a},{b}"), "--resend"]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    let text = stdout(&again);
    assert!(
        text.contains("1 uncertain message queued") && text.contains(&format!("lead {a}: not uncertain")),
        "{text}"
    );

    // The rest: sent again, once each, and the campaign completes again.
    let rest = crm.json(&["campaigns", "resolve", "1", "--all", "--resend"], 0);
    assert_eq!(rest["resolved"].as_array().map(Vec::len), Some(1), "{rest}");
    wait_until(Duration::from_secs(60), "the resent messages are sent", || {
        let s = status(&crm, "1");
        s["status"] == "COMPLETED" && stat(&s, "sent") == 3
    });
    let mut sent_to: Vec<String> = twilio.accepted().iter().map(|m| m.form["To"].clone()).collect();
    sent_to.sort();
    assert_eq!(sent_to, [format!("whatsapp:{}", phones[1]), format!("whatsapp:{}", phones[2])]);
    let none = crm.run(&["campaigns", "resolve", "1", "--all", "--mark-sent"]);
    assert_eq!(none.status.code(), Some(0), "{}", describe(&none));
    assert!(stdout(&none).contains("no uncertain message matched; nothing changed"), "{}", describe(&none));
    drop(second);
}

#[test]
fn resolve_needs_a_selection_and_a_decision() {
    let crm = Crm::new();
    let twilio = FakeTwilio::start();
    with_running_campaign(&crm, &twilio);
    for args in [
        &["campaigns", "resolve", "promo", "--resend"][..],
        &["campaigns", "resolve", "promo", "--all"],
        &["campaigns", "resolve", "promo", "--all", "--lead", "1", "--resend"],
        &["campaigns", "resolve", "promo", "--all", "--resend", "--mark-sent"],
    ] {
        let out = crm.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
    }
    let missing = crm.run(&["campaigns", "resolve", "nope", "--all", "--resend"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    let help = stdout(&crm.run(&["campaigns", "resolve", "--help"]));
    assert!(help.contains("--mark-sent") && help.contains("UNCERTAIN") && help.contains("--send-id"), "{help}");
    crm.json(&["campaigns", "cancel", "promo"], 0);
    let cancelled = crm.run(&["campaigns", "resolve", "promo", "--all", "--resend"]);
    assert_eq!(cancelled.status.code(), Some(1), "{}", describe(&cancelled));
    assert!(common::stderr(&cancelled).contains("CANCELLED"), "{}", describe(&cancelled));
}
