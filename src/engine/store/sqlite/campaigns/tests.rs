//! The SQLite campaign store's own checks: idempotent inserts, claims and leases, forward-only
//! updates and the stats counted from them.

use super::*;
use crate::engine::campaign::{NewCampaign, SendIds, send_id};

async fn store() -> (tempfile::TempDir, SqliteStore, CampaignId) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("crm.db")).await.expect("open store");
    let new = NewCampaign {
        name: "Spring".into(),
        segment_id: 1,
        message_template: "Hi".into(),
        channel: "sim".into(),
        created_by: None,
        send_ids: SendIds::Hashed,
    };
    let c = store.create_campaign(new).await.expect("create");
    (dir, store, c.id)
}

fn logs(campaign: CampaignId, leads: &[i64]) -> Vec<NewLog> {
    leads.iter().map(|&l| NewLog { send_id: send_id(campaign, l), lead_id: l, skip_reason: None }).collect()
}

fn update(id: &str, status: SendStatus) -> LogUpdate {
    LogUpdate { find_by_provider_id: true, send_id: id.into(), status, provider_message_id: None, error: None }
}

/// A campaign created before schema 10 keeps its hashed send ids after the upgrade (a chunk
/// re-expanded under another scheme would make a second log); one created after gets its own.
#[tokio::test]
async fn campaigns_from_before_sequential_ids_keep_hashed_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crm.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        super::super::migrations::at_version(&conn, 9);
        conn.execute_batch(
            "INSERT INTO campaigns (name, name_key, segment_id, message_template, channel, status, audience,
                 created_at, updated_at) VALUES ('Old', 'old', 1, 'Hi', 'sim', 'RUNNING', 2, 1, 1)",
        )
        .expect("old campaign");
    }
    let store = SqliteStore::open(&path).await.expect("open store");
    let old = store.get_campaign_by_name("old").await.expect("read").expect("old campaign");
    assert_eq!((old.send_ids, old.send_id(2)), (SendIds::Hashed, send_id(old.id, 2)));
    let new = NewCampaign {
        name: "New".into(),
        segment_id: 1,
        message_template: "Hi".into(),
        channel: "sim".into(),
        created_by: None,
        send_ids: SendIds::Sequential { salt: 7 },
    };
    let new = store.create_campaign(new).await.expect("create");
    assert_eq!(new.send_id(2), format!("{:08x}000000070000000000000002", new.id));
}

#[tokio::test]
async fn logs_are_inserted_once_and_claimed_once() {
    let (_dir, s, c) = store().await;
    let new = logs(c, &[1, 2, 3]);
    assert_eq!(s.insert_logs(c, "sim", &new).await.ok().map(|p| p.len()), Some(3));
    let ids: Vec<String> = new.iter().map(|l| l.send_id.clone()).collect();
    let claims = s.claim_logs(&ids[..1], Duration::from_secs(30)).await.expect("claim");
    assert_eq!(claims, vec![Claim::Claimed { attempt: 1, recovered: false, channel: "sim".into() }]);
    // A redelivered chunk inserts nothing and no longer lists the claimed log as pending.
    assert_eq!(s.insert_logs(c, "sim", &new).await.ok().map(|p| p.len()), Some(2));
    let again = s.claim_logs(&ids[..1], Duration::from_secs(30)).await.expect("claim");
    assert!(matches!(again[0], Claim::Busy { .. }), "{again:?}");
    s.apply_log_updates(&[update(&ids[0], SendStatus::Sent)]).await.expect("sent");
    let dup = s.claim_logs(&ids[..1], Duration::from_secs(30)).await.expect("claim");
    assert_eq!(dup, vec![Claim::Settled(SendStatus::Sent)]);
}

#[tokio::test]
async fn an_expired_claim_is_recovered_and_released_claims_give_back_their_try() {
    let (_dir, s, c) = store().await;
    let new = logs(c, &[1, 2]);
    s.insert_logs(c, "sim", &new).await.expect("insert");
    let ids: Vec<String> = new.iter().map(|l| l.send_id.clone()).collect();
    s.claim_logs(&ids, Duration::ZERO).await.expect("claim");
    let claims = s.claim_logs(&ids[..1], Duration::from_secs(30)).await.expect("claim");
    assert_eq!(claims, vec![Claim::Claimed { attempt: 1, recovered: true, channel: "sim".into() }]);
    s.release_logs(&ids[1..], true).await.expect("release");
    let claims = s.claim_logs(&ids[1..], Duration::from_secs(30)).await.expect("claim");
    assert_eq!(claims, vec![Claim::Claimed { attempt: 1, recovered: false, channel: "sim".into() }]);
}

#[tokio::test]
async fn receipts_move_logs_forward_only_and_stats_count_them() {
    let (_dir, s, c) = store().await;
    let new = logs(c, &[1, 2]);
    s.insert_logs(c, "sim", &new).await.expect("insert");
    s.start_campaign(c, 2).await.expect("start");
    let (a, b) = (new[0].send_id.as_str(), new[1].send_id.as_str());
    let changed = s
        .apply_log_updates(&[
            update(a, SendStatus::Sent),
            update(a, SendStatus::Read),
            update(a, SendStatus::Delivered), // late: ignored
            update(a, SendStatus::Read),      // repeated: ignored
            update(b, SendStatus::Failed),
            update(b, SendStatus::Sent), // out of failed: ignored
        ])
        .await
        .expect("apply");
    assert_eq!(changed, 3);
    assert_eq!(s.log_status(a).await.ok().flatten(), Some(SendStatus::Read));
    let got = s.get_campaign(c).await.ok().flatten().expect("campaign");
    assert_eq!((got.stats.sent, got.stats.delivered, got.stats.read, got.stats.failed), (1, 1, 1, 1));
    assert_eq!(s.complete_finished_campaigns().await.ok(), Some(vec![c]));
    assert_eq!(s.campaign_status(c).await.ok().flatten(), Some(CampaignStatus::Completed));
}

#[tokio::test]
async fn opted_out_leads_are_skipped_at_claim_and_drafts_only_deleted() {
    let (_dir, s, c) = store().await;
    let new = logs(c, &[7]);
    s.insert_logs(c, "sim", &new).await.expect("insert");
    assert_eq!(s.opt_out(7).await.ok(), Some(true));
    assert_eq!(s.opt_out(7).await.ok(), Some(false));
    let claims = s.claim_logs(&[new[0].send_id.clone()], Duration::from_secs(5)).await.expect("claim");
    assert_eq!(claims, vec![Claim::OptedOut]);
    s.start_campaign(c, 1).await.expect("start");
    assert!(matches!(s.delete_campaign(c).await, Err(Error::Conflict(_))));
    assert_eq!(s.set_campaign_status(c, CampaignStatus::Paused).await.ok(), Some(CampaignStatus::Running));
    assert!(matches!(s.set_campaign_status(c, CampaignStatus::Draft).await, Err(Error::Conflict(_))));
}

/// A vendor id is keyed for `log_by_provider_id` only when the update asks for it: the
/// simulator's ids (its receipts name the send id) cost no index entry, Twilio's do.
#[tokio::test]
async fn vendor_ids_are_indexed_only_when_they_will_be_looked_up() {
    let (_dir, store, c) = store().await;
    let l = logs(c, &[1, 2]);
    store.insert_logs(c, "sim", &l).await.expect("insert");
    let ids: Vec<String> = l.iter().map(|l| l.send_id.clone()).collect();
    store.claim_logs(&ids, Duration::from_secs(30)).await.expect("claim");
    let sent = |id: &str, pid: &str, find: bool| LogUpdate {
        provider_message_id: Some(pid.into()),
        find_by_provider_id: find,
        ..update(id, SendStatus::Sent)
    };
    let both = [sent(&ids[0], "sim-1", false), sent(&ids[1], "SM2", true)];
    assert_eq!(store.apply_log_updates(&both).await.expect("sent"), 2);
    assert_eq!(store.log_by_provider_id("sim-1").await.expect("query"), None);
    let found = store.log_by_provider_id("SM2").await.expect("query").expect("keyed");
    assert_eq!((found.send_id.as_str(), found.status), (ids[1].as_str(), SendStatus::Sent));
    // The unkeyed log still carries its vendor id, and its receipts still apply by send id.
    let delivered = LogUpdate { provider_message_id: Some("sim-1".into()), ..update(&ids[0], SendStatus::Delivered) };
    assert_eq!(store.apply_log_updates(&[delivered]).await.expect("receipt"), 1);
    let q = LogQuery { campaign: Some(c), status: Some(SendStatus::Delivered), limit: 5, ..LogQuery::default() };
    let listed = store.list_logs(&q).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].provider_message_id.as_deref(), Some("sim-1"));
}
