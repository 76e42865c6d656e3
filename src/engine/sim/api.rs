//! The simulator's wire format: what `POST /messages` takes and answers, what receipts look like,
//! and what `GET /stats` reports. The sim channel client speaks the same types, so the two can
//! never drift apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /messages` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    /// The recipient in E.164 (`+447700900123`).
    pub to: String,
    pub body: String,
    /// The sender's key for this message: a repeat returns the first message id and sends nothing.
    pub idempotency_key: String,
    /// Where receipts are POSTed; without it the message is accepted and no receipts are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// The answer to an accepted (202) or repeated (200) send, and to `GET /messages/by-key/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResponse {
    pub message_id: String,
    pub idempotency_key: String,
    /// True when the key had been accepted before (and nothing new was sent).
    pub duplicate: bool,
}

/// Every non-2xx answer carries this body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    Delivered,
    Read,
    Failed,
}

/// A delivery receipt, POSTed to the message's callback URL: one JSON object per request, or,
/// when the simulator runs with `receipt_batch` > 1, a JSON array of up to that many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub message_id: String,
    pub idempotency_key: String,
    pub status: ReceiptStatus,
    /// Why a `failed` message failed; `null` otherwise.
    pub error: Option<String>,
    /// When the receipt was sent (RFC 3339, UTC).
    pub timestamp: String,
}

/// `GET /stats`: what the simulator accepted, per idempotency key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Distinct idempotency keys accepted (messages "sent").
    pub accepted: u64,
    /// POSTs that repeated an accepted key and were answered with the first id.
    pub duplicates: u64,
    /// POSTs refused with 429 (nothing recorded for them).
    pub rejected_429: u64,
    /// POSTs answered with a 5xx (nothing recorded for them).
    pub errors_5xx: u64,
    /// POSTs refused as invalid with a 400 (bad number, empty or too long body, missing key).
    #[serde(default)]
    pub rejected_invalid: u64,
    /// Receipts the callback acknowledged with a 2xx.
    pub receipts_sent: u64,
    /// Receipts given up on after the callback kept failing.
    #[serde(default)]
    pub receipts_dropped: u64,
    /// Receipts scheduled but not yet sent or dropped.
    #[serde(default)]
    pub receipts_pending: u64,
    /// Per accepted key; left empty by `GET /stats?by_key=false`.
    #[serde(default)]
    pub by_key: BTreeMap<String, KeyStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    pub message_id: String,
    /// POSTs answered with this message id: the first one plus every duplicate. A message sent
    /// exactly once has count 1. (429 and 5xx answers are not counted.)
    pub count: u64,
}
