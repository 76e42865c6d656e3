use super::fake::FakeWaClient;
use super::supervisor::{RestartPolicy, Supervisor};
use super::*;
use crate::engine::campaign::{NewCampaign, NewLog, SendIds, send_id};
use crate::engine::pipeline::worker::shutdown_signal;
use crate::engine::store::campaigns::CampaignStore;
use crate::engine::store::sqlite::SqliteStore;
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
}

#[test]
fn e164_numbers_become_jids_and_back() {
    assert_eq!(jid_for("+447911123456").as_deref(), Ok("447911123456@s.whatsapp.net"));
    assert_eq!(jid_for("+44 7911 123-456").as_deref(), Ok("447911123456@s.whatsapp.net"));
    for bad in ["447911123456", "+44abc", "+0123456789", "+123", ""] {
        assert!(jid_for(bad).is_err(), "{bad}");
    }
    assert_eq!(phone_of_jid("447911123456@s.whatsapp.net").as_deref(), Some("+447911123456"));
    assert_eq!(phone_of_jid("447911123456:7@s.whatsapp.net").as_deref(), Some("+447911123456"));
    assert_eq!(phone_of_jid("abc@lid"), None);
}

#[test]
fn events_map_to_channel_states() {
    let now = at("2026-03-02T10:00:00Z");
    let qr = WaEvent::Qr { payload: "2@abc".into(), valid_for: Duration::from_secs(20) };
    assert_eq!(state_after(&qr, now), Some(ChannelState::PairingNeeded { qr: Some("2@abc".into()) }));
    assert_eq!(state_after(&WaEvent::Connecting, now), Some(ChannelState::Connecting));
    assert_eq!(state_after(&WaEvent::Connected, now), Some(ChannelState::Connected { phone: None }));
    let paired = WaEvent::PairSuccess { jid: "447911123456:3@s.whatsapp.net".into() };
    assert_eq!(state_after(&paired, now), Some(ChannelState::Connected { phone: Some("+447911123456".into()) }));
    assert!(matches!(state_after(&WaEvent::LoggedOut, now), Some(ChannelState::LoggedOut { .. })));
    assert!(
        matches!(state_after(&WaEvent::StreamReplaced, now), Some(ChannelState::LoggedOut { reason }) if reason.contains("replaced"))
    );
    let ban = WaEvent::TemporaryBan { expires_in: Duration::from_secs(3600), code: "x".into() };
    let banned = state_after(&ban, now).expect("a state");
    assert_eq!(banned, ChannelState::TemporarilyBanned { until: at("2026-03-02T11:00:00Z") });
    assert_eq!(banned.pause(now), Some(Duration::from_secs(3600)));
    assert_eq!(banned.pause(at("2026-03-02T11:00:01Z")), None, "a ban that ended pauses nothing");
    assert!(matches!(
        state_after(&WaEvent::ConnectFailure("503".into()), now),
        Some(ChannelState::Disconnected { .. })
    ));
    let receipt = WaEvent::Receipt(WaReceipt { chat: "c".into(), message_ids: vec![], kind: ReceiptKind::Read });
    assert_eq!(state_after(&receipt, now), None);
    // States travel through the store as JSON.
    let json = serde_json::to_value(&banned).expect("json");
    assert_eq!(json, serde_json::json!({"state": "temporarily_banned", "until": "2026-03-02T11:00:00Z"}));
    assert_eq!(serde_json::from_value::<ChannelState>(json).expect("back"), banned);
    assert_eq!(ChannelState::Connected { phone: None }.pause(now), None);
    assert!(ChannelState::LoggedOut { reason: "x".into() }.pause(now).is_some());
}

#[test]
fn receipts_map_to_statuses() {
    assert_eq!(receipt_status(&ReceiptKind::Delivered), Some(SendStatus::Delivered));
    assert_eq!(receipt_status(&ReceiptKind::Other("delivery".into())), Some(SendStatus::Delivered));
    assert_eq!(receipt_status(&ReceiptKind::Read), Some(SendStatus::Read));
    assert_eq!(receipt_status(&ReceiptKind::Played), Some(SendStatus::Read));
    assert_eq!(receipt_status(&ReceiptKind::Other("sender".into())), None);
}

#[test]
fn a_receipt_moves_its_message_and_the_chats_earlier_ones_of_the_campaign() {
    let t = ReceiptTracker::default();
    t.record("a@s.whatsapp.net", "m1", "s1", Some(1));
    t.record("a@s.whatsapp.net", "m2", "s2", Some(2));
    t.record("a@s.whatsapp.net", "m3", "s3", Some(1));
    t.record("a@s.whatsapp.net", "m4", "s4", Some(1));
    t.record("b@s.whatsapp.net", "m5", "s5", Some(1));
    // Receipts name message ids; the chat they arrive in (a LID, say) does not matter.
    let read = WaReceipt { chat: "123@lid".into(), message_ids: vec!["m3".into()], kind: ReceiptKind::Read };
    let moved: Vec<(String, SendStatus)> = t.updates_for(&read).into_iter().map(|u| (u.send_id, u.status)).collect();
    assert_eq!(moved, [("s1".to_string(), SendStatus::Read), ("s3".to_string(), SendStatus::Read)]);
    let unknown = WaReceipt { chat: "x".into(), message_ids: vec!["zz".into()], kind: ReceiptKind::Read };
    assert!(t.updates_for(&unknown).is_empty());
    let other =
        WaReceipt { chat: "x".into(), message_ids: vec!["m4".into()], kind: ReceiptKind::Other("sender".into()) };
    assert!(t.updates_for(&other).is_empty(), "not a status we track");
    let delivered =
        WaReceipt { chat: "x".into(), message_ids: vec!["m2".into()], kind: ReceiptKind::Other("delivery".into()) };
    let moved: Vec<String> = t.updates_for(&delivered).into_iter().map(|u| u.send_id).collect();
    assert_eq!(moved, ["s2"], "only its own campaign");
}

fn msg(send_id: &str, to: &str) -> OutboundMessage {
    OutboundMessage {
        send_id: send_id.into(),
        to: to.into(),
        body: "Hi".into(),
        callback_url: None,
        campaign_id: Some(1),
        timezone: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_that_gets_no_answer_is_ambiguous_and_is_not_retried() {
    let fake = Arc::new(FakeWaClient::connected());
    fake.hang_sends(true);
    let settings = WaSettings { check_on_whatsapp: false, send_timeout: Duration::from_secs(5) };
    let channel = WhatsAppChannel::new("wa", fake.clone(), settings);
    let err = channel.send(&msg("s1", "+447911123456")).await.expect_err("no answer");
    assert!(matches!(err, ChannelError::Ambiguous(_)), "{err:?}");
    assert!(!err.is_retryable(), "an ambiguous send is never retried");
    fake.hang_sends(false);
    fake.fail_sends(Some(WaSendError::Ambiguous("connection dropped mid-send".into())));
    assert!(matches!(channel.send(&msg("s2", "+447911123456")).await, Err(ChannelError::Ambiguous(_))));
    fake.fail_sends(Some(WaSendError::NotSent("not connected".into())));
    assert!(matches!(channel.send(&msg("s3", "+447911123456")).await, Err(ChannelError::Transient(_))));
    assert!(matches!(channel.lookup("s1").await, Err(ChannelError::Permanent(_))), "no idempotency key");
}

#[tokio::test]
async fn numbers_not_on_whatsapp_are_skipped_and_asked_about_once() {
    let fake = Arc::new(FakeWaClient::connected());
    fake.not_on_whatsapp("+447911000002");
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    let sent = channel.send(&msg("s1", "+447911000001")).await.expect("sent");
    assert_eq!(sent.provider_message_id, "wa-1");
    assert_eq!(channel.send(&msg("s2", "+447911000002")).await, Err(ChannelError::Skipped(NOT_ON_WHATSAPP.into())));
    channel.send(&msg("s3", "+447911000001")).await.expect("sent again");
    assert_eq!(fake.checks(), 2, "each number is asked about once");
    assert_eq!(fake.sent().iter().map(|(j, _)| j.as_str()).collect::<Vec<_>>(), ["447911000001@s.whatsapp.net"; 2]);
    assert!(matches!(channel.send(&msg("s4", "07911")).await, Err(ChannelError::Permanent(_))));
}

#[tokio::test(start_paused = true)]
async fn a_logged_out_or_banned_account_is_paused_and_calls_nothing() {
    let fake = Arc::new(FakeWaClient::connected());
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    *channel.state_cell().lock().expect("lock") = ChannelState::LoggedOut { reason: "unlinked".into() };
    assert!(channel.paused_for().is_some());
    assert!(matches!(channel.send(&msg("s1", "+447911000001")).await, Err(ChannelError::Paused { .. })));
    let until = Utc::now() + chrono::Duration::hours(2);
    *channel.state_cell().lock().expect("lock") = ChannelState::TemporarilyBanned { until };
    let pause = channel.paused_for().expect("paused");
    assert!(pause > Duration::from_secs(7100) && pause <= Duration::from_secs(7200), "{pause:?}");
    assert!(fake.sent().is_empty() && fake.checks() == 0);
}

#[test]
fn restart_delays_grow_jittered_and_capped() {
    let policy = RestartPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(60) };
    let mut rng = SmallRng::seed_from_u64(3);
    for n in 0..12u32 {
        let ceiling = Duration::from_secs(1u64 << n.min(6)).min(Duration::from_secs(60));
        let d = policy.delay(n, &mut rng);
        assert!(d >= ceiling / 2 && d <= ceiling, "restart {n}: {d:?} not in [{:?}, {ceiling:?}]", ceiling / 2);
    }
}

async fn store() -> (tempfile::TempDir, Arc<dyn CampaignStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("crm.db")).await.expect("store");
    (dir, Arc::new(store))
}

/// A draft campaign on account `wa` with pending logs for `leads`; its id.
async fn campaign_on_wa(store: &dyn CampaignStore, leads: &[i64]) -> i64 {
    let new = NewCampaign {
        name: "wa".into(),
        segment_id: 1,
        message_template: "Hi".into(),
        channel: "wa".into(),
        created_by: None,
        send_ids: SendIds::Hashed,
    };
    let c = store.create_campaign(new).await.expect("campaign").id;
    let logs: Vec<NewLog> =
        leads.iter().map(|&l| NewLog { send_id: send_id(c, l), lead_id: l, skip_reason: None }).collect();
    store.insert_logs(c, "wa", &logs).await.expect("logs");
    c
}

async fn wait_for(mut ok: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition never held");
}

#[tokio::test(start_paused = true)]
async fn the_supervisor_restarts_a_stopped_client_with_backoff_and_records_its_state() {
    let (_dir, store) = store().await;
    let fake = Arc::new(FakeWaClient::connected());
    fake.script(vec![WaEvent::Connecting, WaEvent::ConnectFailure("unreachable".into())], Err("dial failed".into()));
    fake.script(vec![WaEvent::Connecting], Err("dial failed".into()));
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    let mut sup = Supervisor::for_channel("wa", &channel, store.clone());
    sup.restart = RestartPolicy { base: Duration::from_secs(10), cap: Duration::from_secs(15) };
    let (trigger, shutdown) = shutdown_signal();
    let task = tokio::spawn(sup.run(shutdown));
    wait_for(|| fake.runs.load(std::sync::atomic::Ordering::SeqCst) >= 3).await;
    wait_for(|| matches!(channel.state(), ChannelState::Connected { .. })).await;
    let times = fake.run_times.lock().expect("lock").clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_secs(5) && gaps[0] <= Duration::from_secs(11), "first restart: {gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(7500) && gaps[1] <= Duration::from_secs(16), "capped: {gaps:?}");
    // Any process reads the state from the store.
    let states = store.channel_states().await.expect("states");
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].state, serde_json::json!({"state": "connected"}));
    trigger.trigger();
    task.await.expect("stops on shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_ban_pauses_the_account_and_the_client_waits_it_out() {
    let (_dir, store) = store().await;
    let fake = Arc::new(FakeWaClient::connected());
    let ban = WaEvent::TemporaryBan { expires_in: Duration::from_secs(3600), code: "spam".into() };
    fake.script(vec![WaEvent::Connected, ban], Ok(()));
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    let sup = Supervisor::for_channel("wa", &channel, store.clone());
    let (trigger, shutdown) = shutdown_signal();
    let task = tokio::spawn(sup.run(shutdown));
    wait_for(|| matches!(channel.state(), ChannelState::TemporarilyBanned { .. })).await;
    assert!(channel.paused_for().is_some(), "sends are paused");
    let stored = store.channel_states().await.expect("states");
    assert_eq!(stored[0].state["state"], "temporarily_banned");
    tokio::time::sleep(Duration::from_secs(1800)).await;
    assert_eq!(fake.runs.load(std::sync::atomic::Ordering::SeqCst), 1, "no reconnect into the ban");
    // wait_for sleeps on tokio's clock, which only moves while the ban's wall-clock end is
    // still ahead; the restart comes once the supervisor's sleep ends.
    tokio::time::sleep(Duration::from_secs(1900)).await;
    wait_for(|| fake.runs.load(std::sync::atomic::Ordering::SeqCst) >= 2).await;
    trigger.trigger();
    task.await.expect("stops");
}

#[tokio::test(start_paused = true)]
async fn a_logged_out_session_is_not_reconnected() {
    let (_dir, store) = store().await;
    let fake = Arc::new(FakeWaClient::connected());
    fake.script(vec![WaEvent::Connected, WaEvent::StreamReplaced], Ok(()));
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    let sup = Supervisor::for_channel("wa", &channel, store.clone());
    let (trigger, shutdown) = shutdown_signal();
    let task = tokio::spawn(sup.run(shutdown));
    wait_for(|| matches!(channel.state(), ChannelState::LoggedOut { .. })).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(channel.paused_for().is_some());
    trigger.trigger();
    task.await.expect("stops");
}

/// A campaign sent through a fake WhatsApp account by the real sender, end to end in process:
/// JIDs, message ids recorded, a not-on-WhatsApp lead skipped, receipts applied by message id
/// (a read for the last message moves the chat's earlier one too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_goes_out_through_a_fake_whatsapp_account() {
    use crate::engine::bus::{self, Bus, Outgoing, topic};
    use crate::engine::campaign::{CampaignStatus, SendJob, SendStatus as S};
    use crate::engine::channel::ChannelRegistry;
    use crate::engine::channel::whatsapp::account::WaAccountConfig;
    use crate::engine::pipeline::limits::SenderPolicy;
    use crate::engine::pipeline::sender::{SenderConfig, run_sender};
    use crate::engine::store::campaigns::LogQuery;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crm.db");
    let url = path.to_str().expect("utf-8 path");
    let opened = crate::engine::store::OpenedStore::open(url, crate::engine::store::Access::CreateIfMissing)
        .await
        .expect("store");
    let store = opened.campaigns.clone();
    let bus: Arc<dyn Bus> = bus::open("embedded", &opened).await.expect("bus");
    let leads = [1, 2, 3];
    let c = campaign_on_wa(store.as_ref(), &leads).await;
    store.start_campaign(c, 3).await.expect("start");
    let jobs: Vec<Outgoing> = leads
        .iter()
        .map(|&l| {
            let job = SendJob {
                send_id: send_id(c, l),
                campaign_id: c,
                lead_id: l,
                to: format!("+44791100000{l}"),
                message: format!("Hi {l}"),
                attempt: 1,
                timezone: None,
            };
            Outgoing::new(Some(&job.send_id), serde_json::to_vec(&job).expect("json"))
        })
        .collect();
    bus.publish_batch(topic::SEND_JOBS, jobs).await.expect("publish");

    let fake = Arc::new(FakeWaClient::connected());
    fake.not_on_whatsapp("+447911000002");
    let mut registry = ChannelRegistry::default();
    let wa = WaAccountConfig {
        settings: WaSettings::default(),
        policy: SenderPolicy { rate_per_minute: None, ..SenderPolicy::default() },
        session_dir: dir.path().join("wa"),
    };
    let channel = registry.insert_whatsapp("wa", fake.clone(), wa);
    let sup = Supervisor::for_channel("wa", &channel, store.clone());
    let (trigger, shutdown) = shutdown_signal();
    let supervised = tokio::spawn(sup.run(shutdown.clone()));
    let sender = tokio::spawn(run_sender(store.clone(), bus.clone(), registry, SenderConfig::default(), shutdown));
    let status = |lead: i64| {
        let store = store.clone();
        async move { store.log_status(&send_id(c, lead)).await.expect("status") }
    };
    for _ in 0..500 {
        if status(1).await == Some(S::Sent) && status(3).await == Some(S::Sent) && status(2).await == Some(S::Skipped) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((status(1).await, status(2).await, status(3).await), (Some(S::Sent), Some(S::Skipped), Some(S::Sent)));
    let sent = fake.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|(jid, _)| jid.ends_with("@s.whatsapp.net")));
    let logs = store.list_logs(&LogQuery { campaign: Some(c), limit: 10, ..LogQuery::default() }).await.expect("logs");
    let skipped = logs.iter().find(|l| l.lead_id == 2).expect("lead 2");
    assert_eq!(skipped.error_message.as_deref(), Some(NOT_ON_WHATSAPP));
    let ids: Vec<String> = logs.iter().filter_map(|l| l.provider_message_id.clone()).collect();
    assert_eq!(ids.len(), 2, "message ids recorded: {logs:?}");
    // Lead 1 and 3 are different chats; a read for each moves each.
    let tracker = channel.tracker();
    for id in &ids {
        let receipt = WaReceipt { chat: "x".into(), message_ids: vec![id.clone()], kind: ReceiptKind::Read };
        store.apply_log_updates(&tracker.updates_for(&receipt)).await.expect("apply");
    }
    assert_eq!((status(1).await, status(3).await), (Some(S::Read), Some(S::Read)));
    assert_eq!(store.campaign_status(c).await.expect("status"), Some(CampaignStatus::Running));
    trigger.trigger();
    sender.await.expect("join").expect("sender");
    supervised.await.expect("supervisor");
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_send_through_the_sender_is_uncertain_and_sent_once() {
    use crate::engine::pipeline::limits::{Gate, LimitError, Limits, SenderPolicy};
    let fake = Arc::new(FakeWaClient::connected());
    fake.hang_sends(true);
    let settings = WaSettings { check_on_whatsapp: false, send_timeout: Duration::from_secs(2) };
    let channel = WhatsAppChannel::new("wa", fake.clone(), settings);
    let limits = Limits::new(&SenderPolicy { rate_per_minute: None, ..SenderPolicy::default() });
    let (_t, mut shutdown) = shutdown_signal();
    let result = limits.send(&channel, &msg("s1", "+447911000001"), &mut shutdown, async { Gate::Go }).await;
    let Err(LimitError::Channel(err)) = result else { panic!("{result:?}") };
    let mut rng = SmallRng::seed_from_u64(1);
    assert_eq!(limits.retry().delay_after(1, &err, &mut rng), None, "no retry of an ambiguous send");
    assert_eq!(fake.sent().len(), 1);
    // A paused account opens the circuit at once; the channel is not called.
    *channel.state_cell().lock().expect("lock") = ChannelState::LoggedOut { reason: "unlinked".into() };
    let result = limits.send(&channel, &msg("s2", "+447911000001"), &mut shutdown, async { Gate::Go }).await;
    assert!(matches!(result, Err(LimitError::CircuitOpen(_))), "{result:?}");
    assert_eq!(fake.sent().len(), 1);
}

/// Leads' WhatsApp messages go through the same reply handling as Twilio's webhook: a stop word
/// opts the lead out (source `reply via wa`), other text is kept once per message id, and a
/// hidden (`@lid`) or unknown sender changes nothing.
#[tokio::test(start_paused = true)]
async fn whatsapp_replies_opt_out_on_stop_and_are_kept_otherwise() {
    use crate::engine::lead::LeadDraft;
    use crate::engine::pipeline::replies::ReplyHandler;
    use crate::engine::store::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("crm.db")).await.expect("store"));
    let draft = |phone: &str| LeadDraft { phones: vec![phone.into()], ..LeadDraft::default() };
    let ann = sqlite.add_lead(draft("+447911000001")).await.expect("lead").id;
    let bob = sqlite.add_lead(draft("+447911000002")).await.expect("lead").id;
    let inbound = |from: &str, text: &str, id: &str| {
        WaEvent::Inbound(WaInbound {
            from: from.into(),
            text: text.into(),
            id: id.into(),
            at: at("2026-03-02T10:00:00Z"),
        })
    };
    let fake = Arc::new(FakeWaClient::connected());
    fake.script(
        vec![
            WaEvent::Connected,
            inbound("447911000002@s.whatsapp.net", " Stop! ", "m1"),
            inbound("447911000001:3@s.whatsapp.net", "Is it still on sale?", "m2"),
            inbound("447911000001@s.whatsapp.net", "Is it still on sale?", "m2"),
            inbound("1234567890@lid", "STOP", "m3"),
            inbound("447000000000@s.whatsapp.net", "stop", "m4"),
        ],
        Ok(()),
    );
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    let store: Arc<dyn CampaignStore> = sqlite.clone();
    let replies = ReplyHandler { leads: sqlite.clone(), store: store.clone(), stop_words: vec!["STOP".into()] };
    let sup = Supervisor::for_channel("wa", &channel, store.clone()).with_replies(replies);
    let (trigger, shutdown) = shutdown_signal();
    let task = tokio::spawn(sup.run(shutdown));
    wait_for(|| fake.runs.load(std::sync::atomic::Ordering::SeqCst) >= 2).await;
    trigger.trigger();
    task.await.expect("stops");
    let opted: Vec<(i64, Option<String>)> =
        store.list_opt_out_records().await.expect("opt-outs").into_iter().map(|r| (r.lead_id, r.source)).collect();
    assert_eq!(opted, [(bob, Some("reply via wa".to_string()))]);
    let kept = store.list_replies(ann, 10).await.expect("replies");
    assert_eq!(kept.len(), 1, "kept once: {kept:?}");
    assert_eq!((kept[0].body.as_str(), kept[0].channel.as_str()), ("Is it still on sale?", "wa"));
    assert_eq!(kept[0].provider_message_id.as_deref(), Some("m2"));
    assert!(store.list_replies(bob, 10).await.expect("replies").is_empty(), "a stop word is not a reply");
}

/// Receipts for messages this process did not send (sent before a restart) find their logs in
/// the store by WhatsApp message id; ids the store does not know change nothing. A connect is
/// noted in the session directory, and the number paired earlier is kept in the state.
#[tokio::test(start_paused = true)]
async fn receipts_for_messages_sent_before_a_restart_move_their_logs() {
    use crate::engine::campaign::SendStatus as S;
    use crate::engine::store::campaigns::LogUpdate;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn CampaignStore> = Arc::new(SqliteStore::open(&dir.path().join("crm.db")).await.expect("store"));
    let c = campaign_on_wa(store.as_ref(), &[1, 2]).await;
    // Sent by an earlier process: the store knows the message ids, this tracker does not.
    let sent = |lead: i64, mid: &str| LogUpdate {
        find_by_provider_id: true,
        send_id: send_id(c, lead),
        status: S::Sent,
        provider_message_id: Some(mid.into()),
        error: None,
    };
    store.apply_log_updates(&[sent(1, "3EB0AA"), sent(2, "3EB0BB")]).await.expect("sent");
    let receipt = |ids: &[&str], kind: ReceiptKind| {
        WaEvent::Receipt(WaReceipt {
            chat: "447911000001@s.whatsapp.net".into(),
            message_ids: ids.iter().map(|s| s.to_string()).collect(),
            kind,
        })
    };
    let fake = Arc::new(FakeWaClient::connected());
    fake.script(
        vec![
            WaEvent::Connected,
            receipt(&["3EB0AA", "UNKNOWN"], ReceiptKind::Other("delivery".into())),
            receipt(&["3EB0BB"], ReceiptKind::Read),
        ],
        Ok(()),
    );
    let channel = WhatsAppChannel::new("wa", fake.clone(), WaSettings::default());
    let session_dir = dir.path().join("wa");
    super::session::note_connected(&session_dir, Some("+447911999999"), at("2026-03-01T10:00:00Z")).expect("paired");
    let sup = Supervisor::for_channel("wa", &channel, store.clone()).with_session_dir(session_dir.clone());
    let (trigger, shutdown) = shutdown_signal();
    let task = tokio::spawn(sup.run(shutdown));
    wait_for(|| fake.runs.load(std::sync::atomic::Ordering::SeqCst) >= 2).await;
    // The restarted client connects without naming its number: the paired one is kept.
    wait_for(|| channel.state() == ChannelState::Connected { phone: Some("+447911999999".into()) }).await;
    trigger.trigger();
    task.await.expect("stops");
    let info = super::session::read_info(&session_dir);
    assert_eq!(info.phone.as_deref(), Some("+447911999999"));
    assert!(info.last_connected > Some(at("2026-03-02T00:00:00Z")), "{info:?}");
    assert_eq!(store.log_status(&send_id(c, 1)).await.expect("status"), Some(S::Delivered));
    assert_eq!(store.log_status(&send_id(c, 2)).await.expect("status"), Some(S::Read));
}
