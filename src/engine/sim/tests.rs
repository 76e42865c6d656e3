//! The simulator over real HTTP on ephemeral ports: a reqwest client on one side, a small
//! callback server collecting receipts on the other. Receipt delays are a few milliseconds and
//! the tests poll for what they expect, with a deadline, rather than sleeping a guessed time.

use super::api::{ErrorResponse, Receipt, ReceiptStatus, SendResponse, Stats};
use super::{SimConfig, SimError, SimServer, serve};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Collects receipts POSTed to it; answers 500 to the first `fail_first` requests.
#[derive(Default)]
struct Callback {
    receipts: Mutex<Vec<Receipt>>,
    requests: AtomicU32,
    arrays: AtomicU32,
    fail_first: u32,
}

impl Callback {
    async fn start(fail_first: u32) -> (Arc<Callback>, String) {
        let state = Arc::new(Callback { fail_first, ..Default::default() });
        let app = Router::new().route("/receipts", post(collect)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/receipts", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (state, url)
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.receipts.lock().expect("lock").clone()
    }
}

async fn collect(State(cb): State<Arc<Callback>>, body: axum::body::Bytes) -> StatusCode {
    if cb.requests.fetch_add(1, Ordering::SeqCst) < cb.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let value: Value = serde_json::from_slice(&body).expect("JSON receipt");
    let batch: Vec<Receipt> = if value.is_array() {
        cb.arrays.fetch_add(1, Ordering::SeqCst);
        serde_json::from_value(value).expect("receipts")
    } else {
        vec![serde_json::from_value(value).expect("receipt")]
    };
    cb.receipts.lock().expect("lock").extend(batch);
    StatusCode::NO_CONTENT
}

fn fast(config: SimConfig) -> SimConfig {
    SimConfig {
        delivered_after: Duration::from_millis(5),
        read_after: Duration::from_millis(15),
        callback_backoff: Duration::from_millis(5),
        ..config
    }
}

async fn start(config: SimConfig) -> (SimServer, reqwest::Client) {
    let server = SimServer::start("127.0.0.1:0".parse().expect("addr"), config).await.expect("starts");
    (server, reqwest::Client::new())
}

async fn post_message(client: &reqwest::Client, sim: &SimServer, body: Value) -> reqwest::Response {
    client.post(format!("{}/messages", sim.url())).json(&body).send().await.expect("answered")
}

fn message(key: &str, callback: Option<&str>) -> Value {
    json!({ "to": "+447700900123", "body": "Hi Ada", "idempotency_key": key, "callback_url": callback })
}

async fn stats(client: &reqwest::Client, sim: &SimServer) -> Stats {
    client.get(format!("{}/stats", sim.url())).send().await.expect("answered").json().await.expect("stats")
}

/// Polls `check` every 5 ms for up to 5 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn health_answers_and_stats_start_empty() {
    let (sim, client) = start(SimConfig::default()).await;
    let health: Value =
        client.get(format!("{}/health", sim.url())).send().await.expect("up").json().await.expect("json");
    assert_eq!(health, json!({ "status": "ok" }));
    let raw: Value = client.get(format!("{}/stats", sim.url())).send().await.expect("up").json().await.expect("json");
    for field in ["accepted", "duplicates", "rejected_429", "errors_5xx", "receipts_sent", "by_key"] {
        assert!(raw.get(field).is_some(), "{field} missing from {raw}");
    }
    assert_eq!(stats(&client, &sim).await, Stats::default());
    sim.stop().await.expect("stops");
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_id_and_sends_nothing_new() {
    let (cb, url) = Callback::start(0).await;
    let (sim, client) = start(fast(SimConfig { read_rate: 0.0, ..Default::default() })).await;
    let first = post_message(&client, &sim, message("c1:l1", Some(&url))).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: SendResponse = first.json().await.expect("json");
    assert!(!first.duplicate);
    let again = post_message(&client, &sim, message("c1:l1", Some(&url))).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: SendResponse = again.json().await.expect("json");
    assert_eq!((again.message_id.as_str(), again.duplicate), (first.message_id.as_str(), true));

    eventually("one receipt", || cb.receipts().len() == 1).await;
    let stats = stats(&client, &sim).await;
    assert_eq!((stats.accepted, stats.duplicates), (1, 1));
    assert_eq!(stats.by_key["c1:l1"].count, 2);
    assert_eq!(stats.by_key["c1:l1"].message_id, first.message_id);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(cb.receipts().len(), 1, "the duplicate scheduled no receipt");

    let light: Stats =
        client.get(format!("{}/stats?by_key=false", sim.url())).send().await.expect("up").json().await.expect("json");
    assert!(light.by_key.is_empty() && light.accepted == 1);
}

#[tokio::test]
async fn receipts_arrive_delivered_then_read() {
    let (cb, url) = Callback::start(0).await;
    let (sim, client) = start(fast(SimConfig { read_rate: 1.0, ..Default::default() })).await;
    let sent: SendResponse = post_message(&client, &sim, message("k", Some(&url))).await.json().await.expect("json");
    eventually("two receipts", || cb.receipts().len() == 2).await;
    let receipts = cb.receipts();
    assert_eq!(receipts.iter().map(|r| r.status).collect::<Vec<_>>(), [ReceiptStatus::Delivered, ReceiptStatus::Read]);
    for r in &receipts {
        assert_eq!(
            (r.message_id.as_str(), r.idempotency_key.as_str(), r.error.as_deref()),
            (sent.message_id.as_str(), "k", None)
        );
        assert!(chrono::DateTime::parse_from_rfc3339(&r.timestamp).is_ok(), "{}", r.timestamp);
    }
    let stats = stats(&client, &sim).await;
    assert_eq!((stats.receipts_sent, stats.receipts_pending, stats.receipts_dropped), (2, 0, 0));
}

#[tokio::test]
async fn a_failed_message_is_accepted_then_reported_failed() {
    let (cb, url) = Callback::start(0).await;
    let (sim, client) = start(fast(SimConfig { failure_rate: 1.0, read_rate: 1.0, ..Default::default() })).await;
    assert_eq!(post_message(&client, &sim, message("k", Some(&url))).await.status(), StatusCode::ACCEPTED);
    eventually("the failed receipt", || !cb.receipts().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let receipts = cb.receipts();
    assert_eq!(receipts.len(), 1, "a failed message is never read");
    assert_eq!(receipts[0].status, ReceiptStatus::Failed);
    assert!(receipts[0].error.as_deref().is_some_and(|e| e.contains("simulated")));
}

#[tokio::test]
async fn read_before_delivered_when_configured_out_of_order() {
    let (cb, url) = Callback::start(0).await;
    let config = SimConfig {
        read_rate: 1.0,
        delivered_after: Duration::from_millis(40),
        read_after: Duration::from_millis(5),
        ..Default::default()
    };
    let (sim, client) = start(config).await;
    post_message(&client, &sim, message("k", Some(&url))).await;
    eventually("two receipts", || cb.receipts().len() == 2).await;
    assert_eq!(cb.receipts()[0].status, ReceiptStatus::Read);
}

#[tokio::test]
async fn rate_limited_sends_get_429_with_retry_after_and_record_nothing() {
    let (sim, client) = start(SimConfig { rate_limit_rate: 1.0, retry_after_secs: 3, ..Default::default() }).await;
    let answer = post_message(&client, &sim, message("k", None)).await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers()["retry-after"], "3");
    let stats = stats(&client, &sim).await;
    assert_eq!((stats.rejected_429, stats.accepted), (1, 0));
    assert!(stats.by_key.is_empty());
    let lookup = client.get(format!("{}/messages/by-key/k", sim.url())).send().await.expect("up");
    assert_eq!(lookup.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn server_errors_are_5xx_and_counted() {
    let (sim, client) = start(SimConfig { server_error_rate: 1.0, ..Default::default() }).await;
    for _ in 0..3 {
        let answer = post_message(&client, &sim, message("k", None)).await;
        assert!(answer.status().is_server_error());
        let body: ErrorResponse = answer.json().await.expect("json error");
        assert!(body.error.contains("simulated"));
    }
    assert_eq!(stats(&client, &sim).await.errors_5xx, 3);
}

#[tokio::test]
async fn invalid_sends_are_400_with_a_reason() {
    let (sim, client) = start(SimConfig { max_body_chars: 10, ..Default::default() }).await;
    let cases = [
        (json!({ "to": "07700900123", "body": "Hi", "idempotency_key": "a" }), "invalid_number"),
        (json!({ "to": "+447700900123", "body": "  ", "idempotency_key": "b" }), "empty"),
        (json!({ "to": "+447700900123", "body": "ñññññññññññ", "idempotency_key": "c" }), "11 characters"),
        (json!({ "to": "+447700900123", "body": "Hi", "idempotency_key": "" }), "idempotency_key"),
        (json!({ "to": "+447700900123", "body": "Hi" }), "idempotency_key"),
        (json!({ "to": "+447700900123", "body": "Hi", "idempotency_key": "d", "callback_url": "x" }), "callback_url"),
    ];
    for (body, expected) in &cases {
        let answer = post_message(&client, &sim, body.clone()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: ErrorResponse = answer.json().await.expect("json error");
        assert!(error.error.contains(expected), "{body}: {}", error.error);
    }
    let stats = stats(&client, &sim).await;
    assert_eq!((stats.rejected_invalid, stats.accepted), (cases.len() as u64, 0));
}

#[tokio::test]
async fn lookup_by_key_finds_accepted_messages() {
    let (sim, client) = start(SimConfig::default()).await;
    let sent: SendResponse = post_message(&client, &sim, message("c9/l9 x", None)).await.json().await.expect("json");
    let found = client.get(format!("{}/messages/by-key/c9%2Fl9%20x", sim.url())).send().await.expect("up");
    assert_eq!(found.status(), StatusCode::OK);
    assert_eq!(found.json::<SendResponse>().await.expect("json").message_id, sent.message_id);
    let missing = client.get(format!("{}/messages/by-key/nope", sim.url())).send().await.expect("up");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn batched_receipts_arrive_as_arrays() {
    let (cb, url) = Callback::start(0).await;
    let config = SimConfig {
        receipt_batch: 50,
        read_rate: 0.0,
        delivered_after: Duration::from_millis(50),
        ..Default::default()
    };
    let (sim, client) = start(config).await;
    for i in 0..20 {
        post_message(&client, &sim, message(&format!("k{i}"), Some(&url))).await;
    }
    eventually("20 receipts", || cb.receipts().len() == 20).await;
    let requests = cb.requests.load(Ordering::SeqCst);
    assert_eq!(cb.arrays.load(Ordering::SeqCst), requests, "every request is an array");
    assert!(requests < 20, "{requests} requests for 20 receipts");
    assert_eq!(stats(&client, &sim).await.receipts_sent, 20);
}

#[tokio::test]
async fn failing_callbacks_are_retried_then_dropped() {
    let (cb, url) = Callback::start(2).await;
    let (sim, client) = start(fast(SimConfig { read_rate: 0.0, callback_attempts: 3, ..Default::default() })).await;
    post_message(&client, &sim, message("k", Some(&url))).await;
    eventually("the retried receipt", || cb.receipts().len() == 1).await;
    assert_eq!(cb.requests.load(Ordering::SeqCst), 3);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/receipts", closed.local_addr().expect("addr"));
    drop(closed); // nothing listens there now
    post_message(&client, &sim, message("k2", Some(&dead))).await;
    let mut dropped = 0;
    for _ in 0..400 {
        dropped = stats(&client, &sim).await.receipts_dropped;
        if dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(dropped, 1);
    assert_eq!(stats(&client, &sim).await.receipts_sent, 1);
}

#[tokio::test]
async fn serve_returns_when_shutdown_resolves() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, SimConfig::default(), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let up = client.get(format!("http://{addr}/health")).send().await.expect("up");
    assert!(up.status().is_success());
    stop.send(()).expect("still serving");
    let served = tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops promptly").expect("joins");
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test]
async fn serve_stops_promptly_while_receipts_wait_for_a_stalled_callback() {
    // A callback that takes requests and never answers: each delivery holds its slot until the
    // client's timeout, try after try, so most of these receipts wait for a slot.
    let held = Arc::new(AtomicU32::new(0));
    let counted = held.clone();
    let stalled = Router::new().route(
        "/receipts",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<StatusCode>()
        }),
    );
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/receipts", callback.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(callback, stalled).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = fast(SimConfig { read_rate: 0.0, ..Default::default() });
    let task = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for i in 0..100 {
        let sent = client
            .post(format!("http://{addr}/messages"))
            .json(&message(&format!("k{i}"), Some(&url)))
            .send()
            .await
            .expect("answered");
        assert!(sent.status().is_success());
    }
    // Every delivery slot taken (64) and the other receipts due and waiting for one.
    eventually("every delivery slot held by the stalled callback", || held.load(Ordering::SeqCst) >= 64).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(held.load(Ordering::SeqCst), 64, "no slot frees up while the callback stalls");
    stop.send(()).expect("still serving");
    let served = tokio::time::timeout(Duration::from_secs(3), task).await.expect("stops promptly").expect("joins");
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test]
async fn invalid_configuration_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = SimConfig { rate_limit_rate: 0.7, server_error_rate: 0.7, ..Default::default() };
    assert!(matches!(serve(listener, config, async {}).await, Err(SimError::Config(_))));
    let config = SimConfig { failure_rate: 1.5, ..Default::default() };
    let err = SimServer::start("127.0.0.1:0".parse().expect("addr"), config).await.err().expect("refused");
    assert!(err.to_string().contains("failure_rate"), "{err}");
}

/// The throughput benchmark: 100,000 sends through the sim channel, 64 at a time, latency 0.
/// `cargo test --release --lib engine::sim::tests::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run on demand"]
async fn throughput_100k() {
    use crate::engine::channel::sim::SimChannel;
    use crate::engine::channel::{Channel, OutboundMessage};
    let (cb, url) = Callback::start(0).await;
    let config = SimConfig {
        receipt_batch: 500,
        read_rate: 0.0,
        delivered_after: Duration::from_millis(10),
        ..Default::default()
    };
    let (sim, client) = start(config).await;
    let channel = Arc::new(SimChannel::new(&sim.url()).expect("channel"));
    let total = 100_000usize;
    let workers = 64usize;
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (channel, url) = (channel.clone(), url.clone());
        tasks.spawn(async move {
            for i in (w..total).step_by(workers) {
                let msg = OutboundMessage {
                    send_id: format!("bench:{i}"),
                    to: "+447700900123".into(),
                    body: "Hello from the benchmark".into(),
                    callback_url: Some(url.clone()),
                    campaign_id: None,
                    timezone: None,
                };
                channel.send(&msg).await.expect("sent");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("worker");
    }
    let sent_in = started.elapsed();
    eventually("every receipt", || cb.receipts.lock().expect("lock").len() == total).await;
    let all_in = started.elapsed();
    let stats = stats(&client, &sim).await;
    assert_eq!(stats.accepted, total as u64);
    assert!(stats.by_key.values().all(|k| k.count == 1));
    println!(
        "sim throughput: {total} sends in {:.2}s ({:.0}/s); all receipts in {:.2}s",
        sent_in.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64(),
        all_in.as_secs_f64()
    );
}
