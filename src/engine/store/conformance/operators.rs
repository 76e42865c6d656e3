//! What an operator decides and sees: resolving messages whose outcome is unknown (UNCERTAIN),
//! by sending them again or marking them sent, and why an account's next send waits.

use super::*;
use crate::engine::campaign::{CampaignStatus, SendStatus};
use crate::engine::store::campaigns::{AccountWait, LogUpdate, Resolution};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn moved(send_id: &str, status: SendStatus) -> LogUpdate {
    LogUpdate {
        find_by_provider_id: true,
        send_id: send_id.into(),
        status,
        provider_message_id: None,
        error: Some("no answer".into()),
    }
}

/// `resolve_uncertain` touches only the campaign's logs that are uncertain now: named ones or
/// all. Mark-sent makes them sent; resend puts them back to pending with a fresh try (claimable
/// again at attempt 1) and reopens a COMPLETED campaign; other logs and campaigns stay as they
/// were, and what it returns is exactly the logs it changed.
pub async fn uncertain_logs_are_resolved_by_an_operator(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Uncertain", 1).await.id;
    let other = new_campaign(store.as_ref(), "Other", 1).await.id;
    let ids = send_ids(&logs_for(c, &[1, 2, 3, 4]));
    let other_id = send_id(other, 1);
    store.start_campaign(c, 4).await.unwrap();
    store.insert_logs(c, "whatsapp", &logs_for(c, &[1, 2, 3, 4])).await.unwrap();
    store.insert_logs(other, "whatsapp", &logs_for(other, &[1])).await.unwrap();
    store.claim_logs(&ids, LEASE).await.unwrap();
    store.claim_logs(std::slice::from_ref(&other_id), LEASE).await.unwrap();
    let updates = [
        moved(&ids[0], SendStatus::Uncertain),
        moved(&ids[1], SendStatus::Uncertain),
        moved(&ids[2], SendStatus::Uncertain),
        moved(&ids[3], SendStatus::Sent),
        moved(&other_id, SendStatus::Uncertain),
    ];
    store.apply_log_updates(&updates).await.unwrap();
    assert_eq!(store.complete_finished_campaigns().await.unwrap(), [c], "uncertain is settled");

    // Named ids: only the uncertain one of this campaign changes.
    let named = [ids[0].clone(), ids[3].clone(), other_id.clone(), "no-such-log".into()];
    let before = wall_ms();
    let sent = store.resolve_uncertain(c, Some(&named[..]), Resolution::MarkSent).await.unwrap();
    assert_eq!(
        sent.iter().map(|l| (l.send_id.as_str(), l.status)).collect::<Vec<_>>(),
        [(ids[0].as_str(), SendStatus::Sent)]
    );
    assert_between(sent[0].updated_at, before, wall_ms());
    assert_eq!(store.log_status(&ids[3]).await.unwrap(), Some(SendStatus::Sent));
    assert_eq!(store.log_status(&other_id).await.unwrap(), Some(SendStatus::Uncertain), "another campaign's");
    assert_eq!(
        store.campaign_status(c).await.unwrap(),
        Some(CampaignStatus::Completed),
        "marking sent reopens nothing"
    );
    let again = store.resolve_uncertain(c, Some(&ids[..1]), Resolution::Resend).await.unwrap();
    assert!(again.is_empty(), "a resolved log is not uncertain any more: {again:?}");

    // All of the campaign's: the two left go back to pending, and the campaign runs again.
    let mut resent = store.resolve_uncertain(c, None, Resolution::Resend).await.unwrap();
    resent.sort_by(|a, b| a.send_id.cmp(&b.send_id));
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(resent.iter().map(|l| l.send_id.clone()).collect::<Vec<_>>(), expected);
    for log in &resent {
        assert_eq!((log.status, log.attempt, log.error_message.as_deref()), (SendStatus::Pending, 0, None), "{log:?}");
        assert_eq!((log.campaign_id, log.channel.as_str()), (c, "whatsapp"));
    }
    assert_eq!(store.campaign_status(c).await.unwrap(), Some(CampaignStatus::Running));
    assert_eq!(claim_words(&store.claim_logs(&ids[1..3], LEASE).await.unwrap()), ["claimed 1", "claimed 1"]);
    assert!(store.complete_finished_campaigns().await.unwrap().is_empty(), "resent logs are being sent");
    assert!(store.resolve_uncertain(c, None, Resolution::MarkSent).await.unwrap().is_empty());

    // The other campaign still has its own, untouched.
    let (_, other_handle) = f.open().await;
    let theirs = other_handle.resolve_uncertain(other, None, Resolution::MarkSent).await.unwrap();
    assert_eq!(theirs.iter().map(|l| (l.lead_id, l.status)).collect::<Vec<_>>(), [(1, SendStatus::Sent)]);
    assert!(store.resolve_uncertain(other + 1000, None, Resolution::Resend).await.unwrap().is_empty());
}

/// `set_account_wait` keeps one row per account, the newest `updated_at` winning (a late write
/// from a stopped sender changes nothing); `account_waits` lists them by account, with every
/// field as written (times to the millisecond), from any handle.
pub async fn account_waits_keep_the_newest_per_account(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    assert!(store.account_waits().await.unwrap().is_empty());
    let wait = |account: &str, next_at: &str, reason: &str, updated_at: &str| AccountWait {
        account: account.into(),
        next_at: at(next_at),
        reason: reason.into(),
        detail: format!("{reason} in words"),
        updated_at: at(updated_at),
    };
    let quiet = wait("wa", "2024-06-16T07:00:00.250Z", "quiet_hours", "2024-06-15T22:00:00Z");
    let rate = wait("wa", "2024-06-15T21:00:02Z", "rate_limit", "2024-06-15T21:00:00Z");
    let twilio = wait("twilio", "2024-06-15T12:00:30Z", "breaker_open", "2024-06-15T12:00:00Z");
    store.set_account_wait(&rate).await.unwrap();
    store.set_account_wait(&twilio).await.unwrap();
    store.set_account_wait(&quiet).await.unwrap();
    store.set_account_wait(&rate).await.unwrap(); // older: ignored
    let (_, other) = f.open().await;
    assert_eq!(other.account_waits().await.unwrap(), [twilio.clone(), quiet]);
    let later = wait("wa", "2024-06-15T23:00:00Z", "daily_cap", "2024-06-15T22:00:00.001Z");
    other.set_account_wait(&later).await.unwrap();
    assert_eq!(store.account_waits().await.unwrap(), [twilio, later]);
}
