//! The bus's conformance story, written once and run against every backend: each `pub async fn`
//! here is one chapter, and [`bus_conformance_tests!`] turns them all into `#[tokio::test]`s for
//! a backend's [`BusFixture`]. The embedded bus runs it in `bus/tests.rs`; a Kafka bus runs the
//! same chapters against a broker the harness starts.
//!
//! Chapters check behaviour through the trait only (payloads, not backend ids, identify
//! messages), and move time through the fixture, which is a manual clock for the embedded bus
//! and may be a real wait for a broker.

use super::{Bus, Delivery, Outgoing, TopicDepth};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A backend under test.
#[async_trait]
pub trait BusFixture: Send + Sync {
    /// A new handle on the same backend, with its own connections: what another process would
    /// open. Dropping a handle without acknowledging is how a chapter simulates a crash.
    async fn open(&self) -> Arc<dyn Bus>;
    /// Moves the backend's notion of time forward.
    async fn advance(&self, by: Duration);
    /// The topic name to use for `base`; a shared broker can make it unique per test.
    fn topic(&self, base: &str) -> String {
        base.to_string()
    }
}

const GROUP: &str = "story-workers";
const LEASE: Duration = Duration::from_secs(30);

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.payload).into_owned()
}

fn texts(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(text).collect()
}

async fn publish_numbered(bus: &dyn Bus, topic: &str, n: usize) {
    let messages = (0..n).map(|i| Outgoing::new(None, i.to_string())).collect();
    bus.publish_batch(topic, messages).await.unwrap();
}

fn depth(ready: u64, in_flight: u64, delayed: u64) -> TopicDepth {
    TopicDepth { ready, in_flight, delayed }
}

/// Published messages come back once, with their key and payload; acknowledged ones are gone.
pub async fn publish_consume_ack(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.basic"));
    bus.publish(&t, Some("lead-1"), b"{\"n\":1}").await.unwrap();
    bus.publish(&t, None, b"").await.unwrap();
    let got = bus.consume(&t, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&got), ["{\"n\":1}", ""]);
    assert_eq!(got[0].key.as_deref(), Some("lead-1"));
    assert_eq!(got[1].key, None);
    assert!(got.iter().all(|d| d.deliveries == 1 && d.topic == t));
    assert!(bus.consume(&t, GROUP, 10, LEASE).await.unwrap().is_empty(), "leased messages are not handed out");
    assert!(bus.ack(&got[0]).await.unwrap());
    assert_eq!(bus.ack_many(&got).await.unwrap(), 1, "an acknowledged delivery cannot be acknowledged again");
    assert_eq!(bus.depth(&t).await.unwrap(), TopicDepth::default());
    // Empty inputs are no-ops, not errors.
    bus.publish_batch(&t, Vec::new()).await.unwrap();
    assert_eq!(bus.ack_many(&[]).await.unwrap(), 0);
    assert!(bus.consume(&t, GROUP, 0, LEASE).await.unwrap().is_empty());
}

/// `max` bounds a claim, and ready messages come out in publish order.
pub async fn fifo_and_max(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.fifo"));
    publish_numbered(bus.as_ref(), &t, 10).await;
    let first = bus.consume(&t, GROUP, 4, LEASE).await.unwrap();
    let rest = bus.consume(&t, GROUP, 100, LEASE).await.unwrap();
    assert_eq!(texts(&first), ["0", "1", "2", "3"]);
    assert_eq!(texts(&rest), ["4", "5", "6", "7", "8", "9"]);
    assert_eq!(bus.ack_many(&first).await.unwrap() + bus.ack_many(&rest).await.unwrap(), 10);
}

/// Many consumers in two "processes" drain one topic; each message is handled exactly once.
pub async fn competing_consumers_never_share(f: &dyn BusFixture) {
    const MESSAGES: usize = 3000;
    let t = f.topic("story.competing");
    let (a, b) = (f.open().await, f.open().await);
    publish_numbered(a.as_ref(), &t, MESSAGES).await;
    let mut tasks = Vec::new();
    for bus in [a.clone(), b.clone(), a.clone(), b.clone(), a.clone(), b.clone()] {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let got = bus.consume(&t, GROUP, 25, LEASE).await.unwrap();
                if got.is_empty() {
                    return seen;
                }
                assert_eq!(bus.ack_many(&got).await.unwrap(), got.len(), "every lease is still held");
                seen.extend(texts(&got));
            }
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for payload in task.await.unwrap() {
            *counts.entry(payload).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), MESSAGES, "every message was handled");
    assert!(counts.values().all(|&n| n == 1), "no message was handled twice");
    assert_eq!(a.depth(&t).await.unwrap(), TopicDepth::default());
}

/// An unacknowledged message comes back after its lease, and the old lease is then worthless.
pub async fn expired_lease_redelivers(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.expiry"));
    bus.publish(&t, Some("k"), b"job").await.unwrap();
    let old = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    f.advance(LEASE + Duration::from_secs(1)).await;
    assert_eq!(bus.depth(&t).await.unwrap(), depth(1, 0, 0), "an expired lease counts as ready");
    let new = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    assert_eq!((new.id, text(&new), new.deliveries), (old.id, "job".to_string(), 2));
    assert!(!bus.ack(&old).await.unwrap(), "a lost lease cannot acknowledge");
    assert!(!bus.retry(&old, Duration::ZERO).await.unwrap(), "a lost lease cannot release");
    assert!(!bus.extend(&old, LEASE).await.unwrap(), "a lost lease cannot be extended");
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 1, 0));
    assert!(bus.ack(&new).await.unwrap());
    assert_eq!(bus.depth(&t).await.unwrap(), TopicDepth::default());
}

/// An expired lease that nobody has taken yet may still be acknowledged: the work is done.
pub async fn late_ack_before_redelivery_is_accepted(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.late-ack"));
    bus.publish(&t, None, b"job").await.unwrap();
    let d = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    f.advance(LEASE * 2).await;
    assert!(bus.ack(&d).await.unwrap());
    assert!(bus.consume(&t, GROUP, 1, LEASE).await.unwrap().is_empty());
}

/// A consumer that dies without acknowledging loses its messages to the others after the lease;
/// published messages survive every handle being closed.
pub async fn crashed_consumer_and_reopen(f: &dyn BusFixture) {
    let t = f.topic("story.crash");
    let crashed = f.open().await;
    publish_numbered(crashed.as_ref(), &t, 3).await;
    assert_eq!(crashed.consume(&t, GROUP, 2, LEASE).await.unwrap().len(), 2);
    drop(crashed);
    let survivor = f.open().await;
    assert_eq!(survivor.depth(&t).await.unwrap(), depth(1, 2, 0), "state is durable across handles");
    let third = survivor.consume(&t, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&third), ["2"]);
    assert!(survivor.ack(&third[0]).await.unwrap());
    assert!(survivor.consume(&t, GROUP, 10, LEASE).await.unwrap().is_empty(), "the crashed leases still hold");
    f.advance(LEASE + Duration::from_secs(1)).await;
    let back = survivor.consume(&t, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&back), ["0", "1"]);
    assert!(back.iter().all(|d| d.deliveries == 2));
    assert_eq!(survivor.ack_many(&back).await.unwrap(), 2);
    assert_eq!(survivor.depth(&t).await.unwrap(), TopicDepth::default());
}

/// A heartbeat keeps a slow consumer's lease.
pub async fn extend_keeps_the_lease(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.extend"));
    bus.publish(&t, None, b"slow").await.unwrap();
    let d = bus.consume(&t, GROUP, 1, Duration::from_secs(10)).await.unwrap().remove(0);
    f.advance(Duration::from_secs(8)).await;
    assert!(bus.extend(&d, Duration::from_secs(10)).await.unwrap());
    f.advance(Duration::from_secs(8)).await;
    assert!(bus.consume(&t, GROUP, 1, LEASE).await.unwrap().is_empty(), "the extended lease still holds");
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 1, 0));
    assert!(bus.ack(&d).await.unwrap());
}

/// `retry` releases a delivery and hides it until its backoff has passed.
pub async fn retry_delays_redelivery(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.retry"));
    bus.publish(&t, None, b"flaky").await.unwrap();
    let first = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    assert!(bus.retry(&first, Duration::from_secs(5)).await.unwrap());
    assert!(!bus.ack(&first).await.unwrap(), "a released delivery is no longer the caller's");
    assert!(!bus.retry(&first, Duration::ZERO).await.unwrap());
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 0, 1));
    assert!(bus.consume(&t, GROUP, 1, LEASE).await.unwrap().is_empty());
    f.advance(Duration::from_secs(5)).await;
    let second = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    assert_eq!((text(&second), second.deliveries), ("flaky".to_string(), 2));
    assert!(bus.ack(&second).await.unwrap());
}

/// A delayed publish is invisible until its time, then delivered as a first delivery.
pub async fn delayed_publish(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.delayed"));
    bus.publish_at(&t, None, b"later", Duration::from_secs(10)).await.unwrap();
    bus.publish(&t, None, b"now").await.unwrap();
    let now = bus.consume(&t, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&now), ["now"]);
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 1, 1));
    f.advance(Duration::from_secs(10)).await;
    let later = bus.consume(&t, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&later), ["later"]);
    assert_eq!(later[0].deliveries, 1);
    assert_eq!(bus.ack_many(&now).await.unwrap() + bus.ack_many(&later).await.unwrap(), 2);
}

/// Depth tells ready, in-flight and delayed messages apart as time passes.
pub async fn depth_by_state(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.depth"));
    publish_numbered(bus.as_ref(), &t, 5).await;
    let delayed = vec![Outgoing::new(None, "d1"), Outgoing::new(Some("k"), "d2")];
    let delayed = delayed.into_iter().map(|m| m.delayed(Duration::from_secs(60))).collect();
    bus.publish_batch(&t, delayed).await.unwrap();
    assert_eq!(bus.depth(&t).await.unwrap(), depth(5, 0, 2));
    let got = bus.consume(&t, GROUP, 2, Duration::from_secs(10)).await.unwrap();
    assert_eq!(bus.depth(&t).await.unwrap(), depth(3, 2, 2));
    f.advance(Duration::from_secs(11)).await;
    assert_eq!(bus.depth(&t).await.unwrap(), depth(5, 0, 2));
    f.advance(Duration::from_secs(60)).await;
    assert_eq!(bus.depth(&t).await.unwrap(), depth(7, 0, 0));
    assert_eq!(bus.ack_many(&got).await.unwrap(), 2, "expired but not re-taken: still acknowledgeable");
    assert_eq!(bus.depth(&t).await.unwrap().total(), 5);
}

/// Topics do not see each other's messages or counts.
pub async fn topics_are_isolated(f: &dyn BusFixture) {
    let bus = f.open().await;
    let (a, b) = (f.topic("story.iso-a"), f.topic("story.iso-b"));
    publish_numbered(bus.as_ref(), &a, 2).await;
    bus.publish(&b, None, b"b").await.unwrap();
    let from_a = bus.consume(&a, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&from_a), ["0", "1"]);
    assert!(from_a.iter().all(|d| d.topic == a));
    assert_eq!(bus.depth(&b).await.unwrap(), depth(1, 0, 0));
    let from_b = bus.consume(&b, GROUP, 10, LEASE).await.unwrap();
    assert_eq!(texts(&from_b), ["b"]);
    assert_eq!(bus.depth(&a).await.unwrap(), depth(0, 2, 0));
}

/// A stale delivery (already acknowledged) never matches a newer message, even one published
/// right after it, which a backend reusing ids would get wrong.
pub async fn stale_delivery_cannot_touch_newer_messages(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.stale"));
    bus.publish(&t, None, b"first").await.unwrap();
    let first = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    assert!(bus.ack(&first).await.unwrap());
    bus.publish(&t, None, b"second").await.unwrap();
    let second = bus.consume(&t, GROUP, 1, LEASE).await.unwrap().remove(0);
    assert!(!bus.ack(&first).await.unwrap());
    assert!(!bus.retry(&first, Duration::ZERO).await.unwrap());
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 1, 0));
    assert!(bus.ack(&second).await.unwrap());
}

/// `consume_wait` returns as soon as a message is ready, and empty-handed after its wait.
pub async fn consume_wait_polls(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.wait"));
    let none = bus.consume_wait(&t, GROUP, 10, LEASE, Duration::from_millis(30)).await.unwrap();
    assert!(none.is_empty());
    let publisher = f.open().await;
    let tp = t.clone();
    let publish = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        publisher.publish(&tp, None, b"x").await.unwrap();
    });
    let got = bus.consume_wait(&t, GROUP, 10, LEASE, Duration::from_secs(10)).await.unwrap();
    publish.await.unwrap();
    assert_eq!(texts(&got), ["x"]);
}

/// Generates one `#[tokio::test]` per chapter for a fixture expression (evaluated, and may
/// `.await`, inside each test).
macro_rules! bus_conformance_tests {
    ($fixture:expr) => {
        $crate::engine::bus::conformance::bus_conformance_tests!(
            $fixture;
            publish_consume_ack,
            fifo_and_max,
            competing_consumers_never_share,
            expired_lease_redelivers,
            late_ack_before_redelivery_is_accepted,
            crashed_consumer_and_reopen,
            extend_keeps_the_lease,
            retry_delays_redelivery,
            delayed_publish,
            depth_by_state,
            topics_are_isolated,
            stale_delivery_cannot_touch_newer_messages,
            consume_wait_polls,
        );
    };
    ($fixture:expr; $($chapter:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $chapter() {
                let fixture = $fixture;
                $crate::engine::bus::conformance::$chapter(&fixture).await;
            }
        )+
    };
}
pub(crate) use bus_conformance_tests;
