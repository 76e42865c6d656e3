//! [`WaClient`] over wa-rs 0.2: a `Bot` per run, with wa-rs's SQLite session storage in the
//! account's session directory, its tokio WebSocket transport and ureq HTTP client. Events are
//! translated into [`WaEvent`]s ([`translate`]); everything else stays inside this file.
//! Incoming text messages (not our own, not groups) become [`WaEvent::Inbound`], named by the
//! sender's phone JID when wa-rs knows it (`sender`, or `sender_alt` for an `@lid` sender).
//!
//! What wa-rs 0.2 does not have, and what we do instead: no logout call (a session is ended by
//! disconnecting and wiping its files; the phone lists the linked device until it is removed
//! there), and send errors that do not say whether the message left — any error once the
//! client is connected is [`WaSendError::Ambiguous`] (UNCERTAIN, never resent).

use super::session::SESSION_DB;
use super::{ReceiptKind, WaClient, WaEvent, WaInbound, WaReceipt, WaSendError, lock};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;
use wa_rs::Client;
use wa_rs::Jid;
use wa_rs::bot::Bot;
use wa_rs::pair_code::PairCodeOptions;
use wa_rs::types::events::Event;
use wa_rs::types::presence::ReceiptType;
use wa_rs::wa_rs_proto::whatsapp as wa;
use wa_rs_sqlite_storage::SqliteStore;
use wa_rs_tokio_transport::TokioWebSocketTransportFactory;
use wa_rs_ureq_http::UreqHttpClient;

pub struct RealWaClient {
    dir: PathBuf,
    /// Link by pairing code for this number (digits with country code) as well as by QR.
    pair_phone: Option<String>,
    client: Mutex<Option<Arc<Client>>>,
    qr: Arc<Mutex<Vec<String>>>,
}

impl RealWaClient {
    pub fn new(session_dir: PathBuf, pair_phone: Option<String>) -> RealWaClient {
        RealWaClient {
            dir: session_dir,
            pair_phone: pair_phone.map(|p| p.chars().filter(char::is_ascii_digit).collect()),
            client: Mutex::new(None),
            qr: Arc::default(),
        }
    }

    fn connected(&self) -> Option<Arc<Client>> {
        lock(&self.client).clone().filter(|c| c.is_connected())
    }
}

/// wa-rs's receipt type in our terms.
pub fn receipt_kind(t: &ReceiptType) -> ReceiptKind {
    match t {
        ReceiptType::Delivered => ReceiptKind::Delivered,
        ReceiptType::Read => ReceiptKind::Read,
        ReceiptType::Played => ReceiptKind::Played,
        ReceiptType::Other(name) => ReceiptKind::Other(name.clone()),
        other => ReceiptKind::Other(format!("{other:?}").to_ascii_lowercase()),
    }
}

/// The events we act on, in our terms; `None` for the rest.
pub fn translate(event: &Event) -> Option<WaEvent> {
    Some(match event {
        Event::PairingQrCode { code, timeout } => WaEvent::Qr { payload: code.clone(), valid_for: *timeout },
        Event::PairingCode { code, .. } => WaEvent::PairCode { code: code.clone() },
        Event::PairSuccess(p) => WaEvent::PairSuccess { jid: p.id.to_string() },
        Event::PairError(e) => WaEvent::PairError(e.error.clone()),
        Event::QrScannedWithoutMultidevice(_) => WaEvent::PairError("the phone has no multi-device support".into()),
        Event::Connected(_) => WaEvent::Connected,
        Event::Disconnected(_) => WaEvent::Disconnected,
        Event::LoggedOut(_) => WaEvent::LoggedOut,
        Event::StreamReplaced(_) => WaEvent::StreamReplaced,
        Event::TemporaryBan(ban) => WaEvent::TemporaryBan {
            expires_in: ban.expire.to_std().unwrap_or(std::time::Duration::from_secs(86_400)),
            code: format!("{:?}", ban.code),
        },
        Event::ConnectFailure(f) => WaEvent::ConnectFailure(format!("{:?}: {}", f.reason, f.message)),
        Event::ClientOutdated(_) => WaEvent::ConnectFailure("WhatsApp refused this client version (outdated)".into()),
        Event::StreamError(e) => WaEvent::ConnectFailure(format!("stream error: {e:?}")),
        Event::Message(message, info) if !info.source.is_from_me && !info.source.is_group => {
            let text = message
                .conversation
                .clone()
                .or_else(|| message.extended_text_message.as_ref().and_then(|m| m.text.clone()))?;
            // A hidden (@lid) sender often comes with its phone JID as `sender_alt`.
            let from = std::iter::once(&info.source.sender)
                .chain(info.source.sender_alt.as_ref())
                .map(ToString::to_string)
                .find(|jid| super::phone_of_jid(jid).is_some())
                .unwrap_or_else(|| info.source.sender.to_string());
            WaEvent::Inbound(WaInbound { from, text, id: info.id.clone(), at: info.timestamp })
        }
        Event::Receipt(r) => WaEvent::Receipt(WaReceipt {
            chat: r.source.chat.to_string(),
            message_ids: r.message_ids.clone(),
            kind: receipt_kind(&r.r#type),
        }),
        _ => return None,
    })
}

#[async_trait]
impl WaClient for RealWaClient {
    async fn run(&self, events: UnboundedSender<WaEvent>) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("session directory {}: {e}", self.dir.display()))?;
        let db = self.dir.join(SESSION_DB);
        let backend = SqliteStore::new(&db.to_string_lossy())
            .await
            .map_err(|e| format!("session store {}: {e}", db.display()))?;
        let qr = self.qr.clone();
        let mut builder = Bot::builder()
            .with_backend(Arc::new(backend))
            .with_transport_factory(TokioWebSocketTransportFactory::new())
            .with_http_client(UreqHttpClient::new())
            .skip_history_sync();
        if let Some(phone) = &self.pair_phone {
            builder = builder.with_pair_code(PairCodeOptions { phone_number: phone.clone(), ..Default::default() });
        }
        let mut bot = builder
            .on_event(move |event, _client| {
                let (events, qr) = (events.clone(), qr.clone());
                async move {
                    let Some(ours) = translate(&event) else { return };
                    match &ours {
                        WaEvent::Qr { payload, .. } => *lock(&qr) = vec![payload.clone()],
                        WaEvent::PairSuccess { .. } | WaEvent::Connected => lock(&qr).clear(),
                        _ => {}
                    }
                    let _ = events.send(ours);
                }
            })
            .build()
            .await
            .map_err(|e| format!("cannot start the WhatsApp client: {e}"))?;
        *lock(&self.client) = Some(bot.client());
        let handle = bot.run().await.map_err(|e| format!("cannot connect to WhatsApp: {e}"))?;
        let ended = handle.await.map_err(|e| format!("the WhatsApp client task failed: {e}"));
        lock(&self.client).take();
        ended
    }

    fn qr_payloads(&self) -> Vec<String> {
        lock(&self.qr).clone()
    }

    async fn send_text(&self, jid: &str, text: &str) -> Result<String, WaSendError> {
        let client = self.connected().ok_or_else(|| WaSendError::NotSent("WhatsApp is not connected".into()))?;
        let to: Jid = jid.parse().map_err(|e| WaSendError::Refused(format!("bad JID {jid}: {e:?}")))?;
        let message = wa::Message { conversation: Some(text.to_string()), ..Default::default() };
        client.send_message(to, message).await.map_err(|e| WaSendError::Ambiguous(e.to_string()))
    }

    async fn is_on_whatsapp(&self, e164: &str) -> Result<bool, WaSendError> {
        let client = self.connected().ok_or_else(|| WaSendError::NotSent("WhatsApp is not connected".into()))?;
        let found = client.contacts().is_on_whatsapp(&[e164]).await.map_err(|e| WaSendError::NotSent(e.to_string()))?;
        Ok(found.iter().any(|r| r.is_registered))
    }

    async fn logout(&self) -> Result<(), String> {
        // wa-rs 0.2 has no unlink call: disconnect; the caller wipes the session files.
        self.disconnect().await;
        Ok(())
    }

    async fn disconnect(&self) {
        let client = lock(&self.client).take();
        if let Some(client) = client {
            client.disconnect().await;
        }
    }
}
