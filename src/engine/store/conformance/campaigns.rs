//! Campaigns: records with unique names, statuses that move only as
//! [`CampaignStatus::can_become`] allows, stats counted from the logs, the audience the
//! expander pages through, completion, and the two small tables beside them (opt-outs and
//! worker heartbeats).

use super::segments::add_people;
use super::*;
use crate::engine::campaign::{CampaignStats, CampaignStatus, Heartbeat, SendStatus};
use crate::engine::segment::Rule;
use crate::engine::store::campaigns::{AudienceLead, LogUpdate};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn update(send_id: &str, status: SendStatus) -> LogUpdate {
    LogUpdate { find_by_provider_id: true, send_id: send_id.into(), status, provider_message_id: None, error: None }
}

/// Create, read (by id, by name ignoring case, all), delete; names are unique ignoring case;
/// only a draft may be deleted, and its logs go with it.
pub async fn campaign_crud_and_unique_names(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    assert!(store.list_campaigns().await.unwrap().is_empty());
    let before = wall_ms();
    let spring = new_campaign(store.as_ref(), "Spring sale", 7).await;
    let after = wall_ms();
    assert_eq!(
        (spring.name.as_str(), spring.segment_id, spring.message_template.as_str(), spring.channel.as_str()),
        ("Spring sale", 7, "Hi {{first_name}}", "sim")
    );
    assert_eq!(
        (spring.created_by.as_deref(), spring.status, spring.stats),
        (Some("ops"), CampaignStatus::Draft, CampaignStats::default())
    );
    assert_eq!(spring.created_at, spring.updated_at);
    assert_between(spring.created_at, before, after);
    assert_eq!(store.get_campaign(spring.id).await.unwrap(), Some(spring.clone()));
    assert_eq!(store.get_campaign_by_name("SPRING SALE").await.unwrap(), Some(spring.clone()));
    assert_eq!(store.get_campaign_by_name("Spring").await.unwrap(), None);
    assert_eq!(store.get_campaign(spring.id + 1000).await.unwrap(), None);
    assert_eq!(store.campaign_status(spring.id).await.unwrap(), Some(CampaignStatus::Draft));
    assert_eq!(store.campaign_status(spring.id + 1000).await.unwrap(), None);

    let taken = crate::engine::campaign::NewCampaign {
        name: "spring SALE".into(),
        segment_id: 8,
        message_template: "x".into(),
        channel: "sim".into(),
        created_by: None,
        send_ids: crate::engine::campaign::SendIds::Hashed,
    };
    assert_conflict(store.create_campaign(taken.clone()).await);
    let summer = new_campaign(store.as_ref(), "Summer", 7).await;
    assert_eq!(store.list_campaigns().await.unwrap(), [spring.clone(), summer.clone()]);
    let (_, other_handle) = f.open().await;
    assert_eq!(other_handle.list_campaigns().await.unwrap(), [spring.clone(), summer.clone()]);

    // Each campaign keeps the scheme its messages are named by: the salt as given (all 32
    // bits), or none (a campaign from before sequential ids, whose ids stay hashed).
    assert_eq!(spring.send_ids, SendIds::Sequential { salt: 0x5eed });
    assert_eq!(spring.send_id(255), format!("{:08x}00005eed00000000000000ff", spring.id));
    let wide = SendIds::Sequential { salt: u32::MAX };
    let autumn = crate::engine::campaign::NewCampaign { name: "Autumn".into(), send_ids: wide, ..taken.clone() };
    let winter = crate::engine::campaign::NewCampaign { name: "Winter".into(), ..taken };
    let (autumn, winter) = (store.create_campaign(autumn).await.unwrap(), store.create_campaign(winter).await.unwrap());
    for (c, scheme) in [(&autumn, wide), (&winter, SendIds::Hashed)] {
        let read = other_handle.get_campaign(c.id).await.unwrap().map(|c| c.send_ids);
        assert_eq!((c.send_ids, read), (scheme, Some(scheme)), "campaign {}", c.name);
    }
    assert_eq!(winter.send_id(3), send_id(winter.id, 3));
    store.delete_campaign(autumn.id).await.unwrap();
    store.delete_campaign(winter.id).await.unwrap();

    // A draft's logs are deleted with it; its name is free again.
    let logs = logs_for(summer.id, &[1, 2]);
    store.insert_logs(summer.id, "sim", &logs).await.unwrap();
    assert!(store.delete_campaign(summer.id).await.unwrap());
    assert!(!store.delete_campaign(summer.id).await.unwrap(), "already gone");
    assert_eq!(store.get_campaign(summer.id).await.unwrap(), None);
    assert_eq!(store.log_status(&logs[0].send_id).await.unwrap(), None);
    assert_eq!(claim_words(&store.claim_logs(&send_ids(&logs), LEASE).await.unwrap()), ["missing", "missing"]);
    let summer_again = new_campaign(store.as_ref(), "summer", 7).await;
    assert_eq!(store.get_campaign_by_name("SUMMER").await.unwrap(), Some(summer_again));

    store.start_campaign(spring.id, 3).await.unwrap();
    assert_conflict(store.delete_campaign(spring.id).await);
    store.set_campaign_status(spring.id, CampaignStatus::Cancelled).await.unwrap();
    assert_conflict(store.delete_campaign(spring.id).await);
    assert_eq!(store.campaign_status(spring.id).await.unwrap(), Some(CampaignStatus::Cancelled));
    assert_eq!(store.list_campaigns().await.unwrap().len(), 2);
}

/// Every (from, to) pair: allowed moves return the old status, refused ones are `Conflict` and
/// change nothing, a move to the status it has is a no-op; unknown campaigns are `NotFound`.
/// `start_campaign` is DRAFT → RUNNING and records the audience.
pub async fn campaign_status_follows_can_become(f: &dyn StoreFixture) {
    use CampaignStatus::*;
    let (_, store) = f.open().await;
    let path = |s: CampaignStatus| -> &'static [CampaignStatus] {
        match s {
            Draft => &[],
            Running => &[Running],
            Paused => &[Running, Paused],
            Completed => &[Running, Completed],
            Cancelled => &[Cancelled],
        }
    };
    let all = [Draft, Running, Paused, Completed, Cancelled];
    for from in all {
        for to in all {
            let c = new_campaign(store.as_ref(), &format!("{from} to {to}"), 1).await;
            for &step in path(from) {
                store.set_campaign_status(c.id, step).await.unwrap();
            }
            assert_eq!(store.campaign_status(c.id).await.unwrap(), Some(from));
            let got = store.set_campaign_status(c.id, to).await;
            if from == to || from.can_become(to) {
                assert_eq!(got.unwrap(), from, "{from} -> {to}");
                assert_eq!(store.campaign_status(c.id).await.unwrap(), Some(to), "{from} -> {to}");
                assert_eq!(store.get_campaign(c.id).await.unwrap().map(|c| c.status), Some(to));
            } else {
                assert_conflict(got);
                assert_eq!(store.campaign_status(c.id).await.unwrap(), Some(from), "{from} -> {to} refused");
            }
        }
    }
    let missing = store.list_campaigns().await.unwrap().iter().map(|c| c.id).max().unwrap_or(0) + 1;
    assert_not_found(store.set_campaign_status(missing, Running).await);
    assert_not_found(store.start_campaign(missing, 1).await);

    let c = new_campaign(store.as_ref(), "Started", 1).await;
    store.start_campaign(c.id, 4).await.unwrap();
    let got = store.get_campaign(c.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.stats.audience, got.stats.pending), (Running, 4, 4));
    assert_conflict(store.start_campaign(c.id, 5).await);
    store.set_campaign_status(c.id, Paused).await.unwrap();
    assert_conflict(store.start_campaign(c.id, 5).await);
    assert_eq!(store.get_campaign(c.id).await.unwrap().map(|c| (c.status, c.stats.audience)), Some((Paused, 4)));
}

/// Stats are counted from the logs: `sent` includes delivered and read, `delivered` includes
/// read, and `pending` is the audience not settled yet (unexpanded, waiting or sending).
pub async fn stats_are_counted_from_logs(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Counted", 1).await;
    store.start_campaign(c.id, 9).await.unwrap();
    let mut logs = logs_for(c.id, &[1, 2, 3, 4, 5, 6, 7]);
    logs.push(NewLog { skip_reason: Some("no phone number".into()), ..logs_for(c.id, &[8]).remove(0) });
    let ids = send_ids(&logs);
    assert_eq!(store.insert_logs(c.id, "sim", &logs).await.unwrap(), ids[..7]);
    assert_eq!(claim_words(&store.claim_logs(&ids[5..7], LEASE).await.unwrap()), ["claimed 1", "claimed 1"]);
    let updates = [
        update(&ids[0], SendStatus::Sent),
        update(&ids[1], SendStatus::Delivered),
        update(&ids[2], SendStatus::Read),
        update(&ids[3], SendStatus::Failed),
        update(&ids[5], SendStatus::Uncertain),
    ];
    assert_eq!(store.apply_log_updates(&updates).await.unwrap(), 5);
    let expected = CampaignStats {
        audience: 9,
        sent: 3,
        delivered: 2,
        read: 1,
        failed: 1,
        uncertain: 1,
        skipped: 1,
        pending: 3, // ids[4] waiting, ids[6] sending, one lead not expanded yet
        cancelled: 0,
    };
    assert_eq!(store.get_campaign(c.id).await.unwrap().map(|c| c.stats), Some(expected));
    assert_eq!(store.get_campaign_by_name("counted").await.unwrap().map(|c| c.stats), Some(expected));
    assert_eq!(store.list_campaigns().await.unwrap().iter().map(|c| c.stats).collect::<Vec<_>>(), [expected]);

    // Once cancelled, what was pending will never be sent: it counts as cancelled instead.
    store.set_campaign_status(c.id, CampaignStatus::Cancelled).await.unwrap();
    let cancelled = CampaignStats { pending: 0, cancelled: 3, ..expected };
    assert_eq!(store.get_campaign(c.id).await.unwrap().map(|c| c.stats), Some(cancelled));
    assert_eq!(store.list_campaigns().await.unwrap().iter().map(|c| c.stats).collect::<Vec<_>>(), [cancelled]);
}

/// `audience_ids` pages a rule's leads by id (as `scan_matching` does); `audience_leads`
/// answers for each asked id, in order: the lead (None once deleted) and its opt-out.
pub async fn audience_pages_and_leads(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let people = add_people(leads.as_ref()).await;
    let vip = Rule::parse_text(r#"tags contains "vip""#).unwrap();
    assert_eq!(store.audience_ids(&vip, now(), 0, 2).await.unwrap(), [people[0], people[2]]);
    assert_eq!(store.audience_ids(&vip, now(), people[2], 2).await.unwrap(), [people[4]]);
    assert!(store.audience_ids(&vip, now(), people[4], 2).await.unwrap().is_empty());
    for (text, matches) in super::segments::PEOPLE_RULES {
        let rule = Rule::parse_text(text).unwrap();
        let expected: Vec<LeadId> = matches.iter().map(|&i| people[i]).collect();
        assert_eq!(store.audience_ids(&rule, now(), 0, 10).await.unwrap(), expected, "{text}");
    }

    assert!(store.opt_out(people[2]).await.unwrap());
    assert!(leads.delete_lead(people[4]).await.unwrap());
    let got = store.audience_leads(&[people[4], people[0], people[2]]).await.unwrap();
    let (ada, chen) = (leads.get_lead(people[0]).await.unwrap(), leads.get_lead(people[2]).await.unwrap());
    assert!(ada.is_some() && chen.is_some());
    assert_eq!(
        got,
        [
            AudienceLead { id: people[4], lead: None, opted_out: false },
            AudienceLead { id: people[0], lead: ada, opted_out: false },
            AudienceLead { id: people[2], lead: chen, opted_out: true },
        ]
    );
    assert!(store.audience_leads(&[]).await.unwrap().is_empty());
    assert_eq!(store.audience_ids(&vip, now(), 0, 10).await.unwrap(), [people[0], people[2]], "deleted leads leave");
}

/// RUNNING campaigns whose whole audience has settled logs complete, once; a campaign with a
/// log waiting or sending, with part of its audience not expanded, or not RUNNING, does not.
pub async fn complete_finished_campaigns_only_when_settled(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let a = new_campaign(store.as_ref(), "Two sent", 1).await.id;
    let partial = new_campaign(store.as_ref(), "Two of three", 1).await.id;
    let empty = new_campaign(store.as_ref(), "Nobody matched", 1).await.id;
    let draft = new_campaign(store.as_ref(), "Still a draft", 1).await.id;
    let paused = new_campaign(store.as_ref(), "Paused", 1).await.id;
    for (c, audience) in [(a, 2), (partial, 3), (empty, 0), (paused, 1)] {
        store.start_campaign(c, audience).await.unwrap();
    }
    store.set_campaign_status(paused, CampaignStatus::Paused).await.unwrap();
    let a_logs = send_ids(&logs_for(a, &[1, 2]));
    store.insert_logs(a, "sim", &logs_for(a, &[1, 2])).await.unwrap();
    let skipped = |c, lead| NewLog { skip_reason: Some("opted out".into()), ..logs_for(c, &[lead]).remove(0) };
    store.insert_logs(partial, "sim", &[skipped(partial, 1), skipped(partial, 2)]).await.unwrap();
    store.insert_logs(draft, "sim", &[skipped(draft, 1)]).await.unwrap();
    store.insert_logs(paused, "sim", &[skipped(paused, 1)]).await.unwrap();

    assert_eq!(store.complete_finished_campaigns().await.unwrap(), [empty], "an empty audience is finished");
    assert_eq!(store.campaign_status(empty).await.unwrap(), Some(CampaignStatus::Completed));
    store.apply_log_updates(&[update(&a_logs[0], SendStatus::Sent)]).await.unwrap();
    assert!(store.complete_finished_campaigns().await.unwrap().is_empty(), "one log is still pending");
    store.claim_logs(&a_logs[1..], LEASE).await.unwrap();
    assert!(store.complete_finished_campaigns().await.unwrap().is_empty(), "one log is still sending");
    store.apply_log_updates(&[update(&a_logs[1], SendStatus::Failed)]).await.unwrap();
    store.insert_logs(partial, "sim", &[skipped(partial, 3)]).await.unwrap();
    let mut done = store.complete_finished_campaigns().await.unwrap();
    done.sort_unstable();
    assert_eq!(done, [a, partial]);
    assert!(store.complete_finished_campaigns().await.unwrap().is_empty(), "completed once");
    for (c, status) in [
        (a, CampaignStatus::Completed),
        (partial, CampaignStatus::Completed),
        (draft, CampaignStatus::Draft),
        (paused, CampaignStatus::Paused),
    ] {
        assert_eq!(store.campaign_status(c).await.unwrap(), Some(status));
    }
}

/// `opt_out` is true only the first time, `opt_in` only when there was one; the list is by
/// lead, with the time each opted out.
pub async fn opt_outs_and_opt_ins(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let a = leads.add_lead(person("A", &["a@example.com"], &[])).await.unwrap().id;
    let b = leads.add_lead(person("B", &["b@example.com"], &[])).await.unwrap().id;
    assert!(store.list_opt_outs().await.unwrap().is_empty());
    let before = wall_ms();
    assert!(store.opt_out(b).await.unwrap());
    assert!(store.opt_out(a).await.unwrap());
    assert!(!store.opt_out(b).await.unwrap(), "already opted out");
    let after = wall_ms();
    let list = store.list_opt_outs().await.unwrap();
    assert_eq!(list.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [a, b]);
    for (_, at) in &list {
        assert_between(*at, before, after);
    }
    assert!(store.opt_in(b).await.unwrap());
    assert!(!store.opt_in(b).await.unwrap(), "already opted in");
    assert!(!store.opt_in(b + 1000).await.unwrap());
    assert_eq!(store.list_opt_outs().await.unwrap(), list[..1]);
    assert!(store.opt_out(b).await.unwrap(), "opting out again after opting in");
    assert_eq!(store.list_opt_outs().await.unwrap().len(), 2);
}

/// A worker's beat replaces its previous one; the list is most recent first.
pub async fn heartbeats_upsert_per_worker(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    assert!(store.list_heartbeats().await.unwrap().is_empty());
    let started = at("2024-06-15T11:00:00Z");
    let sender = Heartbeat {
        id: "sender-1".into(),
        kind: "sender".into(),
        pid: 101,
        started,
        last_seen: at("2024-06-15T11:00:10Z"),
        processed: 5,
        rate: 0.5,
    };
    let expander = Heartbeat {
        id: "expander-1".into(),
        kind: "expander".into(),
        pid: 102,
        started,
        last_seen: at("2024-06-15T11:00:20Z"),
        processed: 7,
        rate: 1.25,
    };
    store.beat(&sender).await.unwrap();
    store.beat(&expander).await.unwrap();
    assert_eq!(store.list_heartbeats().await.unwrap(), [expander.clone(), sender.clone()]);
    let later = Heartbeat { last_seen: at("2024-06-15T11:00:30Z"), processed: 40, rate: 3.5, ..sender };
    store.beat(&later).await.unwrap();
    assert_eq!(store.list_heartbeats().await.unwrap(), [later, expander]);
}

/// Channel states: one per account, listed by name; a write older than the stored state is
/// ignored (a stopped process's late write), a newer (or equally new) one replaces it; and
/// another handle (another process) sees them.
pub async fn channel_states_keep_the_newest_per_account(fixture: &dyn StoreFixture) {
    let (_, store) = fixture.open().await;
    assert!(store.channel_states().await.unwrap().is_empty());
    let connected = serde_json::json!({"state": "connected", "phone": "+447911123456"});
    let banned = serde_json::json!({"state": "temporarily_banned", "until": "2024-06-16T12:00:00Z"});
    store.set_channel_state("wa", &connected, at("2024-06-15T12:00:00Z")).await.unwrap();
    store.set_channel_state("alpha", &serde_json::json!({"state": "connecting"}), now()).await.unwrap();
    store.set_channel_state("wa", &banned, at("2024-06-15T13:00:00Z")).await.unwrap();
    store.set_channel_state("wa", &connected, at("2024-06-15T12:30:00Z")).await.unwrap();
    let (_, other) = fixture.open().await;
    let states = other.channel_states().await.unwrap();
    let seen: Vec<(&str, &serde_json::Value, DateTime<Utc>)> =
        states.iter().map(|s| (s.account.as_str(), &s.state, s.updated_at)).collect();
    let connecting = serde_json::json!({"state": "connecting"});
    assert_eq!(seen, [("alpha", &connecting, now()), ("wa", &banned, at("2024-06-15T13:00:00Z"))]);
}
