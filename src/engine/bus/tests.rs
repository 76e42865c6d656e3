//! The conformance story against the embedded bus, plus what only the embedded bus has: URL
//! selection, its schema in the shared store file, its query plan, and a throughput check.

use super::conformance::{BusFixture, bus_conformance_tests};
use super::embedded::CLAIM_SQL;
use super::{Bus, EmbeddedBus, ManualClock, Outgoing, TopicDepth, topic};
use crate::engine::error::Error;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A temp SQLite file; every `open` is a separate connection ("process") on it, all sharing
/// one manual clock.
struct EmbeddedFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: Arc<ManualClock>,
}

impl EmbeddedFixture {
    fn new() -> EmbeddedFixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        EmbeddedFixture { _dir: dir, path, clock: Arc::new(ManualClock::default()) }
    }
}

#[async_trait]
impl BusFixture for EmbeddedFixture {
    async fn open(&self) -> Arc<dyn Bus> {
        Arc::new(EmbeddedBus::open_with_clock(&self.path, self.clock.clone()).await.unwrap())
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    async fn abandon_dropped(&self) {
        self.clock.advance(Duration::from_secs(3600));
    }
}

mod conformance_embedded {
    use super::*;
    bus_conformance_tests!(EmbeddedFixture::new());
}

#[tokio::test]
async fn open_picks_the_backend_from_the_url() {
    use crate::engine::store::{Access, OpenedStore, StoreLocation};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("nested/crm.db").display());
    let store = OpenedStore::open(&url, Access::CreateIfMissing).await.unwrap();
    let bus = super::open("embedded", &store).await.unwrap();
    assert!(bus.describe().starts_with("embedded:"), "{}", bus.describe());
    assert!(super::open(" ", &store).await.is_ok(), "embedded is the default");
    let mongo = OpenedStore { location: StoreLocation::MongoDb("mongodb://h/crm".into()), ..store.clone() };
    for (url, store) in [("kafka://localhost", &store), ("embedded", &mongo), ("rabbit://x", &store)] {
        match super::open(url, store).await {
            Err(Error::Usage(msg)) => assert!(!msg.is_empty()),
            other => panic!("{url}: expected a usage error, got {:?}", other.map(|b| b.describe())),
        }
    }
}

#[tokio::test]
async fn bus_tables_live_beside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    // Either may create the file first; opening again changes nothing.
    let bus = EmbeddedBus::open(&path).await.unwrap();
    bus.publish(topic::JOBS, None, b"{}").await.unwrap();
    let store = crate::engine::store::OpenedStore::open(path.to_str().unwrap(), crate::engine::store::Access::Existing)
        .await
        .unwrap();
    let again = EmbeddedBus::open(&path).await.unwrap();
    assert_eq!(again.depth(topic::JOBS).await.unwrap().ready, 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert!(version >= 1, "the store's migrations ran on a file the bus created");
}

#[tokio::test]
async fn claims_walk_the_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    EmbeddedBus::open(&path).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {CLAIM_SQL}")).unwrap();
    let steps: Vec<String> = plan.query_map(("t", 0, 10), |r| r.get(3)).unwrap().map(Result::unwrap).collect();
    let plan = steps.join("; ");
    assert!(plan.contains("bus_messages_ready"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

#[test]
fn topics_are_the_pipelines() {
    assert_eq!(topic::ALL, ["campaign.jobs", "campaign.send_jobs", "campaign.status_updates", "campaign.dlq"]);
}

const LEADS: usize = 100_000;
const BATCH: usize = 500;

fn send_job(i: usize) -> Outgoing {
    let payload = format!(
        r#"{{"send_id":"c1-{i:08}","campaign_id":"c1","lead_id":{i},"to":"+4477009{i:05}","message":"Hi Ada, 20% off this week","attempt":1}}"#
    );
    Outgoing::new(Some(&format!("{i}")), payload)
}

/// Drains `from`, forwarding every payload to `to` (if any) before acknowledging, as the
/// pipeline's stages do. Returns how many messages it handled.
async fn stage(bus: Arc<dyn Bus>, from: &'static str, to: Option<&'static str>, expect: usize) -> usize {
    let mut handled = 0;
    while handled < expect {
        let got =
            bus.consume_wait(from, "bench", BATCH, Duration::from_secs(60), Duration::from_secs(5)).await.unwrap();
        assert!(!got.is_empty(), "{from} ran dry after {handled}");
        if let Some(to) = to {
            let out = got.iter().map(|d| Outgoing::new(d.key.as_deref(), d.payload.clone())).collect();
            bus.publish_batch(to, out).await.unwrap();
        }
        handled += bus.ack_many(&got).await.unwrap();
    }
    handled
}

/// `cargo test --lib bus::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run by hand"]
async fn throughput_100k() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(&path).await.unwrap());

    let start = Instant::now();
    for chunk in (0..LEADS).collect::<Vec<_>>().chunks(1000) {
        bus.publish_batch(topic::SEND_JOBS, chunk.iter().map(|&i| send_job(i)).collect()).await.unwrap();
    }
    report("publish (batches of 1000)", start);

    let start = Instant::now();
    assert_eq!(stage(bus.clone(), topic::SEND_JOBS, None, LEADS).await, LEADS);
    report(&format!("consume + ack_many (batches of {BATCH}), one consumer"), start);

    // Two stages in two "processes", running at once: send_jobs → status_updates → done.
    for chunk in (0..LEADS).collect::<Vec<_>>().chunks(1000) {
        bus.publish_batch(topic::SEND_JOBS, chunk.iter().map(|&i| send_job(i)).collect()).await.unwrap();
    }
    let other: Arc<dyn Bus> = Arc::new(EmbeddedBus::open(&path).await.unwrap());
    let start = Instant::now();
    let forward = tokio::spawn(stage(bus.clone(), topic::SEND_JOBS, Some(topic::STATUS_UPDATES), LEADS));
    let finish = tokio::spawn(stage(other, topic::STATUS_UPDATES, None, LEADS));
    assert_eq!((forward.await.unwrap(), finish.await.unwrap()), (LEADS, LEADS));
    report("forward send_jobs → status_updates and drain it, concurrently", start);
    assert_eq!(bus.depth(topic::SEND_JOBS).await.unwrap(), TopicDepth::default());
    assert_eq!(bus.depth(topic::STATUS_UPDATES).await.unwrap(), TopicDepth::default());
}

fn report(what: &str, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!("{what}: {LEADS} messages in {secs:.2} s = {:.0}/s", LEADS as f64 / secs);
}
