//! The communication logs the pipeline moves forward: inserted once per send id, claimed by one
//! sender at a time under a lease, released for a retry, updated forward-only; dead letters
//! and their replay; and one campaign told end to end, as the workers drive it.

use super::segments::add_people;
use super::*;
use crate::engine::campaign::{CampaignStats, CampaignStatus, DeadLetter, SendJob, SendStatus};
use crate::engine::segment::{NewSegment, Rule};
use crate::engine::store::campaigns::{LogQuery, LogUpdate};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);
/// A lease that runs out almost at once, and a wait safely longer than it.
const TINY_LEASE: Duration = Duration::from_millis(20);
const PAST_TINY_LEASE: Duration = Duration::from_millis(80);

fn update(send_id: &str, status: SendStatus) -> LogUpdate {
    LogUpdate { find_by_provider_id: true, send_id: send_id.into(), status, provider_message_id: None, error: None }
}

async fn status(store: &dyn CampaignStore, send_id: &str) -> Option<SendStatus> {
    store.log_status(send_id).await.unwrap()
}

async fn claim(store: &dyn CampaignStore, ids: &[String], lease: Duration) -> Vec<String> {
    claim_words(&store.claim_logs(ids, lease).await.unwrap())
}

/// Logs are listed newest change first, of one campaign, lead or status or of all, at most
/// `limit`, with what the pipeline recorded (attempt, channel, provider id, error).
pub async fn logs_are_listed_newest_first(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let a = new_campaign(store.as_ref(), "Listed A", 1).await;
    let b = new_campaign(store.as_ref(), "Listed B", 1).await;
    let (la, lb) = (logs_for(a.id, &[1, 2, 3]), logs_for(b.id, &[1]));
    store.insert_logs(a.id, "sim", &la).await.unwrap();
    store.insert_logs(b.id, "eu", &lb).await.unwrap();
    // Distinct change times, so "newest first" has one answer.
    for (i, log) in [&la[1], &la[0], &lb[0]].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let status = if i == 0 { SendStatus::Failed } else { SendStatus::Sent };
        let u = LogUpdate {
            find_by_provider_id: true,
            send_id: log.send_id.clone(),
            status,
            provider_message_id: Some(format!("p{i}")),
            error: (i == 0).then(|| "refused".to_string()),
        };
        store.apply_log_updates(&[u]).await.unwrap();
    }
    let list = |campaign, lead, status, limit| {
        let store = store.clone();
        async move {
            let q = LogQuery { campaign, lead, status, limit };
            store.list_logs(&q).await.unwrap().into_iter().map(|l| (l.campaign_id, l.lead_id)).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, None, None, 10).await[..3], [(b.id, 1), (a.id, 1), (a.id, 2)]);
    assert_eq!(list(None, None, None, 10).await.len(), 4);
    assert_eq!(list(Some(a.id), None, None, 2).await, [(a.id, 1), (a.id, 2)]);
    assert_eq!(list(None, Some(1), None, 10).await, [(b.id, 1), (a.id, 1)]);
    assert_eq!(list(Some(a.id), None, Some(SendStatus::Pending), 10).await, [(a.id, 3)]);
    let q = LogQuery { campaign: Some(a.id), status: Some(SendStatus::Failed), limit: 10, ..LogQuery::default() };
    let failed = store.list_logs(&q).await.unwrap();
    assert_eq!(failed.len(), 1);
    let f0 = &failed[0];
    assert_eq!((f0.lead_id, f0.channel.as_str(), f0.provider_message_id.as_deref()), (2, "sim", Some("p0")));
    assert_eq!(
        (f0.error_message.as_deref(), f0.attempt, f0.send_id.as_str()),
        (Some("refused"), 0, la[1].send_id.as_str())
    );
    let q = LogQuery { campaign: Some(b.id), limit: 10, ..LogQuery::default() };
    assert_eq!(store.list_logs(&q).await.unwrap()[0].channel, "eu", "the account a log was created for");
}

/// Inserting is idempotent on the send id (the first insert wins, a skip reason included) and
/// answers which of the given logs are pending now, in the order given.
pub async fn insert_logs_is_idempotent_and_answers_pending(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Logs", 1).await.id;
    let mut logs = logs_for(c, &[1, 2, 3]);
    logs[2].skip_reason = Some("no phone number".into());
    let ids = send_ids(&logs);
    assert_eq!(store.insert_logs(c, "sim", &logs).await.unwrap(), ids[..2]);
    assert_eq!(store.insert_logs(c, "sim", &logs).await.unwrap(), ids[..2], "a redelivered chunk");
    assert_eq!(status(store.as_ref(), &ids[0]).await, Some(SendStatus::Pending));
    assert_eq!(status(store.as_ref(), &ids[2]).await, Some(SendStatus::Skipped));
    assert_eq!(status(store.as_ref(), "no-such-send-id").await, None);

    assert_eq!(claim(store.as_ref(), &ids[..1], LEASE).await, ["claimed 1"]);
    assert_eq!(store.insert_logs(c, "sim", &logs).await.unwrap(), ids[1..2], "a claimed log is not pending");
    let unskipped = NewLog { skip_reason: None, ..logs[2].clone() };
    let skipping = NewLog { skip_reason: Some("opted out".into()), ..logs[1].clone() };
    assert_eq!(store.insert_logs(c, "sim", &[unskipped, skipping]).await.unwrap(), ids[1..2]);
    assert_eq!(status(store.as_ref(), &ids[2]).await, Some(SendStatus::Skipped));
    assert!(store.insert_logs(c, "sim", &[]).await.unwrap().is_empty());
    let stats = store.get_campaign(c).await.unwrap().unwrap().stats;
    assert_eq!((stats.skipped, stats.sent, stats.failed), (1, 0, 0));
}

/// A claim leases a pending log to one sender (attempt 1 the first time); while the lease
/// lives others are told to come back later; settled logs report their status; unknown ids
/// are missing; an opted-out lead's log is skipped at claim. A batch answers in order.
pub async fn claims_lease_a_log_to_one_sender(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let lead = |name: &str| person(name, &[&format!("{name}@example.com")], &[]);
    let (a, b) = (leads.add_lead(lead("a")).await.unwrap().id, leads.add_lead(lead("b")).await.unwrap().id);
    let out = leads.add_lead(lead("out")).await.unwrap().id;
    let c = new_campaign(store.as_ref(), "Claims", 1).await.id;
    let ids = insert_pending(store.as_ref(), c, &[a, b, out]).await;

    assert_eq!(claim(store.as_ref(), &ids[..1], LEASE).await, ["claimed 1"]);
    assert_eq!(status(store.as_ref(), &ids[0]).await, Some(SendStatus::Sending));
    let busy = store.claim_logs(&ids[..1], LEASE).await.unwrap();
    match busy.as_slice() {
        [Claim::Busy { retry_in }] => {
            assert!(
                *retry_in > LEASE - Duration::from_secs(5) && *retry_in <= LEASE + Duration::from_secs(1),
                "{retry_in:?}"
            )
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let batch = [ids[1].clone(), "no-such-send-id".into(), ids[0].clone()];
    assert_eq!(claim(store.as_ref(), &batch, LEASE).await, ["claimed 1", "missing", "busy"]);

    assert!(store.opt_out(out).await.unwrap());
    assert_eq!(claim(store.as_ref(), &ids[2..], LEASE).await, ["opted out"]);
    assert_eq!(status(store.as_ref(), &ids[2]).await, Some(SendStatus::Skipped));
    assert_eq!(claim(store.as_ref(), &ids[2..], LEASE).await, ["settled skipped"]);

    store.apply_log_updates(&[update(&ids[0], SendStatus::Sent), update(&ids[1], SendStatus::Failed)]).await.unwrap();
    assert_eq!(claim(store.as_ref(), &ids[..2], LEASE).await, ["settled sent", "settled failed"]);
    store.apply_log_updates(&[update(&ids[0], SendStatus::Read)]).await.unwrap();
    assert_eq!(claim(store.as_ref(), &ids[..1], LEASE).await, ["settled read"]);
    assert!(store.claim_logs(&[], LEASE).await.unwrap().is_empty());
}

/// A batch of claims or updates that names one log twice: backends look a batch's logs up
/// before they write and write a log only if it is still as read, so the second mention meets
/// the log the first one moved — claimed once (then busy), never moved backwards — and counts
/// are of logs changed.
pub async fn a_batch_naming_a_log_twice_moves_it_once(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Twice", 1).await.id;
    let ids = insert_pending(store.as_ref(), c, &[1, 2]).await;
    let twice = [ids[0].clone(), ids[1].clone(), ids[0].clone()];
    assert_eq!(claim(store.as_ref(), &twice, LEASE).await, ["claimed 1", "claimed 1", "busy"]);
    let sent = |id: &str| LogUpdate { provider_message_id: Some(format!("p-{id}")), ..update(id, SendStatus::Sent) };
    assert_eq!(store.apply_log_updates(&[sent(&ids[0]), sent(&ids[0]), sent(&ids[1])]).await.unwrap(), 2);
    // `read` then `delivered` for one log: the second would move it back.
    let back = [update(&ids[0], SendStatus::Read), update(&ids[0], SendStatus::Delivered)];
    assert_eq!(store.apply_log_updates(&back).await.unwrap(), 1);
    assert_eq!(status(store.as_ref(), &ids[0]).await, Some(SendStatus::Read));
    // `delivered` then `read`: both steps are forward.
    let on = [update(&ids[1], SendStatus::Delivered), update(&ids[1], SendStatus::Read)];
    assert_eq!(store.apply_log_updates(&on).await.unwrap(), 2);
    assert_eq!(status(store.as_ref(), &ids[1]).await, Some(SendStatus::Read));
    // Updates that change nothing count nothing.
    let none = [sent(&ids[0]), update(&ids[1], SendStatus::Pending), update("no-such-send-id", SendStatus::Sent)];
    assert_eq!(store.apply_log_updates(&none).await.unwrap(), 0);
    let q = LogQuery { campaign: Some(c), limit: 10, ..LogQuery::default() };
    let pids: Vec<Option<String>> =
        store.list_logs(&q).await.unwrap().into_iter().map(|l| l.provider_message_id).collect();
    assert!(pids.iter().all(|p| p.as_deref().is_some_and(|p| p.starts_with("p-"))), "{pids:?}");
}

/// A log whose sender died mid-send (its lease ran out) is claimed again as `recovered`,
/// keeping its attempt, and then leased anew; a recovered send is finished even if the lead
/// opted out meanwhile (the vendor may already have it).
pub async fn expired_leases_are_recovered(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let a = leads.add_lead(person("A", &["a@example.com"], &[])).await.unwrap().id;
    let b = leads.add_lead(person("B", &["b@example.com"], &[])).await.unwrap().id;
    let c = new_campaign(store.as_ref(), "Crashes", 1).await.id;
    let ids = insert_pending(store.as_ref(), c, &[a, b]).await;
    assert_eq!(claim(store.as_ref(), &ids, TINY_LEASE).await, ["claimed 1", "claimed 1"]);
    assert!(store.opt_out(b).await.unwrap());
    tokio::time::sleep(PAST_TINY_LEASE).await;
    assert_eq!(claim(store.as_ref(), &ids, LEASE).await, ["recovered 1", "recovered 1"]);
    assert_eq!(claim(store.as_ref(), &ids, LEASE).await, ["busy", "busy"], "recovered under a new lease");

    // A retried log that crashes again keeps the attempt it had reached.
    store.release_logs(&ids[..1], false).await.unwrap();
    assert_eq!(claim(store.as_ref(), &ids[..1], TINY_LEASE).await, ["claimed 2"]);
    tokio::time::sleep(PAST_TINY_LEASE).await;
    assert_eq!(claim(store.as_ref(), &ids[..1], LEASE).await, ["recovered 2"]);
}

/// Releasing returns a sending log to pending: the try counts (a retry comes later) or is
/// given back (nothing was tried). Logs that are not sending are left alone.
pub async fn release_counts_or_gives_back_the_try(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Retries", 1).await.id;
    let ids = insert_pending(store.as_ref(), c, &[1, 2]).await;
    let a = &ids[..1];
    assert_eq!(claim(store.as_ref(), a, LEASE).await, ["claimed 1"]);
    store.release_logs(a, false).await.unwrap();
    assert_eq!(status(store.as_ref(), &ids[0]).await, Some(SendStatus::Pending));
    assert_eq!(store.insert_logs(c, "sim", &logs_for(c, &[1])).await.unwrap(), a, "a released log is pending");
    assert_eq!(claim(store.as_ref(), a, LEASE).await, ["claimed 2"]);
    store.release_logs(a, true).await.unwrap();
    assert_eq!(claim(store.as_ref(), a, LEASE).await, ["claimed 2"], "the try was given back");
    store.release_logs(a, true).await.unwrap();
    store.release_logs(a, true).await.unwrap();
    assert_eq!(claim(store.as_ref(), a, LEASE).await, ["claimed 2"], "only a sending log is released");

    store.release_logs(&ids[1..], true).await.unwrap();
    assert_eq!(claim(store.as_ref(), &ids[1..], LEASE).await, ["claimed 1"]);
    store.apply_log_updates(&[update(&ids[0], SendStatus::Sent)]).await.unwrap();
    store.release_logs(&ids, false).await.unwrap();
    assert_eq!(status(store.as_ref(), &ids[0]).await, Some(SendStatus::Sent));
    assert_eq!(claim(store.as_ref(), &ids, LEASE).await, ["settled sent", "claimed 2"]);
    store.release_logs(&[], false).await.unwrap();
}

/// Updates only move a log forward ([`SendStatus::can_become`]); late, repeated and
/// out-of-order receipts and unknown send ids change nothing; the count is of logs changed.
pub async fn log_updates_move_forward_only(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Receipts", 1).await.id;
    let ids = insert_pending(store.as_ref(), c, &[1, 2, 3, 4, 5]).await;
    let (a, b, s, d, e) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    let changed = store
        .apply_log_updates(&[
            update(a, SendStatus::Sent),
            update(a, SendStatus::Read),
            update(a, SendStatus::Delivered), // late
            update(a, SendStatus::Read),      // repeated
            update(b, SendStatus::Failed),
            update(b, SendStatus::Sent), // out of failed
            update("no-such-send-id", SendStatus::Sent),
        ])
        .await
        .unwrap();
    assert_eq!(changed, 3);
    assert_eq!(
        (status(store.as_ref(), a).await, status(store.as_ref(), b).await),
        (Some(SendStatus::Read), Some(SendStatus::Failed))
    );

    let s1 = std::slice::from_ref(s);
    assert_eq!(
        store.apply_log_updates(&[update(s, SendStatus::Uncertain)]).await.unwrap(),
        0,
        "only a sending log is uncertain"
    );
    assert_eq!(claim(store.as_ref(), s1, LEASE).await, ["claimed 1"]);
    assert_eq!(store.apply_log_updates(&[update(s, SendStatus::Uncertain)]).await.unwrap(), 1);
    assert_eq!(claim(store.as_ref(), s1, LEASE).await, ["settled uncertain"]);
    assert_eq!(store.apply_log_updates(&[update(s, SendStatus::Delivered)]).await.unwrap(), 1, "a receipt settles it");
    assert_eq!(store.apply_log_updates(&[update(s, SendStatus::Failed)]).await.unwrap(), 0, "delivered cannot fail");
    assert_eq!(status(store.as_ref(), s).await, Some(SendStatus::Delivered));

    let both = [update(d, SendStatus::Sent), update(d, SendStatus::Failed)];
    assert_eq!(store.apply_log_updates(&both).await.unwrap(), 2, "a sent message can still fail");
    assert_eq!(store.apply_log_updates(&[update(e, SendStatus::Pending)]).await.unwrap(), 0, "never back to pending");
    assert_eq!(store.apply_log_updates(&[update(e, SendStatus::Skipped)]).await.unwrap(), 1);
    assert_eq!(store.apply_log_updates(&[update(e, SendStatus::Sent)]).await.unwrap(), 0, "skipped is final");
    assert_eq!(store.apply_log_updates(&[]).await.unwrap(), 0);
    let stats = store.get_campaign(c).await.unwrap().unwrap().stats;
    assert_eq!((stats.sent, stats.delivered, stats.read, stats.failed, stats.skipped), (2, 2, 1, 2, 1));
}

fn job(send_id: &str, campaign: CampaignId, lead: LeadId, attempt: u32) -> SendJob {
    SendJob {
        send_id: send_id.into(),
        campaign_id: campaign,
        lead_id: lead,
        to: "+447700900123".into(),
        message: format!("Hi lead {lead}"),
        attempt,
        timezone: None,
    }
}

/// A dead letter marks its log failed; listing filters by campaign and by replayed; a replay
/// resets the log to pending at attempt 0 (reopening a completed campaign) and hands back
/// fresh send jobs (attempt 1) until the letters are marked replayed.
pub async fn dead_letters_and_replay(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let (c1, c2) = (new_campaign(store.as_ref(), "One", 1).await.id, new_campaign(store.as_ref(), "Two", 1).await.id);
    store.start_campaign(c1, 1).await.unwrap();
    let (a, b) = (send_id(c1, 1), send_id(c2, 2));
    insert_pending(store.as_ref(), c1, &[1]).await;
    insert_pending(store.as_ref(), c2, &[2]).await;
    store.claim_logs(std::slice::from_ref(&a), LEASE).await.unwrap();
    let letter_a = DeadLetter { payload: job(&a, c1, 1, 3), reason: "invalid number".into() };
    let letter_b = DeadLetter { payload: job(&b, c2, 2, 1), reason: "blocked".into() };
    let before = wall_ms();
    store.add_dead_letter(&letter_a).await.unwrap();
    store.add_dead_letter(&letter_b).await.unwrap();
    let after = wall_ms();
    assert_eq!(
        (status(store.as_ref(), &a).await, status(store.as_ref(), &b).await),
        (Some(SendStatus::Failed), Some(SendStatus::Failed))
    );
    assert_eq!(store.complete_finished_campaigns().await.unwrap(), [c1]);

    let listed = store.list_dead_letters(None, false).await.unwrap();
    assert_eq!(listed.len(), 2);
    for (record, letter) in listed.iter().zip([&letter_a, &letter_b]) {
        assert_eq!((&record.send_id, record.campaign_id), (&letter.payload.send_id, letter.payload.campaign_id));
        assert_eq!((&record.reason, &record.payload, record.replayed_at), (&letter.reason, &letter.payload, None));
        assert_between(record.created_at, before, after);
    }
    let (ra, rb) = (listed[0].clone(), listed[1].clone());
    assert_ne!(ra.id, rb.id);
    assert_eq!(store.list_dead_letters(Some(c1), false).await.unwrap(), std::slice::from_ref(&ra));
    assert_eq!(store.list_dead_letters(Some(c2), true).await.unwrap(), std::slice::from_ref(&rb));

    let replay = store.prepare_replay(Some(c1)).await.unwrap();
    assert_eq!(replay, [(ra.id, SendJob { attempt: 1, ..letter_a.payload.clone() })]);
    assert_eq!(status(store.as_ref(), &a).await, Some(SendStatus::Pending));
    assert_eq!(status(store.as_ref(), &b).await, Some(SendStatus::Failed), "only the campaign asked for");
    assert_eq!(store.campaign_status(c1).await.unwrap(), Some(CampaignStatus::Running), "the campaign reopens");
    assert_eq!(
        store.list_dead_letters(Some(c1), false).await.unwrap(),
        std::slice::from_ref(&ra),
        "not marked replayed yet"
    );
    assert_eq!(claim(store.as_ref(), std::slice::from_ref(&a), LEASE).await, ["claimed 1"], "the attempts start over");

    let before = wall_ms();
    store.mark_replayed(&[ra.id]).await.unwrap();
    let after = wall_ms();
    assert_eq!(store.list_dead_letters(None, false).await.unwrap(), std::slice::from_ref(&rb));
    let all = store.list_dead_letters(None, true).await.unwrap();
    assert_eq!(all.len(), 2);
    let replayed_at = all[0].replayed_at.expect("marked replayed");
    assert_between(replayed_at, before, after);
    assert_eq!(all[0], crate::engine::campaign::DeadLetterRecord { replayed_at: Some(replayed_at), ..ra });
    assert_eq!(all[1], rb);
    assert!(store.prepare_replay(Some(c1)).await.unwrap().is_empty());
    assert_eq!(store.prepare_replay(None).await.unwrap(), [(rb.id, SendJob { attempt: 1, ..letter_b.payload })]);
    assert!(store.list_dead_letters(Some(c1 + c2 + 100), true).await.unwrap().is_empty());
}

/// One campaign, told as the workers drive it: a segment's audience is counted and expanded in
/// pages (opted-out and phoneless leads skipped, a redelivered page changing nothing), sends
/// are claimed, retried, dead-lettered and replayed, receipts arrive out of order, and the
/// campaign completes with exact stats, visible from another handle.
pub async fn campaign_story(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let people = add_people(leads.as_ref()).await;
    let rule = Rule::parse_text(r#"city = "lagos" or tags contains "vip""#).unwrap();
    let segment = NewSegment { name: "Lagos or VIP".into(), owner_user_id: None, rule: rule.clone() };
    let segment = leads.create_segment(segment).await.unwrap();
    let c = new_campaign(store.as_ref(), "Story", segment.id).await.id;
    let audience = leads.count_matching(&segment.rule_ast, now()).await.unwrap();
    assert_eq!(audience, 4);
    store.start_campaign(c, audience).await.unwrap();
    assert!(store.opt_out(people[3]).await.unwrap());

    // The expander: pages of three, each made into logs.
    let mut pending = Vec::new();
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = store.audience_ids(&rule, now(), after, 3).await.unwrap();
        let Some(&last) = page.last() else { break };
        after = last;
        let mut logs = Vec::new();
        for entry in store.audience_leads(&page).await.unwrap() {
            let phone = entry.lead.as_ref().and_then(|l| l.phones.first());
            let skip_reason = match (entry.opted_out, phone) {
                (true, _) => Some("opted out".to_string()),
                (false, None) => Some("no phone number".to_string()),
                (false, Some(_)) => None,
            };
            logs.push(NewLog { send_id: send_id(c, entry.id), lead_id: entry.id, skip_reason });
        }
        pending.extend(store.insert_logs(c, "sim", &logs).await.unwrap());
        pages.push((page, logs));
    }
    assert_eq!(
        pages.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        [vec![people[0], people[2], people[3]], vec![people[4]]]
    );
    let (ada, eva) = (send_id(c, people[0]), send_id(c, people[4]));
    assert_eq!(pending, [ada.clone(), eva.clone()]);
    assert_eq!(
        store.insert_logs(c, "sim", &pages[0].1).await.unwrap(),
        std::slice::from_ref(&ada),
        "a redelivered page"
    );

    // The sender: Ada's send goes through; Eva's fails once, then is given up on.
    let both = [ada.clone(), eva.clone()];
    assert_eq!(claim(store.as_ref(), &both, LEASE).await, ["claimed 1", "claimed 1"]);
    let sent = LogUpdate { provider_message_id: Some("wamid.1".into()), ..update(&ada, SendStatus::Sent) };
    assert_eq!(store.apply_log_updates(&[sent]).await.unwrap(), 1);
    store.release_logs(std::slice::from_ref(&eva), false).await.unwrap();
    assert_eq!(claim(store.as_ref(), std::slice::from_ref(&eva), LEASE).await, ["claimed 2"]);
    let payload = SendJob { to: "+46700000005".into(), message: "Hi Eva".into(), ..job(&eva, c, people[4], 2) };
    store.add_dead_letter(&DeadLetter { payload: payload.clone(), reason: "vendor rejected".into() }).await.unwrap();

    // Receipts, out of order and repeated.
    let receipts =
        [update(&ada, SendStatus::Read), update(&ada, SendStatus::Delivered), update(&ada, SendStatus::Read)];
    assert_eq!(store.apply_log_updates(&receipts).await.unwrap(), 1);
    let stats = |sent, delivered, read, failed, pending| CampaignStats {
        audience: 4,
        sent,
        delivered,
        read,
        failed,
        uncertain: 0,
        skipped: 2,
        pending,
        cancelled: 0,
    };
    assert_eq!(store.get_campaign(c).await.unwrap().unwrap().stats, stats(1, 1, 1, 1, 0));
    assert_eq!(store.complete_finished_campaigns().await.unwrap(), [c]);
    assert!(
        leads.campaigns_using_segment(segment.id).await.unwrap().is_empty(),
        "a completed campaign holds no segment"
    );

    // The operator replays the dead letter; the second try goes through.
    let replay = store.prepare_replay(Some(c)).await.unwrap();
    assert_eq!(replay.iter().map(|(_, job)| job.clone()).collect::<Vec<_>>(), [SendJob { attempt: 1, ..payload }]);
    assert_eq!(store.campaign_status(c).await.unwrap(), Some(CampaignStatus::Running));
    assert_eq!(store.get_campaign(c).await.unwrap().unwrap().stats, stats(1, 1, 1, 0, 1));
    store.mark_replayed(&replay.iter().map(|(id, _)| *id).collect::<Vec<_>>()).await.unwrap();
    assert!(store.complete_finished_campaigns().await.unwrap().is_empty(), "Eva is pending again");
    assert_eq!(claim(store.as_ref(), std::slice::from_ref(&eva), LEASE).await, ["claimed 1"]);
    store.apply_log_updates(&[update(&eva, SendStatus::Sent)]).await.unwrap();
    assert_eq!(store.complete_finished_campaigns().await.unwrap(), [c]);

    let (other_leads, other) = f.open().await;
    let done = other.get_campaign(c).await.unwrap().unwrap();
    assert_eq!((done.status, done.stats), (CampaignStatus::Completed, stats(2, 1, 1, 0, 0)));
    assert!(other.list_dead_letters(Some(c), false).await.unwrap().is_empty());
    assert!(other_leads.campaigns_using_segment(segment.id).await.unwrap().is_empty());
    assert!(other_leads.delete_segment(segment.id).await.unwrap(), "a finished campaign frees its segment");
}
