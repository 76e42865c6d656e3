//! The aggregator: applies `campaign.status_updates` to the communication logs (forward only,
//! so late, repeated or out-of-order updates change nothing wrongly), and 4 times a second
//! (up to 20 when the updates run dry, as they do after a campaign's last send) marks RUNNING
//! campaigns whose audience is fully expanded and settled as COMPLETED. Stats are
//! counted from the logs when read, so applying a transition is what counts it.
//!
//! Delivery receipts arrive over HTTP instead (see [`super::webhook`]).

use super::worker::{Progress, Shutdown, heartbeat_loop, sleep_or_shutdown, worker_id};
use crate::engine::bus::{Bus, topic};
use crate::engine::campaign::StatusUpdate;
use crate::engine::error::Result;
use crate::engine::store::campaigns::{CampaignStore, LogUpdate};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const GROUP: &str = crate::engine::bus::group::STATUS;
const LEASE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(300);
const BATCH: usize = 1000;
const COMPLETION_EVERY: Duration = Duration::from_millis(250);
/// How often at most when the updates come slower than a batch at a time. A campaign's last
/// outcomes arrive so, after they were written to the store (the sender writes, then
/// publishes): checking then completes it at once instead of up to a poll and a
/// `COMPLETION_EVERY` later (~275 ms after its last send, measured on Kafka).
const QUIET_COMPLETION_EVERY: Duration = Duration::from_millis(50);

/// Runs an aggregator until `shutdown`.
pub async fn run_aggregator(store: Arc<dyn CampaignStore>, bus: Arc<dyn Bus>, shutdown: Shutdown) -> Result<()> {
    let id = worker_id("status");
    let progress = Arc::new(Progress::default());
    let beat = tokio::spawn(heartbeat_loop(store.clone(), id.clone(), "status", progress.clone(), shutdown.clone()));
    tracing::info!(worker = %id, "Aggregator started.");
    let mut last_check = Instant::now() - COMPLETION_EVERY;
    while !shutdown.is_triggered() {
        let step = async {
            let deliveries = bus.consume_wait(topic::STATUS_UPDATES, GROUP, BATCH, LEASE, POLL).await?;
            let updates: Vec<LogUpdate> = deliveries
                .iter()
                .filter_map(|d| serde_json::from_slice::<StatusUpdate>(&d.payload).ok())
                // What its publisher already wrote to the store (a send's outcome) would only
                // be looked up again to find nothing to change.
                .filter(|u| !u.recorded)
                .map(|u| LogUpdate {
                    find_by_provider_id: true,
                    send_id: u.send_id,
                    status: u.status,
                    provider_message_id: u.provider_message_id,
                    error: u.error,
                })
                .collect();
            if !updates.is_empty() {
                store.apply_log_updates(&updates).await?;
            }
            if !deliveries.is_empty() {
                bus.ack_many(&deliveries).await?;
            }
            let every = if deliveries.len() < BATCH { QUIET_COMPLETION_EVERY } else { COMPLETION_EVERY };
            if last_check.elapsed() >= every {
                last_check = Instant::now();
                for campaign in store.complete_finished_campaigns().await? {
                    tracing::info!(campaign, "Campaign completed.");
                }
            }
            Ok::<_, crate::engine::Error>(deliveries.len() as u64)
        };
        match step.await {
            Ok(n) => progress.add(n),
            Err(e) => {
                tracing::warn!(worker = %id, error = %e, "Status batch failed; retrying shortly.");
                let mut s = shutdown.clone();
                sleep_or_shutdown(Duration::from_secs(1), &mut s).await;
            }
        }
    }
    let _ = beat.await;
    tracing::info!(worker = %id, processed = progress.get(), "Aggregator stopped.");
    Ok(())
}
