//! The vendor simulator: a small messaging-vendor HTTP API that behaves like the real thing,
//! failure modes included, so the pipeline can be developed, tested and demonstrated without a
//! phone or an account. `crm sim` serves it; tests and demos run it in-process with [`serve`] or
//! [`SimServer::start`].
//!
//! The API (JSON everywhere; the types are in [`api`]):
//! - `POST /messages` `{to, body, idempotency_key, callback_url?}` → `202 {message_id,
//!   idempotency_key, duplicate: false}`. A repeated key answers `200` with the first id and
//!   `duplicate: true`, and sends nothing new. A bad number, empty or too long body, missing key
//!   or non-http callback → `400 {error}`. By the configured rates it may instead answer `429`
//!   with `Retry-After: SECONDS`, or `500`/`503`; those record nothing, so a retry is a new try.
//! - Receipts are POSTed to `callback_url`: `delivered` after `delivered_after`, then `read`
//!   after `read_after` (for `read_rate` of messages), or `failed` (for `failure_rate` of them,
//!   the message accepted first, as vendors do). Both delays count from acceptance. The body is
//!   one [`api::Receipt`] object, or a JSON array of up to `receipt_batch` of them when
//!   `receipt_batch` > 1. A callback answering non-2xx or unreachable is retried
//!   `callback_attempts` times with doubling delays, then the receipts are dropped and logged.
//! - `GET /messages/by-key/{key}` → `200 {message_id, …}` or `404`: how a sender resolves a send
//!   that crashed between the vendor's accept and its own record.
//! - `GET /stats` (`?by_key=false` to skip the per-key map) → [`api::Stats`].
//! - `GET /health` → `{"status":"ok"}`.
//!
//! Every random choice is a hash of the seed and the idempotency key (see `state.rs`), so a run
//! is reproducible whatever the request interleaving.

pub mod api;
mod handlers;
mod receipts;
mod state;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How the simulator behaves. Rates are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Added before every `POST /messages` answer.
    pub latency: Duration,
    /// Share of accepted messages whose receipt is `failed`.
    pub failure_rate: f64,
    /// Share of sends refused with 429 and `Retry-After`.
    pub rate_limit_rate: f64,
    /// The `Retry-After` of a 429, in whole seconds (as the header is).
    pub retry_after_secs: u64,
    /// Share of sends answered 500 or 503 (drawn after the 429 share; the two add up to ≤ 1).
    pub server_error_rate: f64,
    /// When the `delivered` (or `failed`) receipt is sent, from acceptance.
    pub delivered_after: Duration,
    /// When the `read` receipt is sent, from acceptance.
    pub read_after: Duration,
    /// Share of delivered messages that are also read.
    pub read_rate: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Receipts per callback request: 1 sends one JSON object; more sends JSON arrays.
    pub receipt_batch: usize,
    /// Longest body accepted, in characters (WhatsApp's limit by default).
    pub max_body_chars: usize,
    /// Tries per callback request before its receipts are dropped.
    pub callback_attempts: u32,
    /// The first retry delay of a failed callback; doubles per try.
    pub callback_backoff: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            server_error_rate: 0.0,
            delivered_after: Duration::from_millis(200),
            read_after: Duration::from_millis(1_000),
            read_rate: 0.5,
            seed: 0,
            receipt_batch: 1,
            max_body_chars: 4_096,
            callback_attempts: 4,
            callback_backoff: Duration::from_millis(100),
        }
    }
}

impl SimConfig {
    /// Refuses rates outside [0, 1] (and 429 + 5xx shares above 1) and zero sizes.
    pub fn validate(&self) -> Result<(), SimError> {
        let rates = [
            ("failure_rate", self.failure_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("server_error_rate", self.server_error_rate),
            ("read_rate", self.read_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::Config(format!("{name} must be between 0 and 1, not {rate}")));
            }
        }
        if self.rate_limit_rate + self.server_error_rate > 1.0 {
            return Err(SimError::Config("rate_limit_rate + server_error_rate must not exceed 1".into()));
        }
        if self.receipt_batch == 0 || self.max_body_chars == 0 {
            return Err(SimError::Config("receipt_batch and max_body_chars must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    #[error("simulator I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("simulator HTTP client: {0}")]
    Client(String),
}

/// Serves the simulator on `listener` until `shutdown` resolves; in-flight requests finish,
/// receipts not yet sent are dropped.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    config.validate()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| SimError::Client(e.to_string()))?;
    let counters = Arc::new(state::Counters::default());
    let (receipts_tx, receipts_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let delivery = receipts::Delivery {
        client,
        batch: config.receipt_batch,
        attempts: config.callback_attempts,
        backoff: config.callback_backoff,
        counters: counters.clone(),
    };
    let dispatcher = tokio::spawn(receipts::dispatch(receipts_rx, delivery, stop_rx));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, seed = config.seed, "Simulator started.");
    }
    let app = handlers::App { ledger: state::Ledger::new(config.seed), config, counters, receipts: receipts_tx };
    let served = axum::serve(listener, handlers::router(Arc::new(app))).with_graceful_shutdown(shutdown).await;
    let _ = stop_tx.send(());
    let _ = dispatcher.await;
    Ok(served?)
}

/// A simulator running in a background task of this process (tests, `crm demo`). Dropping it
/// stops the simulator too.
pub struct SimServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SimError>>>,
}

impl SimServer {
    /// Binds `listen` (port 0 picks a free port) and starts serving.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> Result<SimServer, SimError> {
        config.validate()?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(SimServer { addr, stop: Some(stop), task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), SimError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| SimError::Io(std::io::Error::other(e)))?,
            None => Ok(()),
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
