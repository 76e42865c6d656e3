//! Leads: an email or a phone belongs to at most one lead, and everything a lead holds comes
//! back as it was stored; listing filters, sorts and pages; `scan_leads` is a cursor.

use super::*;
use crate::engine::lead::{Lead, email_key, phone_key};
use crate::engine::store::{LeadFilter, LeadQuery, SortKey};

fn ids(leads: &[Lead]) -> Vec<LeadId> {
    leads.iter().map(|l| l.id).collect()
}

fn ada_draft() -> LeadDraft {
    LeadDraft {
        total_spend: Some(120.5),
        visits: Some(3),
        last_order_at: Some(at("2024-05-01T09:30:00Z")),
        tags: strings(&["vip", "newsletter"]),
        metadata: metadata(&[("city", "London")]),
        created_at: Some(at("2023-01-02T03:04:05Z")),
        ..person("Ada Lovelace", &["ada@example.com", "ada@work.example"], &["+447700900123"])
    }
}

fn grace_draft() -> LeadDraft {
    person("Grace Hopper", &["grace@example.com"], &["+447700900456"])
}

/// A new lead comes back from `add_lead` exactly as every later read returns it.
pub async fn add_and_get_lead(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let before = wall_ms();
    let lead = store.add_lead(ada_draft()).await.unwrap();
    let after = wall_ms();
    assert_eq!(lead, ada_draft().into_lead(lead.id, lead.updated_at), "every field comes from the draft");
    assert_between(lead.updated_at, before, after);
    assert_eq!(store.get_lead(lead.id).await.unwrap(), Some(lead.clone()), "add_lead returns the stored lead");
    let (other_handle, _) = f.open().await;
    assert_eq!(other_handle.get_lead(lead.id).await.unwrap(), Some(lead.clone()), "durable across handles");
    assert_eq!(store.get_lead(lead.id + 1000).await.unwrap(), None);

    // Without a created_at, a lead is created now; an empty draft is a lead too.
    let bare = store.add_lead(LeadDraft::default()).await.unwrap();
    assert_ne!(bare.id, lead.id);
    assert_eq!(bare.created_at, bare.updated_at);
    assert_eq!((bare.name.as_str(), bare.total_spend, bare.visits), ("", 0.0, 0));
    assert_eq!(store.get_lead(bare.id).await.unwrap(), Some(bare));
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 2);
}

/// An email or phone that belongs to one lead cannot be given to another, and a refused add
/// writes nothing (not even its other, free keys). `find_lead_by_key` finds by `e:`/`p:` key.
pub async fn add_lead_refuses_keys_of_another_lead(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let ada = store.add_lead(ada_draft()).await.unwrap();
    assert_conflict(store.add_lead(person("Imposter", &["ada@example.com"], &[])).await);
    assert_conflict(store.add_lead(person("Imposter", &["free@example.com"], &["+447700900123"])).await);
    assert_conflict(store.add_lead(person("", &["ada@work.example"], &["+447700900999"])).await);
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 1);
    assert_eq!(store.find_lead_by_key(&email_key("free@example.com")).await.unwrap(), None);
    assert_eq!(store.find_lead_by_key(&phone_key("+447700900999")).await.unwrap(), None);

    for key in ["e:ada@example.com", "e:ada@work.example", "p:+447700900123"] {
        assert_eq!(store.find_lead_by_key(key).await.unwrap(), Some(ada.clone()), "{key}");
    }
    assert_eq!(store.find_lead_by_key("e:nobody@example.com").await.unwrap(), None);
    assert_eq!(store.find_lead_by_key("p:ada@example.com").await.unwrap(), None, "keys are typed");
    let grace = store.add_lead(grace_draft()).await.unwrap();
    assert_eq!(store.find_lead_by_key("p:+447700900456").await.unwrap(), Some(grace));
}

/// `save_lead` replaces a lead, moving its keys: dropped ones are free for others, new ones
/// must not belong to another lead (`Conflict`, changing nothing); an unknown id is `NotFound`.
pub async fn save_lead_moves_keys_and_refuses_taken_ones(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let mut ada = store.add_lead(ada_draft()).await.unwrap();
    let mut grace = store.add_lead(grace_draft()).await.unwrap();

    ada.name = "Ada King".into();
    ada.emails.push("countess@example.com".into());
    ada.phones.clear();
    ada.tags = strings(&["patron"]);
    ada.metadata.insert("title".into(), "Countess".into());
    ada.total_spend = 99.25;
    ada.updated_at = at("2024-06-01T10:00:00Z");
    store.save_lead(&ada).await.unwrap();
    assert_eq!(store.get_lead(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.find_lead_by_key("e:countess@example.com").await.unwrap(), Some(ada.clone()));
    assert_eq!(store.find_lead_by_key("p:+447700900123").await.unwrap(), None, "a dropped phone is free");
    let search = |term: &str| LeadQuery {
        filter: LeadFilter { search: Some(term.into()), ..LeadFilter::default() },
        ..LeadQuery::default()
    };
    assert_eq!(ids(&store.list_leads(&search("king")).await.unwrap()), [ada.id], "search follows the save");
    assert!(store.list_leads(&search("lovelace")).await.unwrap().is_empty());

    grace.phones.push("+447700900123".into());
    store.save_lead(&grace).await.unwrap();
    assert_eq!(store.find_lead_by_key("p:+447700900123").await.unwrap(), Some(grace.clone()));

    let mut greedy = ada.clone();
    greedy.name = "Greedy".into();
    greedy.emails.push("grace@example.com".into());
    assert_conflict(store.save_lead(&greedy).await);
    let mut greedy = ada.clone();
    greedy.phones.push("+447700900456".into());
    greedy.emails.push("fresh@example.com".into());
    assert_conflict(store.save_lead(&greedy).await);
    assert_eq!(store.get_lead(ada.id).await.unwrap(), Some(ada.clone()), "a refused save changes nothing");
    assert_eq!(store.find_lead_by_key("e:fresh@example.com").await.unwrap(), None);

    let mut ghost = ada.clone();
    ghost.id = grace.id.max(ada.id) + 100;
    ghost.emails = strings(&["ghost@example.com"]);
    assert_not_found(store.save_lead(&ghost).await);
    assert_eq!(store.find_lead_by_key("e:ghost@example.com").await.unwrap(), None);
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 2);
}

/// A deleted lead is gone with its keys; its id is never handed out again, not even when it
/// was the newest (opt-outs and logs refer to leads by id).
pub async fn delete_lead_frees_keys_and_ids_are_never_reused(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let ada = store.add_lead(ada_draft()).await.unwrap();
    let grace = store.add_lead(grace_draft()).await.unwrap();
    assert!(store.delete_lead(ada.id).await.unwrap());
    assert!(!store.delete_lead(ada.id).await.unwrap(), "already gone");
    assert_eq!(store.get_lead(ada.id).await.unwrap(), None);
    assert_eq!(store.find_lead_by_key("e:ada@example.com").await.unwrap(), None);
    assert_eq!(ids(&store.list_leads(&LeadQuery::default()).await.unwrap()), [grace.id]);
    let filter = LeadFilter { search: Some("ada".into()), ..LeadFilter::default() };
    assert_eq!(store.count_leads(&filter).await.unwrap(), 0, "search forgets deleted leads");

    let again = store.add_lead(ada_draft()).await.unwrap();
    assert!(again.id > grace.id && again.id != ada.id, "new id {} after {}", again.id, grace.id);
    assert!(store.delete_lead(again.id).await.unwrap());
    let next = store.add_lead(ada_draft()).await.unwrap();
    assert!(next.id > again.id, "the newest id {} was handed out again as {}", again.id, next.id);
    assert!(!store.delete_lead(next.id + 1000).await.unwrap());
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 2);
}

/// Name, emails, phones, spend, visits, last order day, tags, creation day.
type ListingRow<'a> = (&'a str, &'a [&'a str], &'a [&'a str], f64, i64, Option<&'a str>, &'a [&'a str], &'a str);

/// Five leads for listing; names sort ignoring case in the order 1, 3, 0, 4, 2.
async fn add_listing(store: &dyn Store) -> Vec<LeadId> {
    let rows: [ListingRow; 5] = [
        (
            "carol Clark",
            &["carol@example.com"],
            &["+447700900001"],
            10.0,
            1,
            Some("2024-01-10"),
            &["vip"],
            "2023-01-01",
        ),
        ("alice Archer", &["alice@example.org"], &["+447700900002"], 250.0, 5, None, &["VIP", "churn"], "2023-03-01"),
        ("Eve Evans", &["eve@example.com"], &[], 250.0, 2, Some("2024-03-01"), &[], "2023-02-01"),
        ("bob Baker", &[], &["+15550100004"], 0.0, 9, Some("2024-02-01"), &["churn"], "2023-05-01"),
        ("Dan Dunn", &["dan@example.net"], &["+447700900005"], 99.5, 0, None, &["vip", "newsletter"], "2023-04-01"),
    ];
    let mut ids = Vec::new();
    for (name, emails, phones, spend, visits, last, tags, created) in rows {
        let draft = LeadDraft {
            total_spend: Some(spend),
            visits: Some(visits),
            last_order_at: last.map(|d| at(&format!("{d}T12:00:00Z"))),
            tags: strings(tags),
            created_at: Some(at(&format!("{created}T00:00:00Z"))),
            ..person(name, emails, phones)
        };
        ids.push(store.add_lead(draft).await.unwrap().id);
    }
    ids
}

/// `list_leads` and `count_leads`: case-insensitive search in names, emails and phones (phone
/// punctuation ignored), inclusive spend bounds, every tag required (ignoring case), each sort
/// key both ways (ties by id in the same direction, missing dates last), limit and offset.
pub async fn list_and_count_filter_sort_and_page(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let id = add_listing(store.as_ref()).await;
    let pick = |idx: &[usize]| idx.iter().map(|&i| id[i]).collect::<Vec<_>>();
    let all = store.list_leads(&LeadQuery::default()).await.unwrap();
    assert_eq!(ids(&all), pick(&[0, 1, 2, 3, 4]));
    for lead in &all {
        assert_eq!(store.get_lead(lead.id).await.unwrap().as_ref(), Some(lead), "listed leads are whole");
    }

    let sorted = [
        (SortKey::Id, [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]),
        (SortKey::Name, [1, 3, 0, 4, 2], [2, 4, 0, 3, 1]),
        (SortKey::TotalSpend, [3, 0, 4, 1, 2], [2, 1, 4, 0, 3]),
        (SortKey::Visits, [4, 0, 2, 1, 3], [3, 1, 2, 0, 4]),
        (SortKey::CreatedAt, [0, 2, 1, 4, 3], [3, 4, 1, 2, 0]),
        (SortKey::LastOrderAt, [0, 3, 2, 1, 4], [2, 3, 0, 4, 1]),
    ];
    for (sort, asc, desc) in sorted {
        for (is_desc, expected) in [(false, asc), (true, desc)] {
            let query = LeadQuery { sort, desc: is_desc, ..LeadQuery::default() };
            assert_eq!(ids(&store.list_leads(&query).await.unwrap()), pick(&expected), "{sort:?} desc={is_desc}");
        }
    }

    let page = |offset: usize, limit: Option<usize>| LeadQuery { offset, limit, ..LeadQuery::default() };
    assert_eq!(ids(&store.list_leads(&page(1, Some(2))).await.unwrap()), pick(&[1, 2]));
    assert_eq!(ids(&store.list_leads(&page(4, Some(10))).await.unwrap()), pick(&[4]));
    assert_eq!(ids(&store.list_leads(&page(3, None)).await.unwrap()), pick(&[3, 4]));
    assert!(store.list_leads(&page(5, None)).await.unwrap().is_empty());
    assert!(store.list_leads(&page(0, Some(0))).await.unwrap().is_empty());

    let search = |term: &str| LeadFilter { search: Some(term.into()), ..LeadFilter::default() };
    let tags = |t: &[&str]| LeadFilter { tags: strings(t), ..LeadFilter::default() };
    let spend =
        |min: Option<f64>, max: Option<f64>| LeadFilter { min_spend: min, max_spend: max, ..LeadFilter::default() };
    let filters: Vec<(LeadFilter, Vec<usize>)> = vec![
        (search("ALICE"), vec![1]),
        (search("example.com"), vec![0, 2]),
        (search("7700 900"), vec![0, 1, 4]),
        (search("+1555"), vec![3]),
        (search("ev"), vec![2]),
        (search("   "), vec![0, 1, 2, 3, 4]),
        (search("nobody"), vec![]),
        (spend(Some(99.5), None), vec![1, 2, 4]),
        (spend(None, Some(99.5)), vec![0, 3, 4]),
        (spend(Some(10.0), Some(250.0)), vec![0, 1, 2, 4]),
        (spend(Some(251.0), None), vec![]),
        (tags(&["vip"]), vec![0, 1, 4]),
        (tags(&["VIP", "churn"]), vec![1]),
        (tags(&["newsletter", "churn"]), vec![]),
        (LeadFilter { tags: strings(&["vip"]), ..search("example") }, vec![0, 1, 4]),
        (LeadFilter { min_spend: Some(50.0), ..search("7700") }, vec![1, 4]),
    ];
    for (filter, expected) in filters {
        let query = LeadQuery { filter: filter.clone(), ..LeadQuery::default() };
        assert_eq!(ids(&store.list_leads(&query).await.unwrap()), pick(&expected), "{filter:?}");
        assert_eq!(store.count_leads(&filter).await.unwrap(), expected.len() as u64, "{filter:?}");
    }

    // Filters, sorting and paging together, with and without a search.
    let query = |filter: LeadFilter, sort, offset, limit| LeadQuery { filter, sort, desc: true, limit, offset };
    let searched = query(search("example"), SortKey::Id, 1, Some(2));
    assert_eq!(ids(&store.list_leads(&searched).await.unwrap()), pick(&[2, 1]));
    let searched = query(search("example"), SortKey::Id, 3, Some(2));
    assert_eq!(ids(&store.list_leads(&searched).await.unwrap()), pick(&[0]));
    let vip = LeadFilter { tags: strings(&["vip"]), ..search("example") };
    assert_eq!(
        ids(&store.list_leads(&query(vip.clone(), SortKey::TotalSpend, 0, None)).await.unwrap()),
        pick(&[1, 4, 0])
    );
    assert_eq!(ids(&store.list_leads(&query(vip, SortKey::TotalSpend, 1, Some(1))).await.unwrap()), pick(&[4]));
    let by_name = query(search("a"), SortKey::Name, 0, Some(3));
    assert_eq!(ids(&store.list_leads(&by_name).await.unwrap()), pick(&[2, 4, 0]));
}

/// `scan_leads` pages by id from a cursor, seeing each lead once, and skips deleted ones.
pub async fn scan_leads_is_a_cursor_by_id(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let id = add_listing(store.as_ref()).await;
    assert_eq!(ids(&store.scan_leads(0, 2).await.unwrap()), [id[0], id[1]]);
    assert_eq!(ids(&store.scan_leads(id[1], 2).await.unwrap()), [id[2], id[3]]);
    assert_eq!(ids(&store.scan_leads(id[3], 2).await.unwrap()), [id[4]]);
    assert!(store.scan_leads(id[4], 2).await.unwrap().is_empty());
    assert!(store.scan_leads(0, 0).await.unwrap().is_empty());
    assert!(store.delete_lead(id[2]).await.unwrap());
    let page = store.scan_leads(id[1], 2).await.unwrap();
    assert_eq!(ids(&page), [id[3], id[4]]);
    assert_eq!(Some(&page[0]), store.get_lead(id[3]).await.unwrap().as_ref(), "scanned leads are whole");
}

/// `metadata_keys` lists every key in use, sorted, once; keys of deleted leads go with them.
pub async fn metadata_keys_are_sorted_and_current(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    assert!(store.metadata_keys().await.unwrap().is_empty());
    let with =
        |email: &str, pairs: &[(&str, &str)]| LeadDraft { metadata: metadata(pairs), ..person("", &[email], &[]) };
    store.add_lead(with("a@example.com", &[("tier", "gold"), ("city", "Lagos")])).await.unwrap();
    let b = store.add_lead(with("b@example.com", &[("city", "Oslo"), ("source", "fair")])).await.unwrap();
    store.add_lead(with("c@example.com", &[])).await.unwrap();
    assert_eq!(store.metadata_keys().await.unwrap(), ["city", "source", "tier"]);
    assert!(store.delete_lead(b.id).await.unwrap());
    assert_eq!(store.metadata_keys().await.unwrap(), ["city", "tier"]);
}
