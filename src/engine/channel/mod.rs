//! Channels: the protocol of one messaging vendor, and nothing more. Rate limits, concurrency,
//! retries and the circuit breaker are applied around every channel by the sender (see
//! `pipeline::limits`), so a channel sends one message and says how it went, sorting failures
//! into the three kinds the sender acts on: wait ([`ChannelError::RateLimited`]), retry
//! ([`ChannelError::Transient`]) or give up ([`ChannelError::Permanent`]).
//!
//! The idempotency key of every send is the communication log's `send_id`: a vendor that honours
//! it turns our at-least-once retries into exactly-once messages, and [`Channel::lookup`] finds
//! a message that was accepted just before a crash lost our record of it.

mod http;
pub mod registry;
pub mod sim;
pub mod twilio;
pub mod whatsapp;

pub use registry::{ChannelAccount, ChannelRegistry};

use crate::engine::store::campaigns::LogUpdate;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The communication log's id, used as the vendor's idempotency key.
    pub send_id: String,
    /// The recipient, E.164 (`+447700900123`).
    pub to: String,
    /// The rendered text.
    pub body: String,
    /// Where the vendor should POST delivery receipts, for channels that take one per message.
    pub callback_url: Option<String>,
    /// The campaign the message belongs to, for channels that tie receipts to a campaign's
    /// messages in one chat (WhatsApp). `None` when unknown.
    #[serde(default)]
    pub campaign_id: Option<i64>,
    /// The recipient's time zone (the lead's `metadata.timezone`), for quiet hours.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// A send the vendor accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// The vendor's id for the message; receipts refer to it.
    pub provider_message_id: String,
    /// True when the vendor had already accepted this idempotency key (nothing new was sent).
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    /// The vendor asked us to slow down; try again after `retry_after`.
    #[error("rate limited by the vendor; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Worth retrying: a 5xx, a timeout, a refused or dropped connection.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Retrying cannot help: an invalid number, a refused message, bad credentials.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The request may have reached the vendor and we cannot tell (a timeout after it left,
    /// a connection dropped mid-send) on a channel without an idempotency key: the sender
    /// records the message UNCERTAIN and never sends it again.
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// The message must not be sent to this recipient (e.g. the number has no WhatsApp): the
    /// log is skipped with this reason.
    #[error("skipped: {0}")]
    Skipped(String),
    /// The account cannot send for now (logged out, banned): nothing was sent; the sender opens
    /// the account's circuit for `retry_after` and holds its messages.
    #[error("account paused for {retry_after:?}: {reason}")]
    Paused { retry_after: Duration, reason: String },
}

impl ChannelError {
    /// Whether sending the same message again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChannelError::RateLimited { .. } | ChannelError::Transient(_) | ChannelError::Paused { .. })
    }

    /// The vendor's requested pause, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ChannelError::RateLimited { retry_after } | ChannelError::Paused { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

#[async_trait]
pub trait Channel: Send + Sync {
    /// The channel account's name, e.g. `sim` or `whatsapp:+4477…`; limits are kept per name.
    fn name(&self) -> &str;

    /// The longest message body the channel accepts, in characters.
    fn max_length(&self) -> usize;

    /// Sends `msg` once, with `msg.send_id` as the idempotency key.
    async fn send(&self, msg: &OutboundMessage) -> Result<SendOutcome, ChannelError>;

    /// The vendor's message id for an idempotency key it accepted, `None` if it never did.
    /// Channels without vendor idempotency answer `Err(Permanent)`, and the sender marks such a
    /// message UNCERTAIN rather than risk sending it twice.
    async fn lookup(&self, idempotency_key: &str) -> Result<Option<String>, ChannelError>;

    /// Whether the vendor's receipts name our idempotency key (the send id), so that a log
    /// never has to be found by the vendor's message id ([`LogUpdate::find_by_provider_id`]).
    /// False unless the channel says so.
    fn receipts_name_send_id(&self) -> bool {
        false
    }

    /// Reads a receipts webhook body posted by this channel's vendor as status updates for
    /// the logs it names. `None`: the channel does not take receipts over the webhook.
    fn parse_receipts(&self, body: &[u8]) -> Option<Result<Vec<LogUpdate>, String>> {
        let _ = body;
        None
    }

    /// How long the account cannot send, when it cannot (logged out, banned): the sender opens
    /// its circuit for that long without calling [`Channel::send`]. `None`: go ahead.
    fn paused_for(&self) -> Option<Duration> {
        None
    }

    /// Why the account cannot send, in a few words (`temporarily banned until …`), while
    /// [`Channel::paused_for`] says it cannot.
    fn pause_reason(&self) -> Option<String> {
        None
    }
}
