//! The Twilio channel end to end with real `crm worker` processes and a fake Twilio on
//! 127.0.0.1 (no network): a campaign sends each lead once through the Messages API, signed
//! status callbacks move its stats, failover carries a campaign whose primary account is down,
//! and signed inbound replies opt leads out (STOP) or land in their history.

mod common;

use common::fake_twilio::{FakeTwilio, SID, TOKEN, free_port, write_config};
use common::processes::start_worker;
use common::{Crm, describe};
use crm::engine::channel::twilio::signature;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `n` leads with UK mobiles `+447911000000`…; returns their phones.
fn write_leads(crm: &Crm, n: usize) -> Vec<String> {
    let mut csv = String::from("name,email,phone\n");
    let phones: Vec<String> = (0..n).map(|i| format!("+447911{i:06}")).collect();
    for (i, phone) in phones.iter().enumerate() {
        csv.push_str(&format!("Lead {i},lead{i}@example.com,{phone}\n"));
    }
    let file = crm.write("leads.csv", csv);
    crm.import(&file, &[], 0);
    phones
}

fn create_campaign(crm: &Crm, channel: &str) -> i64 {
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let args =
        ["campaigns", "create", "promo", "--segment", "all", "--template", "Hi {{first_name}}!", "--channel", channel];
    crm.json(&args, 0)["id"].as_i64().expect("campaign id")
}

fn status(crm: &Crm, id: i64) -> Value {
    crm.json(&["campaigns", "status", &id.to_string()], 0)
}

fn stat(s: &Value, key: &str) -> u64 {
    s["stats"][key].as_u64().unwrap_or_else(|| panic!("no stat {key}: {s}"))
}

fn wait_for(crm: &Crm, id: i64, what: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = status(crm, id);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} not reached in {limit:?}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Posts a form to the webhook, signed for `signed_url` with the auth token (None: unsigned).
fn post_form(url: &str, params: &[(&str, &str)], signed_url: Option<&str>) -> u16 {
    try_post(url, params, signed_url).expect("post to the webhook")
}

/// [`post_form`], or None when nothing listens yet.
fn try_post(url: &str, params: &[(&str, &str)], signed_url: Option<&str>) -> Option<u16> {
    let pairs: Vec<(String, String)> = params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut request = reqwest::Client::new().post(url).form(&pairs);
        if let Some(signed) = signed_url {
            request = request.header("X-Twilio-Signature", signature(TOKEN, signed, &pairs));
        }
        request.send().await.ok().map(|r| r.status().as_u16())
    })
}

/// Every phone got exactly one message, through WhatsApp-on-Twilio.
fn assert_each_sent_once(twilio: &FakeTwilio, phones: &[String]) {
    let accepted = twilio.accepted();
    let mut to: Vec<String> = accepted.iter().map(|a| a.form["To"].clone()).collect();
    to.sort();
    let expected: Vec<String> = phones.iter().map(|p| format!("whatsapp:{p}")).collect();
    assert_eq!(to, expected, "each lead once");
    for a in &accepted {
        assert_eq!(a.form["From"], "whatsapp:+14155238886");
        assert_eq!(a.form["Body"], "Hi Lead!", "{:?}", a.form);
    }
    assert!(twilio.refused().is_empty(), "every request was authenticated");
}

#[test]
fn a_twilio_campaign_sends_once_and_signed_statuses_move_its_stats() {
    let crm = Crm::new();
    let twilio = FakeTwilio::start();
    write_config(&crm, &twilio, "");
    let phones = write_leads(&crm, 25);
    let id = create_campaign(&crm, "twilio");
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let hook = format!("127.0.0.1:{}", free_port());
    let _worker = start_worker(
        &crm,
        &["all", "--rate-per-minute", "0", "--concurrency", "4", "--webhook-listen", &hook],
        "worker.log",
    );
    let done = wait_for(&crm, id, "COMPLETED", Duration::from_secs(60), |s| s["status"] == "COMPLETED");
    assert_eq!(stat(&done, "sent"), 25, "{done}");
    assert_eq!(stat(&done, "failed") + stat(&done, "uncertain") + stat(&done, "pending"), 0, "{done}");
    assert_each_sent_once(&twilio, &phones);

    // Twilio was told where to post statuses; signed posts there move the logs.
    let accepted = twilio.accepted();
    let callback = format!("http://{hook}/webhooks/twilio/status");
    assert!(accepted.iter().all(|a| a.form.get("StatusCallback") == Some(&callback)), "{:?}", accepted[0].form);
    let first = &accepted[0].sid;
    let forged = [("AccountSid", SID), ("MessageSid", first.as_str()), ("MessageStatus", "read")];
    assert_eq!(post_form(&callback, &forged, None), 403, "unsigned");
    assert_eq!(post_form(&callback, &forged, Some("http://elsewhere/webhooks/twilio/status")), 403, "wrong URL");
    assert_eq!(stat(&status(&crm, id), "read"), 0, "a refused post changes nothing");
    for (i, a) in accepted.iter().enumerate() {
        let state = if i < 5 {
            "read"
        } else if i < 20 {
            "delivered"
        } else {
            "undelivered"
        };
        let params =
            [("AccountSid", SID), ("MessageSid", a.sid.as_str()), ("MessageStatus", state), ("ErrorCode", "30003")];
        assert_eq!(post_form(&callback, &params, Some(&callback)), 200, "{state}");
    }
    let s = status(&crm, id);
    assert_eq!((stat(&s, "delivered"), stat(&s, "read"), stat(&s, "failed")), (20, 5, 5), "{s}");
    let logs = crm.json(&["campaigns", "logs", &id.to_string(), "--status", "failed", "--limit", "100"], 0);
    let logs = logs.as_array().cloned().unwrap_or_default();
    assert_eq!(logs.len(), 5);
    assert!(logs.iter().all(|l| l["error_message"] == "Twilio error 30003" && l["channel"] == "twilio"), "{logs:?}");
    // Secrets are never shown.
    let shown = crm.run(&["config", "show"]);
    let text = common::stdout(&shown);
    assert!(!text.contains(TOKEN) && !text.contains(SID), "{}", describe(&shown));
    assert!(text.contains("auth_token=***"), "{text}");
}

#[test]
fn with_the_primary_down_a_campaign_completes_through_the_twilio_fallback() {
    let crm = Crm::new();
    let twilio = FakeTwilio::start();
    let down = free_port(); // nothing listens there: every send is refused (transient)
    let primary = format!(
        "[channels.primary]\nkind = \"sim\"\nurl = \"http://127.0.0.1:{down}\"\nfallback = \"twilio\"\nbreaker_failures = 1\n"
    );
    write_config(&crm, &twilio, &primary);
    let phones = write_leads(&crm, 12);
    let id = create_campaign(&crm, "primary");
    crm.json(&["campaigns", "run", &id.to_string()], 0);
    let _worker = start_worker(
        &crm,
        &["all", "--rate-per-minute", "0", "--concurrency", "2", "--backoff-base-ms", "50", "--backoff-cap-ms", "200"],
        "worker.log",
    );
    let done = wait_for(&crm, id, "COMPLETED", Duration::from_secs(60), |s| s["status"] == "COMPLETED");
    assert_eq!(stat(&done, "sent"), 12, "{done}");
    assert_eq!(stat(&done, "failed") + stat(&done, "uncertain"), 0, "{done}");
    assert_each_sent_once(&twilio, &phones);
    let logs = crm.json(&["campaigns", "logs", &id.to_string(), "--limit", "100"], 0);
    let logs = logs.as_array().cloned().unwrap_or_default();
    assert_eq!(logs.len(), 12);
    assert!(logs.iter().all(|l| l["channel"] == "twilio" && l["status"] == "sent"), "the logs say who sent: {logs:?}");
    let table = common::stdout(&crm.run(&["campaigns", "logs", &id.to_string()]));
    assert!(table.contains("twilio"), "{table}");
    let shown = crm.json(&["campaigns", "show", &id.to_string()], 0);
    assert_eq!(shown["sent_by_channel"], serde_json::json!({ "twilio": 12 }), "{shown}");
    let text = common::stdout(&crm.run(&["campaigns", "show", &id.to_string()]));
    assert!(text.contains("Sent via:  twilio 12"), "{text}");
    let shown = common::stdout(&crm.run(&["config", "show"]));
    assert!(shown.contains("fallback=twilio"), "{shown}");
}

#[test]
fn inbound_stop_opts_the_lead_out_and_other_replies_show_in_its_history() {
    let crm = Crm::new();
    let twilio = FakeTwilio::start();
    let hook = format!("127.0.0.1:{}", free_port());
    let public = format!("http://{hook}");
    write_config(&crm, &twilio, &format!("[webhook]\npublic_url = \"{public}\"\n"));
    write_leads(&crm, 3);
    let _worker = start_worker(&crm, &["status", "--webhook-listen", &hook], "status.log");
    let inbound = format!("{public}/webhooks/twilio/inbound");
    let deadline = Instant::now() + Duration::from_secs(20);
    let hello = [
        ("AccountSid", SID),
        ("From", "whatsapp:+447911000001"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "Do you deliver to Leeds?"),
        ("MessageSid", "SMreply1"),
    ];
    // The worker may still be starting: an unsigned post is refused once it listens.
    loop {
        if try_post(&inbound, &hello, None) == Some(403) {
            break;
        }
        assert!(Instant::now() < deadline, "the webhook did not start listening");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(post_form(&inbound, &hello, Some(&inbound)), 200);
    let stop =
        [("AccountSid", SID), ("From", "whatsapp:+447911000002"), ("Body", " Stop "), ("MessageSid", "SMreply2")];
    assert_eq!(post_form(&inbound, &stop, Some("http://127.0.0.1:1/webhooks/twilio/inbound")), 403, "wrong URL");
    assert_eq!(crm.json(&["optout", "list"], 0), serde_json::json!([]), "a refused STOP opts nobody out");
    assert_eq!(post_form(&inbound, &stop, Some(&inbound)), 200);

    let list = crm.json(&["optout", "list"], 0);
    let all = list.as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 1, "{list}");
    assert_eq!(
        (all[0]["phone"].as_str(), all[0]["source"].as_str()),
        (Some("+447911000002"), Some("reply via twilio"))
    );
    let table = common::stdout(&crm.run(&["optout", "list"]));
    assert!(table.contains("reply via twilio"), "{table}");

    let shown = crm.json(&["leads", "show", "+447911000001"], 0);
    let replies = shown["replies"].as_array().cloned().unwrap_or_default();
    assert_eq!(replies.len(), 1, "{shown}");
    assert_eq!(
        (replies[0]["body"].as_str(), replies[0]["channel"].as_str()),
        (Some("Do you deliver to Leeds?"), Some("twilio"))
    );
    let stopped = crm.json(&["leads", "show", "+447911000002"], 0);
    assert_eq!(stopped["replies"], serde_json::json!([]), "a stop word is not kept as a reply");
    let text = common::stdout(&crm.run(&["leads", "show", "+447911000001"]));
    assert!(text.contains("replies") && text.contains("Do you deliver to Leeds?"), "{text}");
}
