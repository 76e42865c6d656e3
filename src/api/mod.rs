//! `crm serve`: the REST API of the system we replace, on the same application layer as the CLI
//! and the dashboard. Routes are thin: parse (strictly, see [`extract`]), call an [`App`]
//! operation, wrap the result as `{"success":true,"data":…}`; errors are
//! `{"success":false,"error":{"code","message","details"}}` (see [`error`]). Every `/api/v1`
//! route needs a bearer JWT ([`auth`]); the receipts webhooks are the status worker's own router
//! (`pipeline::webhook`), mounted here too, and check their own signatures.

pub mod auth;
mod campaigns;
pub mod error;
mod extract;
mod leads;
pub mod openapi;
mod segments;

use crate::engine::app::App;
use crate::engine::app::Shutdown;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use error::{ApiError, ApiResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Leads one bulk request may carry.
pub const MAX_BULK: usize = 10_000;
/// The largest request body accepted (a bulk request of 10,000 leads fits).
pub const BODY_LIMIT: usize = 16 << 20;

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// HS256 JWTs signed with this secret.
    Jwt(Arc<Vec<u8>>),
    /// No authentication (`--insecure-no-auth`, for local use).
    None,
}

/// What every handler gets.
#[derive(Clone)]
pub struct Shared {
    pub app: Arc<App>,
    auth: Auth,
}

/// Query parameters of type `T`; a malformed or unknown one is a 400.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Params)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "validation_error", format!("query: {e}")))
    }
}

/// `{"success":true,"data":value}`.
pub fn ok(value: impl Serialize) -> Json<Value> {
    Json(json!({ "success": true, "data": value }))
}

/// A numeric id from the path.
pub fn id_of(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::validation("id", format!("'{text}' is not an id (a positive whole number)")))
}

/// The whole API: `/health`, `/api/v1/…` behind authentication, and the receipts webhooks.
pub async fn router(app: Arc<App>, auth: Auth, cors_origins: &[String]) -> crate::engine::Result<Router> {
    let webhooks = app.webhook_router().await?;
    let shared = Shared { app, auth };
    let v1 = Router::new()
        .route("/status", get(status))
        .route("/leads", get(leads::list).post(leads::create))
        .route("/leads/bulk", post(leads::bulk))
        .route("/leads/{id}", get(leads::get).put(leads::update).delete(leads::delete))
        .route("/segments", get(segments::list).post(segments::create))
        .route("/segments/preview", post(segments::preview))
        .route("/segments/{id}", get(segments::get).put(segments::update).delete(segments::delete))
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route("/campaigns/{id}", get(campaigns::get))
        .route("/campaigns/{id}/run", post(campaigns::run))
        .route("/campaigns/{id}/status", put(campaigns::set_status))
        .route("/campaigns/{id}/logs", get(campaigns::logs))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    let api = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(|| async { Json(openapi::document()) }))
        .nest("/api/v1", v1)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(cors(cors_origins))
        .with_state(shared);
    Ok(api.merge(webhooks).layer(middleware::from_fn(request_log)))
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// Gives every request an id (`x-request-id`, the caller's when it sends one) and logs it with
/// the method, path, status and time taken.
async fn request_log(req: Request, next: Next) -> Response {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = std::time::Instant::now();
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request = %id, %method, %path, status, ms = format!("{ms:.1}"), "Request served.");
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Refuses requests without a valid bearer token.
async fn authenticate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let Auth::Jwt(secret) = &s.auth else { return next.run(req).await };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let Some(token) = token else {
        return ApiError::unauthorized("send Authorization: Bearer <token> (crm auth token --user NAME)")
            .into_response();
    };
    match auth::verify(secret, token.trim(), chrono::Utc::now().timestamp()) {
        Ok(claims) => {
            tracing::debug!(user = %claims.sub, path = %req.uri().path(), "Authenticated request.");
            next.run(req).await
        }
        Err(e) => ApiError::unauthorized(e.to_string()).into_response(),
    }
}

async fn status(State(_): State<Shared>) -> Json<Value> {
    let features: Vec<&str> = [
        ("kafka", cfg!(feature = "kafka")),
        ("mongodb", cfg!(feature = "mongodb")),
        ("whatsapp", cfg!(feature = "whatsapp")),
        ("tui", cfg!(feature = "tui")),
        ("api", cfg!(feature = "api")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    Json(json!({ "service": "crm", "version": env!("CARGO_PKG_VERSION"), "status": "ok", "features": features }))
}

/// `GET /health`: the store and the bus answer; workers by kind (alive ones).
async fn health(State(s): State<Shared>) -> Response {
    let database = s.app.count_leads(&Default::default()).await.is_ok();
    let bus = match s.app.bus().await {
        Ok(bus) => bus.depth(crate::engine::bus::topic::JOBS).await.is_ok(),
        Err(_) => false,
    };
    let mut workers = serde_json::Map::new();
    if let Ok(all) = s.app.list_workers(false).await {
        for w in all.into_iter().filter(|w| !w.stale) {
            let n = workers.entry(w.heartbeat.kind.clone()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap_or(0) + 1);
        }
    }
    let word = |up: bool| if up { "connected" } else { "unavailable" };
    let healthy = database && bus;
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "services": { "database": word(database), "bus": word(bus), "workers": workers },
    });
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

/// Serves the API on `addr` until `shutdown`; `on_listen` is told the bound address.
pub async fn serve(
    app: Arc<App>,
    auth: Auth,
    addr: SocketAddr,
    cors_origins: &[String],
    mut shutdown: Shutdown,
    on_listen: impl FnOnce(SocketAddr),
) -> crate::engine::Result<()> {
    let router = router(app, auth, cors_origins).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::engine::Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| crate::engine::Error::Usage(format!("cannot listen: {e}")))?;
    on_listen(bound);
    tracing::info!(%bound, "API listening.");
    let mut stop = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move { stop.wait().await });
    tokio::select! {
        served = server => served.map_err(|e| crate::engine::Error::Usage(format!("the API server stopped: {e}"))),
        // Idle keep-alive connections must not hold the process after shutdown.
        _ = async { shutdown.wait().await; tokio::time::sleep(Duration::from_secs(5)).await } => Ok(()),
    }
}
