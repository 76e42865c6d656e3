//! The receipts webhook: vendors POST delivery receipts to `/receipts/ACCOUNT`; the account's
//! channel reads its own vendor's format into status updates ([`Channel::parse_receipts`]),
//! which are applied to the logs forward-only, in one transaction per request, and answered 2xx
//! only once durable (the vendor retries otherwise). `/receipts` and `/` take the `sim`
//! account's receipts, as before accounts existed.
//!
//! **Departure from the guide**, which routes receipts through `campaign.status_updates`: a
//! receipt names only the idempotency key (our `send_id`), so republishing it would cost a
//! lookup and a second write for the same effect. The router is one implementation that the
//! status worker serves and `crm serve` can mount.
//!
//! [`Channel::parse_receipts`]: crate::engine::channel::Channel::parse_receipts

use super::worker::Shutdown;
use crate::engine::channel::ChannelRegistry;
use crate::engine::error::{Error, Result};
use crate::engine::store::campaigns::CampaignStore;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Vendors batch receipts; the simulator sends up to 10,000 in one array.
const RECEIPTS_BODY_LIMIT: usize = 32 << 20;
/// The account `/receipts` without a name belongs to.
const DEFAULT_ACCOUNT: &str = "sim";

#[derive(Clone)]
struct Hook {
    store: Arc<dyn CampaignStore>,
    channels: ChannelRegistry,
}

type Answer = (StatusCode, Json<serde_json::Value>);

/// `POST /receipts/{account}`, `/receipts` and `/`: applies receipts, answering
/// `{"applied": N}` once durable.
pub fn receipts_router(store: Arc<dyn CampaignStore>, channels: ChannelRegistry) -> axum::Router {
    axum::Router::new()
        .route("/receipts/{account}", post(receive_for))
        .route("/receipts", post(receive_default))
        .route("/", post(receive_default))
        .layer(DefaultBodyLimit::max(RECEIPTS_BODY_LIMIT))
        .with_state(Hook { store, channels })
}

/// The callback URL a vendor should post an account's receipts to, given the webhook's base.
pub fn callback_for(base: &str, account: &str) -> String {
    format!("{}/{account}", base.trim_end_matches('/'))
}

async fn receive_for(State(hook): State<Hook>, Path(account): Path<String>, body: Bytes) -> Answer {
    receive(&hook, &account, &body).await
}

async fn receive_default(State(hook): State<Hook>, body: Bytes) -> Answer {
    receive(&hook, DEFAULT_ACCOUNT, &body).await
}

fn refuse(status: StatusCode, message: String) -> Answer {
    (status, Json(serde_json::json!({ "error": message })))
}

async fn receive(hook: &Hook, account: &str, body: &[u8]) -> Answer {
    let Some(channel) = hook.channels.get(account) else {
        return refuse(StatusCode::NOT_FOUND, format!("no channel account '{account}'"));
    };
    let updates = match channel.channel.parse_receipts(body) {
        None => return refuse(StatusCode::NOT_FOUND, format!("channel account '{account}' takes no receipts here")),
        Some(Err(why)) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, why),
        Some(Ok(updates)) => updates,
    };
    match hook.store.apply_log_updates(&updates).await {
        Ok(applied) => (StatusCode::OK, Json(serde_json::json!({ "applied": applied }))),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot apply receipts; the vendor will retry.");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; try again".into())
        }
    }
}

/// Serves the receipts webhook on `addr` until shutdown; returns the bound address and the
/// server's task.
pub async fn serve_receipts(
    store: Arc<dyn CampaignStore>,
    channels: ChannelRegistry,
    addr: SocketAddr,
    mut shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen for receipts on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    let mut stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, receipts_router(store, channels))
            .with_graceful_shutdown(async move { stop.wait().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "The receipts webhook stopped.");
        }
    });
    // Graceful shutdown waits for idle keep-alive connections (the vendor's pool); give
    // requests in progress a moment, then stop regardless.
    let handle = tokio::spawn(async move {
        let abort = server.abort_handle();
        tokio::select! {
            _ = server => {}
            _ = async { shutdown.wait().await; tokio::time::sleep(Duration::from_secs(1)).await } => abort.abort(),
        }
    });
    tracing::info!(%bound, "Listening for receipts.");
    Ok((bound, handle))
}
