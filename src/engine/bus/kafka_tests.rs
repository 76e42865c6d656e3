//! The conformance story against the Kafka bus, on the shared test broker
//! (`kafka/test_server.rs`, tansu), plus what only the Kafka bus has: its start-up error when
//! no broker answers, and depth as consumer-group lag seen from another process.

use super::conformance::{BusFixture, bus_conformance_tests};
use super::kafka::{KafkaBus, test_server};
use super::{Bus, Outgoing, group, topic};
use crate::engine::error::Error;
use async_trait::async_trait;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Fresh topic names and consumer groups on the shared broker; every `open` is a new client
/// ("process").
struct KafkaFixture {
    url: String,
    suffix: String,
    opened: Mutex<Vec<Weak<KafkaBus>>>,
}

impl KafkaFixture {
    /// None (the chapter is skipped) when there is no broker and `CI` is not set.
    fn new() -> Option<KafkaFixture> {
        let broker = test_server::broker()?;
        let suffix = test_server::fresh_name("t");
        let url = format!("kafka://{broker}?{}&partitions=3&group_prefix={suffix}.", test_server::CLIENT_SETTINGS);
        Some(KafkaFixture { url, suffix, opened: Mutex::new(Vec::new()) })
    }
}

#[async_trait]
impl BusFixture for KafkaFixture {
    async fn open(&self) -> Arc<dyn Bus> {
        let bus = Arc::new(KafkaBus::open(&self.url).await.expect("open the Kafka bus"));
        self.opened.lock().expect("lock").push(Arc::downgrade(&bus));
        bus
    }

    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }

    async fn abandon_dropped(&self) {}

    async fn settle(&self, topic: &str, group: &str, handles: &[Arc<dyn Bus>]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            for h in handles {
                assert!(h.consume(topic, group, 1, Duration::from_secs(30)).await.expect("poll").is_empty());
            }
            let shares: Vec<usize> = self
                .opened
                .lock()
                .expect("lock")
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|b| b.assigned_partitions(topic, group))
                .collect();
            if shares.len() == handles.len() && shares.iter().all(|n| *n > 0) && shares.iter().sum::<usize>() == 3 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the group never settled: {shares:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn exact_depth(&self) -> bool {
        false
    }

    fn topic(&self, base: &str) -> String {
        format!("{base}.{}", self.suffix)
    }
}

mod conformance_kafka {
    use super::*;
    bus_conformance_tests!(match KafkaFixture::new() {
        Some(fixture) => fixture,
        None => return,
    });
}

#[tokio::test]
async fn unreachable_brokers_are_named_in_a_plain_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("kafka://127.0.0.1:{port}?connect_timeout_ms=1500");
    match KafkaBus::open(&url).await {
        Err(Error::Bus { message, .. }) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(!message.contains("rdkafka") && !message.contains("Local:"), "no raw client text: {message}");
        }
        other => panic!("expected a bus error, got {:?}", other.map(|b| b.describe())),
    }
}

/// The buses one process opens with the same settings (`worker all`: one per role) publish
/// through one producer, whose polling thread costs CPU even when idle; other settings get
/// their own. Both buses still publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_with_the_same_settings_share_one_producer() {
    let Some(f) = KafkaFixture::new() else { return };
    let (a, b) = (KafkaBus::open(&f.url).await.expect("open"), KafkaBus::open(&f.url).await.expect("open"));
    let other = KafkaBus::open(&f.url.replace("partitions=3", "partitions=2")).await.expect("open");
    assert!(a.shares_producer_with(&b));
    assert!(!a.shares_producer_with(&other));
    for bus in [&a, &b] {
        let before = bus.depth(topic::DLQ).await.expect("depth").total();
        bus.publish_batch(topic::DLQ, vec![Outgoing::new(Some("k"), "{}")]).await.expect("publish");
        assert_eq!(bus.depth(topic::DLQ).await.expect("depth").total(), before + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_is_the_groups_lag_seen_from_any_process() {
    let Some(f) = KafkaFixture::new() else { return };
    let url = format!("{}&group.sender={}.senders", f.url, f.suffix);
    let worker = KafkaBus::open(&url).await.expect("open");
    let watcher = KafkaBus::open(&url).await.expect("open");
    let jobs: Vec<Outgoing> = (0..5).map(|i| Outgoing::new(Some(&format!("s{i}")), format!("{{\"n\":{i}}}"))).collect();
    let before = watcher.depth(topic::SEND_JOBS).await.expect("depth").total();
    worker.publish_batch(topic::SEND_JOBS, jobs).await.expect("publish");
    assert_eq!(watcher.depth(topic::SEND_JOBS).await.expect("depth").total(), before + 5);
    let mut got = Vec::new();
    while got.len() < 5 + before as usize {
        got.extend(
            worker
                .consume_wait(topic::SEND_JOBS, group::SENDER, 100, Duration::from_secs(30), Duration::from_secs(30))
                .await
                .expect("consume"),
        );
    }
    assert_eq!(worker.ack_many(&got).await.expect("ack"), got.len());
    assert_eq!(watcher.depth(topic::SEND_JOBS).await.expect("depth").total(), 0, "lag is committed offsets");
}
