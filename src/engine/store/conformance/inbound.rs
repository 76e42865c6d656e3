//! What arrives from outside besides receipts: a vendor's status callback names a log by the
//! vendor's message id, a failed-over message records the account it really left through,
//! opt-outs keep their source, and replies are a lead's history (stored once per vendor id).

use super::*;
use crate::engine::campaign::SendStatus;
use crate::engine::store::campaigns::{LogUpdate, OptOutRecord, Reply};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

/// `log_by_provider_id` finds the log a send recorded the vendor's id on (None for ids never
/// recorded); `set_log_channel` moves only a `sending` log to another account, and
/// `sent_by_channel` counts sent logs by the account they name.
pub async fn logs_by_provider_id_and_failover_channel(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Inbound", 1).await.id;
    let ids = insert_pending(store.as_ref(), c, &[1, 2]).await;
    assert_eq!(store.log_by_provider_id("SM1").await.unwrap(), None);
    assert!(!store.set_log_channel(&ids[0], "twilio").await.unwrap(), "a pending log is not moved");
    assert_eq!(claim_words(&store.claim_logs(&ids, LEASE).await.unwrap()), ["claimed 1", "claimed 1"]);
    assert!(store.set_log_channel(&ids[0], "twilio").await.unwrap());
    let sent = |id: &String, pid: &str| LogUpdate {
        find_by_provider_id: true,
        send_id: id.clone(),
        status: SendStatus::Sent,
        provider_message_id: Some(pid.into()),
        error: None,
    };
    store.apply_log_updates(&[sent(&ids[0], "SM1"), sent(&ids[1], "m-2")]).await.unwrap();
    assert!(!store.set_log_channel(&ids[1], "twilio").await.unwrap(), "a sent log is not moved");
    let found = store.log_by_provider_id("SM1").await.unwrap().unwrap();
    assert_eq!(
        (found.send_id.as_str(), found.channel.as_str(), found.status, found.lead_id),
        (ids[0].as_str(), "twilio", SendStatus::Sent, 1)
    );
    let other = store.log_by_provider_id("m-2").await.unwrap().unwrap();
    assert_eq!((other.send_id.as_str(), other.channel.as_str()), (ids[1].as_str(), "sim"));
    assert_eq!(store.log_by_provider_id("sm1").await.unwrap(), None, "ids are compared exactly");
    let (_, other_handle) = f.open().await;
    assert_eq!(other_handle.log_by_provider_id("SM1").await.unwrap(), Some(found));
    let by = |pairs: &[(&str, u64)]| pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect::<Vec<_>>();
    assert_eq!(store.sent_by_channel(c).await.unwrap(), by(&[("sim", 1), ("twilio", 1)]));
    let delivered = LogUpdate { status: SendStatus::Delivered, provider_message_id: None, ..sent(&ids[0], "x") };
    store.apply_log_updates(&[delivered]).await.unwrap();
    let failed = LogUpdate { status: SendStatus::Failed, provider_message_id: None, ..sent(&ids[1], "x") };
    store.apply_log_updates(&[failed]).await.unwrap();
    assert_eq!(store.sent_by_channel(c).await.unwrap(), by(&[("twilio", 1)]), "delivered counts, failed does not");
    assert!(store.sent_by_channel(c + 1000).await.unwrap().is_empty());
}

/// `sent_since` counts an account's messages that left (or may have: uncertain) over all
/// campaigns since a time; pending, failed and other accounts' logs do not count.
pub async fn sent_since_counts_an_accounts_messages_over_campaigns(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let before = Utc::now() - chrono::Duration::seconds(5);
    let mut all = Vec::new();
    for name in ["Cap A", "Cap B"] {
        let c = new_campaign(store.as_ref(), name, 1).await.id;
        let logs = logs_for(c, &[1, 2, 3]);
        store.insert_logs(c, "wa", &logs).await.unwrap();
        all.extend(send_ids(&logs));
    }
    let other = new_campaign(store.as_ref(), "Cap other", 1).await.id;
    let other_logs = logs_for(other, &[1]);
    store.insert_logs(other, "twilio", &other_logs).await.unwrap();
    assert_eq!(store.sent_since("wa", before).await.unwrap(), 0);
    store.claim_logs(&all, LEASE).await.unwrap();
    store.claim_logs(&send_ids(&other_logs), LEASE).await.unwrap();
    let update = |id: &String, status: SendStatus| LogUpdate {
        find_by_provider_id: true,
        send_id: id.clone(),
        status,
        provider_message_id: None,
        error: None,
    };
    store
        .apply_log_updates(&[
            update(&all[0], SendStatus::Sent),
            update(&all[1], SendStatus::Delivered),
            update(&all[3], SendStatus::Failed),
            update(&all[4], SendStatus::Read),
            update(&all[5], SendStatus::Uncertain),
            update(&send_ids(&other_logs)[0], SendStatus::Sent),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.sent_since("wa", before).await.unwrap(),
        4,
        "sent, delivered, read and uncertain; failed and pending not"
    );
    assert_eq!(store.sent_since("twilio", before).await.unwrap(), 1);
    assert_eq!(
        store.sent_since("wa", Utc::now() + chrono::Duration::seconds(60)).await.unwrap(),
        0,
        "only since the time"
    );
}

/// `opt_out_via` records the source of the first opt-out; plain `opt_out` records none; both
/// show in `list_opt_out_records` (by lead) and in `list_opt_outs`.
pub async fn opt_outs_record_their_source(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let a = leads.add_lead(person("A", &["a@example.com"], &[])).await.unwrap().id;
    let b = leads.add_lead(person("B", &["b@example.com"], &[])).await.unwrap().id;
    assert!(store.list_opt_out_records().await.unwrap().is_empty());
    let before = wall_ms();
    assert!(store.opt_out_via(b, "reply via twilio").await.unwrap());
    assert!(!store.opt_out_via(b, "manual").await.unwrap(), "already opted out: the first source stays");
    assert!(store.opt_out(a).await.unwrap());
    let after = wall_ms();
    let records = store.list_opt_out_records().await.unwrap();
    let shown: Vec<(LeadId, Option<&str>)> = records.iter().map(|r| (r.lead_id, r.source.as_deref())).collect();
    assert_eq!(shown, [(a, None), (b, Some("reply via twilio"))]);
    for r in &records {
        assert_between(r.at, before, after);
    }
    let plain: Vec<LeadId> = store.list_opt_outs().await.unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(plain, [a, b]);
    assert!(store.opt_in(b).await.unwrap());
    assert!(store.opt_out_via(b, "manual").await.unwrap());
    let again = store.list_opt_out_records().await.unwrap();
    assert_eq!(again.last().map(|r: &OptOutRecord| r.source.as_deref()), Some(Some("manual")));
    let audience = store.audience_leads(&[b]).await.unwrap();
    assert!(audience[0].opted_out, "a sourced opt-out is an opt-out");
}

/// Replies are kept per lead, newest first, at most `limit`; a reply with a vendor id already
/// stored is not stored again (false); replies without a vendor id are always stored.
pub async fn replies_are_kept_once_newest_first(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let reply = |lead, body: &str, at_text: &str, pid: Option<&str>| Reply {
        lead_id: lead,
        channel: "twilio".into(),
        body: body.into(),
        received_at: at(at_text),
        provider_message_id: pid.map(str::to_string),
    };
    let first = reply(7, "Is it still on?", "2024-06-15T10:00:00Z", Some("SM-a"));
    let second = reply(7, "Thanks!", "2024-06-15T11:00:00Z", Some("SM-b"));
    let other = reply(8, "Who is this?", "2024-06-15T10:30:00Z", None);
    assert!(store.list_replies(7, 10).await.unwrap().is_empty());
    assert!(store.add_reply(&first).await.unwrap());
    assert!(store.add_reply(&second).await.unwrap());
    assert!(store.add_reply(&other).await.unwrap());
    assert!(!store.add_reply(&first).await.unwrap(), "a retried webhook");
    assert!(store.add_reply(&other).await.unwrap(), "no vendor id: nothing to dedupe on");
    assert_eq!(store.list_replies(7, 10).await.unwrap(), [second.clone(), first.clone()]);
    assert_eq!(store.list_replies(7, 1).await.unwrap(), [second]);
    assert_eq!(store.list_replies(8, 10).await.unwrap(), [other.clone(), other]);
    assert!(store.list_replies(9, 10).await.unwrap().is_empty());
}
