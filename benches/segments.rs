//! Segment counts on a million leads, measured inside the engine (no process start-up): the
//! issue's budget is 50 ms for `total_spend > 500 and (last_order_at > "30 days ago" or
//! visits >= 10)`. The text-test rules are here for comparison; their budget (300 ms) is end to
//! end, which `benches/segments.sh` times through the release binary.
//!
//! Which store: with `CRM_BENCH_STORE=/path/crm.db` set, that store is used as it is
//! (`benches/segments.sh` passes the one it imported from `gen_leads`). Otherwise a store of
//! 1,000,000 generated leads is built once in a temporary directory through the import API
//! (about ten seconds), used for every benchmark, and removed at the end.
//!
//! ```text
//! cargo bench --bench segments
//! CRM_BENCH_STORE=/tmp/seg.db cargo bench --bench segments
//! ```

use chrono::{Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use crm::engine::audience::preview;
use crm::engine::lead::{ConflictPolicy, LeadDraft};
use crm::engine::segment::Rule;
use crm::engine::store::sqlite::SqliteStore;
use crm::engine::store::{ImportPlan, Store};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};

const LEADS: u64 = 1_000_000;
/// Under `cargo test` (no `--bench` argument) the bench only has to prove it runs: a small
/// store keeps the test suite fast.
const SMOKE_LEADS: u64 = 5_000;

fn leads_to_build() -> u64 {
    if std::env::args().any(|a| a == "--bench") { LEADS } else { SMOKE_LEADS }
}
const TAGS: [&str; 7] = ["vip", "newsletter", "churn-risk", "wholesale", "first-order", "loyalty", "b2b"];
const CITIES: [&str; 12] = [
    "London",
    "Manchester",
    "Lagos",
    "Abuja",
    "Berlin",
    "Munich",
    "New York",
    "San Francisco",
    "Mumbai",
    "São Paulo",
    "Madrid",
    "Nairobi",
];

/// Spread like `examples/gen_leads.rs`: spend 0–2000, visits 0–39, a last order in the past
/// three years for nine leads in ten, up to two tags, a city.
fn draft(i: u64, rng: &mut u64) -> LeadDraft {
    let mut next = |n: u64| {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % n
    };
    let now = Utc::now();
    let tags = (0..next(3)).map(|_| TAGS[next(7) as usize].to_string()).collect::<Vec<_>>();
    LeadDraft {
        name: Some(format!("Lead {i}")),
        emails: vec![format!("lead{i}@example.com")],
        total_spend: Some(next(200_000) as f64 / 100.0),
        visits: Some(next(40) as i64),
        last_order_at: (next(10) != 0).then(|| now - Duration::days(next(3 * 365) as i64)),
        tags: tags.into_iter().fold(Vec::new(), |mut kept, t| {
            if !kept.contains(&t) {
                kept.push(t);
            }
            kept
        }),
        metadata: BTreeMap::from([("city".to_string(), CITIES[next(12) as usize].to_string())]),
        ..Default::default()
    }
}

async fn build_store(path: &Path, leads: u64) -> crm::engine::Result<SqliteStore> {
    let store = SqliteStore::open(path).await?;
    let plan = ImportPlan { policy: ConflictPolicy::Merge, dry_run: false, expected_rows: Some(leads) };
    let mut session = store.begin_import(plan).await?;
    let prepare = session.preparer();
    let mut rng = 0x5EED_1234_ABCD_0001_u64;
    for start in (0..leads).step_by(10_000) {
        let rows = (start..(start + 10_000).min(leads)).map(|i| prepare(draft(i, &mut rng))).collect();
        session.apply(rows).await?;
    }
    session.finish().await?;
    Ok(store)
}

fn rule(text: &str) -> Rule {
    Rule::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn segments(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let temp = tempfile::tempdir().expect("a temporary directory");
    let (path, store) = match std::env::var_os("CRM_BENCH_STORE") {
        Some(path) => {
            let path = PathBuf::from(path);
            eprintln!("segments bench: using the store at {}", path.display());
            let store = runtime.block_on(SqliteStore::open(&path)).expect("opens CRM_BENCH_STORE");
            (path, store)
        }
        None => {
            let path = temp.path().join("crm.db");
            let leads = leads_to_build();
            eprintln!(
                "segments bench: building {leads} generated leads in {} (set CRM_BENCH_STORE to reuse a store)",
                path.display()
            );
            let store = runtime.block_on(build_store(&path, leads)).expect("builds the store");
            (path, store)
        }
    };
    let headline = rule(r#"total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10)"#);
    let count = runtime.block_on(store.count_matching(&headline, Utc::now())).expect("counts");
    eprintln!("segments bench: {} matches {count} leads in {}", headline, path.display());

    let mut group = c.benchmark_group("segments_1m");
    group.sample_size(20).measurement_time(std::time::Duration::from_secs(6));
    group.bench_function("count spend/visits/date (budget 50 ms)", |b| {
        b.iter(|| runtime.block_on(store.count_matching(black_box(&headline), Utc::now())).expect("counts"))
    });
    group.bench_function("preview spend/visits/date, sample 10", |b| {
        b.iter(|| runtime.block_on(preview(&store, black_box(&headline), Utc::now(), 10)).expect("previews"))
    });
    for text in [r#"tags contains "vip""#, r#"metadata.city in ["Lagos", "Berlin"]"#] {
        let rule = rule(text);
        group.bench_function(format!("count {text}"), |b| {
            b.iter(|| runtime.block_on(store.count_matching(black_box(&rule), Utc::now())).expect("counts"))
        });
    }
    group.finish();
}

criterion_group!(benches, segments);
criterion_main!(benches);
