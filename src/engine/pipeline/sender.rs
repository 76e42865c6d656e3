//! The sender: consumes `campaign.send_jobs` in batches, claims each job's communication log
//! (pending → sending under a lease, one transaction per batch), sends through the channel with
//! the log's `send_id` as idempotency key under the sender policies (rate limit, concurrency,
//! circuit breaker, retries), records the outcomes (one transaction), publishes status updates,
//! and only then acknowledges.
//!
//! Why each message is sent once:
//! - a job whose log is already sent, failed or skipped is dropped (a duplicate job);
//! - a log `sending` under a live lease belongs to another worker: the job comes back later;
//! - a log found `sending` after its lease expired (a worker died between the vendor's accept
//!   and our record) is resolved with [`Channel::lookup`]: found → sent, not found → sent now
//!   (still under the same idempotency key); a channel without lookup → UNCERTAIN, never resent.
//!
//! Failover: an account configured with `fallback = "OTHER"` hands a message to that account
//! (its channel and its limits) while its own breaker is open, or when this worker does not
//! have the account itself (not configured, or not available in this build). The log's
//! `channel` is switched to the fallback right before the fallback's call (inside its gate), so
//! the log says which account sent it, and a crash mid-send is recovered through the account
//! that really had the message (Twilio: UNCERTAIN).
//!
//! Pause: every message re-checks its campaign's status (cached ≤ 0.5 s) right before the call,
//! so PAUSED stops sends within a second; the log is released and the job held by the bus
//! ([`Bus::retry`]) and rechecked every second, so resume continues where it stopped. A hold
//! republishes nothing (embedded: the row's due time moves; Kafka: the worker keeps the job
//! and its offset stays uncommitted), so a paused campaign's jobs do not circulate. Cancel
//! releases the log and drops the job.

use super::limits::{Gate, LimitError, Limits};
use super::webhook::callback_for;
use super::worker::{Progress, Shutdown, StatusCache, heartbeat_loop, sleep_or_shutdown, worker_id};
use crate::engine::bus::{Bus, Delivery, Outgoing, topic};
use crate::engine::campaign::{CampaignStatus, DeadLetter, SendJob, SendStatus, StatusUpdate};
use crate::engine::channel::{Channel, ChannelError, ChannelRegistry, OutboundMessage};
use crate::engine::error::Result;
use crate::engine::store::campaigns::{CampaignStore, Claim, LogUpdate};
use chrono::Utc;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

pub const GROUP: &str = crate::engine::bus::group::SENDER;

mod upkeep;
use upkeep::{publish_waits, seed_daily_caps};
const POLL: Duration = Duration::from_millis(300);
/// How soon a job held back by a pause (or a draft campaign) is looked at again.
const PAUSE_RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// How long a claim (and the bus lease of its job) lasts beyond the batch's expected time.
    pub lease: Duration,
    /// The receipts webhook's base URL (`http://host:port/receipts`); each account's messages
    /// name `BASE/ACCOUNT` as their callback.
    pub callback_url: Option<String>,
    /// Batch loops running at once in this process (they share the policies).
    pub loops: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig { lease: Duration::from_secs(30), callback_url: None, loops: 3 }
    }
}

/// A channel account as the sender uses it: the channel and its own limits.
struct Account {
    channel: Arc<dyn Channel>,
    limits: Limits,
    callback_url: Option<String>,
}

/// Jobs per batch and the claim lease, from the fastest account's policy: enough jobs to keep
/// its concurrency busy for about two seconds at its rate, and a lease that covers the time
/// the rate limit makes a batch take.
#[derive(Debug, Clone, Copy)]
struct Pace {
    batch: usize,
    lease: Duration,
}

impl Pace {
    fn of(registry: &ChannelRegistry, config: &SenderConfig) -> Pace {
        let mut batch = 1;
        let mut slowest: Option<u32> = None;
        for account in registry.accounts() {
            let p = &account.policy;
            let c = p.concurrency.max(1);
            batch = batch.max(match p.rate_per_minute {
                // Unlimited: 16 rounds of its concurrency, at most 1,024 (a batch's commits are
                // shared by its messages: 256 → 1,024 took a 100,000-lead campaign from
                // ~10 s to ~7.5 s, benches/campaign.sh).
                None => (c * 16).clamp(256, 1024),
                Some(r) => ((r as usize) / 30).clamp(c.min(256), 256),
            });
            if let Some(r) = p.rate_per_minute.filter(|r| *r > 0) {
                slowest = Some(slowest.map_or(r, |s| s.min(r)));
            }
        }
        let paced = slowest.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64((batch * config.loops.max(1)) as f64 * 60.0 / f64::from(r))
        });
        Pace { batch, lease: config.lease + paced }
    }
}

/// What became of one claimed message.
#[derive(Debug)]
enum Outcome {
    /// Accepted, with the vendor's id; `find_by_pid`: see [`LogUpdate::find_by_provider_id`].
    Sent { pid: String, find_by_pid: bool },
    /// Maybe sent (an ambiguous outcome on a channel without idempotency): never sent again.
    Uncertain(String),
    /// The channel refused this recipient before sending (e.g. not on WhatsApp).
    Skipped(String),
    /// The try failed and another is due after the backoff (the attempt counted).
    Retry { after: Duration, error: String },
    /// Permanent failure, or the tries are used up: dead letter.
    Failed(String),
    /// Nothing was tried (paused, breaker open, shutting down): back to pending.
    Release { after: Duration },
    /// The campaign was cancelled or deleted: back to pending, and the job dropped.
    Drop,
}

struct Shared {
    store: Arc<dyn CampaignStore>,
    accounts: HashMap<String, Account>,
    /// Each account's fallback account (failover), by name.
    fallbacks: HashMap<String, String>,
    statuses: StatusCache,
    pace: Pace,
}

impl Shared {
    fn new(store: Arc<dyn CampaignStore>, channels: &ChannelRegistry, config: &SenderConfig) -> Shared {
        let accounts = channels
            .accounts()
            .map(|a| {
                let account = Account {
                    channel: a.channel.clone(),
                    limits: Limits::new(&a.policy),
                    callback_url: config.callback_url.as_deref().map(|base| callback_for(base, &a.name)),
                };
                (a.name.clone(), account)
            })
            .collect();
        let fallbacks = shared_fallbacks(channels);
        Shared {
            statuses: StatusCache::new(store.clone()),
            store,
            accounts,
            fallbacks,
            pace: Pace::of(channels, config),
        }
    }
}

fn shared_fallbacks(channels: &ChannelRegistry) -> HashMap<String, String> {
    channels.fallbacks().map(|(account, fallback)| (account.clone(), fallback.clone())).collect()
}

/// Runs a sender for every account in `channels` until `shutdown`; in-flight sends finish (or
/// are released) first.
pub async fn run_sender(
    store: Arc<dyn CampaignStore>,
    bus: Arc<dyn Bus>,
    channels: ChannelRegistry,
    config: SenderConfig,
    shutdown: Shutdown,
) -> Result<()> {
    let id = worker_id("send");
    let progress = Arc::new(Progress::default());
    let beat = tokio::spawn(heartbeat_loop(store.clone(), id.clone(), "send", progress.clone(), shutdown.clone()));
    let shared = Arc::new(Shared::new(store.clone(), &channels, &config));
    seed_daily_caps(&shared).await;
    let names: Vec<&String> = shared.accounts.keys().collect();
    tracing::info!(worker = %id, batch = shared.pace.batch, loops = config.loops, accounts = ?names, "Sender started.");
    // Several batch loops share the policies: while one records its batch, another sends.
    let mut loops = JoinSet::new();
    for _ in 0..config.loops.max(1) {
        let (shared, bus, progress, shutdown, id) =
            (shared.clone(), bus.clone(), progress.clone(), shutdown.clone(), id.clone());
        loops.spawn(async move { batch_loop(&shared, bus.as_ref(), &progress, shutdown, &id).await });
    }
    let waits = tokio::spawn(publish_waits(shared.clone(), shutdown.clone()));
    while loops.join_next().await.is_some() {}
    let _ = beat.await;
    let _ = waits.await;
    tracing::info!(worker = %id, processed = progress.get(), "Sender stopped.");
    Ok(())
}

async fn batch_loop(shared: &Arc<Shared>, bus: &dyn Bus, progress: &Progress, shutdown: Shutdown, id: &str) {
    while !shutdown.is_triggered() {
        let Pace { batch, lease } = shared.pace;
        let step = async {
            let deliveries = bus.consume_wait(topic::SEND_JOBS, GROUP, batch, lease, POLL).await?;
            send_batch(shared, bus, deliveries, &shutdown).await
        };
        match step.await {
            Ok(sent) => progress.add(sent),
            Err(e) => {
                // A backend hiccup (a locked file, a restart) must not kill the worker.
                tracing::warn!(worker = %id, error = %e, "Send batch failed; retrying shortly.");
                let mut s = shutdown.clone();
                sleep_or_shutdown(Duration::from_secs(1), &mut s).await;
            }
        }
    }
}

/// Handles one batch of deliveries; returns how many messages it settled.
async fn send_batch(
    shared: &Arc<Shared>,
    bus: &dyn Bus,
    deliveries: Vec<Delivery>,
    shutdown: &Shutdown,
) -> Result<u64> {
    let mut acks = Vec::new();
    let mut later: Vec<(Delivery, Duration)> = Vec::new();
    let mut claimable: Vec<(Delivery, SendJob)> = Vec::new();
    for d in deliveries {
        let Ok(job) = serde_json::from_slice::<SendJob>(&d.payload) else {
            tracing::warn!(message = d.id, "Dropping an unreadable send job.");
            acks.push(d);
            continue;
        };
        match shared.statuses.get(job.campaign_id).await? {
            Some(CampaignStatus::Running | CampaignStatus::Completed) => claimable.push((d, job)),
            Some(CampaignStatus::Paused | CampaignStatus::Draft) => later.push((d, PAUSE_RECHECK)),
            Some(CampaignStatus::Cancelled) | None => acks.push(d),
        }
    }
    let ids: Vec<String> = claimable.iter().map(|(_, j)| j.send_id.clone()).collect();
    let claims = if ids.is_empty() { Vec::new() } else { shared.store.claim_logs(&ids, shared.pace.lease).await? };
    let mut updates = Vec::new();
    let mut tasks = JoinSet::new();
    for ((d, job), claim) in claimable.into_iter().zip(claims) {
        match claim {
            Claim::Claimed { attempt, recovered, channel } => {
                let (shared, shutdown) = (shared.clone(), shutdown.clone());
                tasks.spawn(async move {
                    let outcome = send_one(&shared, &channel, &job, attempt, recovered, shutdown).await;
                    (d, job, attempt, outcome)
                });
            }
            Claim::Busy { retry_in } => later.push((d, retry_in)),
            Claim::OptedOut => {
                // The claim marked the log skipped.
                updates.push(status_update(&job, SendStatus::Skipped, 0, Some("opted out".into()), None, true));
                acks.push(d);
            }
            Claim::Settled(_) | Claim::Missing => acks.push(d),
        }
    }
    let mut log_updates = Vec::new();
    let (mut release_keep, mut release_undo, mut dead) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let Ok((d, job, attempt, outcome)) = joined else { continue };
        match outcome {
            Outcome::Sent { pid, find_by_pid } => {
                let update = log_update(&job, SendStatus::Sent, Some(pid.clone()), None);
                log_updates.push(LogUpdate { find_by_provider_id: find_by_pid, ..update });
                updates.push(status_update(&job, SendStatus::Sent, attempt, None, Some(pid), true));
                acks.push(d);
            }
            Outcome::Uncertain(why) => {
                log_updates.push(log_update(&job, SendStatus::Uncertain, None, Some(why.clone())));
                updates.push(status_update(&job, SendStatus::Uncertain, attempt, Some(why), None, true));
                acks.push(d);
            }
            Outcome::Skipped(why) => {
                log_updates.push(log_update(&job, SendStatus::Skipped, None, Some(why.clone())));
                updates.push(status_update(&job, SendStatus::Skipped, attempt, Some(why), None, true));
                acks.push(d);
            }
            Outcome::Retry { after, error } => {
                tracing::debug!(send_id = %job.send_id, attempt, ?after, %error, "Send failed; retrying later.");
                release_keep.push(job.send_id.clone());
                later.push((d, after));
            }
            Outcome::Failed(reason) => {
                tracing::warn!(send_id = %job.send_id, attempt, %reason, "Send failed for good; dead-lettered.");
                // The status worker records the failure.
                updates.push(status_update(&job, SendStatus::Failed, attempt, Some(reason.clone()), None, false));
                dead.push(DeadLetter { payload: SendJob { attempt, ..job }, reason });
                acks.push(d);
            }
            Outcome::Release { after } => {
                release_undo.push(job.send_id.clone());
                later.push((d, after));
            }
            Outcome::Drop => {
                release_undo.push(job.send_id.clone());
                acks.push(d);
            }
        }
    }
    let settled = (log_updates.len() + dead.len()) as u64;
    // Effects first, durable; acknowledgements last.
    if !log_updates.is_empty() {
        shared.store.apply_log_updates(&log_updates).await?;
    }
    for letter in &dead {
        shared.store.add_dead_letter(letter).await?;
    }
    if !release_keep.is_empty() {
        shared.store.release_logs(&release_keep, false).await?;
    }
    if !release_undo.is_empty() {
        shared.store.release_logs(&release_undo, true).await?;
    }
    // Those marked `recorded` are in the store by now (above, or by the claim).
    let outgoing: Vec<Outgoing> =
        updates.iter().filter_map(|u| serde_json::to_vec(u).ok().map(|p| Outgoing::new(Some(&u.send_id), p))).collect();
    if !outgoing.is_empty() {
        bus.publish_batch(topic::STATUS_UPDATES, outgoing).await?;
    }
    // The guide's `campaign.dlq` topic carries each given-up job with its reason, for other
    // consumers (Kafka tooling, alerting); `crm dlq` works from the store's copy.
    let letters: Vec<Outgoing> = dead
        .iter()
        .filter_map(|l| serde_json::to_vec(l).ok().map(|p| Outgoing::new(Some(&l.payload.send_id), p)))
        .collect();
    if !letters.is_empty() {
        bus.publish_batch(topic::DLQ, letters).await?;
    }
    if !acks.is_empty() {
        bus.ack_many(&acks).await?;
    }
    for (d, after) in later {
        bus.retry(&d, after).await?;
    }
    Ok(settled)
}

/// How soon a job for an account this worker does not serve is offered again (another worker,
/// configured with that account, may take it meanwhile).
const UNKNOWN_ACCOUNT_RECHECK: Duration = Duration::from_secs(5);

/// One claimed message through recovery, its account's policies and its channel.
async fn send_one(
    shared: &Shared,
    account: &str,
    job: &SendJob,
    attempt: u32,
    recovered: bool,
    mut shutdown: Shutdown,
) -> Outcome {
    let fallback = shared.fallbacks.get(account).filter(|f| shared.accounts.contains_key(f.as_str()));
    let Some(account) = shared.accounts.get(account) else {
        if let (Some(fallback), false) = (fallback, recovered) {
            tracing::info!(send_id = %job.send_id, account, %fallback, "Account not in this worker; failing over.");
            return via_fallback(shared, fallback, job, attempt, shutdown).await;
        }
        tracing::warn!(send_id = %job.send_id, account, "No such channel account in this worker; holding the message.");
        return Outcome::Release { after: UNKNOWN_ACCOUNT_RECHECK };
    };
    if recovered {
        match account.channel.lookup(&job.send_id).await {
            Ok(Some(pid)) => {
                tracing::info!(send_id = %job.send_id, "A crashed send had reached the vendor; recorded as sent.");
                return sent(account, pid);
            }
            Ok(None) => tracing::info!(send_id = %job.send_id, "A crashed send never reached the vendor; sending."),
            Err(ChannelError::Permanent(e)) => return Outcome::Uncertain(format!("crashed mid-send; {e}")),
            Err(e) => return Outcome::Retry { after: Duration::from_secs(1), error: e.to_string() },
        }
    }
    let msg = message_for(job, account);
    // Asked once the breaker and the rate limit let the send through: a pause while it waited
    // for its slot still stops it.
    let gate = campaign_gate(shared, job);
    let err = match account.limits.send(account.channel.as_ref(), &msg, &mut shutdown, gate).await {
        Ok(outcome) => return sent(account, outcome.provider_message_id),
        Err(LimitError::Held(after)) => return Outcome::Release { after },
        Err(LimitError::Dropped) => return Outcome::Drop,
        Err(LimitError::CircuitOpen(open)) => {
            return match fallback {
                Some(fallback) => {
                    tracing::debug!(send_id = %job.send_id, %fallback, "Breaker open; failing over.");
                    match via_fallback(shared, fallback, job, attempt, shutdown).await {
                        // The fallback's breaker is open too: wait for the first to close.
                        Outcome::Release { after } => Outcome::Release { after: after.min(open.retry_in) },
                        outcome => outcome,
                    }
                }
                None => Outcome::Release { after: open.retry_in },
            };
        }
        Err(LimitError::Channel(ChannelError::Ambiguous(why))) => {
            tracing::warn!(send_id = %job.send_id, %why, "Send outcome unknown; marked uncertain, never resent.");
            return Outcome::Uncertain(why);
        }
        Err(LimitError::Channel(ChannelError::Skipped(why))) => return Outcome::Skipped(why),
        Err(LimitError::Channel(err)) => err,
    };
    retry_or_fail(account, attempt, &err)
}

/// Sent through `account`, whose vendor id is `pid`.
fn sent(account: &Account, pid: String) -> Outcome {
    Outcome::Sent { pid, find_by_pid: !account.channel.receipts_name_send_id() }
}

fn retry_or_fail(account: &Account, attempt: u32, err: &ChannelError) -> Outcome {
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    match account.limits.retry().delay_after(attempt, err, &mut rng) {
        Some(after) => Outcome::Retry { after, error: err.to_string() },
        None => Outcome::Failed(err.to_string()),
    }
}

fn message_for(job: &SendJob, account: &Account) -> OutboundMessage {
    OutboundMessage {
        send_id: job.send_id.clone(),
        to: job.to.clone(),
        body: job.message.clone(),
        callback_url: account.callback_url.clone(),
        campaign_id: Some(job.campaign_id),
        timezone: job.timezone.clone(),
    }
}

/// Whether the campaign still wants the message sent, right before the call.
async fn campaign_gate(shared: &Shared, job: &SendJob) -> Gate {
    match shared.statuses.get(job.campaign_id).await {
        Ok(Some(CampaignStatus::Running | CampaignStatus::Completed)) => Gate::Go,
        Ok(Some(CampaignStatus::Paused | CampaignStatus::Draft)) | Err(_) => Gate::Hold(PAUSE_RECHECK),
        Ok(Some(CampaignStatus::Cancelled) | None) => Gate::Drop,
    }
}

/// Sends through the fallback account `name` with its own limits; the log's channel becomes
/// `name` right before the call (nothing is sent unless that is recorded).
async fn via_fallback(shared: &Shared, name: &str, job: &SendJob, attempt: u32, mut shutdown: Shutdown) -> Outcome {
    let Some(account) = shared.accounts.get(name) else { return Outcome::Release { after: UNKNOWN_ACCOUNT_RECHECK } };
    let msg = message_for(job, account);
    let gate = async {
        match campaign_gate(shared, job).await {
            Gate::Go => match shared.store.set_log_channel(&job.send_id, name).await {
                Ok(true) => Gate::Go,
                Ok(false) | Err(_) => Gate::Hold(PAUSE_RECHECK),
            },
            other => other,
        }
    };
    match account.limits.send(account.channel.as_ref(), &msg, &mut shutdown, gate).await {
        Ok(outcome) => sent(account, outcome.provider_message_id),
        Err(LimitError::Held(after)) => Outcome::Release { after },
        Err(LimitError::Dropped) => Outcome::Drop,
        Err(LimitError::CircuitOpen(open)) => Outcome::Release { after: open.retry_in },
        Err(LimitError::Channel(err)) => retry_or_fail(account, attempt, &err),
    }
}

fn log_update(job: &SendJob, status: SendStatus, pid: Option<String>, error: Option<String>) -> LogUpdate {
    LogUpdate { find_by_provider_id: true, send_id: job.send_id.clone(), status, provider_message_id: pid, error }
}

fn status_update(
    job: &SendJob,
    status: SendStatus,
    attempt: u32,
    error: Option<String>,
    pid: Option<String>,
    recorded: bool,
) -> StatusUpdate {
    StatusUpdate {
        send_id: job.send_id.clone(),
        campaign_id: job.campaign_id,
        lead_id: job.lead_id,
        status,
        attempt,
        error,
        timestamp: Utc::now(),
        provider_message_id: pid,
        recorded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::campaign::{NewCampaign, NewLog, SendIds, send_id};
    use crate::engine::channel::{ChannelAccount, SendOutcome};
    use crate::engine::config::ChannelKind;
    use crate::engine::pipeline::limits::SenderPolicy;
    use crate::engine::pipeline::worker::shutdown_signal;
    use crate::engine::store::campaigns::LogQuery;
    use crate::engine::store::sqlite::SqliteStore;
    use async_trait::async_trait;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// Accepts everything and remembers when.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Instant>>);

    #[async_trait]
    impl Channel for Recorder {
        fn name(&self) -> &str {
            "test"
        }
        fn max_length(&self) -> usize {
            1000
        }
        async fn send(&self, msg: &OutboundMessage) -> std::result::Result<SendOutcome, ChannelError> {
            self.0.lock().expect("lock").push(Instant::now());
            Ok(SendOutcome { provider_message_id: format!("m-{}", msg.send_id), duplicate: false })
        }
        async fn lookup(&self, _key: &str) -> std::result::Result<Option<String>, ChannelError> {
            Ok(None)
        }
    }

    fn job(campaign: i64, lead: i64) -> SendJob {
        SendJob {
            send_id: send_id(campaign, lead),
            campaign_id: campaign,
            lead_id: lead,
            to: "+447911000001".into(),
            message: "Hi".into(),
            attempt: 1,
            timezone: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sends_follow_the_rate_and_stop_when_paused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn CampaignStore> =
            Arc::new(SqliteStore::open(&dir.path().join("crm.db")).await.expect("open store"));
        let new = NewCampaign {
            name: "c".into(),
            segment_id: 1,
            message_template: "Hi".into(),
            channel: "sim".into(),
            created_by: None,
            send_ids: SendIds::Hashed,
        };
        let c = store.create_campaign(new).await.expect("create").id;
        let logs: Vec<NewLog> =
            (1..=4).map(|l| NewLog { send_id: send_id(c, l), lead_id: l, skip_reason: None }).collect();
        store.insert_logs(c, "sim", &logs).await.expect("insert");
        store.start_campaign(c, 4).await.expect("start");
        let channel = Arc::new(Recorder::default());
        let policy = SenderPolicy { rate_per_minute: Some(60), ..SenderPolicy::default() };
        let mut registry = ChannelRegistry::default();
        registry.insert(ChannelAccount {
            name: "sim".into(),
            kind: ChannelKind::Sim,
            channel: channel.clone(),
            policy,
        });
        let shared = Shared::new(store.clone(), &registry, &SenderConfig::default());
        let (_trigger, shutdown) = shutdown_signal();
        let start = Instant::now();
        for lead in 1..=3 {
            let outcome = send_one(&shared, "sim", &job(c, lead), 1, false, shutdown.clone()).await;
            assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
        }
        let times: Vec<Duration> = channel.0.lock().expect("lock").iter().map(|t| *t - start).collect();
        // 60 a minute, evenly spaced: one a second (tokio's clock, paused: no real waiting).
        for (i, t) in times.iter().enumerate() {
            let expected = Duration::from_secs(i as u64);
            assert!(*t >= expected && *t < expected + Duration::from_millis(50), "send {i} at {t:?}");
        }
        store.set_campaign_status(c, CampaignStatus::Paused).await.expect("pause");
        tokio::time::advance(Duration::from_millis(600)).await; // past the status cache's TTL
        let outcome = send_one(&shared, "sim", &job(c, 4), 1, false, shutdown.clone()).await;
        assert!(matches!(outcome, Outcome::Release { .. }), "{outcome:?}");
        assert_eq!(channel.0.lock().expect("lock").len(), 3, "nothing is sent while paused");
        store.set_campaign_status(c, CampaignStatus::Running).await.expect("resume");
        tokio::time::advance(Duration::from_millis(600)).await;
        let outcome = send_one(&shared, "eu", &job(c, 4), 1, false, shutdown.clone()).await;
        assert!(matches!(outcome, Outcome::Release { .. }), "an account this worker lacks is held: {outcome:?}");
        assert_eq!(channel.0.lock().expect("lock").len(), 3, "and nothing is sent through another account");
    }

    /// Refuses every send as a vendor that is down would.
    struct Down;

    #[async_trait]
    impl Channel for Down {
        fn name(&self) -> &str {
            "down"
        }
        fn max_length(&self) -> usize {
            1000
        }
        async fn send(&self, _msg: &OutboundMessage) -> std::result::Result<SendOutcome, ChannelError> {
            Err(ChannelError::Transient("cannot connect".into()))
        }
        async fn lookup(&self, _key: &str) -> std::result::Result<Option<String>, ChannelError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn an_open_breaker_fails_over_to_the_fallback_and_the_log_says_so() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn CampaignStore> =
            Arc::new(SqliteStore::open(&dir.path().join("crm.db")).await.expect("open store"));
        let new = NewCampaign {
            name: "c".into(),
            segment_id: 1,
            message_template: "Hi".into(),
            channel: "sim".into(),
            created_by: None,
            send_ids: SendIds::Hashed,
        };
        let c = store.create_campaign(new).await.expect("create").id;
        let logs: Vec<NewLog> =
            (1..=4).map(|l| NewLog { send_id: send_id(c, l), lead_id: l, skip_reason: None }).collect();
        store.insert_logs(c, "sim", &logs[..3]).await.expect("insert");
        store.insert_logs(c, "wa", &logs[3..]).await.expect("insert");
        store.start_campaign(c, 4).await.expect("start");
        let ids: Vec<String> = logs.iter().map(|l| l.send_id.clone()).collect();
        store.claim_logs(&ids, Duration::from_secs(30)).await.expect("claim");
        let fallback = Arc::new(Recorder::default());
        let policy = SenderPolicy { rate_per_minute: None, breaker_failures: 1, ..SenderPolicy::default() };
        let mut registry = ChannelRegistry::default();
        registry.insert(ChannelAccount {
            name: "sim".into(),
            kind: ChannelKind::Sim,
            channel: Arc::new(Down),
            policy: policy.clone(),
        });
        let twilio =
            ChannelAccount { name: "twilio".into(), kind: ChannelKind::Twilio, channel: fallback.clone(), policy };
        registry.insert(twilio);
        let (_trigger, shutdown) = shutdown_signal();
        // Without a fallback, an open breaker holds the message.
        let alone = Shared::new(store.clone(), &registry, &SenderConfig::default());
        let outcome = send_one(&alone, "sim", &job(c, 1), 1, false, shutdown.clone()).await;
        assert!(matches!(outcome, Outcome::Retry { .. }), "the first failure is retried: {outcome:?}");
        let outcome = send_one(&alone, "sim", &job(c, 1), 2, false, shutdown.clone()).await;
        assert!(matches!(outcome, Outcome::Release { .. }), "then the breaker is open: {outcome:?}");

        registry.set_fallback("sim", Some("twilio"));
        registry.set_fallback("wa", Some("twilio"));
        let shared = Shared::new(store.clone(), &registry, &SenderConfig::default());
        let outcome = send_one(&shared, "sim", &job(c, 1), 1, false, shutdown.clone()).await;
        assert!(matches!(outcome, Outcome::Retry { .. }), "a closed breaker: the primary is tried: {outcome:?}");
        assert!(fallback.0.lock().expect("lock").is_empty());
        let outcome = send_one(&shared, "sim", &job(c, 2), 1, false, shutdown.clone()).await;
        // Keyed by the account that sent it: Twilio's status callbacks name only its id.
        let pid = format!("m-{}", ids[1]);
        assert!(matches!(&outcome, Outcome::Sent { pid: p, find_by_pid: true } if p == &pid), "{outcome:?}");
        // An account this worker lacks (not available in this build) fails over too.
        let outcome = send_one(&shared, "wa", &job(c, 4), 1, false, shutdown.clone()).await;
        assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
        assert_eq!(fallback.0.lock().expect("lock").len(), 2);
        let query = LogQuery { campaign: Some(c), limit: 10, ..LogQuery::default() };
        let mut channels: Vec<(i64, String)> =
            store.list_logs(&query).await.expect("logs").into_iter().map(|l| (l.lead_id, l.channel)).collect();
        channels.sort();
        let expected = [(1, "sim"), (2, "twilio"), (3, "sim"), (4, "twilio")].map(|(l, c)| (l, c.to_string()));
        assert_eq!(channels, expected, "the log names the account that sent it");
        // The simulator's receipts name the send id: its vendor ids need no lookup.
        let mut sim = ChannelRegistry::default();
        let channel = Arc::new(crate::engine::channel::sim::SimChannel::new("http://127.0.0.1:9").expect("sim"));
        sim.insert(ChannelAccount {
            name: "sim".into(),
            kind: ChannelKind::Sim,
            channel,
            policy: SenderPolicy::default(),
        });
        let sim = Shared::new(store.clone(), &sim, &SenderConfig::default());
        let outcome = sent(&sim.accounts["sim"], "sim-1".into());
        assert!(matches!(outcome, Outcome::Sent { find_by_pid: false, .. }), "{outcome:?}");
    }

    /// Answers every send with an ambiguous outcome (the request may have left).
    struct Ambiguous(Mutex<u32>);

    #[async_trait]
    impl Channel for Ambiguous {
        fn name(&self) -> &str {
            "wa"
        }
        fn max_length(&self) -> usize {
            1000
        }
        async fn send(&self, _msg: &OutboundMessage) -> std::result::Result<SendOutcome, ChannelError> {
            *self.0.lock().expect("lock") += 1;
            Err(ChannelError::Ambiguous("no answer within 30s".into()))
        }
        async fn lookup(&self, _key: &str) -> std::result::Result<Option<String>, ChannelError> {
            Err(ChannelError::Permanent("no idempotency".into()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_send_is_uncertain_not_retried() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn CampaignStore> =
            Arc::new(SqliteStore::open(&dir.path().join("crm.db")).await.expect("open store"));
        let new = NewCampaign {
            name: "c".into(),
            segment_id: 1,
            message_template: "Hi".into(),
            channel: "wa".into(),
            created_by: None,
            send_ids: SendIds::Hashed,
        };
        let c = store.create_campaign(new).await.expect("create").id;
        store
            .insert_logs(c, "wa", &[NewLog { send_id: send_id(c, 1), lead_id: 1, skip_reason: None }])
            .await
            .expect("insert");
        store.start_campaign(c, 1).await.expect("start");
        let channel = Arc::new(Ambiguous(Mutex::new(0)));
        let mut registry = ChannelRegistry::default();
        registry.insert(ChannelAccount {
            name: "wa".into(),
            kind: ChannelKind::Whatsapp,
            channel: channel.clone(),
            policy: SenderPolicy { rate_per_minute: None, ..SenderPolicy::default() },
        });
        let shared = Shared::new(store.clone(), &registry, &SenderConfig::default());
        let (_trigger, shutdown) = shutdown_signal();
        let outcome = send_one(&shared, "wa", &job(c, 1), 1, false, shutdown.clone()).await;
        assert!(matches!(&outcome, Outcome::Uncertain(why) if why.contains("no answer")), "{outcome:?}");
        // A send recovered after a crash on a channel without lookup: uncertain, not sent.
        let outcome = send_one(&shared, "wa", &job(c, 1), 2, true, shutdown).await;
        assert!(matches!(outcome, Outcome::Uncertain(_)), "{outcome:?}");
        assert_eq!(*channel.0.lock().expect("lock"), 1, "sent once, never again");
    }
}
