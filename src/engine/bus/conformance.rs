//! The bus's conformance story, written once and run against every backend: each `pub async fn`
//! here is one chapter, and [`bus_conformance_tests!`] turns them all into `#[tokio::test]`s for
//! a backend's [`BusFixture`]. The embedded bus runs it in `bus/tests.rs`; a Kafka bus runs the
//! same chapters against a broker the harness starts.
//!
//! Chapters check behaviour through the trait only (payloads, not backend ids, identify
//! messages), and move time through the fixture, which is a manual clock for the embedded bus
//! and a real wait for a broker (so the times here are seconds, not minutes). They wait for
//! what they expect (a broker hands messages out once fetched, not at publish), and ask the
//! fixture what only a queue can promise: depth by state for unread messages
//! ([`BusFixture::exact_depth`]).

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
    /// Moves the backend's notion of time forward (a manual clock, or a real wait).
    async fn advance(&self, by: Duration);
    /// Makes the backend give up on the handles dropped so far: what it does when a consumer
    /// crashed. The embedded bus lets every lease run out; a broker needs nothing (a closed
    /// consumer leaves its group, and its partitions move on).
    async fn abandon_dropped(&self);
    /// Returns once every handle in `handles`, consuming `topic` in `group`, has its share of
    /// the work: on a log, consumers that join while messages are in flight move partitions,
    /// and what was in flight on them is handed out again (at-least-once), which a chapter
    /// counting exact handouts must avoid. Nothing to wait for on a queue.
    async fn settle(&self, _topic: &str, _group: &str, _handles: &[Arc<dyn Bus>]) {}
    /// Whether [`Bus::depth`] tells ready, in-flight and delayed apart for messages the calling
    /// handle has not read (a queue sees every message's state; a log's lag does not).
    fn exact_depth(&self) -> bool {
        true
    }
    /// The topic name to use for `base`; a shared broker can make it unique per test.
    fn topic(&self, base: &str) -> String {
        base.to_string()
    }
}

const GROUP: &str = "story-workers";
const LEASE: Duration = Duration::from_secs(30);
/// How long a chapter waits for a message it expects (a broker's group join takes seconds).
const WAIT: Duration = Duration::from_secs(30);
/// How long a chapter waits to be sure nothing comes.
const QUIET: Duration = Duration::from_millis(500);

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.payload).into_owned()
}

fn texts(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(text).collect()
}

fn sorted(ds: &[Delivery]) -> Vec<String> {
    let mut t = texts(ds);
    t.sort();
    t
}

/// Publishes "0", "1", … with `key` (one key: one partition, so publish order is kept).
async fn publish_numbered(bus: &dyn Bus, topic: &str, n: usize, key: Option<&str>) {
    let messages = (0..n).map(|i| Outgoing::new(key, i.to_string())).collect();
    bus.publish_batch(topic, messages).await.unwrap();
}

/// Takes exactly `n` messages (each call asking for no more than are still missing), waiting
/// up to [`WAIT`] for them.
async fn take(bus: &dyn Bus, topic: &str, n: usize, lease: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "{topic}: only {} of {n} messages came: {:?}", got.len(), texts(&got));
        got.extend(bus.consume_wait(topic, GROUP, n - got.len(), lease, left).await.unwrap());
    }
    got
}

/// Whether nothing is handed out for a little while.
async fn nothing(bus: &dyn Bus, topic: &str) -> bool {
    bus.consume_wait(topic, GROUP, 10, LEASE, QUIET).await.unwrap().is_empty()
}

fn depth(ready: u64, in_flight: u64, delayed: u64) -> TopicDepth {
    TopicDepth { ready, in_flight, delayed }
}

/// Published messages come back once, with their key and payload; acknowledged ones are gone.
pub async fn publish_consume_ack(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.basic"));
    bus.publish(&t, Some("lead-1"), b"{\"n\":1}").await.unwrap();
    bus.publish(&t, None, b"").await.unwrap();
    let mut got = take(bus.as_ref(), &t, 2, LEASE).await;
    got.sort_by_key(|d| std::cmp::Reverse(text(d)));
    assert_eq!(texts(&got), ["{\"n\":1}", ""]);
    assert_eq!(got[0].key.as_deref(), Some("lead-1"));
    assert_eq!(got[1].key, None);
    assert!(got.iter().all(|d| d.deliveries == 1 && d.topic == t));
    assert!(nothing(bus.as_ref(), &t).await, "handed-out messages are not handed out again");
    assert!(bus.ack(&got[0]).await.unwrap());
    assert_eq!(bus.ack_many(&got).await.unwrap(), 1, "an acknowledged delivery cannot be acknowledged again");
    assert_eq!(bus.depth(&t).await.unwrap(), TopicDepth::default());
    // Empty inputs are no-ops, not errors.
    bus.publish_batch(&t, Vec::new()).await.unwrap();
    assert_eq!(bus.ack_many(&[]).await.unwrap(), 0);
    assert!(bus.consume(&t, GROUP, 0, LEASE).await.unwrap().is_empty());
}

/// `max` bounds a take, and one key's messages come out in publish order.
pub async fn fifo_and_max(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.fifo"));
    publish_numbered(bus.as_ref(), &t, 10, Some("one-key")).await;
    let first = take(bus.as_ref(), &t, 4, LEASE).await;
    let rest = take(bus.as_ref(), &t, 6, LEASE).await;
    assert_eq!(texts(&first), ["0", "1", "2", "3"]);
    assert_eq!(texts(&rest), ["4", "5", "6", "7", "8", "9"]);
    assert_eq!(bus.ack_many(&first).await.unwrap() + bus.ack_many(&rest).await.unwrap(), 10);
}

/// Many consumers in two "processes" drain one topic; each message is handled exactly once.
pub async fn competing_consumers_never_share(f: &dyn BusFixture) {
    const MESSAGES: usize = 3000;
    let t = f.topic("story.competing");
    let (a, b) = (f.open().await, f.open().await);
    f.settle(&t, GROUP, &[a.clone(), b.clone()]).await;
    let messages = (0..MESSAGES).map(|i| Outgoing::new(Some(&format!("k{i}")), i.to_string())).collect();
    a.publish_batch(&t, messages).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let mut tasks = Vec::new();
    for bus in [a.clone(), b.clone(), a.clone(), b.clone(), a.clone(), b.clone()] {
        let (t, done) = (t.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while done.load(std::sync::atomic::Ordering::SeqCst) < MESSAGES && tokio::time::Instant::now() < deadline {
                let got = bus.consume_wait(&t, GROUP, 25, LEASE, Duration::from_millis(200)).await.unwrap();
                assert_eq!(bus.ack_many(&got).await.unwrap(), got.len(), "every delivery is still held");
                done.fetch_add(got.len(), std::sync::atomic::Ordering::SeqCst);
                seen.extend(texts(&got));
            }
            seen
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

/// A message handed to a consumer that crashed comes back to another, and the crashed
/// consumer's delivery is then worthless.
pub async fn abandoned_delivery_comes_back(f: &dyn BusFixture) {
    let t = f.topic("story.abandoned");
    let crashed = f.open().await;
    crashed.publish(&t, Some("k"), b"job").await.unwrap();
    let old = take(crashed.as_ref(), &t, 1, LEASE).await.remove(0);
    drop(crashed);
    f.abandon_dropped().await;
    let survivor = f.open().await;
    let new = take(survivor.as_ref(), &t, 1, LEASE).await.remove(0);
    assert_eq!((new.id, text(&new)), (old.id, "job".to_string()));
    assert!(!survivor.ack(&old).await.unwrap(), "a lost delivery cannot acknowledge");
    assert!(!survivor.retry(&old, Duration::ZERO).await.unwrap(), "a lost delivery cannot be given back");
    assert!(!survivor.extend(&old, LEASE).await.unwrap(), "a lost delivery cannot be extended");
    assert_eq!(survivor.depth(&t).await.unwrap(), depth(0, 1, 0));
    assert!(survivor.ack(&new).await.unwrap());
    assert_eq!(survivor.depth(&t).await.unwrap(), TopicDepth::default());
}

/// A delivery held past its lease that nobody has taken yet may still be acknowledged: the work
/// is done.
pub async fn late_ack_before_redelivery_is_accepted(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.late-ack"));
    bus.publish(&t, None, b"job").await.unwrap();
    let lease = Duration::from_secs(2);
    let d = take(bus.as_ref(), &t, 1, lease).await.remove(0);
    f.advance(lease * 2).await;
    assert!(bus.ack(&d).await.unwrap());
    assert!(nothing(bus.as_ref(), &t).await);
}

/// A delivery its consumer neither acknowledges nor gives back (its step failed halfway: the
/// store or the brokers were briefly gone) comes back to the same, still running consumer once
/// its lease has run out, as a second delivery; the first handout is then worthless.
pub async fn unfinished_delivery_comes_back_after_its_lease(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.lease"));
    bus.publish(&t, Some("k"), b"job").await.unwrap();
    let lease = Duration::from_secs(2);
    let first = take(bus.as_ref(), &t, 1, lease).await.remove(0);
    assert!(bus.consume_wait(&t, GROUP, 10, lease, QUIET).await.unwrap().is_empty(), "leased to the first handout");
    f.advance(lease + Duration::from_millis(500)).await;
    let second = take(bus.as_ref(), &t, 1, lease).await.remove(0);
    assert_eq!((second.id, text(&second), second.deliveries), (first.id, "job".to_string(), 2));
    assert!(!bus.ack(&first).await.unwrap(), "the expired handout cannot acknowledge");
    assert!(!bus.extend(&first, lease).await.unwrap(), "nor be extended");
    assert!(bus.ack(&second).await.unwrap());
    assert!(nothing(bus.as_ref(), &t).await);
    assert_eq!(bus.depth(&t).await.unwrap(), TopicDepth::default());
}

/// A consumer that dies without acknowledging loses its messages to the others; published
/// messages survive every handle being closed.
pub async fn crashed_consumer_and_reopen(f: &dyn BusFixture) {
    let t = f.topic("story.crash");
    let crashed = f.open().await;
    publish_numbered(crashed.as_ref(), &t, 3, Some("k")).await;
    assert_eq!(take(crashed.as_ref(), &t, 2, LEASE).await.len(), 2);
    drop(crashed);
    let survivor = f.open().await;
    let before = survivor.depth(&t).await.unwrap();
    assert_eq!(before.total(), 3, "state is durable across handles: {before:?}");
    if f.exact_depth() {
        assert_eq!(before, depth(1, 2, 0));
    }
    f.abandon_dropped().await;
    let back = take(survivor.as_ref(), &t, 3, LEASE).await;
    assert_eq!(sorted(&back), ["0", "1", "2"]);
    assert_eq!(survivor.ack_many(&back).await.unwrap(), 3);
    assert!(nothing(survivor.as_ref(), &t).await);
    assert_eq!(survivor.depth(&t).await.unwrap(), TopicDepth::default());
}

/// A heartbeat keeps a slow consumer's delivery.
pub async fn extend_keeps_the_lease(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.extend"));
    bus.publish(&t, None, b"slow").await.unwrap();
    let lease = Duration::from_secs(2);
    let d = take(bus.as_ref(), &t, 1, lease).await.remove(0);
    f.advance(Duration::from_millis(1500)).await;
    // Past the first lease by a second, and a second short of the extension (on a real clock,
    // `nothing` below takes half a second of it).
    assert!(bus.extend(&d, Duration::from_secs(3)).await.unwrap());
    f.advance(Duration::from_millis(1500)).await;
    assert!(nothing(bus.as_ref(), &t).await, "the extended delivery is still held");
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 1, 0));
    assert!(bus.ack(&d).await.unwrap());
}

/// `retry` gives a delivery back and hides it until its backoff has passed.
pub async fn retry_delays_redelivery(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.retry"));
    bus.publish(&t, None, b"flaky").await.unwrap();
    let first = take(bus.as_ref(), &t, 1, LEASE).await.remove(0);
    assert!(bus.retry(&first, Duration::from_secs(2)).await.unwrap());
    assert!(!bus.ack(&first).await.unwrap(), "a given-back delivery is no longer the caller's");
    assert!(!bus.retry(&first, Duration::ZERO).await.unwrap());
    assert_eq!(bus.depth(&t).await.unwrap(), depth(0, 0, 1));
    assert!(nothing(bus.as_ref(), &t).await);
    f.advance(Duration::from_secs(2)).await;
    let second = take(bus.as_ref(), &t, 1, LEASE).await.remove(0);
    assert_eq!((text(&second), second.deliveries), ("flaky".to_string(), 2));
    assert!(bus.ack(&second).await.unwrap());
}

/// A delayed publish is invisible until its time, then delivered as a first delivery.
pub async fn delayed_publish(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.delayed"));
    bus.publish_at(&t, None, b"later", Duration::from_secs(3)).await.unwrap();
    bus.publish(&t, None, b"now").await.unwrap();
    let now = take(bus.as_ref(), &t, 1, LEASE).await;
    assert_eq!(texts(&now), ["now"]);
    assert!(nothing(bus.as_ref(), &t).await, "the delayed message waits");
    let d = bus.depth(&t).await.unwrap();
    assert_eq!(d.total(), 2, "{d:?}");
    if f.exact_depth() {
        assert_eq!(d, depth(0, 1, 1));
    }
    f.advance(Duration::from_secs(3)).await;
    let later = take(bus.as_ref(), &t, 1, LEASE).await;
    assert_eq!(texts(&later), ["later"]);
    assert_eq!(later[0].deliveries, 1);
    assert_eq!(bus.ack_many(&now).await.unwrap() + bus.ack_many(&later).await.unwrap(), 2);
}

/// Depth counts what is unfinished, and (where the backend can tell) tells ready, in-flight and
/// delayed messages apart as time passes.
pub async fn depth_by_state(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.depth"));
    publish_numbered(bus.as_ref(), &t, 5, Some("k")).await;
    let delayed = vec![Outgoing::new(None, "d1"), Outgoing::new(Some("k"), "d2")];
    let delayed = delayed.into_iter().map(|m| m.delayed(Duration::from_secs(4))).collect();
    bus.publish_batch(&t, delayed).await.unwrap();
    assert_eq!(bus.depth(&t).await.unwrap().total(), 7);
    if f.exact_depth() {
        assert_eq!(bus.depth(&t).await.unwrap(), depth(5, 0, 2));
    }
    let got = take(bus.as_ref(), &t, 2, Duration::from_secs(2)).await;
    assert_eq!(texts(&got), ["0", "1"]);
    assert_eq!(bus.depth(&t).await.unwrap().total(), 7);
    if f.exact_depth() {
        assert_eq!(bus.depth(&t).await.unwrap(), depth(3, 2, 2));
        f.advance(Duration::from_millis(2500)).await;
        assert_eq!(bus.depth(&t).await.unwrap(), depth(5, 0, 2), "an expired lease counts as ready");
        f.advance(Duration::from_secs(2)).await;
        assert_eq!(bus.depth(&t).await.unwrap(), depth(7, 0, 0));
    }
    assert_eq!(bus.ack_many(&got).await.unwrap(), 2, "not re-taken: still acknowledgeable");
    assert_eq!(bus.depth(&t).await.unwrap().total(), 5);
}

/// Topics do not see each other's messages or counts.
pub async fn topics_are_isolated(f: &dyn BusFixture) {
    let bus = f.open().await;
    let (a, b) = (f.topic("story.iso-a"), f.topic("story.iso-b"));
    publish_numbered(bus.as_ref(), &a, 2, Some("k")).await;
    bus.publish(&b, None, b"b").await.unwrap();
    let from_a = take(bus.as_ref(), &a, 2, LEASE).await;
    assert_eq!(texts(&from_a), ["0", "1"]);
    assert!(from_a.iter().all(|d| d.topic == a));
    assert_eq!(bus.depth(&b).await.unwrap(), depth(1, 0, 0));
    let from_b = take(bus.as_ref(), &b, 1, LEASE).await;
    assert_eq!(texts(&from_b), ["b"]);
    assert_eq!(bus.depth(&a).await.unwrap(), depth(0, 2, 0));
}

/// A stale delivery (already acknowledged) never matches a newer message, even one published
/// right after it, which a backend reusing ids or positions would get wrong.
pub async fn stale_delivery_cannot_touch_newer_messages(f: &dyn BusFixture) {
    let (bus, t) = (f.open().await, f.topic("story.stale"));
    bus.publish(&t, Some("k"), b"first").await.unwrap();
    let first = take(bus.as_ref(), &t, 1, LEASE).await.remove(0);
    assert!(bus.ack(&first).await.unwrap());
    bus.publish(&t, Some("k"), b"second").await.unwrap();
    let second = take(bus.as_ref(), &t, 1, LEASE).await.remove(0);
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
    let got = bus.consume_wait(&t, GROUP, 10, LEASE, WAIT).await.unwrap();
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
            abandoned_delivery_comes_back,
            late_ack_before_redelivery_is_accepted,
            unfinished_delivery_comes_back_after_its_lease,
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
