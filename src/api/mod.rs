//! `crm serve`: the REST API of the system we replace, on the same application layer as the CLI
//! and the dashboard. Routes are thin: parse (strictly, see [`extract`]), call an [`App`]
//! operation, wrap the result as `{"success":true,"data":…}`; errors are
//! `{"success":false,"error":{"code","message","details"}}` (see [`error`]). Every `/api/v1`
//! route needs a bearer JWT ([`auth`]); the webhooks (receipts, Twilio status and inbound) are
//! the status worker's own router (`pipeline::webhook`), mounted here too, and check their own
//! signatures. Routes and `/openapi.json` come from the same `#[utoipa::path]` annotations.

pub mod auth;
mod campaigns;
pub mod error;
mod extract;
mod health;
mod leads;
pub mod openapi;
pub mod schema;
mod segments;

use crate::engine::app::App;
use crate::engine::app::Shutdown;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use error::{ApiError, ApiResult};
use schema::Envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
pub fn ok<T: Serialize>(value: T) -> Json<Envelope<T>> {
    Json(Envelope { success: true, data: value })
}

/// The `{id}` of a path, for the document (handlers read it with [`Id`], so a malformed one is
/// a 400 in the API's own words).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct IdParam {
    /// A positive whole number.
    #[param(minimum = 1)]
    id: i64,
}

/// The `{id}` of the path, checked by [`id_of`] (a malformed one is a 400 naming `id`).
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(text) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::validation("id", "the path has no readable id"))?;
        id_of(&text).map(Id)
    }
}

/// A numeric id from the path.
pub fn id_of(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::validation("id", format!("'{text}' is not an id (a positive whole number)")))
}

/// The whole API: `/health`, `/api/v1/…` behind authentication, the webhooks (the status
/// worker's own router, [`App::webhook_router`]) and `/openapi.json`, the document generated
/// from the same annotated handlers that the router is built from.
pub async fn router(app: Arc<App>, auth: Auth, cors_origins: &[String]) -> crate::engine::Result<Router> {
    let webhooks = app.webhook_router().await?;
    let shared = Shared { app, auth };
    let mut v1 = OpenApiRouter::new()
        .routes(routes!(health::status))
        .routes(routes!(leads::list, leads::create))
        .routes(routes!(leads::bulk))
        .routes(routes!(leads::get, leads::update, leads::delete))
        .routes(routes!(segments::list, segments::create))
        .routes(routes!(segments::preview))
        .routes(routes!(segments::get, segments::update, segments::delete))
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(campaigns::get))
        .routes(routes!(campaigns::run))
        .routes(routes!(campaigns::set_status))
        .routes(routes!(campaigns::logs))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    openapi::guarded(v1.get_openapi_mut());
    let (api, mut document) = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(health::health))
        .nest("/api/v1", v1)
        .split_for_parts();
    openapi::add_webhooks(&mut document);
    // Serialized once: the document is fixed for the server's life.
    let document = axum::body::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    let json = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    let api = api
        .route("/openapi.json", get(move || std::future::ready((json.clone(), document.clone()))))
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
