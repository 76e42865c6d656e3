//! The Kafka bus: the pipeline's topics on a Kafka (or Redpanda, or any Kafka-protocol) cluster,
//! through `rdkafka` and its bundled librdkafka. See the [bus contract](super) for what every
//! backend promises; this is how a log keeps it.
//!
//! # Design
//!
//! - **Producer**: one per process, idempotent with `acks=all`, so a broker failover neither
//!   loses nor duplicates a publish. Keys are the pipeline's (a chunk's campaign, a message's
//!   `send_id`), so one lead's messages stay in one partition, in order. Payloads are the
//!   documented JSON, untouched; a delayed publish adds one header, `crm-not-before` (Unix ms).
//! - **Consumers**: one per topic and worker kind in a process, in the kind's consumer group
//!   (`crm.expander`, `crm.sender`, `crm.status`; see [`KafkaSettings`]), so all the workers of
//!   one kind share the partitions and adding workers scales out.
//! - **Offsets** are committed per partition only below the lowest message not yet
//!   acknowledged ([`tracker`]), synchronously at each `ack_many` (the pipeline acknowledges
//!   in batches), and for the partitions being revoked before a rebalance hands them on. A
//!   crash replays from the first unfinished message; everything replayed that was already
//!   done is a no-op downstream (the expander's inserts and the sender's claim are idempotent).
//! - **Leases** are two-level. Between processes, the group's: a consumer keeps its
//!   partitions while it heartbeats (`session.timeout.ms`), and a delivery from a revoked
//!   partition answers `false` to ack, retry and extend. Within the process, the caller's: a
//!   delivery not acknowledged, retried or extended within the `lease` it was consumed with is
//!   handed out again by a later `consume` — so a step that failed halfway (the store or the
//!   brokers briefly gone) is redone without a restart, as on the embedded bus.
//!   `max.poll.interval.ms` stays at Kafka's five minutes (it is also how long a rebalance
//!   waits for members): the sender's batches are sized to take seconds at its accounts' rates.
//! - **Retries, delays and pauses hold positions instead of republishing.** `retry(after)` and
//!   a `crm-not-before` in the future keep the message outstanding in a local timer list and
//!   hand it out again when due. A paused campaign's jobs therefore wait in the sender that
//!   read them, rechecked locally every second, and cost the broker nothing — no republish
//!   storm. The price: a partition's committed offset stays below a held message until it is
//!   finished, so after a crash its later, finished messages are read again (no-ops), and a
//!   long pause shows as lag.
//! - **Topics** are created when missing, with the configured partitions and replication, on
//!   start for the pipeline's four and on first use for any other. A `topic_prefix` lets
//!   several installs share a cluster; without one the names are the documented ones.
//! - **Depth** is the consumer group's lag per topic (end offset − committed offset, summed
//!   over partitions): `ready`. A process that is itself consuming the topic reports what it
//!   holds as `in_flight` and `delayed` and subtracts it from `ready`; other processes (the
//!   dashboard) see lag only.
//! - **Errors** reach users as short sentences naming the brokers; librdkafka's own text goes
//!   to the log (`RUST_LOG=crm=debug`).

mod settings;
#[cfg(test)]
pub(crate) mod test_server;
mod tracker;

pub use settings::KafkaSettings;

use super::clock::{Clock, SystemClock, duration_ms};
use super::{Bus, Delivery, Outgoing, TopicDepth};
use crate::engine::error::{Error, Result};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracker::{Read, Tracker};

const NOT_BEFORE: &str = "crm-not-before";
/// How long a metadata, offsets or commit request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends librdkafka's own logs and errors to `tracing` at debug level, never to the terminal.
#[derive(Clone, Default)]
struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, facility = fac, "librdkafka: {log_message}");
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka reported an error.");
    }
}

impl ConsumerContext for Quiet {}

/// A consumer's context: keeps its [`Tracker`] in step with rebalances.
struct Tracking {
    topic: String,
    tracker: Arc<Mutex<Tracker>>,
    lane: Arc<CommitLane>,
}

/// The one way a consumer's offsets reach the group: one commit at a time, and never an offset
/// below one the group already confirmed for the partition. Acknowledgements arrive from many
/// tasks at once; without the lane, a commit of offset 100 sent on one thread could reach the
/// broker after a commit of 150 sent on another, moving the group back — its lag would stay up
/// for good and a restart would read those messages again.
#[derive(Default)]
struct CommitLane {
    /// Partition → the highest offset the group confirmed from this consumer.
    confirmed: Mutex<HashMap<i32, i64>>,
}

impl CommitLane {
    /// Commits what moves the group forward among `offsets` (waiting for any commit in
    /// progress first) and returns what it committed.
    fn commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        offsets: Vec<(i32, i64)>,
    ) -> std::result::Result<Vec<(i32, i64)>, KafkaError> {
        let mut confirmed = lock(&self.confirmed);
        let forward = forward_only(&confirmed, offsets);
        if forward.is_empty() {
            return Ok(forward);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &forward {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
        }
        consumer.commit(&tpl, CommitMode::Sync)?;
        confirmed.extend(forward.iter().copied());
        Ok(forward)
    }

    /// Partitions that left this consumer: whoever gets them next commits from where the group is.
    fn forget(&self, partitions: &[i32]) {
        let mut confirmed = lock(&self.confirmed);
        for p in partitions {
            confirmed.remove(p);
        }
    }
}

/// The offsets of `offsets` above what `confirmed` holds for their partition.
fn forward_only(confirmed: &HashMap<i32, i64>, offsets: Vec<(i32, i64)>) -> Vec<(i32, i64)> {
    offsets.into_iter().filter(|(p, o)| confirmed.get(p).is_none_or(|c| o > c)).collect()
}

impl ClientContext for Tracking {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        Quiet.log(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        Quiet.error(error, reason);
    }
}

impl ConsumerContext for Tracking {
    /// Before partitions go: commit what was finished on them, and forget them.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else { return };
        let partitions: Vec<i32> = revoked.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
        let commits: Vec<(i32, i64)> = {
            let mut tracker = lock(&self.tracker);
            partitions.iter().filter_map(|&p| tracker.revoke(p).map(|o| (p, o))).collect()
        };
        tracing::debug!(topic = %self.topic, partitions = revoked.count(), "Kafka partitions revoked.");
        if let Err(e) = self.lane.commit(consumer, &self.topic, commits) {
            tracing::debug!(topic = %self.topic, error = %e, "Could not commit before a rebalance.");
        }
        self.lane.forget(&partitions);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let mut tracker = lock(&self.tracker);
            for e in assigned.elements_for_topic(&self.topic) {
                tracker.assign(e.partition());
            }
            tracing::debug!(topic = %self.topic, partitions = assigned.count(), "Kafka partitions assigned.");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One topic consumed in one group.
struct TopicConsumer {
    /// The pipeline's name for the topic (what deliveries carry).
    topic: String,
    /// Its name on the cluster.
    physical: String,
    group: String,
    consumer: BaseConsumer<Tracking>,
    tracker: Arc<Mutex<Tracker>>,
    lane: Arc<CommitLane>,
}

pub struct KafkaBus {
    settings: KafkaSettings,
    /// Replaced when librdkafka declares it unusable (a fatal error: an idempotent producer
    /// fenced or out of sequence after an outage), so publishing recovers without a restart.
    /// Shared by every bus of this process opened with the same settings (see [`shared_producer`]).
    producer: Arc<Mutex<FutureProducer<Quiet>>>,
    admin: AdminClient<Quiet>,
    clock: Arc<dyn Clock>,
    known_topics: Mutex<HashSet<String>>,
    /// (topic, group id) → its consumer in this process.
    consumers: Mutex<HashMap<(String, String), Arc<TopicConsumer>>>,
    /// Held while a consumer is created: two batch loops asking at once would otherwise both
    /// subscribe, and the one dropped would leave the group (a rebalance) as it starts.
    creating: tokio::sync::Mutex<()>,
    /// Group id → a consumer that only reads that group's committed offsets (for depth).
    lag_readers: Mutex<HashMap<String, Arc<BaseConsumer<Quiet>>>>,
    /// Topic → the worker kind that last consumed it here (depth of a non-pipeline topic).
    topic_kinds: Mutex<HashMap<String, String>>,
}

impl KafkaBus {
    /// Connects to the brokers a `kafka://` URL names, checks that one answers, and creates the
    /// pipeline's topics where missing.
    pub async fn open(url: &str) -> Result<KafkaBus> {
        let settings = KafkaSettings::parse(url)?;
        let base = settings.client_config();
        let unreachable = |e: KafkaError| {
            tracing::warn!(error = %e, brokers = %settings.bootstrap(), "Could not set up a Kafka client.");
            Error::Bus { bus: describe(&settings), message: "could not set up a Kafka client".into() }
        };
        let producer = shared_producer(&settings).map_err(unreachable)?;
        let admin: AdminClient<Quiet> = base.create_with_context(Quiet).map_err(unreachable)?;
        let bus = KafkaBus {
            settings,
            producer,
            admin,
            clock: Arc::new(SystemClock),
            known_topics: Mutex::new(HashSet::new()),
            consumers: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            lag_readers: Mutex::new(HashMap::new()),
            topic_kinds: Mutex::new(HashMap::new()),
        };
        bus.check_reachable().await?;
        bus.ensure_topics(&super::topic::ALL).await?;
        Ok(bus)
    }

    /// Whether this bus publishes through `other`'s producer.
    #[cfg(test)]
    pub(crate) fn shares_producer_with(&self, other: &KafkaBus) -> bool {
        Arc::ptr_eq(&self.producer, &other.producer)
    }

    /// The producer (a cheap handle).
    fn producer(&self) -> FutureProducer<Quiet> {
        lock(&self.producer).clone()
    }

    /// After a failed publish: when the producer can no longer be used — librdkafka reports a
    /// fatal error, or the brokers no longer accept its producer id or epoch (fenced, out of
    /// sequence: seen after an outage outlasted its publish timeout) — puts a fresh producer
    /// (a new producer id) in its place, so the caller's retry can succeed. The pipeline drops
    /// any duplicate that the switch lets through.
    fn replace_if_broken(&self, failed: &FutureProducer<Quiet>, error: &KafkaError) {
        use RDKafkaErrorCode as C;
        let identity_refused = matches!(
            error.rdkafka_error_code(),
            Some(
                C::ProducerFenced
                    | C::InvalidProducerEpoch
                    | C::OutOfOrderSequenceNumber
                    | C::UnknownProducerId
                    | C::InvalidProducerIdMapping
            )
        );
        let fatal = failed.client().fatal_error();
        if fatal.is_none() && !identity_refused {
            return;
        }
        let mut current = lock(&self.producer);
        if !std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
            return; // another publish replaced it already
        }
        match new_producer(&self.settings) {
            Ok(fresh) => {
                tracing::warn!(error = %error, ?fatal, "The Kafka producer cannot publish any more; using a new one.");
                *current = fresh;
            }
            Err(e) => tracing::warn!(error = %e, "Could not replace the broken Kafka producer."),
        }
    }

    async fn check_reachable(&self) -> Result<()> {
        let producer = self.producer();
        let timeout = self.settings.connect_timeout;
        let answer = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, timeout)?;
            // Asked again, now of the brokers the first answer named, so that the idempotent
            // producer gets its producer id at once: librdkafka asks for one when a metadata
            // answer arrives, but the first arrives over the bootstrap connection, which it
            // then retires, finds no broker up, and waits its fixed 500 ms before asking again
            // (a `crm campaigns run` took 0.16 s or 0.61 s, by that race).
            producer.client().fetch_metadata(None, timeout)
        })
        .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, brokers = %self.settings.bootstrap(), "Kafka brokers did not answer.");
                Err(Error::Bus {
                    bus: self.describe(),
                    message: format!(
                        "cannot reach the Kafka brokers {} (no answer within {} s)",
                        self.settings.brokers.join(", "),
                        timeout.as_secs_f64()
                    ),
                })
            }
            Err(e) => Err(Error::Bus { bus: self.describe(), message: e.to_string() }),
        }
    }

    /// Creates the topics not yet known to exist (an existing one is left as it is).
    async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        let missing: Vec<String> = {
            let known = lock(&self.known_topics);
            topics.iter().map(|t| self.settings.topic_name(t)).filter(|t| !known.contains(t)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let replication = self.settings.replication;
        let new: Vec<NewTopic> = missing
            .iter()
            .map(|t| NewTopic::new(t, self.settings.partitions, TopicReplication::Fixed(replication)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self.admin.create_topics(&new, &options).await.map_err(|e| self.error("create topics", &e))?;
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions = self.settings.partitions, "Created a Kafka topic.");
                    lock(&self.known_topics).insert(name);
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    lock(&self.known_topics).insert(name);
                }
                Err((name, code)) => {
                    tracing::warn!(topic = %name, ?code, "Could not create a Kafka topic.");
                    return Err(Error::Bus {
                        bus: self.describe(),
                        message: format!("could not create the topic {name} ({})", plain_code(code)),
                    });
                }
            }
        }
        Ok(())
    }

    /// A short, plain error for users; librdkafka's text goes to the log.
    fn error(&self, doing: &str, e: &KafkaError) -> Error {
        tracing::warn!(error = %e, brokers = %self.settings.bootstrap(), "Kafka: could not {doing}.");
        let why = e.rdkafka_error_code().map_or("the client failed", plain_code);
        Error::Bus { bus: self.describe(), message: format!("could not {doing}: {why}") }
    }

    /// This process's consumer of `topic` in the group of worker kind `kind`, created (and
    /// subscribed) on first use.
    async fn consumer(&self, topic: &str, kind: &str) -> Result<Arc<TopicConsumer>> {
        let group = self.settings.group_id(kind, topic);
        let key = (topic.to_string(), group.clone());
        if let Some(c) = lock(&self.consumers).get(&key) {
            return Ok(c.clone());
        }
        let _creating = self.creating.lock().await;
        if let Some(c) = lock(&self.consumers).get(&key) {
            return Ok(c.clone());
        }
        self.ensure_topics(&[topic]).await?;
        let physical = self.settings.topic_name(topic);
        let tracker = Arc::new(Mutex::new(Tracker::new(topic)));
        let lane = Arc::new(CommitLane::default());
        let context = Tracking { topic: physical.clone(), tracker: tracker.clone(), lane: lane.clone() };
        let consumer: BaseConsumer<Tracking> = self
            .settings
            .consumer_config(&group)
            .create_with_context(context)
            .map_err(|e| self.error("create a consumer", &e))?;
        consumer.subscribe(&[&physical]).map_err(|e| self.error("subscribe", &e))?;
        tracing::debug!(topic = %physical, group = %group, "Kafka consumer subscribed.");
        let c = Arc::new(TopicConsumer {
            topic: topic.to_string(),
            physical,
            group: group.clone(),
            consumer,
            tracker,
            lane,
        });
        lock(&self.topic_kinds).insert(topic.to_string(), kind.to_string());
        Ok(lock(&self.consumers).entry(key).or_insert(c).clone())
    }

    /// How many partitions of `topic` this process's consumer in worker kind `kind`'s group
    /// holds (None: it has no such consumer).
    pub fn assigned_partitions(&self, topic: &str, kind: &str) -> Option<usize> {
        let key = (topic.to_string(), self.settings.group_id(kind, topic));
        lock(&self.consumers).get(&key).map(|c| lock(&c.tracker).assigned())
    }

    fn consumers_of(&self, topic: &str) -> Vec<Arc<TopicConsumer>> {
        lock(&self.consumers).values().filter(|c| c.topic == topic).cloned().collect()
    }

    /// Commits offsets the tracker says moved, through the consumer's [`CommitLane`]. A failed
    /// commit is logged and handed back to the tracker, and the next `consume` or `depth` on the
    /// topic sends it again (a later acknowledgement on the partition would too, but there may
    /// be none).
    async fn commit(&self, c: &Arc<TopicConsumer>, offsets: Vec<(i32, i64)>) {
        if offsets.is_empty() {
            return;
        }
        let c = c.clone();
        let sent = offsets.clone();
        let tracker = c.tracker.clone();
        let done = tokio::task::spawn_blocking(move || c.lane.commit(&c.consumer, &c.physical, offsets)).await;
        let error = match done {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::debug!(%error, "Could not commit Kafka offsets; they are sent again on the next call.");
        let mut tracker = lock(&tracker);
        for (p, o) in sent {
            tracker.commit_failed(p, o);
        }
    }

    /// Sends again the commits of `topic`'s consumers that failed.
    async fn commit_unsent(&self, topic: &str) {
        for c in self.consumers_of(topic) {
            let owed = lock(&c.tracker).unsent_commits();
            self.commit(&c, owed).await;
        }
    }

    async fn lag_reader(&self, group: &str) -> Result<Arc<BaseConsumer<Quiet>>> {
        if let Some(r) = lock(&self.lag_readers).get(group) {
            return Ok(r.clone());
        }
        let mut config = self.settings.client_config();
        config.set("group.id", group).set("enable.auto.commit", "false");
        let reader: BaseConsumer<Quiet> =
            config.create_with_context(Quiet).map_err(|e| self.error("create a lag reader", &e))?;
        Ok(lock(&self.lag_readers).entry(group.to_string()).or_insert(Arc::new(reader)).clone())
    }

    /// End offset − committed offset, summed over the topic's partitions (everything retained
    /// when no group works the topic).
    async fn lag(&self, topic: &str, group: Option<String>) -> Result<u64> {
        let reader = match &group {
            Some(g) => Some(self.lag_reader(g).await?),
            None => None,
        };
        let producer = self.producer();
        let topic = self.settings.topic_name(topic);
        let lag = tokio::task::spawn_blocking(move || -> std::result::Result<u64, KafkaError> {
            let metadata = producer.client().fetch_metadata(Some(&topic), REQUEST_TIMEOUT)?;
            let partitions: Vec<i32> =
                metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                tpl.add_partition(&topic, *p);
            }
            let committed = match &reader {
                Some(r) => Some(r.committed_offsets(tpl, REQUEST_TIMEOUT)?),
                None => None,
            };
            let mut lag = 0u64;
            for p in partitions {
                let (low, high) = producer.client().fetch_watermarks(&topic, p, REQUEST_TIMEOUT)?;
                let done = committed
                    .as_ref()
                    .and_then(|c| c.find_partition(&topic, p))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(low)
                    .max(low);
                lag += u64::try_from(high - done).unwrap_or(0);
            }
            Ok(lag)
        })
        .await
        .map_err(|e| Error::Bus { bus: self.describe(), message: e.to_string() })?;
        lag.map_err(|e| self.error("read the consumer lag", &e))
    }
}

/// The producer of every bus this process opens with `settings` (`crm worker all` opens one
/// bus per role): one producer's threads instead of one set per role. A producer's polling
/// thread wakes every 100 ms and then spins for the last, sub-millisecond part of each wait
/// (rdkafka 0.38 rounds the time left down to whole milliseconds, so its last waits are
/// zero): ~1% of a core per producer, idle or not. Five of them made an idle `worker all` use
/// 4.6% of a core.
fn shared_producer(settings: &KafkaSettings) -> std::result::Result<Arc<Mutex<FutureProducer<Quiet>>>, KafkaError> {
    type Shared = Mutex<FutureProducer<Quiet>>;
    static PRODUCERS: std::sync::LazyLock<Mutex<HashMap<String, std::sync::Weak<Shared>>>> =
        std::sync::LazyLock::new(Mutex::default);
    let key = format!("{settings:?}");
    let mut producers = lock(&PRODUCERS);
    if let Some(shared) = producers.get(&key).and_then(std::sync::Weak::upgrade) {
        return Ok(shared);
    }
    let shared = Arc::new(Mutex::new(new_producer(settings)?));
    producers.retain(|_, p| p.strong_count() > 0);
    producers.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

/// An idempotent producer (`acks=all`) that waits up to the settings' publish timeout.
fn new_producer(settings: &KafkaSettings) -> std::result::Result<FutureProducer<Quiet>, KafkaError> {
    let mut config = settings.client_config();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", duration_ms(settings.publish_timeout).to_string());
    config.create_with_context(Quiet)
}

fn describe(settings: &KafkaSettings) -> String {
    format!("kafka://{}", settings.brokers.join(","))
}

/// A librdkafka error code in plain words.
fn plain_code(code: RDKafkaErrorCode) -> &'static str {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut => "the brokers did not answer in time",
        C::AllBrokersDown | C::BrokerTransportFailure | C::BrokerNotAvailable | C::NetworkException => {
            "the brokers cannot be reached"
        }
        C::UnknownTopicOrPartition | C::UnknownTopic => "the topic does not exist",
        C::TopicAuthorizationFailed | C::GroupAuthorizationFailed | C::ClusterAuthorizationFailed => {
            "not authorized by the cluster"
        }
        C::InvalidReplicationFactor => "the cluster has fewer brokers than the replication asked for",
        C::InvalidPartitions => "the partition count is not valid",
        C::MessageSizeTooLarge => "a message is larger than the brokers accept",
        C::QueueFull => "too many messages are waiting to be sent",
        C::RebalanceInProgress | C::IllegalGeneration | C::UnknownMemberId => "the consumer group is rebalancing",
        _ => "the brokers refused the request",
    }
}

impl KafkaSettings {
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.client_properties {
            c.set(k, v);
        }
        c.set("bootstrap.servers", self.bootstrap()).set("client.id", "crm").set("log_level", "3");
        c
    }

    /// A pipeline consumer's settings in `group`: offsets committed by the bus only, and the
    /// fetch wait crm prefers unless the URL names one.
    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", duration_ms(self.session_timeout).to_string())
            .set("heartbeat.interval.ms", (duration_ms(self.session_timeout) / 4).to_string())
            .set("max.poll.interval.ms", "300000");
        if config.get("fetch.wait.max.ms").is_none() {
            config.set("fetch.wait.max.ms", FETCH_WAIT_MS);
        }
        config
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn describe(&self) -> String {
        describe(&self.settings)
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Outgoing>) -> Result<()> {
        if topic.is_empty() {
            return Err(Error::Usage("a bus topic cannot be empty".into()));
        }
        if messages.is_empty() {
            return Ok(());
        }
        self.ensure_topics(&[topic]).await?;
        let physical = self.settings.topic_name(topic);
        let now = self.clock.now_ms();
        let producer = self.producer();
        let failed = |e: &KafkaError| {
            self.replace_if_broken(&producer, e);
            self.error(&format!("publish to {topic}"), e)
        };
        let mut pending = Vec::with_capacity(messages.len());
        for m in &messages {
            let not_before = (!m.delay.is_zero()).then(|| (now + duration_ms(m.delay)).to_string());
            loop {
                let mut record = FutureRecord::<str, [u8]>::to(&physical).payload(&m.payload);
                if let Some(key) = &m.key {
                    record = record.key(key.as_str());
                }
                if let Some(at) = &not_before {
                    let header = Header { key: NOT_BEFORE, value: Some(at.as_str()) };
                    record = record.headers(OwnedHeaders::new().insert(header));
                }
                let full = match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => true,
                    Err((e, _)) => return Err(failed(&e)),
                };
                if full {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(failed(&e)),
                Err(_) => {
                    return Err(Error::Bus { bus: self.describe(), message: "the producer shut down".into() });
                }
            }
        }
        Ok(())
    }

    async fn consume(&self, topic: &str, group: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        self.consume_wait(topic, group, max, lease, Duration::ZERO).await
    }

    /// Blocks on the consumer's queue (in the blocking pool, see [`poll_within`]) instead of
    /// polling it at growing intervals, so a message is handed out as soon as it is fetched.
    async fn consume_wait(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        if topic.is_empty() || group.is_empty() {
            return Err(Error::Usage("a bus topic and consumer group cannot be empty".into()));
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let c = self.consumer(topic, group).await?;
        self.commit_unsent(topic).await;
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || poll_within(&c, clock.as_ref(), max, duration_ms(lease), wait))
            .await
            .map_err(|e| Error::Bus { bus: self.describe(), message: e.to_string() })
    }

    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<usize> {
        let mut acked = 0;
        let mut topics: Vec<&str> = deliveries.iter().map(|d| d.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            let mine: Vec<&Delivery> = deliveries.iter().filter(|d| d.topic == topic).collect();
            for c in self.consumers_of(topic) {
                let (n, commits) = lock(&c.tracker).ack(mine.iter().copied());
                acked += n;
                self.commit(&c, commits).await;
            }
        }
        Ok(acked)
    }

    async fn retry(&self, delivery: &Delivery, after: Duration) -> Result<bool> {
        let due = self.clock.now_ms().saturating_add(duration_ms(after));
        Ok(self.consumers_of(&delivery.topic).iter().any(|c| lock(&c.tracker).retry(delivery, due)))
    }

    async fn extend(&self, delivery: &Delivery, lease: Duration) -> Result<bool> {
        let until = self.clock.now_ms().saturating_add(duration_ms(lease));
        Ok(self.consumers_of(&delivery.topic).iter().any(|c| lock(&c.tracker).extend(delivery, until)))
    }

    async fn depth(&self, topic: &str) -> Result<TopicDepth> {
        let kind =
            super::group::for_topic(topic).map(str::to_string).or_else(|| lock(&self.topic_kinds).get(topic).cloned());
        let group = kind.as_deref().map(|k| self.settings.group_id(k, topic));
        self.commit_unsent(topic).await;
        let lag = self.lag(topic, group.clone()).await?;
        let (mut in_flight, mut delayed) = (0, 0);
        for c in self.consumers_of(topic) {
            if group.as_deref() == Some(c.group.as_str()) {
                let (i, d) = lock(&c.tracker).local_counts();
                (in_flight, delayed) = (in_flight + i, delayed + d);
            }
        }
        let held = (in_flight + delayed).min(lag);
        Ok(TopicDepth { ready: lag - held, in_flight, delayed })
    }
}

/// How long a broker may hold a fetch that finds nothing new (librdkafka's
/// `fetch.wait.max.ms`, 500 ms by default; `rdkafka.fetch.wait.max.ms=…` in the bus URL
/// overrides this). Kafka answers a waiting fetch as soon as a message arrives, but some
/// Kafka-protocol brokers (tansu 0.6) hold it to the end: with 500 ms, each stage of the
/// pipeline then passes its first messages on up to half a second late, and a campaign's
/// start and end wait for it (a 100,000-lead campaign's first send came ~0.7 s after `run`,
/// measured on tansu). The price on Kafka: an idle consumer asks ten times a second instead of
/// twice.
const FETCH_WAIT_MS: &str = "100";

/// The longest one blocking poll waits before the held messages and lapsed leases are
/// looked at again (a hold's due time can pass while the consumer's queue stays empty).
const HOLD_CHECK: Duration = Duration::from_millis(50);

/// [`poll_ready`] until it hands something out or `wait` has passed, blocking on the
/// consumer's queue in between (each time for at most [`HOLD_CHECK`]).
fn poll_within(c: &TopicConsumer, clock: &dyn Clock, max: usize, lease_ms: i64, wait: Duration) -> Vec<Delivery> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let started = std::time::Instant::now();
        let left = deadline.saturating_duration_since(started);
        let out = poll_ready(c, clock, max, lease_ms, left.min(HOLD_CHECK));
        if !out.is_empty() || left.is_zero() {
            return out;
        }
        // The queue answered at once without a message (an error while the brokers are away,
        // a rebalance or commit event): a short pause instead of asking again at once.
        if started.elapsed() < Duration::from_millis(1) {
            std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()).min(IDLE_PAUSE));
        }
    }
}

/// How long [`poll_within`] pauses after the queue answered at once with nothing.
const IDLE_PAUSE: Duration = Duration::from_millis(5);

/// Hands out held messages that are due and handouts whose lease ran out, then what the
/// consumer has fetched, up to `max`, each under a lease of `lease_ms`. When nothing was due,
/// the first poll waits up to `first` for a message; the rest take only what is there.
/// Polling also runs the rebalance callbacks.
fn poll_ready(c: &TopicConsumer, clock: &dyn Clock, max: usize, lease_ms: i64, first: Duration) -> Vec<Delivery> {
    let mut out = lock(&c.tracker).take_due(clock.now_ms(), max, lease_ms);
    let mut timeout = if out.is_empty() { first } else { Duration::ZERO };
    while out.len() < max {
        let polled = c.consumer.poll(timeout);
        timeout = Duration::ZERO;
        match polled {
            None => break,
            Some(Err(e)) => {
                tracing::debug!(topic = %c.physical, error = %e, "Kafka poll reported an error.");
                break;
            }
            Some(Ok(m)) => {
                let not_before = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == NOT_BEFORE).and_then(|h| h.value))
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
                    .unwrap_or(0);
                let read = Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    not_before,
                };
                if let Some(d) = lock(&c.tracker).received(read, clock.now_ms(), lease_ms) {
                    out.push(d);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_move_the_group_forward() {
        let confirmed = HashMap::from([(0, 150), (1, 10)]);
        assert_eq!(
            forward_only(&confirmed, vec![(0, 100), (0, 150), (1, 11), (2, 0)]),
            vec![(1, 11), (2, 0)],
            "an older commit arriving late is dropped; new partitions and later offsets pass"
        );
    }

    #[test]
    fn consumers_wait_a_tenth_of_a_second_for_a_fetch_unless_the_url_says() {
        let ours = KafkaSettings::parse("kafka://127.0.0.1:9092").expect("url").consumer_config("crm.sender");
        assert_eq!(ours.get("fetch.wait.max.ms"), Some(FETCH_WAIT_MS));
        assert_eq!(ours.get("group.id"), Some("crm.sender"));
        assert_eq!(ours.get("enable.auto.commit"), Some("false"));
        let theirs = KafkaSettings::parse("kafka://127.0.0.1:9092?rdkafka.fetch.wait.max.ms=20&rdkafka.group.id=x")
            .expect("url")
            .consumer_config("crm.sender");
        assert_eq!(theirs.get("fetch.wait.max.ms"), Some("20"), "the operator's setting wins");
        assert_eq!(theirs.get("group.id"), Some("crm.sender"), "crm's own settings still win over theirs");
    }
}
