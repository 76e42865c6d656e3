//! The WhatsApp channel: WhatsApp Web's multi-device protocol through `wa-rs`, behind a seam.
//!
//! - [`WaClient`] is the seam: connect and run (events out), the current QR payloads, send a
//!   text to a JID, `is_on_whatsapp`, log out. [`real`] implements it over wa-rs (feature
//!   `whatsapp`); tests use [`fake::FakeWaClient`].
//! - The pure parts are functions tested without a network: [`jid_for`] (E.164 → JID),
//!   [`state_after`] (client event → [`ChannelState`]), [`receipt_status`] (receipt → log
//!   status) and [`ReceiptTracker`] (receipts by message id, moving a chat's earlier messages of
//!   the same campaign forward too).
//! - [`WhatsAppChannel`] is the [`Channel`] the sender calls. WhatsApp has no idempotency key:
//!   every ambiguous outcome (a timeout after the request may have left, a connection dropped
//!   mid-send) is [`ChannelError::Ambiguous`], which the sender records UNCERTAIN and never
//!   sends again; `lookup` answers `Err(Permanent)`, so a send recovered after a crash is
//!   UNCERTAIN too.
//! - [`supervisor`] keeps the client running (restarts with capped, jittered backoff), writes
//!   its state to the store, and pauses the account (its circuit opened at once) on LoggedOut,
//!   StreamReplaced and TemporaryBan.

pub mod account;
pub mod fake;
#[cfg(feature = "whatsapp")]
pub mod qr;
#[cfg(feature = "whatsapp")]
pub mod real;
pub mod session;
pub mod supervisor;

use super::{Channel, ChannelError, OutboundMessage, SendOutcome};
use crate::engine::campaign::SendStatus;
use crate::engine::store::campaigns::LogUpdate;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// WhatsApp's longest text message (characters).
pub const MAX_LENGTH: usize = 4096;

/// What the client says happened (our own shape of wa-rs's events, only what we act on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaEvent {
    /// A new QR payload to show (codes rotate; each replaces the last).
    Qr {
        payload: String,
        valid_for: Duration,
    },
    /// A pairing code for linking by phone number.
    PairCode {
        code: String,
    },
    /// Pairing succeeded; the linked phone's JID.
    PairSuccess {
        jid: String,
    },
    PairError(String),
    Connecting,
    Connected,
    Disconnected,
    LoggedOut,
    /// Another client took over the session.
    StreamReplaced,
    TemporaryBan {
        expires_in: Duration,
        code: String,
    },
    ConnectFailure(String),
    Receipt(WaReceipt),
    /// A text message someone sent this number (a lead's reply).
    Inbound(WaInbound),
}

/// A text message sent to this number, in our terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaInbound {
    /// The sender's JID: a phone JID (`447911123456@s.whatsapp.net`) when WhatsApp revealed
    /// the number, else the hidden-user one (`…@lid`), which no lead can be matched by.
    pub from: String,
    pub text: String,
    /// WhatsApp's message id (a redelivered message is kept once).
    pub id: String,
    pub at: DateTime<Utc>,
}

/// A receipt: which of our messages, in which chat, and what kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaReceipt {
    pub chat: String,
    pub message_ids: Vec<String>,
    pub kind: ReceiptKind,
}

/// wa-rs's receipt types, as far as we care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered,
    Read,
    Played,
    /// Anything else, by wa-rs's name (a plain delivery receipt is `Other("delivery")` in 0.2).
    Other(String),
}

/// The log status a receipt moves our message to, if any.
pub fn receipt_status(kind: &ReceiptKind) -> Option<SendStatus> {
    match kind {
        ReceiptKind::Delivered => Some(SendStatus::Delivered),
        ReceiptKind::Other(name) if name.eq_ignore_ascii_case("delivery") => Some(SendStatus::Delivered),
        ReceiptKind::Read | ReceiptKind::Played => Some(SendStatus::Read),
        ReceiptKind::Other(_) => None,
    }
}

/// An account's connection as the store keeps it (JSON) and `crm whatsapp status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChannelState {
    /// No session yet, or it is waiting for a scan: `crm whatsapp login`.
    PairingNeeded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qr: Option<String>,
    },
    Connecting,
    Connected {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    /// The phone unlinked this device, or another client replaced the session: log in again.
    LoggedOut {
        reason: String,
    },
    TemporarilyBanned {
        until: DateTime<Utc>,
    },
    /// The client stopped and is restarted after a backoff.
    Disconnected {
        reason: String,
    },
}

impl ChannelState {
    /// One line for a status table.
    pub fn describe(&self) -> String {
        match self {
            ChannelState::PairingNeeded { .. } => "pairing needed (crm whatsapp login)".into(),
            ChannelState::Connecting => "connecting".into(),
            ChannelState::Connected { phone: Some(p) } => format!("connected as {p}"),
            ChannelState::Connected { phone: None } => "connected".into(),
            ChannelState::LoggedOut { reason } => format!("logged out ({reason}); crm whatsapp login"),
            ChannelState::TemporarilyBanned { until } => format!("temporarily banned until {}", until.to_rfc3339()),
            ChannelState::Disconnected { reason } => format!("disconnected ({reason}); reconnecting"),
        }
    }

    /// How long sends must wait, when this state forbids them. A logged-out or replaced
    /// session waits for a new login (checked again every `RELOGIN_RECHECK`); a ban until it ends.
    pub fn pause(&self, now: DateTime<Utc>) -> Option<Duration> {
        match self {
            ChannelState::LoggedOut { .. } | ChannelState::PairingNeeded { .. } => Some(RELOGIN_RECHECK),
            ChannelState::TemporarilyBanned { until } => {
                (*until > now).then(|| (*until - now).to_std().unwrap_or_default())
            }
            _ => None,
        }
    }

    /// States in which the supervisor must not reconnect by itself.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ChannelState::LoggedOut { .. } | ChannelState::TemporarilyBanned { .. })
    }
}

/// How often a paused (logged-out) account looks again for a new session.
pub const RELOGIN_RECHECK: Duration = Duration::from_secs(60);

/// The state after `event`, given the state before; `None` when the event does not change it.
pub fn state_after(event: &WaEvent, now: DateTime<Utc>) -> Option<ChannelState> {
    Some(match event {
        WaEvent::Qr { payload, .. } => ChannelState::PairingNeeded { qr: Some(payload.clone()) },
        WaEvent::PairCode { .. } | WaEvent::PairError(_) => ChannelState::PairingNeeded { qr: None },
        WaEvent::PairSuccess { jid } => ChannelState::Connected { phone: phone_of_jid(jid) },
        WaEvent::Connecting => ChannelState::Connecting,
        WaEvent::Connected => ChannelState::Connected { phone: None },
        WaEvent::Disconnected => ChannelState::Disconnected { reason: "connection closed".into() },
        WaEvent::ConnectFailure(why) => ChannelState::Disconnected { reason: why.clone() },
        WaEvent::LoggedOut => ChannelState::LoggedOut { reason: "the phone unlinked this device".into() },
        WaEvent::StreamReplaced => {
            ChannelState::LoggedOut { reason: "another client replaced this session (stream replaced)".into() }
        }
        WaEvent::TemporaryBan { expires_in, .. } => ChannelState::TemporarilyBanned {
            until: now + chrono::Duration::from_std(*expires_in).unwrap_or(chrono::Duration::days(1)),
        },
        WaEvent::Receipt(_) | WaEvent::Inbound(_) => return None,
    })
}

/// The JID of an E.164 number: `+44 7911 123456` → `447911123456@s.whatsapp.net`.
pub fn jid_for(e164: &str) -> Result<String, String> {
    let digits: String = e164.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    let Some(number) = digits.strip_prefix('+') else {
        return Err(format!("{e164:?} is not an E.164 number (+ and country code)"));
    };
    if !(8..=15).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) || number.starts_with('0') {
        return Err(format!("{e164:?} is not an E.164 number"));
    }
    Ok(format!("{number}@s.whatsapp.net"))
}

/// `447911123456@s.whatsapp.net` (or `447911123456:12@…`, a device JID) → `+447911123456`.
pub fn phone_of_jid(jid: &str) -> Option<String> {
    let user = jid.split('@').next()?.split(':').next()?;
    (!user.is_empty() && user.bytes().all(|b| b.is_ascii_digit())).then(|| format!("+{user}"))
}

/// The seam between the channel and a WhatsApp Web client.
#[async_trait]
pub trait WaClient: Send + Sync {
    /// Connects and runs until the connection ends for good (logged out, replaced, banned, or
    /// the transport gave up), reporting events on `events`. Returns why it stopped.
    async fn run(&self, events: tokio::sync::mpsc::UnboundedSender<WaEvent>) -> Result<(), String>;
    /// The QR payloads the client offers right now (empty once paired).
    fn qr_payloads(&self) -> Vec<String>;
    /// Sends `text` to `jid`; the message id WhatsApp will use in receipts.
    async fn send_text(&self, jid: &str, text: &str) -> Result<String, WaSendError>;
    async fn is_on_whatsapp(&self, e164: &str) -> Result<bool, WaSendError>;
    /// Ends the session (the caller wipes the session files).
    async fn logout(&self) -> Result<(), String>;
    /// Closes the connection (a login that is done, a worker stopping); the session stays.
    async fn disconnect(&self) {}
}

/// How a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaSendError {
    /// Nothing left: not connected, refused before sending.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have left (the connection dropped mid-send, no answer).
    #[error("may have been sent: {0}")]
    Ambiguous(String),
    /// WhatsApp refused the message for good.
    #[error("refused: {0}")]
    Refused(String),
}

/// The messages this process sent, by WhatsApp message id, so receipts (which name message
/// ids, not our send ids) find their logs; per chat in send order, so a read receipt for one
/// message also moves that chat's earlier messages of the same campaign forward.
#[derive(Debug, Default)]
pub struct ReceiptTracker {
    inner: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// message id → (chat, send id, campaign).
    by_message: HashMap<String, (String, String, Option<i64>)>,
    /// chat → (message id, send id, campaign) in send order.
    by_chat: HashMap<String, Vec<(String, String, Option<i64>)>>,
}

impl ReceiptTracker {
    pub fn record(&self, chat: &str, message_id: &str, send_id: &str, campaign: Option<i64>) {
        let mut t = lock(&self.inner);
        t.by_message.insert(message_id.to_string(), (chat.to_string(), send_id.to_string(), campaign));
        t.by_chat.entry(chat.to_string()).or_default().push((message_id.to_string(), send_id.to_string(), campaign));
    }

    /// The receipt's message ids this process did not send (sent before a restart, or by
    /// another worker): the supervisor finds their logs in the store instead.
    pub fn unknown_ids(&self, receipt: &WaReceipt) -> Vec<String> {
        let t = lock(&self.inner);
        receipt.message_ids.iter().filter(|id| !t.by_message.contains_key(*id)).cloned().collect()
    }

    /// The log updates a receipt makes (forward-only is the store's job; this never moves a
    /// message backward in its own list either: only the named messages and earlier ones).
    pub fn updates_for(&self, receipt: &WaReceipt) -> Vec<LogUpdate> {
        let Some(status) = receipt_status(&receipt.kind) else { return Vec::new() };
        let t = lock(&self.inner);
        let mut seen = HashSet::new();
        let mut updates = Vec::new();
        for id in &receipt.message_ids {
            let Some((chat, send_id, campaign)) = t.by_message.get(id) else { continue };
            let chat_messages = t.by_chat.get(chat).map(Vec::as_slice).unwrap_or_default();
            let upto = chat_messages.iter().position(|(m, ..)| m == id).map_or(0, |i| i + 1);
            for (mid, sid, c) in &chat_messages[..upto] {
                // The named message itself; earlier ones only of the same (known) campaign.
                let same = sid == send_id || (campaign.is_some() && c == campaign);
                if same && seen.insert(sid.clone()) {
                    updates.push(LogUpdate {
                        find_by_provider_id: true,
                        send_id: sid.clone(),
                        status,
                        provider_message_id: Some(mid.clone()),
                        error: None,
                    });
                }
            }
        }
        updates
    }
}

/// Settings of one `[channels.NAME]` WhatsApp account.
#[derive(Debug, Clone, PartialEq)]
pub struct WaSettings {
    /// Ask `is_on_whatsapp` before a lead's first message (default on).
    pub check_on_whatsapp: bool,
    /// How long a send may take before its outcome is ambiguous.
    pub send_timeout: Duration,
}

impl Default for WaSettings {
    fn default() -> Self {
        WaSettings { check_on_whatsapp: true, send_timeout: Duration::from_secs(30) }
    }
}

/// The skip reason of a lead whose number has no WhatsApp account.
pub const NOT_ON_WHATSAPP: &str = "not on WhatsApp";

/// The channel the sender calls: one WhatsApp account over a [`WaClient`].
pub struct WhatsAppChannel {
    name: String,
    client: Arc<dyn WaClient>,
    settings: WaSettings,
    state: Arc<Mutex<ChannelState>>,
    tracker: Arc<ReceiptTracker>,
    /// Numbers already checked with `is_on_whatsapp` in this process.
    checked: Mutex<HashMap<String, bool>>,
}

impl WhatsAppChannel {
    pub fn new(name: &str, client: Arc<dyn WaClient>, settings: WaSettings) -> WhatsAppChannel {
        WhatsAppChannel {
            name: name.to_string(),
            client,
            settings,
            state: Arc::new(Mutex::new(ChannelState::Connecting)),
            tracker: Arc::default(),
            checked: Mutex::default(),
        }
    }

    /// The state cell the supervisor writes and the channel reads.
    pub fn state_cell(&self) -> Arc<Mutex<ChannelState>> {
        self.state.clone()
    }

    pub fn tracker(&self) -> Arc<ReceiptTracker> {
        self.tracker.clone()
    }

    pub fn client(&self) -> Arc<dyn WaClient> {
        self.client.clone()
    }

    pub fn state(&self) -> ChannelState {
        lock(&self.state).clone()
    }

    async fn on_whatsapp(&self, to: &str) -> Result<bool, ChannelError> {
        if let Some(known) = lock(&self.checked).get(to) {
            return Ok(*known);
        }
        let known = match self.client.is_on_whatsapp(to).await {
            Ok(known) => known,
            Err(WaSendError::Refused(e)) => return Err(ChannelError::Permanent(e)),
            // Only a question was asked: asking again is safe.
            Err(WaSendError::NotSent(e) | WaSendError::Ambiguous(e)) => return Err(ChannelError::Transient(e)),
        };
        lock(&self.checked).insert(to.to_string(), known);
        Ok(known)
    }
}

#[async_trait]
impl Channel for WhatsAppChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_length(&self) -> usize {
        MAX_LENGTH
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<SendOutcome, ChannelError> {
        if let Some(wait) = self.state().pause(Utc::now()) {
            return Err(ChannelError::Paused { retry_after: wait, reason: self.state().describe() });
        }
        let jid = jid_for(&msg.to).map_err(ChannelError::Permanent)?;
        if self.settings.check_on_whatsapp && !self.on_whatsapp(&msg.to).await? {
            return Err(ChannelError::Skipped(NOT_ON_WHATSAPP.into()));
        }
        let sent = tokio::time::timeout(self.settings.send_timeout, self.client.send_text(&jid, &msg.body)).await;
        match sent {
            Ok(Ok(message_id)) => {
                self.tracker.record(&jid, &message_id, &msg.send_id, msg.campaign_id);
                Ok(SendOutcome { provider_message_id: message_id, duplicate: false })
            }
            Ok(Err(WaSendError::NotSent(e))) => Err(ChannelError::Transient(e)),
            Ok(Err(WaSendError::Refused(e))) => Err(ChannelError::Permanent(e)),
            Ok(Err(WaSendError::Ambiguous(e))) => Err(ChannelError::Ambiguous(e)),
            Err(_) => Err(ChannelError::Ambiguous(format!(
                "no answer within {:?}; the message may have been sent",
                self.settings.send_timeout
            ))),
        }
    }

    async fn lookup(&self, _idempotency_key: &str) -> Result<Option<String>, ChannelError> {
        Err(ChannelError::Permanent("WhatsApp has no idempotency key to look a message up by".into()))
    }

    fn paused_for(&self) -> Option<Duration> {
        self.state().pause(Utc::now())
    }

    fn pause_reason(&self) -> Option<String> {
        let state = self.state();
        state.pause(Utc::now())?;
        Some(match state {
            ChannelState::LoggedOut { reason } => format!("logged out ({reason})"),
            ChannelState::PairingNeeded { .. } => "not paired".into(),
            ChannelState::TemporarilyBanned { until } => format!("temporarily banned until {}", until.to_rfc3339()),
            other => other.describe(),
        })
    }
}

#[cfg(test)]
mod sender_tests;
#[cfg(test)]
mod tests;
