//! Segments: saved rules with names unique ignoring case, and counting, sampling and scanning
//! the leads a rule matches, on five known people with dates relative to [`NOW`].

use super::*;
use crate::engine::campaign::CampaignStatus;
use crate::engine::lead::Lead;
use crate::engine::segment::{NewSegment, Rule};

fn rule(text: &str) -> Rule {
    Rule::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Five people, by index (`people[i]` is their id). With `now` = [`NOW`] (2024-06-15 12:00):
///
/// | # | name      | spend | visits | last order        | tags          | metadata     |
/// |---|-----------|-------|--------|-------------------|---------------|--------------|
/// | 0 | Ada Obi   | 600   | 12     | 2024-06-10 (-5 d) | vip           | city=Lagos   |
/// | 1 | Bram Berg | 100   | 2      | 2024-04-01        | churn         | city=Berlin  |
/// | 2 | Chen Wu   | 800   | 3      | never             | VIP, churn    |              |
/// | 3 | Dayo Ade  | 50    | 20     | today 08:00       |               | city=lagos   |
/// | 4 | Eva Lind  | 500   | 10     | 2024-05-16 23:59:59 (-30 d) | vip | tier=gold    |
///
/// Chen has no phone, Dayo no email; Eva was created on 2024-05-16, Dayo on 2024-06-01, the
/// others before 2024-05.
pub(super) async fn add_people(store: &dyn Store) -> Vec<LeadId> {
    type Row<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
        f64,
        i64,
        Option<&'a str>,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a str,
    );
    let rows: [Row; 5] = [
        (
            "Ada Obi",
            &["ada@example.com"],
            &["+2348030000001"],
            600.0,
            12,
            Some("2024-06-10T10:00:00Z"),
            &["vip"],
            &[("city", "Lagos")],
            "2024-01-05T00:00:00Z",
        ),
        (
            "Bram Berg",
            &["bram@example.nl"],
            &["+31600000002"],
            100.0,
            2,
            Some("2024-04-01T10:00:00Z"),
            &["churn"],
            &[("city", "Berlin")],
            "2023-11-20T00:00:00Z",
        ),
        ("Chen Wu", &["chen@example.com"], &[], 800.0, 3, None, &["VIP", "churn"], &[], "2024-03-01T00:00:00Z"),
        (
            "Dayo Ade",
            &[],
            &["+2348030000004"],
            50.0,
            20,
            Some("2024-06-15T08:00:00Z"),
            &[],
            &[("city", "lagos")],
            "2024-06-01T00:00:00Z",
        ),
        (
            "Eva Lind",
            &["eva@example.se"],
            &["+46700000005"],
            500.0,
            10,
            Some("2024-05-16T23:59:59Z"),
            &["vip"],
            &[("tier", "gold")],
            "2024-05-16T00:00:00Z",
        ),
    ];
    let mut ids = Vec::new();
    for (name, emails, phones, spend, visits, last, tags, meta, created) in rows {
        let draft = LeadDraft {
            total_spend: Some(spend),
            visits: Some(visits),
            last_order_at: last.map(at),
            tags: strings(tags),
            metadata: metadata(meta),
            created_at: Some(at(created)),
            ..person(name, emails, phones)
        };
        ids.push(store.add_lead(draft).await.unwrap().id);
    }
    ids
}

/// Rules over [`add_people`] and the people (by index) each matches at [`NOW`].
pub(super) const PEOPLE_RULES: &[(&str, &[usize])] = &[
    ("total_spend > 500", &[0, 2]),
    ("total_spend >= 500", &[0, 2, 4]),
    ("total_spend > 10000", &[]),
    (r#"last_order_at > "30 days ago""#, &[0, 3]),
    (r#"last_order_at >= "30 days ago""#, &[0, 3, 4]),
    (r#"last_order_at = "today""#, &[3]),
    (r#"last_order_at < "2024-04-02""#, &[1]),
    (r#"last_order_at <= "2024-05-16T23:59:59Z""#, &[1, 4]),
    (r#"created_at >= "2024-05-16""#, &[3, 4]),
    (r#"tags contains "vip""#, &[0, 2, 4]),
    (r#"not tags contains "churn""#, &[0, 3, 4]),
    (r#"tags not contains "churn""#, &[0, 3, 4]),
    (r#"tags in ["CHURN", "none"]"#, &[1, 2]),
    (r#"city = "LAGOS""#, &[0, 3]),
    (r#"city != "lagos""#, &[1]),
    (r#"not city = "lagos""#, &[1, 2, 4]),
    (r#"tier in ["Gold", "silver"]"#, &[4]),
    (r#"name = "chen wu""#, &[2]),
    (r#"name contains "ad""#, &[0, 3]),
    (r#"name contains "ADA""#, &[0]),
    (r#"name contains "a""#, &[0, 1, 3, 4]),
    (r#"name contains "o a""#, &[3]),
    (r#"name contains "example""#, &[]),
    (r#"name contains "1""#, &[]),
    (r#"not name contains "ad""#, &[1, 2, 4]),
    (r#"name not contains "ad""#, &[1, 2, 4]),
    (r#"not (name contains "wu")"#, &[0, 1, 3, 4]),
    (r#"emails contains "@example.com""#, &[0, 2]),
    (r#"phones contains "+234""#, &[0, 3]),
    ("visits in [2, 3]", &[1, 2]),
    ("visits >= 10 or total_spend > 700", &[0, 2, 3, 4]),
    (r#"total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10) and not tags contains "churn""#, &[0]),
];

fn pick(people: &[LeadId], idx: &[usize]) -> Vec<LeadId> {
    idx.iter().map(|&i| people[i]).collect()
}

fn ids(leads: &[Lead]) -> Vec<LeadId> {
    leads.iter().map(|l| l.id).collect()
}

/// Create, read (by id, by name ignoring case, all), update and delete; names are unique
/// ignoring case (Unicode too), on create and on rename, and a deleted or renamed segment's
/// name is free again.
pub async fn segments_crud_with_case_insensitive_names(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    assert!(store.list_segments().await.unwrap().is_empty());
    let new =
        |name: &str, text: &str| NewSegment { name: name.into(), owner_user_id: Some("ops".into()), rule: rule(text) };
    let before = wall_ms();
    let vip = store.create_segment(new("VIP", "total_spend > 500")).await.unwrap();
    let after = wall_ms();
    assert_eq!(
        (vip.name.as_str(), vip.owner_user_id.as_deref(), &vip.rule_ast),
        ("VIP", Some("ops"), &rule("total_spend > 500"))
    );
    assert_eq!(vip.created_at, vip.updated_at);
    assert_between(vip.created_at, before, after);
    assert_eq!(store.get_segment(vip.id).await.unwrap(), Some(vip.clone()));
    assert_eq!(store.get_segment_by_name("vip").await.unwrap(), Some(vip.clone()));
    assert_eq!(store.get_segment_by_name("ViP").await.unwrap(), Some(vip.clone()));
    assert_eq!(store.get_segment_by_name("vips").await.unwrap(), None);
    assert_eq!(store.get_segment(vip.id + 1000).await.unwrap(), None);

    assert_conflict(store.create_segment(new("vip", "visits > 1")).await);
    let school =
        store.create_segment(new("École", r#"city in ["Lyon", "Paris"] and not tags contains "churn""#)).await.unwrap();
    assert_conflict(store.create_segment(new("école", "visits > 1")).await);
    assert_conflict(store.create_segment(new("ÉCOLE", "visits > 1")).await);
    assert_eq!(store.list_segments().await.unwrap(), [vip.clone(), school.clone()]);

    let mut big = vip.clone();
    big.name = "Big spenders".into();
    big.owner_user_id = None;
    big.rule_ast = rule(r#"total_spend > 1000 or (visits >= 10 and last_order_at > "7 days ago")"#);
    big.updated_at = at("2030-01-01T00:00:00Z");
    store.update_segment(&big).await.unwrap();
    assert_eq!(store.get_segment(vip.id).await.unwrap(), Some(big.clone()));
    assert_eq!(store.get_segment_by_name("VIP").await.unwrap(), None, "the old name is free");
    assert_eq!(store.get_segment_by_name("BIG SPENDERS").await.unwrap(), Some(big.clone()));

    let mut taken = big.clone();
    taken.name = "ÉCOLE".into();
    assert_conflict(store.update_segment(&taken).await);
    assert_eq!(store.get_segment(big.id).await.unwrap(), Some(big.clone()), "a refused rename changes nothing");
    let mut recased = big.clone();
    recased.name = "BIG spenders".into();
    store.update_segment(&recased).await.unwrap();
    assert_eq!(store.get_segment(big.id).await.unwrap(), Some(recased.clone()), "a segment may change its own case");
    let mut ghost = recased.clone();
    ghost.id = school.id.max(big.id) + 100;
    ghost.name = "Ghost".into();
    assert_not_found(store.update_segment(&ghost).await);
    assert_eq!(store.get_segment_by_name("ghost").await.unwrap(), None);

    let vip_again = store.create_segment(new("vip", "visits > 1")).await.unwrap();
    assert!(store.campaigns_using_segment(school.id).await.unwrap().is_empty());
    assert!(store.delete_segment(school.id).await.unwrap());
    assert!(!store.delete_segment(school.id).await.unwrap(), "already gone");
    assert_eq!(store.get_segment(school.id).await.unwrap(), None);
    assert_eq!(store.list_segments().await.unwrap(), [recased, vip_again]);
    store.create_segment(new("école", "visits > 1")).await.unwrap();
}

/// A segment that a RUNNING or PAUSED campaign sends to cannot be deleted, and
/// `campaigns_using_segment` names those campaigns; drafts and finished campaigns do not count.
pub async fn segments_in_use_by_campaigns_cannot_be_deleted(f: &dyn StoreFixture) {
    let (store, campaigns) = f.open().await;
    let new = |name: &str| NewSegment { name: name.into(), owner_user_id: None, rule: rule("visits > 1") };
    let spring = store.create_segment(new("Spring audience")).await.unwrap();
    let other = store.create_segment(new("Other")).await.unwrap();
    let c = new_campaign(campaigns.as_ref(), "Spring sale", spring.id).await;
    let draft = new_campaign(campaigns.as_ref(), "Spring draft", spring.id).await;
    assert!(store.campaigns_using_segment(spring.id).await.unwrap().is_empty(), "drafts do not hold a segment");

    campaigns.start_campaign(c.id, 0).await.unwrap();
    assert_eq!(
        store.campaigns_using_segment(spring.id).await.unwrap(),
        [format!("campaign {} 'Spring sale' (RUNNING)", c.id)]
    );
    assert_conflict(store.delete_segment(spring.id).await);
    campaigns.set_campaign_status(c.id, CampaignStatus::Paused).await.unwrap();
    assert_eq!(
        store.campaigns_using_segment(spring.id).await.unwrap(),
        [format!("campaign {} 'Spring sale' (PAUSED)", c.id)]
    );
    assert_conflict(store.delete_segment(spring.id).await);
    assert_eq!(store.get_segment(spring.id).await.unwrap(), Some(spring.clone()));
    assert!(store.campaigns_using_segment(other.id).await.unwrap().is_empty());
    assert!(store.delete_segment(other.id).await.unwrap());

    campaigns.set_campaign_status(c.id, CampaignStatus::Cancelled).await.unwrap();
    assert_eq!(campaigns.campaign_status(draft.id).await.unwrap(), Some(CampaignStatus::Draft));
    assert!(store.campaigns_using_segment(spring.id).await.unwrap().is_empty());
    assert!(store.delete_segment(spring.id).await.unwrap());
}

/// A deleted segment's id is never given to a new segment: a draft campaign keeps the id of
/// the segment it was made for, and must find that segment gone rather than quietly send to
/// another audience.
pub async fn deleted_segment_ids_are_never_reused(f: &dyn StoreFixture) {
    let (store, campaigns) = f.open().await;
    let new = |name: &str| NewSegment { name: name.into(), owner_user_id: None, rule: rule("visits > 1") };
    let first = store.create_segment(new("First")).await.unwrap();
    let newest = store.create_segment(new("Newest")).await.unwrap();
    let draft = new_campaign(campaigns.as_ref(), "Draft on newest", newest.id).await;
    assert!(store.delete_segment(newest.id).await.unwrap(), "a draft does not hold its segment");
    let next = store.create_segment(new("Next")).await.unwrap();
    assert!(
        next.id > newest.id && newest.id > first.id,
        "segment {} was given the deleted id {}",
        next.name,
        newest.id
    );
    assert_eq!(store.get_segment(draft.segment_id).await.unwrap(), None, "the draft's segment is gone");
}

/// `count_matching` and `count_matching_each` agree with the known answers, in order, also for
/// more rules than one pass might take.
pub async fn count_matching_on_known_people(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    add_people(store.as_ref()).await;
    let mut rules = Vec::new();
    let mut expected = Vec::new();
    for (text, matches) in PEOPLE_RULES {
        assert_eq!(store.count_matching(&rule(text), now()).await.unwrap(), matches.len() as u64, "{text}");
        rules.push(rule(text));
        expected.push(matches.len() as u64);
    }
    assert_eq!(store.count_matching_each(&rules, now()).await.unwrap(), expected);
    let many: Vec<usize> = (0..130).map(|i| (i * 7) % PEOPLE_RULES.len()).collect();
    let many_rules: Vec<Rule> = many.iter().map(|&i| rules[i].clone()).collect();
    let many_expected: Vec<u64> = many.iter().map(|&i| expected[i]).collect();
    assert_eq!(store.count_matching_each(&many_rules, now()).await.unwrap(), many_expected);
    assert!(store.count_matching_each(&[], now()).await.unwrap().is_empty());
}

/// `sample_matching` gives the first matches by id, whole; `scan_matching` pages through all of
/// them from a cursor, and both skip deleted leads.
pub async fn sample_and_scan_matching_page_by_id(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let people = add_people(store.as_ref()).await;
    for (text, matches) in PEOPLE_RULES {
        let r = rule(text);
        let expected = pick(&people, matches);
        let sample = store.sample_matching(&r, now(), 2).await.unwrap();
        assert_eq!(ids(&sample), expected[..expected.len().min(2)], "sample of {text}");
        let mut scanned = Vec::new();
        let mut after = 0;
        loop {
            let page = store.scan_matching(&r, now(), after, 2).await.unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = last.id;
            scanned.extend(ids(&page));
        }
        assert_eq!(scanned, expected, "scan of {text}");
    }
    let vip = rule(r#"tags contains "vip""#);
    let all = store.sample_matching(&vip, now(), 10).await.unwrap();
    for lead in &all {
        assert_eq!(store.get_lead(lead.id).await.unwrap().as_ref(), Some(lead), "matches are whole leads");
    }
    assert!(store.sample_matching(&vip, now(), 0).await.unwrap().is_empty());
    assert_eq!(ids(&store.scan_matching(&vip, now(), people[0], 10).await.unwrap()), pick(&people, &[2, 4]));
    assert!(store.delete_lead(people[2]).await.unwrap());
    assert_eq!(ids(&store.sample_matching(&vip, now(), 10).await.unwrap()), pick(&people, &[0, 4]));
    assert_eq!(ids(&store.scan_matching(&vip, now(), people[0], 10).await.unwrap()), pick(&people, &[4]));
    assert_eq!(store.count_matching(&vip, now()).await.unwrap(), 2);
}

/// Relative dates are resolved against the `now` of each call, so the same rule matches
/// differently as the calendar moves.
pub async fn relative_dates_follow_now(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let people = add_people(store.as_ref()).await;
    let recent = rule(r#"last_order_at > "30 days ago""#);
    for (now, expected) in [
        (at("2024-06-09T00:00:00Z"), vec![0, 3, 4]),
        (at(NOW), vec![0, 3]),
        (at("2024-07-10T23:00:00Z"), vec![3]),
        (at("2024-07-15T12:00:00Z"), vec![]),
    ] {
        assert_eq!(store.count_matching(&recent, now).await.unwrap(), expected.len() as u64, "at {now}");
        let sample = store.sample_matching(&recent, now, 10).await.unwrap();
        assert_eq!(ids(&sample), pick(&people, &expected), "at {now}");
        assert_eq!(ids(&store.scan_matching(&recent, now, 0, 10).await.unwrap()), pick(&people, &expected));
    }
    let today = rule(r#"last_order_at = "today""#);
    let yesterday = rule(r#"last_order_at = "yesterday""#);
    let tomorrow = at("2024-06-16T00:00:01Z");
    assert_eq!(store.count_matching_each(&[today.clone(), yesterday.clone()], tomorrow).await.unwrap(), [0, 1]);
    assert_eq!(store.count_matching_each(&[today, yesterday], now()).await.unwrap(), [1, 0]);
}

/// `explain_matching` describes the count and the sample query, each with a plan.
pub async fn explain_matching_describes_count_and_sample(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    add_people(store.as_ref()).await;
    let plans = store.explain_matching(&rule(r#"total_spend > 500 and city = "lagos""#), now(), 10).await.unwrap();
    let purposes: Vec<&str> = plans.iter().map(|p| p.purpose.as_str()).collect();
    assert_eq!(purposes, ["count", "sample"]);
    for plan in &plans {
        assert!(!plan.query.is_empty(), "{plan:?}");
        assert!(!plan.plan.is_empty(), "{plan:?}");
    }
}
