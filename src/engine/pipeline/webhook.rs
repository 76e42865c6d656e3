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
//! Twilio posts form-encoded, signed requests instead (see [`twilio_router`]):
//! `POST /webhooks/twilio/status` (delivery statuses, naming the log by Twilio's message sid)
//! and `POST /webhooks/twilio/inbound` (replies: a stop word opts the lead out, anything else
//! is kept in the lead's history). Both are refused with 403, and change nothing, unless
//! `X-Twilio-Signature` is the account's HMAC of the URL Twilio called (the configured
//! `webhook.public_url` + the path, or the request's Host + the path when none is configured)
//! and the parameters.
//!
//! [`Channel::parse_receipts`]: crate::engine::channel::Channel::parse_receipts

use super::replies::{IncomingReply, ReplyHandler};
use super::worker::Shutdown;
use crate::engine::channel::ChannelRegistry;
use crate::engine::channel::twilio::{INBOUND_PATH, STATUS_PATH, TwilioChannel, bare_number, map_status};
use crate::engine::error::{Error, Result};
use crate::engine::phone::{Region, normalize_phone};
use crate::engine::store::Store;
use crate::engine::store::campaigns::CampaignStore;
use crate::engine::store::campaigns::LogUpdate;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Vendors batch receipts; the simulator sends up to 10,000 in one array.
const RECEIPTS_BODY_LIMIT: usize = 32 << 20;
/// The account `/receipts` without a name belongs to.
const DEFAULT_ACCOUNT: &str = "sim";

/// Where each account's receipts arrive.
pub const RECEIPTS_FOR_PATH: &str = "/receipts/{account}";
/// The `sim` account's receipts, as before accounts existed (and at `/`).
pub const RECEIPTS_PATH: &str = "/receipts";

#[derive(Clone)]
struct Hook {
    store: Arc<dyn CampaignStore>,
    channels: ChannelRegistry,
}

type Answer = Response;

/// Receipts applied.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Applied {
    /// Logs whose status moved forward.
    pub applied: usize,
}

/// A refused webhook request.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Refusal {
    pub error: String,
}

/// The webhooks as OpenAPI (`crm serve` adds them to its document).
#[cfg(feature = "api")]
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive_for, receive_default, receive_root, twilio_status, twilio_inbound))]
pub struct WebhooksDoc;

/// `POST /receipts/{account}`, `/receipts` and `/`: applies receipts, answering
/// `{"applied": N}` once durable.
pub fn receipts_router(store: Arc<dyn CampaignStore>, channels: ChannelRegistry) -> axum::Router {
    axum::Router::new()
        .route(RECEIPTS_FOR_PATH, post(receive_for))
        .route(RECEIPTS_PATH, post(receive_default))
        .route("/", post(receive_root))
        .layer(DefaultBodyLimit::max(RECEIPTS_BODY_LIMIT))
        .with_state(Hook { store, channels })
}

/// The callback URL a vendor should post an account's receipts to, given the webhook's base.
pub fn callback_for(base: &str, account: &str) -> String {
    format!("{}/{account}", base.trim_end_matches('/'))
}

/// A channel account's delivery receipts, in its vendor's format.
#[cfg_attr(feature = "api", utoipa::path(post, path = RECEIPTS_FOR_PATH, tag = "webhooks", operation_id = "receipts_for",
    params(("account" = String, Path, description = "the channel account")),
    request_body(content = Object, description = "the vendor's receipts"),
    responses(
        (status = 200, description = "applied, durably", body = Applied),
        (status = 404, description = "no such account, or it takes no receipts here", body = Refusal),
        (status = 422, description = "not receipts in the account's format", body = Refusal),
        (status = 503, description = "the store is unavailable; the vendor retries", body = Refusal),
    )))]
async fn receive_for(State(hook): State<Hook>, Path(account): Path<String>, body: Bytes) -> Answer {
    receive(&hook, &account, &body).await
}

/// The simulator's receipts (`sim` account).
#[cfg_attr(feature = "api", utoipa::path(post, path = RECEIPTS_PATH, tag = "webhooks", operation_id = "receipts",
    request_body(content = Object, description = "the simulator's receipts"),
    responses(
        (status = 200, description = "applied, durably", body = Applied),
        (status = 404, description = "no sim account", body = Refusal),
        (status = 422, description = "not receipts", body = Refusal),
        (status = 503, description = "the store is unavailable; the vendor retries", body = Refusal),
    )))]
async fn receive_default(State(hook): State<Hook>, body: Bytes) -> Answer {
    receive(&hook, DEFAULT_ACCOUNT, &body).await
}

/// The simulator's receipts, at the root (its oldest callback URL).
#[cfg_attr(feature = "api", utoipa::path(post, path = "/", tag = "webhooks", operation_id = "receipts_at_root",
    request_body(content = Object, description = "the simulator's receipts"),
    responses(
        (status = 200, description = "applied, durably", body = Applied),
        (status = 404, description = "no sim account", body = Refusal),
        (status = 422, description = "not receipts", body = Refusal),
        (status = 503, description = "the store is unavailable; the vendor retries", body = Refusal),
    )))]
async fn receive_root(State(hook): State<Hook>, body: Bytes) -> Answer {
    receive(&hook, DEFAULT_ACCOUNT, &body).await
}

fn refuse(status: StatusCode, message: String) -> Answer {
    (status, Json(Refusal { error: message })).into_response()
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
        Ok(applied) => (StatusCode::OK, Json(Applied { applied })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot apply receipts; the vendor will retry.");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; try again".into())
        }
    }
}

/// What the Twilio webhooks act on and with.
#[derive(Clone)]
pub struct InboundHooks {
    /// Replies are matched to leads by phone.
    pub leads: Arc<dyn Store>,
    pub store: Arc<dyn CampaignStore>,
    pub channels: ChannelRegistry,
    /// The base URL Twilio calls (`webhook.public_url`); None: the request's Host.
    pub public_url: Option<String>,
    /// A reply that is one of these (trimmed, ignoring case) opts its lead out.
    pub stop_words: Vec<String>,
    /// For phone numbers without a country code (Twilio sends E.164, so rarely used).
    pub region: Option<Region>,
}

impl InboundHooks {
    /// Replies are handled as on every channel (see [`super::replies`]).
    fn replies(&self) -> ReplyHandler {
        ReplyHandler { leads: self.leads.clone(), store: self.store.clone(), stop_words: self.stop_words.clone() }
    }
}

/// `POST /webhooks/twilio/status` and `POST /webhooks/twilio/inbound`.
pub fn twilio_router(hooks: InboundHooks) -> axum::Router {
    axum::Router::new()
        .route(STATUS_PATH, post(twilio_status))
        .route(INBOUND_PATH, post(twilio_inbound))
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(Arc::new(hooks))
}

/// The receipts router and the Twilio webhooks, as the status worker serves them.
pub fn webhooks_router(hooks: InboundHooks) -> axum::Router {
    receipts_router(hooks.store.clone(), hooks.channels.clone()).merge(twilio_router(hooks))
}

/// A checked Twilio post: its parameters and the account that signed it.
struct SignedPost {
    params: Vec<(String, String)>,
    account: Arc<TwilioChannel>,
}

impl SignedPost {
    fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_string()).into_response()
}

/// Twilio's "nothing to answer" (TwiML), so a reply is not answered with a message.
fn empty_twiml() -> Response {
    (StatusCode::OK, [("content-type", "text/xml")], "<Response></Response>").into_response()
}

/// Parses the form and checks its signature against the account it names (`AccountSid`);
/// `Err` says why it is refused (answered 403, with no effect).
fn check_signature(
    hooks: &InboundHooks,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> std::result::Result<SignedPost, &'static str> {
    let refuse = |why: &'static str| {
        tracing::warn!(path = %uri.path(), why, "Refused a Twilio webhook.");
        Err(why)
    };
    let Some(given) = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()) else {
        return refuse("missing X-Twilio-Signature");
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let sid = params.iter().find(|(n, _)| n == "AccountSid").map(|(_, v)| v.as_str());
    let accounts: Vec<&Arc<TwilioChannel>> = hooks.channels.twilio_accounts().map(|(_, c)| c).collect();
    let account = match sid {
        Some(sid) => accounts.iter().find(|c| c.config().account_sid == sid),
        None if accounts.len() == 1 => accounts.first(),
        None => None,
    };
    let Some(account) = account.map(|a| (*a).clone()) else {
        return refuse("no Twilio account configured for this AccountSid");
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = match &hooks.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
            format!("http://{host}{path}")
        }
    };
    if !account.verify(&url, &params, given) {
        return refuse("invalid X-Twilio-Signature");
    }
    Ok(SignedPost { params, account })
}

/// Twilio's delivery statuses (signed).
#[cfg_attr(feature = "api", utoipa::path(post, path = STATUS_PATH, tag = "webhooks", operation_id = "twilio_status",
    params(("X-Twilio-Signature" = Option<String>, Header, description = "the account's signature of the URL and form")),
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded",
        description = "AccountSid, MessageSid, MessageStatus, ErrorCode …"),
    responses(
        (status = 200, description = "applied or ignored", body = String, content_type = "text/plain"),
        (status = 400, description = "no MessageSid or MessageStatus", body = String, content_type = "text/plain"),
        (status = 403, description = "unsigned or wrongly signed: nothing changed", body = String, content_type = "text/plain"),
        (status = 503, description = "the store is unavailable; Twilio retries", body = String, content_type = "text/plain"),
    )))]
async fn twilio_status(State(hooks): State<Arc<InboundHooks>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let post = match check_signature(&hooks, &headers, &uri, &body) {
        Ok(post) => post,
        Err(why) => return plain(StatusCode::FORBIDDEN, why),
    };
    let (Some(sid), Some(status)) =
        (post.get("MessageSid").or(post.get("SmsSid")), post.get("MessageStatus").or(post.get("SmsStatus")))
    else {
        return plain(StatusCode::BAD_REQUEST, "needs MessageSid and MessageStatus");
    };
    let Some((status, error)) = map_status(status, post.get("ErrorCode")) else {
        return plain(StatusCode::OK, "ignored");
    };
    let applied = async {
        let Some(log) = hooks.store.log_by_provider_id(sid).await? else { return Ok(None) };
        let update =
            LogUpdate { find_by_provider_id: true, send_id: log.send_id, status, provider_message_id: None, error };
        hooks.store.apply_log_updates(&[update]).await.map(Some)
    };
    match applied.await {
        Ok(Some(n)) => plain(StatusCode::OK, &format!("applied {n}")),
        Ok(None) => {
            tracing::info!(sid, account = post.account.config().name, "A Twilio status names no log; ignored.");
            plain(StatusCode::OK, "no such message")
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot apply a Twilio status; Twilio will retry.");
            plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; try again")
        }
    }
}

/// Replies to our messages (signed): a stop word opts the lead out, anything else is kept in
/// the lead's history.
#[cfg_attr(feature = "api", utoipa::path(post, path = INBOUND_PATH, tag = "webhooks", operation_id = "twilio_inbound",
    params(("X-Twilio-Signature" = Option<String>, Header, description = "the account's signature of the URL and form")),
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded",
        description = "AccountSid, From, Body, MessageSid …"),
    responses(
        (status = 200, description = "handled: an empty TwiML answer", body = String, content_type = "text/xml"),
        (status = 400, description = "no From", body = String, content_type = "text/plain"),
        (status = 403, description = "unsigned or wrongly signed: nothing changed", body = String, content_type = "text/plain"),
        (status = 503, description = "the store is unavailable; Twilio retries", body = String, content_type = "text/plain"),
    )))]
async fn twilio_inbound(State(hooks): State<Arc<InboundHooks>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let post = match check_signature(&hooks, &headers, &uri, &body) {
        Ok(post) => post,
        Err(why) => return plain(StatusCode::FORBIDDEN, why),
    };
    let Some(from) = post.get("From") else { return plain(StatusCode::BAD_REQUEST, "needs From") };
    let text = post.get("Body").unwrap_or_default();
    let account = post.account.config().name.clone();
    let Ok(phone) = normalize_phone(bare_number(from), hooks.region) else {
        tracing::info!(account, "A reply from an unreadable number; ignored.");
        return empty_twiml();
    };
    let reply = IncomingReply {
        account,
        from: phone,
        text: text.to_string(),
        received_at: chrono::Utc::now(),
        provider_message_id: post.get("MessageSid").or(post.get("SmsSid")).map(str::to_string),
    };
    match hooks.replies().handle(&reply).await {
        Ok(_) => empty_twiml(),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot record a reply; Twilio will retry.");
            plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; try again")
        }
    }
}

/// Serves the receipts webhook on `addr` until shutdown; returns the bound address and the
/// server's task.
pub async fn serve_receipts(
    store: Arc<dyn CampaignStore>,
    channels: ChannelRegistry,
    addr: SocketAddr,
    shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_webhooks(receipts_router(store, channels), addr, shutdown).await
}

/// Serves `router` (receipts, and the Twilio webhooks: [`webhooks_router`]) on `addr` until
/// shutdown; returns the bound address and the server's task.
pub async fn serve_webhooks(
    router: axum::Router,
    addr: SocketAddr,
    mut shutdown: Shutdown,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen for receipts on {addr}: {e}")))?;
    let bound = listener.local_addr().map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
    let mut stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(async move { stop.wait().await }).await;
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

#[cfg(test)]
mod tests;
