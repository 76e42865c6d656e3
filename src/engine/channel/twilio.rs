//! Twilio's Programmable Messaging API (SMS, and WhatsApp through Twilio when `from` is
//! `whatsapp:+E164`): `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP
//! Basic auth and a form body, answered with the message's `sid`, which becomes the log's
//! provider message id. Delivery statuses come back as signed form posts to the status callback
//! (`/webhooks/twilio/status`, see `pipeline::webhook`), replies to `/webhooks/twilio/inbound`.
//!
//! Twilio takes no idempotency key and has no lookup by one: [`Channel::lookup`] answers
//! `Err(Permanent)`, so a send interrupted by a crash becomes UNCERTAIN instead of going twice;
//! so does a request that timed out or lost its connection after it may have reached Twilio
//! (one that never connected is retried).
//!
//! Webhook signatures ([`signature`], [`verify_signature`]): base64 of HMAC-SHA1, keyed by the
//! account's auth token, over the full URL Twilio called followed by every POST parameter sorted
//! by name, each name immediately followed by its value.

use super::http::{retry_after, transport_unkeyed};
use super::{Channel, ChannelError, OutboundMessage, SendOutcome};
use crate::engine::campaign::SendStatus;
use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{StatusCode, Url};
use sha1::Sha1;
use std::time::Duration;

/// Twilio's own default API host.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// Where on the webhook listener Twilio posts delivery statuses and replies.
pub const STATUS_PATH: &str = "/webhooks/twilio/status";
pub const INBOUND_PATH: &str = "/webhooks/twilio/inbound";
/// Twilio refuses bodies longer than this (characters).
pub const MAX_BODY: usize = 1_600;
/// When a 429 carries no usable `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One Twilio account, as `[channels.NAME]` (kind = "twilio") and `CRM_TWILIO_*` configure it.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// The channel account's name (`twilio`).
    pub name: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The sender: `whatsapp:+14155238886` for WhatsApp, `+14155238886` (or a messaging
    /// service's number) for SMS.
    pub from: String,
    pub api_base: String,
    /// The URL Twilio posts statuses to (the webhook's public URL + [`STATUS_PATH`]); without
    /// one, the origin of the sender's callback URL is used.
    pub status_callback: Option<String>,
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("name", &self.name)
            .field("account_sid", &"***")
            .field("auth_token", &"***")
            .field("from", &self.from)
            .field("api_base", &self.api_base)
            .field("status_callback", &self.status_callback)
            .finish()
    }
}

/// A [`Channel`] over Twilio's Messages API.
#[derive(Clone)]
pub struct TwilioChannel {
    config: TwilioConfig,
    messages_url: Url,
    client: reqwest::Client,
}

impl std::fmt::Debug for TwilioChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The messages URL holds the account SID: shown through the redacting config only.
        f.debug_struct("TwilioChannel").field("config", &self.config).finish_non_exhaustive()
    }
}

impl TwilioChannel {
    pub fn new(config: TwilioConfig) -> Result<TwilioChannel, ChannelError> {
        for (key, value) in [("account_sid", &config.account_sid), ("auth_token", &config.auth_token)] {
            if value.trim().is_empty() {
                return Err(ChannelError::Permanent(format!("needs {key}")));
            }
        }
        if config.from.trim().is_empty() {
            return Err(ChannelError::Permanent("needs from (\"whatsapp:+E164\" or \"+E164\")".into()));
        }
        let base = Url::parse(&config.api_base)
            .ok()
            .filter(|u| u.scheme() == "http" || u.scheme() == "https")
            .ok_or_else(|| ChannelError::Permanent(format!("api_base {:?} is not an http(s) URL", config.api_base)))?;
        let mut messages_url = base.clone();
        messages_url
            .path_segments_mut()
            .map_err(|()| ChannelError::Permanent(format!("{base} cannot take a path")))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", &config.account_sid, "Messages.json"]);
        let client = http_client(REQUEST_TIMEOUT)?;
        Ok(TwilioChannel { config, messages_url, client })
    }

    /// The same account with another limit on each request (tests).
    pub fn with_request_timeout(self, timeout: Duration) -> Result<TwilioChannel, ChannelError> {
        Ok(TwilioChannel { client: http_client(timeout)?, ..self })
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }

    /// Whether a webhook post's signature is this account's.
    pub fn verify(&self, url: &str, params: &[(String, String)], header: &str) -> bool {
        verify_signature(&self.config.auth_token, url, params, header)
    }

    /// `to` as Twilio wants it: with `whatsapp:` when the sender is a WhatsApp number.
    fn recipient(&self, to: &str) -> String {
        match self.config.from.strip_prefix("whatsapp:") {
            Some(_) if !to.starts_with("whatsapp:") => format!("whatsapp:{to}"),
            _ => to.to_string(),
        }
    }

    /// The configured status callback, or the origin of the sender's callback URL + the path.
    fn status_callback(&self, msg: &OutboundMessage) -> Option<String> {
        if let Some(url) = &self.config.status_callback {
            return Some(url.clone());
        }
        let given = Url::parse(msg.callback_url.as_deref()?).ok()?;
        Some(format!("{}{STATUS_PATH}", given.origin().ascii_serialization()))
    }
}

/// How long a send may wait for Twilio's answer before its outcome counts as unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

fn http_client(timeout: Duration) -> Result<reqwest::Client, ChannelError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .build()
        .map_err(|e| ChannelError::Permanent(format!("cannot build the HTTP client: {e}")))
}

/// Twilio's answer to a send (only what we read).
#[derive(serde::Deserialize)]
struct MessageResource {
    sid: String,
}

/// Twilio's error body: `{"code": 21211, "message": "The 'To' number … is not valid.", …}`.
#[derive(serde::Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

#[async_trait]
impl Channel for TwilioChannel {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn max_length(&self) -> usize {
        MAX_BODY
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<SendOutcome, ChannelError> {
        let mut form =
            vec![("To", self.recipient(&msg.to)), ("From", self.config.from.clone()), ("Body", msg.body.clone())];
        if let Some(callback) = self.status_callback(msg) {
            form.push(("StatusCallback", callback));
        }
        let response = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(transport_unkeyed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(response).await);
        }
        let text = response.text().await.map_err(transport_unkeyed)?;
        // Accepted but unreadable: the message may be out, and Twilio cannot be asked by key.
        let message: MessageResource = serde_json::from_str(&text).map_err(|e| {
            ChannelError::Ambiguous(format!(
                "Twilio accepted the message but its answer is unreadable ({e}); it may have been sent"
            ))
        })?;
        Ok(SendOutcome { provider_message_id: message.sid, duplicate: false })
    }

    async fn lookup(&self, _idempotency_key: &str) -> Result<Option<String>, ChannelError> {
        Err(ChannelError::Permanent("Twilio has no idempotency keys to look a message up by".into()))
    }
}

/// 429 waits (Twilio's `Retry-After`, if any), 5xx retries, any other 4xx gives up with
/// Twilio's error code and message.
async fn refusal(response: reqwest::Response) -> ChannelError {
    let status = response.status();
    let retry_after = retry_after(response.headers(), DEFAULT_RETRY_AFTER);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ChannelError::RateLimited { retry_after };
    }
    let text = response.text().await.unwrap_or_default();
    let reason = match serde_json::from_str::<TwilioError>(&text) {
        Ok(TwilioError { code: Some(code), message }) => {
            format!("Twilio error {code}: {}", message.unwrap_or_default())
        }
        Ok(TwilioError { code: None, message: Some(message) }) => message,
        _ => text.chars().take(300).collect(),
    };
    let message = format!("HTTP {}: {reason}", status.as_u16());
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        ChannelError::Transient(message)
    } else {
        ChannelError::Permanent(message)
    }
}

/// The HMAC of a post: keyed by the auth token, over the URL and then each parameter's name
/// and value, sorted by name (then value, for repeated names).
fn post_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Option<Hmac<Sha1>> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(mac)
}

/// Twilio's webhook signature of a post: base64 of its HMAC-SHA1.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    post_mac(auth_token, url, params)
        .map(|mac| base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `header` (X-Twilio-Signature) is the signature of this post, compared in constant
/// time (the MAC's own verification).
pub fn verify_signature(auth_token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else { return false };
    post_mac(auth_token, url, params).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

/// What a status callback says about a message: the log status it maps to (None for the
/// statuses before `sent`: queued, accepted, sending, scheduled), and an error text for
/// failures.
pub fn map_status(message_status: &str, error_code: Option<&str>) -> Option<(SendStatus, Option<String>)> {
    let error =
        error_code.filter(|c| !c.trim().is_empty() && c.trim() != "0").map(|c| format!("Twilio error {}", c.trim()));
    match message_status.trim().to_ascii_lowercase().as_str() {
        "sent" => Some((SendStatus::Sent, None)),
        "delivered" => Some((SendStatus::Delivered, None)),
        "read" => Some((SendStatus::Read, None)),
        s @ ("undelivered" | "failed") => {
            Some((SendStatus::Failed, Some(error.unwrap_or_else(|| format!("Twilio: {s}")))))
        }
        _ => None,
    }
}

/// A phone number as Twilio writes it in `From`/`To`, without the `whatsapp:` (or `sms:`)
/// prefix.
pub fn bare_number(address: &str) -> &str {
    let a = address.trim();
    a.strip_prefix("whatsapp:").or_else(|| a.strip_prefix("sms:")).unwrap_or(a).trim()
}

#[cfg(test)]
pub(crate) mod tests;
