use super::*;
use crate::engine::campaign::{NewCampaign, NewLog, SendIds, SendStatus, send_id};
use crate::engine::channel::twilio::signature;
use crate::engine::config::{Config, FlagConfig};
use crate::engine::lead::LeadDraft;
use crate::engine::pipeline::worker::shutdown_signal;
use crate::engine::store::sqlite::SqliteStore;

const TOKEN: &str = "tok-123";
const PUBLIC: &str = "https://crm.example.com/base";

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    addr: SocketAddr,
    _trigger: crate::engine::pipeline::worker::ShutdownTrigger,
    lead: i64,
    send_id: String,
}

async fn setup(public_url: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[channels.twilio]\naccount_sid = \"AC1\"\nauth_token = \"{TOKEN}\"\nfrom = \"whatsapp:+14155238886\"\n\
             api_base = \"http://127.0.0.1:9\"\n"
        ),
    )
    .expect("write");
    let flags = FlagConfig { config_file: Some(path), ..Default::default() };
    let config = Config::load(&flags, &|_| None).expect("config");
    let channels = ChannelRegistry::from_config(&config).expect("channels");
    let store = Arc::new(SqliteStore::open(&dir.path().join("crm.db")).await.expect("store"));
    let draft = LeadDraft { name: Some("Ada".into()), phones: vec!["+447911123456".into()], ..LeadDraft::default() };
    let lead = Store::add_lead(store.as_ref(), draft).await.expect("lead").id;
    let new = NewCampaign {
        name: "c".into(),
        segment_id: 1,
        message_template: "Hi".into(),
        channel: "twilio".into(),
        created_by: None,
        send_ids: SendIds::Hashed,
    };
    let c = store.create_campaign(new).await.expect("campaign").id;
    let sid = send_id(c, lead);
    store
        .insert_logs(c, "twilio", &[NewLog { send_id: sid.clone(), lead_id: lead, skip_reason: None }])
        .await
        .expect("logs");
    store.claim_logs(std::slice::from_ref(&sid), Duration::from_secs(30)).await.expect("claim");
    let sent = LogUpdate {
        find_by_provider_id: true,
        send_id: sid.clone(),
        status: SendStatus::Sent,
        provider_message_id: Some("SMabc".into()),
        error: None,
    };
    store.apply_log_updates(&[sent]).await.expect("sent");
    let hooks = InboundHooks {
        leads: store.clone(),
        store: store.clone(),
        channels,
        public_url: public_url.map(str::to_string),
        stop_words: vec!["STOP".into(), "parar".into()],
        region: None,
    };
    let (trigger, shutdown) = shutdown_signal();
    let (addr, _) =
        serve_webhooks(webhooks_router(hooks), "127.0.0.1:0".parse().expect("addr"), shutdown).await.expect("serve");
    Setup { _dir: dir, store, addr, _trigger: trigger, lead, send_id: sid }
}

fn params(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// Posts `params` to `path`, signed for `signed_url` (None: unsigned); returns the status.
async fn post(addr: SocketAddr, path: &str, params: &[(String, String)], signed_url: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().post(format!("http://{addr}{path}")).form(params);
    if let Some(url) = signed_url {
        request = request.header("X-Twilio-Signature", signature(TOKEN, url, params));
    }
    request.send().await.expect("post").status().as_u16()
}

async fn log_status(s: &Setup) -> Option<SendStatus> {
    s.store.log_status(&s.send_id).await.expect("status")
}

#[tokio::test]
async fn signed_statuses_move_the_log_and_bad_signatures_change_nothing() {
    let s = setup(Some(PUBLIC)).await;
    let url = format!("{PUBLIC}{STATUS_PATH}");
    let delivered = params(&[("AccountSid", "AC1"), ("MessageSid", "SMabc"), ("MessageStatus", "delivered")]);
    assert_eq!(post(s.addr, STATUS_PATH, &delivered, None).await, 403, "unsigned");
    let local = format!("http://{}{STATUS_PATH}", s.addr);
    assert_eq!(post(s.addr, STATUS_PATH, &delivered, Some(&local)).await, 403, "signed for another URL");
    let mut forged = delivered.clone();
    let good = signature(TOKEN, &url, &delivered);
    forged[2].1 = "read".into();
    let answer = reqwest::Client::new()
        .post(format!("http://{}{STATUS_PATH}", s.addr))
        .form(&forged)
        .header("X-Twilio-Signature", good)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status().as_u16(), 403, "a parameter changed after signing");
    let other_account = params(&[("AccountSid", "AC2"), ("MessageSid", "SMabc"), ("MessageStatus", "read")]);
    assert_eq!(post(s.addr, STATUS_PATH, &other_account, Some(&url)).await, 403, "an account we do not have");
    assert_eq!(log_status(&s).await, Some(SendStatus::Sent), "nothing changed");

    let queued = params(&[("AccountSid", "AC1"), ("MessageSid", "SMabc"), ("MessageStatus", "queued")]);
    assert_eq!(post(s.addr, STATUS_PATH, &queued, Some(&url)).await, 200);
    assert_eq!(post(s.addr, STATUS_PATH, &delivered, Some(&url)).await, 200);
    assert_eq!(log_status(&s).await, Some(SendStatus::Delivered));
    let failed = params(&[
        ("AccountSid", "AC1"),
        ("MessageSid", "SMabc"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ]);
    assert_eq!(post(s.addr, STATUS_PATH, &failed, Some(&url)).await, 200);
    assert_eq!(log_status(&s).await, Some(SendStatus::Delivered), "forward only: delivered stays");
    let unknown = params(&[("AccountSid", "AC1"), ("MessageSid", "SMnope"), ("MessageStatus", "read")]);
    assert_eq!(post(s.addr, STATUS_PATH, &unknown, Some(&url)).await, 200, "acknowledged, nothing to do");
    let read = params(&[("AccountSid", "AC1"), ("MessageSid", "SMabc"), ("MessageStatus", "read")]);
    assert_eq!(post(s.addr, STATUS_PATH, &read, Some(&url)).await, 200);
    assert_eq!(log_status(&s).await, Some(SendStatus::Read));
}

#[tokio::test]
async fn a_failed_status_records_twilios_error_code() {
    let s = setup(None).await;
    let url = format!("http://{}{STATUS_PATH}", s.addr);
    let failed = params(&[("MessageSid", "SMabc"), ("MessageStatus", "failed"), ("ErrorCode", "30008")]);
    assert_eq!(post(s.addr, STATUS_PATH, &failed, Some(&url)).await, 200, "one account: AccountSid may be left out");
    let log = s.store.log_by_provider_id("SMabc").await.expect("query").expect("log");
    assert_eq!((log.status, log.error_message.as_deref()), (SendStatus::Failed, Some("Twilio error 30008")));
}

#[tokio::test]
async fn stop_words_opt_out_and_other_replies_are_kept() {
    let s = setup(None).await;
    let url = format!("http://{}{INBOUND_PATH}", s.addr);
    let reply = |body: &str, from: &str, sid: &str| {
        params(&[("AccountSid", "AC1"), ("From", from), ("Body", body), ("MessageSid", sid)])
    };
    let hello = reply("Is the sale still on?", "whatsapp:+447911123456", "SM1");
    assert_eq!(post(s.addr, INBOUND_PATH, &hello, None).await, 403);
    assert!(s.store.list_replies(s.lead, 10).await.expect("replies").is_empty(), "unsigned: nothing kept");
    assert_eq!(post(s.addr, INBOUND_PATH, &hello, Some(&url)).await, 200);
    assert_eq!(post(s.addr, INBOUND_PATH, &hello, Some(&url)).await, 200, "Twilio retried");
    let replies = s.store.list_replies(s.lead, 10).await.expect("replies");
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!((replies[0].body.as_str(), replies[0].channel.as_str()), ("Is the sale still on?", "twilio"));
    assert_eq!(
        post(s.addr, INBOUND_PATH, &reply("hi", "+15550001111", "SM2"), Some(&url)).await,
        200,
        "unknown number"
    );
    assert!(s.store.list_opt_out_records().await.expect("list").is_empty());

    let stop = reply("  stop ", "whatsapp:+447911123456", "SM3");
    let mut unsigned_stop = stop.clone();
    unsigned_stop.push(("Extra".into(), "x".into()));
    let good = signature(TOKEN, &url, &stop);
    let answer = reqwest::Client::new()
        .post(&url)
        .form(&unsigned_stop)
        .header("X-Twilio-Signature", good)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status().as_u16(), 403);
    assert!(s.store.list_opt_out_records().await.expect("list").is_empty(), "a forged STOP opts nobody out");
    assert_eq!(post(s.addr, INBOUND_PATH, &stop, Some(&url)).await, 200);
    let records = s.store.list_opt_out_records().await.expect("list");
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].lead_id, records[0].source.as_deref()), (s.lead, Some("reply via twilio")));
    assert_eq!(s.store.list_replies(s.lead, 10).await.expect("replies").len(), 1, "a stop word is not a reply");
    assert_eq!(post(s.addr, INBOUND_PATH, &reply("PARAR", "+447911123456", "SM4"), Some(&url)).await, 200);
}
