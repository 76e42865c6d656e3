//! Bulk import through an [`ImportSession`]: rows apply in order, later rows (in the same batch
//! or a later one) see the leads earlier rows made; the policy decides what a match does; a row
//! whose keys belong to two leads is refused; a dry run reports everything and writes nothing;
//! `finish` counts updates that later rows undid.

use super::*;
use crate::engine::lead::{ConflictPolicy, Lead};
use crate::engine::store::{ImportPlan, LeadFilter, LeadQuery, RowOutcome};

/// Runs one import session over `batches`, preparing rows as the import pipeline does.
async fn import(
    store: &dyn Store,
    policy: ConflictPolicy,
    dry_run: bool,
    batches: Vec<Vec<LeadDraft>>,
) -> (Vec<RowOutcome>, u64) {
    let rows = batches.iter().map(Vec::len).sum::<usize>() as u64;
    let plan = ImportPlan { policy, dry_run, expected_rows: Some(rows) };
    let mut session = store.begin_import(plan).await.unwrap();
    let prepare = session.preparer();
    let mut outcomes = Vec::new();
    for batch in batches {
        let prepared = batch.into_iter().map(|draft| prepare(draft)).collect();
        outcomes.extend(session.apply(prepared).await.unwrap());
    }
    (outcomes, session.finish().await.unwrap())
}

async fn merge(store: &dyn Store, batches: Vec<Vec<LeadDraft>>) -> (Vec<RowOutcome>, u64) {
    import(store, ConflictPolicy::Merge, false, batches).await
}

fn inserted(outcome: &RowOutcome) -> LeadId {
    match outcome {
        RowOutcome::Inserted(id) => *id,
        other => panic!("expected Inserted, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict_row(outcome: &RowOutcome) {
    match outcome {
        RowOutcome::Conflict(reason) => assert!(!reason.is_empty(), "a conflict says why"),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

async fn lead(store: &dyn Store, id: LeadId) -> Lead {
    store.get_lead(id).await.unwrap().unwrap_or_else(|| panic!("lead {id} is gone"))
}

fn search(term: &str) -> LeadQuery {
    LeadQuery { filter: LeadFilter { search: Some(term.into()), ..LeadFilter::default() }, ..LeadQuery::default() }
}

fn ada() -> LeadDraft {
    LeadDraft {
        total_spend: Some(10.0),
        visits: Some(2),
        tags: strings(&["vip"]),
        metadata: metadata(&[("city", "London")]),
        created_at: Some(at("2023-01-01T00:00:00Z")),
        ..person("Ada", &["ada@example.com"], &["+447700900123"])
    }
}

/// New rows become leads; a row matching a lead made or changed by an earlier row (in the same
/// batch or an earlier one) updates it, or skips it when it brings nothing new.
pub async fn import_inserts_and_later_rows_see_earlier_ones(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let (outcomes, undone) = merge(
        store.as_ref(),
        vec![
            vec![
                person("Ada", &["ada@example.com"], &[]),
                person("Grace", &[], &["+447700900456"]),
                LeadDraft { tags: strings(&["vip"]), ..person("", &["ada@example.com"], &["+447700900123"]) },
                person("Grace", &[], &["+447700900456"]),
            ],
            vec![],
            vec![
                person("", &[], &["+447700900123"]),
                person("", &["grace@example.com"], &["+447700900456"]),
                person("Alan", &["alan@example.com"], &[]),
            ],
        ],
    )
    .await;
    assert_eq!(undone, 0);
    let (a, g, n) = (inserted(&outcomes[0]), inserted(&outcomes[1]), inserted(&outcomes[6]));
    assert!(a != g && g != n && a != n);
    assert_eq!(
        outcomes,
        [
            RowOutcome::Inserted(a),
            RowOutcome::Inserted(g),
            RowOutcome::Updated(a),
            RowOutcome::Skipped(g),
            RowOutcome::Skipped(a),
            RowOutcome::Updated(g),
            RowOutcome::Inserted(n),
        ]
    );

    let (reader, _) = f.open().await;
    let ada = lead(reader.as_ref(), a).await;
    assert_eq!(
        (ada.name.as_str(), ada.emails.clone(), ada.phones.clone()),
        ("Ada", strings(&["ada@example.com"]), strings(&["+447700900123"]))
    );
    assert_eq!(ada.tags, ["vip"]);
    assert_eq!(lead(reader.as_ref(), g).await.emails, ["grace@example.com"]);
    for (key, id) in [
        ("e:ada@example.com", a),
        ("p:+447700900123", a),
        ("p:+447700900456", g),
        ("e:grace@example.com", g),
        ("e:alan@example.com", n),
    ] {
        assert_eq!(reader.find_lead_by_key(key).await.unwrap().map(|l| l.id), Some(id), "{key}");
    }
    assert_eq!(reader.count_leads(&LeadFilter::default()).await.unwrap(), 3);
    assert_eq!(reader.list_leads(&search("alan")).await.unwrap().iter().map(|l| l.id).collect::<Vec<_>>(), [n]);
    assert_eq!(reader.list_leads(&search("grace@")).await.unwrap().iter().map(|l| l.id).collect::<Vec<_>>(), [g]);
}

/// `merge` unions lists and takes given values, `skip` leaves the lead as it was, `overwrite`
/// replaces everything but id and creation (and frees the keys it drops); a row that changes
/// nothing is `Skipped` and leaves `updated_at` alone.
pub async fn import_policies_merge_skip_overwrite(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let stored = store.add_lead(ada()).await.unwrap();
    let id = stored.id;
    let row = |draft: LeadDraft| vec![vec![draft]];

    let other = LeadDraft { total_spend: Some(99.0), ..person("Someone Else", &["ada@example.com"], &[]) };
    let (outcomes, _) = import(store.as_ref(), ConflictPolicy::Skip, false, row(other)).await;
    assert_eq!(outcomes, [RowOutcome::Skipped(id)]);
    assert_eq!(lead(store.as_ref(), id).await, stored);

    let more = LeadDraft {
        tags: strings(&["newsletter", "vip"]),
        metadata: metadata(&[("tier", "gold")]),
        ..person("Ada King", &["ada@example.com", "ada@work.example"], &[])
    };
    let (outcomes, undone) = merge(store.as_ref(), row(more.clone())).await;
    assert_eq!((outcomes, undone), (vec![RowOutcome::Updated(id)], 0));
    let merged = lead(store.as_ref(), id).await;
    let mut expected = Lead {
        name: "Ada King".into(),
        emails: strings(&["ada@example.com", "ada@work.example"]),
        tags: strings(&["vip", "newsletter"]),
        metadata: metadata(&[("city", "London"), ("tier", "gold")]),
        ..stored.clone()
    };
    expected.updated_at = merged.updated_at;
    assert_eq!(merged, expected);
    assert!(merged.updated_at >= stored.updated_at);
    assert_eq!(store.find_lead_by_key("e:ada@work.example").await.unwrap().map(|l| l.id), Some(id));
    assert_eq!(store.list_leads(&search("king")).await.unwrap().len(), 1, "search follows the import");

    let (outcomes, _) = merge(store.as_ref(), row(more)).await;
    assert_eq!(outcomes, [RowOutcome::Skipped(id)], "the same data again changes nothing");
    assert_eq!(lead(store.as_ref(), id).await, merged, "updated_at did not move");

    let replacement = LeadDraft { total_spend: Some(5.0), ..person("Ada O", &["ada@example.com"], &[]) };
    let (outcomes, _) = import(store.as_ref(), ConflictPolicy::Overwrite, false, row(replacement.clone())).await;
    assert_eq!(outcomes, [RowOutcome::Updated(id)]);
    let replaced = lead(store.as_ref(), id).await;
    let mut expected = replacement.into_lead(id, replaced.updated_at);
    expected.created_at = stored.created_at;
    assert_eq!(replaced, expected);
    assert_eq!(store.find_lead_by_key("p:+447700900123").await.unwrap(), None, "overwrite dropped the phone");
    assert_eq!(store.find_lead_by_key("e:ada@work.example").await.unwrap(), None);
    assert!(store.metadata_keys().await.unwrap().is_empty());
    store.add_lead(person("Someone", &[], &["+447700900123"])).await.unwrap();
}

/// A re-imported row with exactly the stored emails and phones is skipped only when every value
/// it gives is the stored one: one differing field of any kind makes it an update, in a later
/// import and in the same one (where the lead may still be waiting to be written).
pub async fn rows_with_the_same_keys_update_when_any_value_differs(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let base = ada();
    let variants: Vec<(&str, LeadDraft)> = vec![
        ("name", LeadDraft { name: Some("Ada Byron".into()), ..ada() }),
        ("spend", LeadDraft { total_spend: Some(10.5), ..ada() }),
        ("visits", LeadDraft { visits: Some(3), ..ada() }),
        ("last order", LeadDraft { last_order_at: Some(at("2024-02-01T00:00:00Z")), ..ada() }),
        ("tags", LeadDraft { tags: strings(&["vip", "new"]), ..ada() }),
        ("metadata", LeadDraft { metadata: metadata(&[("city", "Paris")]), ..ada() }),
        ("emails", LeadDraft { emails: strings(&["ada@example.com", "ada@b.example"]), ..ada() }),
    ];
    for (what, variant) in variants {
        let (outcomes, _) = merge(store.as_ref(), vec![vec![base.clone()]]).await;
        let id = match outcomes[0] {
            RowOutcome::Inserted(id) | RowOutcome::Skipped(id) | RowOutcome::Updated(id) => id,
            ref other => panic!("{what}: {other:?}"),
        };
        let before = lead(store.as_ref(), id).await;
        let (outcomes, _) = merge(store.as_ref(), vec![vec![variant.clone()]]).await;
        assert_eq!(outcomes, [RowOutcome::Updated(id)], "{what} differs");
        let after = lead(store.as_ref(), id).await;
        assert_ne!(after, before, "{what} was written");
        let (outcomes, _) = merge(store.as_ref(), vec![vec![variant.clone()]]).await;
        assert_eq!(outcomes, [RowOutcome::Skipped(id)], "{what} again changes nothing");
        assert_eq!(lead(store.as_ref(), id).await, after);
        store.delete_lead(id).await.unwrap();
    }
    // In one session: a new lead, then rows naming it, before and after a batch boundary.
    let fresh = person("Grace", &["grace@example.com"], &["+447700900456"]);
    let (outcomes, _) = merge(
        store.as_ref(),
        vec![
            vec![fresh.clone(), fresh.clone(), LeadDraft { visits: Some(7), ..fresh.clone() }],
            vec![LeadDraft { visits: Some(7), ..fresh.clone() }, fresh.clone()],
        ],
    )
    .await;
    let g = inserted(&outcomes[0]);
    assert_eq!(
        outcomes[1..],
        [RowOutcome::Skipped(g), RowOutcome::Updated(g), RowOutcome::Skipped(g), RowOutcome::Skipped(g)]
    );
    assert_eq!(lead(store.as_ref(), g).await.visits, 7);
}

/// A row whose emails and phones belong to two different leads is refused (whether they were
/// stored before or made by this import) and the session goes on; one owner plus new keys is
/// an ordinary match.
pub async fn import_rows_matching_two_leads_conflict(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let ada = store.add_lead(ada()).await.unwrap();
    let grace = store.add_lead(person("Grace", &["grace@example.com"], &["+447700900456"])).await.unwrap();
    let (outcomes, _) = merge(
        store.as_ref(),
        vec![vec![
            person("Both", &["ada@example.com"], &["+447700900456"]),
            person("", &["ada@new.example"], &["+447700900123"]),
            person("X", &["x@example.com"], &[]),
            person("Y", &[], &["+447700900789"]),
            person("XY", &["x@example.com"], &["+447700900789"]),
            person("Xavier", &["x@example.com"], &[]),
        ]],
    )
    .await;
    assert_conflict_row(&outcomes[0]);
    assert_conflict_row(&outcomes[4]);
    let (x, y) = (inserted(&outcomes[2]), inserted(&outcomes[3]));
    assert_eq!(outcomes[1], RowOutcome::Updated(ada.id));
    assert_eq!(outcomes[5], RowOutcome::Updated(x));
    assert_eq!(lead(store.as_ref(), grace.id).await, grace, "the refused row changed nothing");
    assert_eq!(lead(store.as_ref(), ada.id).await.emails, ["ada@example.com", "ada@new.example"]);
    assert_eq!(lead(store.as_ref(), ada.id).await.name, "Ada");
    assert_eq!(lead(store.as_ref(), x).await.phones, Vec::<String>::new());
    assert_eq!(lead(store.as_ref(), x).await.name, "Xavier");
    assert_eq!(store.find_lead_by_key("p:+447700900789").await.unwrap().map(|l| l.id), Some(y));
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 4);
}

/// A dry run reports what a real run would (in-file dedup included) and leaves the store as it
/// was; a real run afterwards starts from the untouched store.
pub async fn dry_run_reports_outcomes_but_writes_nothing(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let ada = store.add_lead(ada()).await.unwrap();
    let batches = vec![
        vec![person("New", &["new@example.com"], &[]), person("Ada Changed", &["ada@example.com"], &[])],
        vec![LeadDraft { tags: strings(&["t"]), ..person("", &["new@example.com"], &["+447700900999"]) }],
    ];
    let (outcomes, undone) = import(store.as_ref(), ConflictPolicy::Merge, true, batches).await;
    let new = inserted(&outcomes[0]);
    assert_eq!(outcomes, [RowOutcome::Inserted(new), RowOutcome::Updated(ada.id), RowOutcome::Updated(new)]);
    assert_eq!(undone, 0);
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 1);
    assert_eq!(lead(store.as_ref(), ada.id).await, ada);
    assert_eq!(store.find_lead_by_key("e:new@example.com").await.unwrap(), None);
    assert_eq!(store.find_lead_by_key("p:+447700900999").await.unwrap(), None);
    assert!(store.list_leads(&search("new")).await.unwrap().is_empty());
    assert_eq!(store.metadata_keys().await.unwrap(), ["city"], "only Ada's");

    let (outcomes, _) = merge(store.as_ref(), vec![vec![person("New", &["new@example.com"], &[])]]).await;
    let real = inserted(&outcomes[0]);
    assert_eq!(lead(store.as_ref(), real).await.name, "New");
    assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 2);
}

/// Rows that update a stored lead and later rows that put it back: the lead ends as it was,
/// `updated_at` included, and `finish` counts those rows (the report shows them as skipped).
pub async fn finish_counts_updates_that_later_rows_undid(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    let stored = store.add_lead(ada()).await.unwrap();
    let renamed = |name: &str| person(name, &["ada@example.com"], &[]);
    let (outcomes, undone) = merge(store.as_ref(), vec![vec![renamed("Ada X"), renamed("Ada")]]).await;
    assert_eq!(outcomes, [RowOutcome::Updated(stored.id), RowOutcome::Updated(stored.id)]);
    assert_eq!(undone, 2);
    assert_eq!(lead(store.as_ref(), stored.id).await, stored, "nothing changed, not even updated_at");

    let spend = |v: f64| LeadDraft { total_spend: Some(v), ..person("", &["ada@example.com"], &[]) };
    let (outcomes, undone) = merge(store.as_ref(), vec![vec![spend(20.0)]]).await;
    assert_eq!((outcomes, undone), (vec![RowOutcome::Updated(stored.id)], 0));
    let changed = lead(store.as_ref(), stored.id).await;
    assert_eq!(changed.total_spend, 20.0);

    let (outcomes, undone) = merge(store.as_ref(), vec![vec![spend(30.0)], vec![spend(20.0)], vec![spend(20.0)]]).await;
    assert_eq!(
        outcomes,
        [RowOutcome::Updated(stored.id), RowOutcome::Updated(stored.id), RowOutcome::Skipped(stored.id)]
    );
    assert_eq!(undone, 2, "undone across batches");
    assert_eq!(lead(store.as_ref(), stored.id).await, changed);

    // A lead this import created is new whatever its rows did.
    let (outcomes, undone) = merge(
        store.as_ref(),
        vec![vec![
            person("N", &["n@example.com"], &[]),
            person("M", &["n@example.com"], &[]),
            person("N", &["n@example.com"], &[]),
        ]],
    )
    .await;
    let n = inserted(&outcomes[0]);
    assert_eq!(outcomes[1..], [RowOutcome::Updated(n), RowOutcome::Updated(n)]);
    assert_eq!(undone, 0);
}

/// An imported lead holds every field of its row, is found by search, rules and metadata keys
/// like any other, and gets an id no deleted lead ever had.
pub async fn imported_leads_are_complete_and_ids_never_reused(f: &dyn StoreFixture) {
    let (store, _) = f.open().await;
    store.add_lead(person("First", &["first@example.com"], &[])).await.unwrap();
    let newest = store.add_lead(person("Second", &["second@example.com"], &[])).await.unwrap();
    assert!(store.delete_lead(newest.id).await.unwrap());

    let draft = LeadDraft {
        total_spend: Some(42.5),
        visits: Some(7),
        last_order_at: Some(at("2024-06-01T08:15:30Z")),
        tags: strings(&["vip", "imported"]),
        metadata: metadata(&[("source", "fair"), ("city", "Oslo")]),
        created_at: Some(at("2022-12-31T23:59:59Z")),
        ..person("Ingrid Imported", &["ingrid@example.no"], &["+4791234567"])
    };
    let before = wall_ms();
    let (outcomes, _) = merge(store.as_ref(), vec![vec![draft.clone()]]).await;
    let after = wall_ms();
    let id = inserted(&outcomes[0]);
    assert!(id > newest.id, "imported id {id} reuses or precedes the deleted {}", newest.id);
    let got = lead(store.as_ref(), id).await;
    assert_eq!(got, draft.into_lead(id, got.updated_at));
    assert_between(got.updated_at, before, after);
    assert_eq!(store.list_leads(&search("INGRID")).await.unwrap(), std::slice::from_ref(&got));
    assert_eq!(store.list_leads(&search("91234")).await.unwrap(), std::slice::from_ref(&got));
    assert_eq!(store.metadata_keys().await.unwrap(), ["city", "source"]);
    let rule = crate::engine::segment::Rule::parse_text(r#"tags contains "imported" and source = "fair""#).unwrap();
    assert_eq!(store.sample_matching(&rule, now(), 10).await.unwrap(), [got]);
    let later = store.add_lead(person("Later", &["later@example.com"], &[])).await.unwrap();
    assert!(later.id > id);
}
