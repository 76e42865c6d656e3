//! The message bus of the campaign pipeline: `trait Bus`, the topics, and [`open`], which picks
//! the backend once, at start-up, from `--bus` / `CRM_BUS`.
//!
//! # The contract every backend keeps
//!
//! It is written so that a log (Kafka) keeps it as naturally as a queue (the embedded bus).
//!
//! - **At-least-once, competing consumers.** Every worker process of one kind consumes a topic
//!   in the same group ([`group`]); each message is handed to one of them at a time. A message
//!   handed out and not acknowledged comes back when its holder is presumed gone: on the
//!   embedded bus when the `lease` given to [`Bus::consume`] runs out, on Kafka when the
//!   holder's partition moves to another consumer (its session ended, or a rebalance). The bus
//!   never loses a message; it may hand one out more than once — on a log even one already
//!   acknowledged, when it sat behind an unfinished one at a crash (offsets are committed only
//!   below the lowest unfinished message). Exactly-once *in effect* is the pipeline's job:
//!   acknowledge only after the effects are durable, and make every effect idempotent (see the
//!   architecture guide, "The pipeline and its guarantee").
//! - **A lost delivery is refused.** [`Bus::ack`], [`Bus::retry`] and [`Bus::extend`] answer
//!   `Ok(false)` when the delivery is no longer the caller's (someone else took the message, its
//!   partition was revoked, or it was already acknowledged or released), so a slow consumer can
//!   never acknowledge a delivery that another consumer is working on. A delivery whose holder
//!   was presumed gone but that nobody has taken yet may still be acknowledged.
//! - **Holds, not republishing.** [`Bus::retry`] gives a delivery back to be handed out again
//!   no sooner than `after` (backoff, or a paused campaign's job waiting for resume); a
//!   message published with a delay ([`Bus::publish_at`]) is not handed out before its time.
//!   Neither may cost a republish per wait: the embedded bus moves the row's due time; Kafka
//!   keeps the message's position uncommitted and holds it in the consumer that read it.
//! - **Order.** Messages with one key are handed out in publish order when nothing is retried
//!   or delayed (Kafka keeps order per partition, and a key picks the partition); across keys,
//!   callers rely on no more than "roughly FIFO": the pipeline's steps are idempotent and
//!   order-free.
//! - **Depth.** [`Bus::depth`] counts what the topic's worker group has not finished: ready,
//!   in-flight and delayed on the embedded bus; on Kafka the group's lag (end offset −
//!   committed offset), of which the calling process's own in-flight and held messages are
//!   told apart. `total()` means the same on both.
//!
//! Payloads are opaque bytes (the pipeline writes JSON); keys are optional and carried along
//! (Kafka partitions by them).
//!
//! # Backends
//!
//! - `embedded` (the default): a durable queue inside the SQLite store file; see [`embedded`].
//! - `kafka://host:port,…` (the `kafka` feature): see [`kafka`].

pub mod clock;
#[cfg(test)]
pub mod conformance;
pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(all(test, feature = "kafka"))]
mod kafka_tests;
#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use embedded::EmbeddedBus;

use crate::engine::error::{Error, Result};
use crate::engine::store::{OpenedStore, StoreLocation};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// The pipeline's topics. Names follow the system we replace, so its topics stay readable.
pub mod topic {
    /// `{campaignId, leadIds[]}`: chunks of a campaign's audience, for the expander.
    pub const JOBS: &str = "campaign.jobs";
    /// `{send_id, campaign_id, lead_id, to, message, attempt}`: one message to send, for the sender.
    pub const SEND_JOBS: &str = "campaign.send_jobs";
    /// `{send_id, campaign_id, lead_id, status, attempt, error, timestamp}`, for the aggregator.
    pub const STATUS_UPDATES: &str = "campaign.status_updates";
    /// Failed payloads with their reason, for the operator.
    pub const DLQ: &str = "campaign.dlq";
    /// Every topic, in pipeline order (what the dashboard shows).
    pub const ALL: [&str; 4] = [JOBS, SEND_JOBS, STATUS_UPDATES, DLQ];
}

/// The worker kinds' consumer groups (Kafka prefixes them: `crm.sender`), and which topic
/// each works.
pub mod group {
    use super::topic;

    /// Works `campaign.jobs`.
    pub const EXPANDER: &str = "expander";
    /// Works `campaign.send_jobs`.
    pub const SENDER: &str = "sender";
    /// Works `campaign.status_updates` (the aggregator).
    pub const STATUS: &str = "status";

    /// The group that consumes `t`, if a pipeline worker does (nobody consumes the DLQ).
    pub fn for_topic(t: &str) -> Option<&'static str> {
        match t {
            topic::JOBS => Some(EXPANDER),
            topic::SEND_JOBS => Some(SENDER),
            topic::STATUS_UPDATES => Some(STATUS),
            _ => None,
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// How long after publishing the message becomes ready (zero: at once).
    pub delay: Duration,
}

impl Outgoing {
    pub fn new(key: Option<&str>, payload: impl Into<Vec<u8>>) -> Outgoing {
        Outgoing { key: key.map(str::to_string), payload: payload.into(), delay: Duration::ZERO }
    }

    /// The same message, ready only after `delay`.
    pub fn delayed(self, delay: Duration) -> Outgoing {
        Outgoing { delay, ..self }
    }
}

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's identity within its topic, stable across redeliveries (Kafka: partition
    /// and offset).
    pub id: i64,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// How many times the message has been handed out, this time included (1 the first time;
    /// Kafka counts the handouts of the consumer that holds it).
    pub deliveries: u32,
    /// Backend-defined proof of this lease, checked by ack, retry and extend. Do not invent one.
    pub lease_token: u64,
}

/// How many messages a topic holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TopicDepth {
    /// Could be consumed now (including messages whose lease expired).
    pub ready: u64,
    /// Leased to a consumer, not yet acknowledged.
    pub in_flight: u64,
    /// Waiting for a delay or a retry backoff to pass.
    pub delayed: u64,
}

impl TopicDepth {
    pub fn total(&self) -> u64 {
        self.ready + self.in_flight + self.delayed
    }
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// Where this bus lives, for messages (`embedded:/home/me/.local/share/crm/crm.db`).
    fn describe(&self) -> String;

    /// Publishes every message or none (one transaction on the embedded bus).
    async fn publish_batch(&self, topic: &str, messages: Vec<Outgoing>) -> Result<()>;

    /// Takes up to `max` ready messages of `topic` for consumer group `group`. `lease` is how long
    /// the caller may hold them before it is presumed gone (the embedded bus's lease; Kafka
    /// presumes by the group session instead). Returns at once, with an empty list when nothing
    /// is ready (on Kafka: nothing fetched yet).
    async fn consume(&self, topic: &str, group: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>>;

    /// Acknowledges deliveries whose effects are durable; they are never handed out again.
    /// Returns how many were acknowledged: the others had lost their lease (see the module docs).
    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<usize>;

    /// Gives a delivery back, to be handed out again no sooner than `after` from now (embedded:
    /// to any consumer; Kafka: by the consumer holding its partition). `Ok(false)` when the
    /// delivery was lost.
    async fn retry(&self, delivery: &Delivery, after: Duration) -> Result<bool>;

    /// Heartbeat for long work: the lease now ends `lease` from now (Kafka: true while the
    /// partition is still assigned). `Ok(false)` when the delivery was lost.
    async fn extend(&self, delivery: &Delivery, lease: Duration) -> Result<bool>;

    async fn depth(&self, topic: &str) -> Result<TopicDepth>;

    async fn publish(&self, topic: &str, key: Option<&str>, payload: &[u8]) -> Result<()> {
        self.publish_batch(topic, vec![Outgoing::new(key, payload)]).await
    }

    /// Publishes a message that becomes ready `delay` from now.
    async fn publish_at(&self, topic: &str, key: Option<&str>, payload: &[u8], delay: Duration) -> Result<()> {
        self.publish_batch(topic, vec![Outgoing::new(key, payload).delayed(delay)]).await
    }

    /// `Ok(false)` when the delivery was lost: another consumer has the message, or will.
    async fn ack(&self, delivery: &Delivery) -> Result<bool> {
        Ok(self.ack_many(std::slice::from_ref(delivery)).await? == 1)
    }

    /// [`Bus::consume`], but waits up to `wait` for something to become ready, polling with a
    /// growing interval (tokio time, so tests can pause it). Returns early on the first message.
    async fn consume_wait(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut interval = Duration::from_millis(5);
        loop {
            let got = self.consume(topic, group, max, lease).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(Duration::from_millis(200));
        }
    }
}

/// Opens the bus a URL names: `embedded` (the default; it needs the SQLite store it queues in)
/// or `kafka://host:port,…`.
pub async fn open(bus_url: &str, store: &OpenedStore) -> Result<Arc<dyn Bus>> {
    let url = bus_url.trim();
    if url.is_empty() || url.eq_ignore_ascii_case("embedded") {
        return match &store.location {
            StoreLocation::Sqlite(path) => Ok(Arc::new(EmbeddedBus::open(path).await?)),
            StoreLocation::MongoDb(_) => Err(Error::Usage(
                "the embedded bus queues inside a SQLite store; with a MongoDB store use --bus kafka://HOST:PORT"
                    .into(),
            )),
        };
    }
    if url.starts_with("kafka://") {
        #[cfg(feature = "kafka")]
        return Ok(Arc::new(kafka::KafkaBus::open(url).await?));
        #[cfg(not(feature = "kafka"))]
        return Err(Error::Usage("this crm was built without the kafka feature; use --bus embedded".into()));
    }
    Err(Error::Usage(format!("unknown bus '{url}'; expected 'embedded' or kafka://HOST:PORT")))
}
