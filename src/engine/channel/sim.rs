//! The channel that talks to the vendor simulator (`crm sim`): a pooled HTTP client with
//! timeouts, mapping the simulator's answers onto [`ChannelError`]'s three kinds.
//!
//! The client is hyper's own (http and https), not reqwest: a campaign without a rate limit
//! sends as fast as the pipeline goes, and reqwest's layers cost ~10% of a worker's CPU there
//! (its redirect policy alone formats and re-parses every request's URL; measured on a
//! 100,000-lead campaign on Kafka, README "Performance").

use super::http::{error_chain, retry_after};
use super::{Channel, ChannelError, OutboundMessage, SendOutcome};
use crate::engine::campaign::SendStatus;
use crate::engine::sim::api::{ErrorResponse, Receipt, ReceiptStatus, SendRequest, SendResponse};
use crate::engine::store::campaigns::LogUpdate;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::Url;
use std::time::Duration;

/// How the client connects; the defaults suit a local simulator.
#[derive(Debug, Clone)]
pub struct SimChannelOptions {
    /// The channel account name that limits are kept under.
    pub name: String,
    /// A whole request, connecting included; past it the send is `Transient`.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per host (the pool).
    pub max_idle_connections: usize,
    pub max_length: usize,
}

impl Default for SimChannelOptions {
    fn default() -> Self {
        SimChannelOptions {
            name: "sim".into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_idle_connections: 64,
            max_length: 4_096,
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A [`Channel`] over the simulator's HTTP API.
#[derive(Clone)]
pub struct SimChannel {
    base: Url,
    /// `base/messages`, built once: every send posts there.
    messages: Uri,
    client: HttpClient,
    options: SimChannelOptions,
}

impl std::fmt::Debug for SimChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimChannel").field("base", &self.base.as_str()).field("options", &self.options).finish()
    }
}

/// When a 429 carries no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the simulator answered: status, headers and the whole body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl SimChannel {
    /// A channel to the simulator at `base_url` (`http://127.0.0.1:8089`) with default options.
    pub fn new(base_url: &str) -> Result<SimChannel, ChannelError> {
        SimChannel::with_options(base_url, SimChannelOptions::default())
    }

    pub fn with_options(base_url: &str, options: SimChannelOptions) -> Result<SimChannel, ChannelError> {
        let base = Url::parse(base_url)
            .ok()
            .filter(|u| u.scheme() == "http" || u.scheme() == "https")
            .ok_or_else(|| ChannelError::Permanent(format!("{base_url:?} is not an http(s) URL")))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ChannelError::Permanent(format!("cannot set up TLS: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(options.max_idle_connections)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let messages = uri(&join(&base, &["messages"])?)?;
        Ok(SimChannel { base, messages, client, options })
    }

    /// Sends a request (with a JSON body, if any) and reads the whole answer, all within the
    /// request timeout.
    async fn call(&self, method: Method, uri: Uri, json: Option<Vec<u8>>) -> Result<Answer, ChannelError> {
        let mut request = Request::builder().method(method).uri(uri);
        if json.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(json.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| ChannelError::Permanent(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(transport)?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| ChannelError::Transient(format!("request failed: {}", error_chain(&e))))?
                .to_bytes();
            Ok(Answer { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(self.options.timeout, exchange).await.unwrap_or_else(|_| {
            Err(ChannelError::Transient(format!(
                "timed out: no answer from the simulator at {} within {} ms",
                self.base,
                self.options.timeout.as_millis()
            )))
        })
    }
}

/// `base` with `segments` appended as path segments (percent-encoded).
fn join(base: &Url, segments: &[&str]) -> Result<Url, ChannelError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ChannelError::Permanent(format!("{base} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn uri(url: &Url) -> Result<Uri, ChannelError> {
    url.as_str().parse().map_err(|e| ChannelError::Permanent(format!("{url} is not a usable URL: {e}")))
}

/// A request that got no answer: refused or reset connections are worth a retry (connecting
/// late too; the whole request's timeout is [`SimChannel::call`]'s).
fn transport(err: hyper_util::client::legacy::Error) -> ChannelError {
    let what = if err.is_connect() { "cannot connect" } else { "request failed" };
    ChannelError::Transient(format!("{what}: {}", error_chain(&err)))
}

#[async_trait]
impl Channel for SimChannel {
    fn name(&self) -> &str {
        &self.options.name
    }

    fn max_length(&self) -> usize {
        self.options.max_length
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<SendOutcome, ChannelError> {
        let request = SendRequest {
            to: msg.to.clone(),
            body: msg.body.clone(),
            idempotency_key: msg.send_id.clone(),
            callback_url: msg.callback_url.clone(),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| ChannelError::Permanent(format!("cannot build the request: {e}")))?;
        let answer = self.call(Method::POST, self.messages.clone(), Some(body)).await?;
        if !answer.status.is_success() {
            return Err(refusal(&answer));
        }
        let sent: SendResponse = serde_json::from_slice(&answer.body).map_err(|e| {
            // Accepted but unreadable: a retry with the same key returns the same id.
            ChannelError::Transient(format!("unreadable answer from the simulator: {e}"))
        })?;
        Ok(SendOutcome { provider_message_id: sent.message_id, duplicate: sent.duplicate })
    }

    fn receipts_name_send_id(&self) -> bool {
        true
    }

    fn parse_receipts(&self, body: &[u8]) -> Option<Result<Vec<LogUpdate>, String>> {
        Some(parse_receipts(body))
    }

    async fn lookup(&self, idempotency_key: &str) -> Result<Option<String>, ChannelError> {
        let url = uri(&join(&self.base, &["messages", "by-key", idempotency_key])?)?;
        let answer = self.call(Method::GET, url, None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let found: SendResponse = serde_json::from_slice(&answer.body)
                    .map_err(|e| ChannelError::Transient(format!("unreadable answer from the simulator: {e}")))?;
                Ok(Some(found.message_id))
            }
            _ => Err(refusal(&answer)),
        }
    }
}

/// One receipt object, or a JSON array of them (the simulator batches with `--receipt-batch`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ReceiptBody {
    Many(Vec<Receipt>),
    One(Receipt),
}

/// The simulator's receipts as log updates, keyed by the idempotency key (our `send_id`).
pub fn parse_receipts(body: &[u8]) -> Result<Vec<LogUpdate>, String> {
    let receipts = match serde_json::from_slice::<ReceiptBody>(body).map_err(|e| format!("not a receipt: {e}"))? {
        ReceiptBody::Many(all) => all,
        ReceiptBody::One(one) => vec![one],
    };
    Ok(receipts
        .into_iter()
        .map(|r| LogUpdate {
            // Receipts name the send id: the vendor id is never looked up.
            find_by_provider_id: false,

            send_id: r.idempotency_key,
            status: match r.status {
                ReceiptStatus::Delivered => SendStatus::Delivered,
                ReceiptStatus::Read => SendStatus::Read,
                ReceiptStatus::Failed => SendStatus::Failed,
            },
            provider_message_id: Some(r.message_id),
            error: r.error,
        })
        .collect())
}

/// Sorts a non-2xx answer: 429 waits, 408 and 5xx retry, any other 4xx gives up.
fn refusal(answer: &Answer) -> ChannelError {
    let status = answer.status;
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ChannelError::RateLimited { retry_after: retry_after(&answer.headers, DEFAULT_RETRY_AFTER) };
    }
    let reason = serde_json::from_slice::<ErrorResponse>(&answer.body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&answer.body).into_owned());
    let message = format!("HTTP {}: {reason}", status.as_u16());
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        ChannelError::Transient(message)
    } else {
        ChannelError::Permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sim::{SimConfig, SimServer};

    async fn sim(config: SimConfig) -> (SimServer, SimChannel) {
        let server = SimServer::start("127.0.0.1:0".parse().expect("addr"), config).await.expect("sim starts");
        let channel = SimChannel::new(&server.url()).expect("channel");
        (server, channel)
    }

    fn message(send_id: &str) -> OutboundMessage {
        OutboundMessage {
            send_id: send_id.into(),
            to: "+447700900123".into(),
            body: "Hi Ada".into(),
            callback_url: None,
            campaign_id: None,
            timezone: None,
        }
    }

    #[tokio::test]
    async fn sends_once_per_key_and_looks_keys_up() {
        let (server, channel) = sim(SimConfig::default()).await;
        let first = channel.send(&message("c1:l1")).await.expect("sent");
        assert!(!first.duplicate);
        let again = channel.send(&message("c1:l1")).await.expect("sent");
        assert_eq!(again, SendOutcome { provider_message_id: first.provider_message_id.clone(), duplicate: true });
        assert_eq!(channel.lookup("c1:l1").await, Ok(Some(first.provider_message_id)));
        assert_eq!(channel.lookup("never/sent ?#").await, Ok(None), "keys are percent-encoded");
        assert_eq!((channel.name(), channel.max_length()), ("sim", 4_096));
        server.stop().await.expect("stops");
    }

    #[tokio::test]
    async fn a_429_is_rate_limited_with_the_vendors_delay() {
        let (_server, channel) =
            sim(SimConfig { rate_limit_rate: 1.0, retry_after_secs: 7, ..Default::default() }).await;
        let err = channel.send(&message("k")).await.expect_err("429");
        assert_eq!(err, ChannelError::RateLimited { retry_after: Duration::from_secs(7) });
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn a_5xx_is_transient() {
        let (_server, channel) = sim(SimConfig { server_error_rate: 1.0, ..Default::default() }).await;
        let err = channel.send(&message("k")).await.expect_err("5xx");
        assert!(matches!(&err, ChannelError::Transient(m) if m.starts_with("HTTP 500")), "{err}");
        let err = channel.send(&message("k")).await.expect_err("5xx");
        assert!(matches!(&err, ChannelError::Transient(m) if m.starts_with("HTTP 503")), "{err}");
    }

    #[tokio::test]
    async fn an_invalid_number_is_permanent() {
        let (_server, channel) = sim(SimConfig::default()).await;
        let bad = OutboundMessage { to: "07700 900123".into(), ..message("k") };
        let err = channel.send(&bad).await.expect_err("400");
        assert!(matches!(&err, ChannelError::Permanent(m) if m.contains("invalid_number")), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener); // nothing listens there now
        let channel = SimChannel::new(&format!("http://{addr}")).expect("channel");
        let err = channel.send(&message("k")).await.expect_err("refused");
        assert!(matches!(&err, ChannelError::Transient(m) if m.starts_with("cannot connect")), "{err}");
        assert!(matches!(channel.lookup("k").await, Err(ChannelError::Transient(_))));
    }

    #[tokio::test]
    async fn a_slow_vendor_times_out_as_transient() {
        let (server, _) = sim(SimConfig { latency: Duration::from_millis(500), ..Default::default() }).await;
        let options = SimChannelOptions { timeout: Duration::from_millis(50), ..Default::default() };
        let channel = SimChannel::with_options(&server.url(), options).expect("channel");
        let err = channel.send(&message("k")).await.expect_err("timeout");
        assert!(matches!(&err, ChannelError::Transient(m) if m.starts_with("timed out")), "{err}");
    }

    #[test]
    fn only_http_urls_make_a_channel() {
        assert!(matches!(SimChannel::new("localhost:8089"), Err(ChannelError::Permanent(_))));
        assert!(matches!(SimChannel::new("ftp://x"), Err(ChannelError::Permanent(_))));
        assert!(SimChannel::new("http://127.0.0.1:8089/").is_ok());
        assert!(SimChannel::new("https://sim.example.com/base").is_ok(), "https too (a simulator behind TLS)");
    }
}
