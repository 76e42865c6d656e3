//! The simulator's HTTP routes. Handlers validate, ask the ledger for the request's fate, count,
//! and schedule receipts; nothing here blocks or holds a lock across an await.

use super::SimConfig;
use super::api::{ErrorResponse, Receipt, ReceiptStatus, SendRequest, SendResponse};
use super::receipts::Scheduled;
use super::state::{Answer, Counters, Fate, Ledger};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub(crate) struct App {
    pub config: SimConfig,
    pub ledger: Ledger,
    pub counters: Arc<Counters>,
    pub receipts: mpsc::UnboundedSender<Scheduled>,
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/messages", post(send))
        .route("/messages/by-key/{key}", get(by_key))
        .route("/stats", get(stats))
        .route("/health", get(health))
        .with_state(app)
}

async fn send(State(app): State<Arc<App>>, payload: Result<Json<SendRequest>, JsonRejection>) -> Response {
    if !app.config.latency.is_zero() {
        tokio::time::sleep(app.config.latency).await;
    }
    let request = match payload {
        Ok(Json(request)) => request,
        Err(rejection) => return invalid(&app, rejection.body_text()),
    };
    if let Err(reason) = check(&request, app.config.max_body_chars) {
        return invalid(&app, reason);
    }
    let key = request.idempotency_key;
    match app.ledger.answer(key.clone(), &app.config) {
        Answer::RateLimited => {
            Counters::bump(&app.counters.rejected_429, 1);
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate limited; retry later".into());
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(app.config.retry_after_secs));
            response
        }
        Answer::ServerError { status } => {
            Counters::bump(&app.counters.errors_5xx, 1);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, "simulated server error".into())
        }
        Answer::Accepted { message_id, fresh: false } => {
            Counters::bump(&app.counters.duplicates, 1);
            let body = SendResponse { message_id, idempotency_key: key, duplicate: true };
            (StatusCode::OK, Json(body)).into_response()
        }
        Answer::Accepted { message_id, fresh: true } => {
            Counters::bump(&app.counters.accepted, 1);
            if let Some(callback) = request.callback_url {
                schedule_receipts(&app, &message_id, &key, callback.into());
            }
            let body = SendResponse { message_id, idempotency_key: key, duplicate: false };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    }
}

/// Why a send is refused with a 400, if it is.
fn check(request: &SendRequest, max_body_chars: usize) -> Result<(), String> {
    if request.idempotency_key.trim().is_empty() {
        return Err("idempotency_key is required".into());
    }
    if !is_e164(&request.to) {
        return Err(format!("invalid_number: {:?} is not an E.164 number like +447700900123", request.to));
    }
    if request.body.trim().is_empty() {
        return Err("body is empty".into());
    }
    let chars = request.body.chars().count();
    if chars > max_body_chars {
        return Err(format!("body is {chars} characters; at most {max_body_chars}"));
    }
    if let Some(url) = &request.callback_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("callback_url {url:?} is not an http(s) URL"));
        }
    }
    Ok(())
}

/// `+`, a non-zero digit, then 6 to 14 more digits.
fn is_e164(to: &str) -> bool {
    let Some(digits) = to.strip_prefix('+') else { return false };
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

fn schedule_receipts(app: &App, message_id: &str, key: &str, callback: Arc<str>) {
    let now = Instant::now();
    let config = &app.config;
    let push = |after, status, error: Option<&str>| {
        let receipt = Receipt {
            message_id: message_id.to_string(),
            idempotency_key: key.to_string(),
            status,
            error: error.map(str::to_string),
            timestamp: String::new(), // stamped when sent
        };
        let item = Scheduled { due: now + after, callback: callback.clone(), receipt };
        if app.receipts.send(item).is_ok() {
            Counters::bump(&app.counters.receipts_scheduled, 1);
        }
    };
    match app.ledger.fate(key, config) {
        Fate::Failed => push(config.delivered_after, ReceiptStatus::Failed, Some("undeliverable (simulated failure)")),
        Fate::Delivered { read } => {
            push(config.delivered_after, ReceiptStatus::Delivered, None);
            if read {
                push(config.read_after, ReceiptStatus::Read, None);
            }
        }
    }
}

async fn by_key(State(app): State<Arc<App>>, Path(key): Path<String>) -> Response {
    match app.ledger.lookup(&key) {
        Some(found) => {
            let body = SendResponse { message_id: found.message_id, idempotency_key: key, duplicate: true };
            Json(body).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no message accepted with idempotency key {key:?}")),
    }
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    by_key: Option<bool>,
}

async fn stats(State(app): State<Arc<App>>, Query(query): Query<StatsQuery>) -> Response {
    Json(app.ledger.stats(&app.counters, query.by_key.unwrap_or(true))).into_response()
}

async fn health() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

fn invalid(app: &App, reason: String) -> Response {
    Counters::bump(&app.counters.rejected_invalid, 1);
    error(StatusCode::BAD_REQUEST, reason)
}

fn error(status: StatusCode, error: String) -> Response {
    (status, Json(ErrorResponse { error })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        for ok in ["+447700900123", "+14155550123", "+4930123"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in ["447700900123", "+0447700900", "+44 7700 900123", "+123", "+1234567890123456", ""] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
