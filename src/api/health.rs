//! `GET /health` (no token: for load balancers and monitors) and `GET /api/v1/status`.

use super::Shared;
use super::schema::{Health, ServiceStatus, Services};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::collections::BTreeMap;

/// Service, version and features.
#[utoipa::path(get, path = "/status", tag = "service", operation_id = "status",
    responses((status = 200, description = "the service answers", body = ServiceStatus)))]
pub async fn status(State(_shared): State<Shared>) -> Json<ServiceStatus> {
    let features = [
        ("kafka", cfg!(feature = "kafka")),
        ("mongodb", cfg!(feature = "mongodb")),
        ("whatsapp", cfg!(feature = "whatsapp")),
        ("tui", cfg!(feature = "tui")),
        ("api", cfg!(feature = "api")),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| name.to_string())
    .collect();
    Json(ServiceStatus {
        service: "crm".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        status: "ok".into(),
        features,
    })
}

/// The store and the bus answer (each with a real query); live workers by role.
#[utoipa::path(get, path = "/health", tag = "service", operation_id = "health", security(()),
    responses(
        (status = 200, description = "the store and the bus answer", body = Health),
        (status = 503, description = "a part is unavailable: services names it", body = Health),
    ))]
pub async fn health(State(s): State<Shared>) -> (StatusCode, Json<Health>) {
    let crate::engine::app::health::BackendHealth { database, bus } = s.app.check_backends().await;
    let mut workers = BTreeMap::new();
    if let Ok(all) = s.app.list_workers(false).await {
        for w in all.into_iter().filter(|w| !w.stale) {
            *workers.entry(w.heartbeat.kind.clone()).or_insert(0) += 1;
        }
    }
    let word = |up: bool| if up { "connected" } else { "unavailable" }.to_string();
    let healthy = database && bus;
    let body = Health {
        status: if healthy { "ok" } else { "degraded" }.into(),
        timestamp: chrono::Utc::now().to_rfc3339(),
        services: Services { database: word(database), bus: word(bus), workers },
    };
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}
