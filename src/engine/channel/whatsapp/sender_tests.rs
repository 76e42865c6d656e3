//! The WhatsApp channel under the real sender, in process over a SQLite store and the embedded
//! bus: failover to Twilio while the account is banned, and the two ambiguous outcomes (a send
//! that times out after it left, a worker that died between the send and its record), which
//! must leave the log UNCERTAIN and never send twice.

use super::account::WaAccountConfig;
use super::fake::FakeWaClient;
use super::*;
use crate::engine::bus::{self, Bus, Outgoing, topic};
use crate::engine::campaign::{CampaignId, NewCampaign, NewLog, SendIds, SendJob, SendStatus, send_id};
use crate::engine::channel::registry::{ChannelAccount, ChannelRegistry};
use crate::engine::channel::twilio::TwilioChannel;
use crate::engine::config::ChannelKind;
use crate::engine::pipeline::limits::SenderPolicy;
use crate::engine::pipeline::sender::{SenderConfig, run_sender};
use crate::engine::pipeline::worker::shutdown_signal;
use crate::engine::store::campaigns::{CampaignStore, Claim, LogQuery};

/// A store and bus in a temp dir, with a RUNNING campaign on `channel` for leads 1..=n whose
/// send jobs are published (`+44791100000N`).
struct Pipeline {
    dir: tempfile::TempDir,
    store: Arc<dyn CampaignStore>,
    bus: Arc<dyn Bus>,
    campaign: CampaignId,
    jobs: Vec<SendJob>,
}

impl Pipeline {
    async fn new(channel: &str, n: i64) -> Pipeline {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = dir.path().join("crm.db");
        let opened = crate::engine::store::OpenedStore::open(
            url.to_str().expect("utf-8 path"),
            crate::engine::store::Access::CreateIfMissing,
        )
        .await
        .expect("store");
        let store = opened.campaigns.clone();
        let bus: Arc<dyn Bus> = bus::open("embedded", &opened).await.expect("bus");
        let new = NewCampaign {
            name: "wa".into(),
            segment_id: 1,
            message_template: "Hi".into(),
            channel: channel.into(),
            created_by: None,
            send_ids: SendIds::Hashed,
        };
        let campaign = store.create_campaign(new).await.expect("campaign").id;
        let leads: Vec<i64> = (1..=n).collect();
        let logs: Vec<NewLog> =
            leads.iter().map(|&l| NewLog { send_id: send_id(campaign, l), lead_id: l, skip_reason: None }).collect();
        store.insert_logs(campaign, channel, &logs).await.expect("logs");
        store.start_campaign(campaign, n as u64).await.expect("start");
        let jobs: Vec<SendJob> = leads
            .iter()
            .map(|&l| SendJob {
                send_id: send_id(campaign, l),
                campaign_id: campaign,
                lead_id: l,
                to: format!("+44791100000{l}"),
                message: format!("Hi {l}"),
                attempt: 1,
                timezone: None,
            })
            .collect();
        Pipeline { dir, store, bus, campaign, jobs }
    }

    async fn publish(&self) {
        let outgoing: Vec<Outgoing> = self
            .jobs
            .iter()
            .map(|job| Outgoing::new(Some(&job.send_id), serde_json::to_vec(job).expect("json")))
            .collect();
        self.bus.publish_batch(topic::SEND_JOBS, outgoing).await.expect("publish");
    }

    fn wa_account(&self, settings: WaSettings) -> WaAccountConfig {
        WaAccountConfig { settings, policy: unlimited(), session_dir: self.dir.path().join("wa") }
    }

    async fn status(&self, lead: i64) -> Option<SendStatus> {
        self.store.log_status(&send_id(self.campaign, lead)).await.expect("status")
    }

    /// Runs the sender over `registry` until every log is settled (or 10 s pass), then `linger`
    /// longer (time for a wrong second send to happen), and stops it.
    async fn send_all(&self, registry: ChannelRegistry, linger: Duration) {
        let (trigger, shutdown) = shutdown_signal();
        let config = SenderConfig { lease: Duration::from_millis(300), ..SenderConfig::default() };
        let sender = tokio::spawn(run_sender(self.store.clone(), self.bus.clone(), registry, config, shutdown));
        for _ in 0..500 {
            let mut settled = true;
            for lead in 1..=self.jobs.len() as i64 {
                settled &= self.status(lead).await.is_some_and(SendStatus::is_settled);
            }
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(linger).await;
        trigger.trigger();
        sender.await.expect("join").expect("sender");
    }
}

fn unlimited() -> SenderPolicy {
    SenderPolicy { rate_per_minute: None, ..SenderPolicy::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_whatsapp_banned_every_message_goes_through_the_twilio_fallback() {
    use crate::engine::channel::twilio::tests::{config, fake_twilio};
    let p = Pipeline::new("wa", 3).await;
    p.publish().await;
    let fake = Arc::new(FakeWaClient::connected());
    let mut registry = ChannelRegistry::default();
    let wa = registry.insert_whatsapp("wa", fake.clone(), p.wa_account(WaSettings::default()));
    let until = Utc::now() + chrono::Duration::hours(1);
    *wa.state_cell().lock().expect("lock") = ChannelState::TemporarilyBanned { until };
    let (twilio_fake, url) = fake_twilio().await;
    let twilio = TwilioChannel::new(config(&url, "whatsapp:+14155238886")).expect("twilio");
    registry.insert(ChannelAccount {
        name: "twilio".into(),
        kind: ChannelKind::Twilio,
        channel: Arc::new(twilio),
        policy: unlimited(),
    });
    registry.set_fallback("wa", Some("twilio"));
    p.send_all(registry, Duration::from_millis(100)).await;

    let logs = p.store.list_logs(&LogQuery { campaign: Some(p.campaign), limit: 10, ..LogQuery::default() }).await;
    let logs = logs.expect("logs");
    assert_eq!(logs.len(), 3);
    assert!(logs.iter().all(|l| l.status == SendStatus::Sent && l.channel == "twilio"), "{logs:?}");
    assert!(fake.sent().is_empty() && fake.checks() == 0, "the banned account sent nothing: {:?}", fake.sent());
    assert_eq!(twilio_fake.seen.lock().expect("lock").len(), 3, "each message once through Twilio");
    assert_eq!(p.store.sent_by_channel(p.campaign).await.expect("counts"), [("twilio".to_string(), 3)]);
    // Why the primary waits is on record for `campaigns status`.
    let waits = p.store.account_waits().await.expect("waits");
    let wa_wait = waits.iter().find(|w| w.account == "wa").expect("the banned account's wait");
    assert_eq!(wa_wait.reason, "account_paused", "{wa_wait:?}");
    assert!(wa_wait.detail.contains("temporarily banned until"), "{wa_wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_times_out_after_leaving_is_uncertain_and_never_sent_again() {
    let p = Pipeline::new("wa", 1).await;
    p.publish().await;
    let fake = Arc::new(FakeWaClient::connected());
    fake.hang_sends(true);
    let settings = WaSettings { check_on_whatsapp: false, send_timeout: Duration::from_millis(200) };
    let mut registry = ChannelRegistry::default();
    registry.insert_whatsapp("wa", fake.clone(), p.wa_account(settings));
    p.send_all(registry, Duration::from_secs(1)).await;
    assert_eq!(p.status(1).await, Some(SendStatus::Uncertain));
    assert_eq!(fake.sent().len(), 1, "sent once, never again: {:?}", fake.sent());
    let logs = p.store.list_logs(&LogQuery { campaign: Some(p.campaign), limit: 1, ..LogQuery::default() }).await;
    assert!(logs.expect("logs")[0].error_message.is_some(), "the log says why");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_between_send_and_record_leaves_the_log_uncertain() {
    let p = Pipeline::new("wa", 1).await;
    let fake = Arc::new(FakeWaClient::connected());
    let settings = WaSettings { check_on_whatsapp: false, ..WaSettings::default() };
    // The dead worker: it claimed the log, the message left, and nothing was recorded.
    let id = send_id(p.campaign, 1);
    let claims = p.store.claim_logs(std::slice::from_ref(&id), Duration::from_millis(50)).await.expect("claim");
    assert!(matches!(claims[..], [Claim::Claimed { recovered: false, .. }]), "{claims:?}");
    let dead = WhatsAppChannel::new("wa", fake.clone(), settings.clone());
    let msg = OutboundMessage {
        send_id: id.clone(),
        to: "+447911000001".into(),
        body: "Hi 1".into(),
        callback_url: None,
        campaign_id: Some(p.campaign),
        timezone: None,
    };
    let crashed = tokio::spawn(async move { dead.send(&msg).await });
    assert!(crashed.await.expect("join").is_ok(), "the vendor took it");
    assert_eq!(p.status(1).await, Some(SendStatus::Sending));
    tokio::time::sleep(Duration::from_millis(100)).await; // the lease runs out
    // Its job comes back (the bus redelivers it) to a new worker.
    p.publish().await;
    let mut registry = ChannelRegistry::default();
    registry.insert_whatsapp("wa", fake.clone(), p.wa_account(settings));
    p.send_all(registry, Duration::from_millis(500)).await;
    assert_eq!(p.status(1).await, Some(SendStatus::Uncertain));
    assert_eq!(fake.sent().len(), 1, "never sent a second time: {:?}", fake.sent());
}

/// The daily cap counts the account's sends today from the store: a sender restarted after
/// reaching the cap sends nothing more, even when the held job is published again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sender_keeps_todays_count_under_the_daily_cap() {
    let p = Pipeline::new("wa", 3).await;
    let fake = Arc::new(FakeWaClient::connected());
    let settings = WaSettings { check_on_whatsapp: false, ..WaSettings::default() };
    let capped = || {
        let mut account = p.wa_account(settings.clone());
        account.policy = SenderPolicy { daily_cap: Some(2), ..unlimited() };
        let mut registry = ChannelRegistry::default();
        registry.insert_whatsapp("wa", fake.clone(), account);
        registry
    };
    let run_for = |registry: ChannelRegistry, time: Duration| {
        let (store, bus) = (p.store.clone(), p.bus.clone());
        async move {
            let (trigger, shutdown) = shutdown_signal();
            let sender = tokio::spawn(run_sender(store, bus, registry, SenderConfig::default(), shutdown));
            tokio::time::sleep(time).await;
            trigger.trigger();
            sender.await.expect("join").expect("sender");
        }
    };
    p.publish().await;
    run_for(capped(), Duration::from_millis(1500)).await;
    assert_eq!(fake.sent().len(), 2, "the cap: {:?}", fake.sent());
    // A new process: the held job comes again (an operator's replay, a redelivery).
    p.publish().await;
    run_for(capped(), Duration::from_millis(1500)).await;
    assert_eq!(fake.sent().len(), 2, "still the cap after a restart: {:?}", fake.sent());
    let pending = [p.status(1).await, p.status(2).await, p.status(3).await];
    assert_eq!(pending.iter().filter(|s| **s == Some(SendStatus::Pending)).count(), 1, "{pending:?}");
}
