//! Bounded reads for dashboards polling every second: dead letters counted without being read,
//! and the newest dead letters and opt-outs, newest first, at most a limit.

use super::*;
use crate::engine::campaign::{DeadLetter, SendJob};

fn letter(campaign: CampaignId, lead: LeadId, reason: &str) -> DeadLetter {
    DeadLetter {
        payload: SendJob {
            send_id: send_id(campaign, lead),
            campaign_id: campaign,
            lead_id: lead,
            to: "+447700900123".into(),
            message: "Hi".into(),
            attempt: 1,
            timezone: None,
        },
        reason: reason.into(),
    }
}

/// `count_dead_letters` counts un-replayed letters (all with `include_replayed`);
/// `recent_dead_letters` gives the newest first, replayed ones included, at most `limit`.
pub async fn dead_letters_are_counted_and_the_newest_listed(f: &dyn StoreFixture) {
    let (_, store) = f.open().await;
    let c = new_campaign(store.as_ref(), "Recent", 1).await.id;
    store.insert_logs(c, "sim", &logs_for(c, &[1, 2, 3])).await.unwrap();
    assert_eq!(store.count_dead_letters(false).await.unwrap(), 0);
    assert!(store.recent_dead_letters(5).await.unwrap().is_empty());
    for (lead, reason) in [(1, "first"), (2, "second"), (3, "third")] {
        store.add_dead_letter(&letter(c, lead, reason)).await.unwrap();
    }
    assert_eq!((store.count_dead_letters(false).await.unwrap(), store.count_dead_letters(true).await.unwrap()), (3, 3));
    let reasons = |letters: Vec<crate::engine::campaign::DeadLetterRecord>| {
        letters.into_iter().map(|l| l.reason).collect::<Vec<_>>()
    };
    assert_eq!(reasons(store.recent_dead_letters(2).await.unwrap()), ["third", "second"]);
    assert_eq!(reasons(store.recent_dead_letters(0).await.unwrap()), Vec::<String>::new());
    let all = store.list_dead_letters(None, false).await.unwrap();
    let first = all.iter().find(|l| l.reason == "first").unwrap().id;
    store.mark_replayed(&[first]).await.unwrap();
    assert_eq!((store.count_dead_letters(false).await.unwrap(), store.count_dead_letters(true).await.unwrap()), (2, 3));
    let newest = store.recent_dead_letters(10).await.unwrap();
    assert_eq!(reasons(newest.clone()), ["third", "second", "first"]);
    assert!(newest[2].replayed_at.is_some(), "replayed letters stay in the history");
}

/// `recent_opt_outs` gives the newest opt-outs first (the same instant: the higher lead id
/// first), sources kept, at most `limit`; an opt-in removes the lead's.
pub async fn opt_outs_newest_first(f: &dyn StoreFixture) {
    let (leads, store) = f.open().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(leads.add_lead(person(name, &[&format!("{name}@example.com")], &[])).await.unwrap().id);
    }
    assert!(store.recent_opt_outs(5).await.unwrap().is_empty());
    store.opt_out_via(ids[0], "manual").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.opt_out_via(ids[2], "reply via twilio").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.opt_out(ids[1]).await.unwrap();
    let shown = |records: Vec<crate::engine::store::campaigns::OptOutRecord>| {
        records.into_iter().map(|r| (r.lead_id, r.source)).collect::<Vec<_>>()
    };
    assert_eq!(
        shown(store.recent_opt_outs(2).await.unwrap()),
        [(ids[1], None), (ids[2], Some("reply via twilio".to_string()))]
    );
    store.opt_in(ids[1]).await.unwrap();
    assert_eq!(
        shown(store.recent_opt_outs(5).await.unwrap()),
        [(ids[2], Some("reply via twilio".to_string())), (ids[0], Some("manual".to_string()))]
    );
}
