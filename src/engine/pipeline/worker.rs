//! What every pipeline worker shares: the shutdown signal passed into its loop, its heartbeat
//! row (written about once a second, for `crm worker list` and the dashboard), and a cache of
//! campaign statuses so that pause and cancel are seen within half a second without a store
//! query per message.

use crate::engine::campaign::{CampaignId, CampaignStatus, Heartbeat};
use crate::engine::error::Result;
use crate::engine::store::campaigns::CampaignStore;
use chrono::Utc;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// How often heartbeats are written.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a cached campaign status is trusted.
const STATUS_TTL: Duration = Duration::from_millis(500);

/// Tells workers to stop: they take no new work, finish or release what they hold, and return.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

/// The receiving side, cloned into every task of a worker.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and signal.
pub fn shutdown_signal() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(Arc::new(tx)), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is triggered (at once if it already was).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Items a worker has finished, shared between its loop and its heartbeat.
#[derive(Debug, Default)]
pub struct Progress(AtomicU64);

impl Progress {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A worker id unique across processes and restarts: kind, pid and a random suffix.
pub fn worker_id(kind: &str) -> String {
    format!("{kind}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// Writes the worker's heartbeat every second until shutdown (and once more on the way out).
pub async fn heartbeat_loop(
    store: Arc<dyn CampaignStore>,
    id: String,
    kind: &'static str,
    progress: Arc<Progress>,
    mut shutdown: Shutdown,
) {
    let started = Utc::now();
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut last_count, mut last_at) = (0u64, Instant::now());
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.wait() => true,
        };
        let processed = progress.get();
        let elapsed = last_at.elapsed().as_secs_f64().max(0.001);
        let rate = (processed - last_count) as f64 / elapsed;
        (last_count, last_at) = (processed, Instant::now());
        let beat = Heartbeat {
            id: id.clone(),
            kind: kind.to_string(),
            pid: std::process::id(),
            started,
            last_seen: Utc::now(),
            processed,
            rate,
        };
        if let Err(e) = store.beat(&beat).await {
            tracing::warn!(worker = %id, error = %e, "Cannot write the heartbeat.");
        }
        if stopping {
            return;
        }
    }
}

/// Campaign statuses, re-read from the store at most every half second per campaign.
pub struct StatusCache {
    store: Arc<dyn CampaignStore>,
    seen: Mutex<HashMap<CampaignId, (Option<CampaignStatus>, Instant)>>,
    /// One read of the store at a time: when an entry expires, the sends that ask meanwhile
    /// wait for that read instead of each queueing one of their own on the store.
    reading: tokio::sync::Mutex<()>,
}

impl StatusCache {
    pub fn new(store: Arc<dyn CampaignStore>) -> StatusCache {
        StatusCache { store, seen: Mutex::new(HashMap::new()), reading: tokio::sync::Mutex::new(()) }
    }

    fn fresh(&self, id: CampaignId) -> Option<Option<CampaignStatus>> {
        let seen = self.seen.lock().ok()?;
        seen.get(&id).filter(|(_, at)| at.elapsed() < STATUS_TTL).map(|(status, _)| *status)
    }

    /// The campaign's status (None: it no longer exists).
    pub async fn get(&self, id: CampaignId) -> Result<Option<CampaignStatus>> {
        if let Some(status) = self.fresh(id) {
            return Ok(status);
        }
        let _reading = self.reading.lock().await;
        if let Some(status) = self.fresh(id) {
            return Ok(status);
        }
        let status = self.store.campaign_status(id).await?;
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(id, (status, Instant::now()));
        }
        Ok(status)
    }
}

/// Sleeps `d`, or less if shutdown comes first; returns whether shutdown came.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.wait() => true,
    }
}
