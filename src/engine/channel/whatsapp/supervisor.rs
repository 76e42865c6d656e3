//! Keeps one WhatsApp account's client running inside the send worker.
//!
//! Each event moves the account's [`ChannelState`] (written to the channel's state cell, which
//! the sender reads before every send, and to the store, which `crm whatsapp status` and the
//! dashboard read from any process); receipts become log updates through the channel's
//! [`ReceiptTracker`]. When the client stops, it is restarted after a capped, jittered backoff
//! (reset once a connection came up) — except after LoggedOut or StreamReplaced (a new
//! `crm whatsapp login` is needed; the account stays paused) and TemporaryBan (it waits out
//! the ban, paused, and never retries into it). Messages leads send to the number go through
//! the same [`ReplyHandler`] as Twilio's inbound webhook: a stop word opts the lead out, any
//! other text is kept in the lead's history.

use super::session;
use super::{
    ChannelState, ReceiptTracker, WaClient, WaEvent, WaInbound, WaReceipt, WhatsAppChannel, lock, phone_of_jid,
    receipt_status, state_after,
};
use crate::engine::pipeline::replies::{IncomingReply, ReplyHandler};
use crate::engine::pipeline::worker::{Shutdown, sleep_or_shutdown};
use crate::engine::store::campaigns::{CampaignStore, LogUpdate};
use chrono::Utc;
use rand::Rng;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Restart backoff: `base · 2^n`, at most `cap`, the upper half jittered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy { base: Duration::from_secs(2), cap: Duration::from_secs(300) }
    }
}

impl RestartPolicy {
    /// The wait before restart number `n` (0 first): in `[ceiling/2, ceiling]`, so restarts
    /// neither spin nor move in lockstep.
    pub fn delay(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = crate::engine::pipeline::limits::backoff_ceiling(n, self.base, self.cap);
        let half = ceiling / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

pub struct Supervisor {
    pub account: String,
    pub client: Arc<dyn WaClient>,
    pub state: Arc<Mutex<ChannelState>>,
    pub tracker: Arc<ReceiptTracker>,
    pub store: Arc<dyn CampaignStore>,
    pub restart: RestartPolicy,
    /// Where leads' replies go; None: they are only logged.
    pub replies: Option<ReplyHandler>,
    /// The session directory, where connects are noted ([`session::note_connected`]).
    pub session_dir: Option<PathBuf>,
}

impl Supervisor {
    /// A supervisor for `channel`'s client, state and receipts.
    pub fn for_channel(account: &str, channel: &WhatsAppChannel, store: Arc<dyn CampaignStore>) -> Supervisor {
        Supervisor {
            account: account.to_string(),
            client: channel.client(),
            state: channel.state_cell(),
            tracker: channel.tracker(),
            store,
            restart: RestartPolicy::default(),
            replies: None,
            session_dir: None,
        }
    }

    /// The same supervisor, noting connects (and the paired number) in `dir`.
    pub fn with_session_dir(self, dir: PathBuf) -> Supervisor {
        Supervisor { session_dir: Some(dir), ..self }
    }

    /// The same supervisor, handing leads' replies to `replies`.
    pub fn with_replies(self, replies: ReplyHandler) -> Supervisor {
        Supervisor { replies: Some(replies), ..self }
    }

    /// A lead's message: matched by phone and handled like every channel's replies. A sender
    /// whose number WhatsApp hides (`@lid`) cannot be matched to a lead.
    async fn reply(&self, message: &WaInbound) {
        let Some(replies) = &self.replies else { return };
        let Some(from) = phone_of_jid(&message.from) else {
            tracing::info!(account = %self.account, "A WhatsApp reply from a hidden number (@lid); no lead can be matched.");
            return;
        };
        let reply = IncomingReply {
            account: self.account.clone(),
            from,
            text: message.text.clone(),
            received_at: message.at,
            provider_message_id: Some(message.id.clone()),
        };
        if let Err(e) = replies.handle(&reply).await {
            tracing::warn!(account = %self.account, error = %e, "Could not record a WhatsApp reply.");
        }
    }

    /// Updates for the receipt's messages this process did not send, found in the store by
    /// their WhatsApp message id (only the named messages: the chat's order is not known here,
    /// and the forward-only rule covers the rest when their own receipts come).
    async fn stored_updates(&self, receipt: &WaReceipt) -> Vec<LogUpdate> {
        let Some(status) = receipt_status(&receipt.kind) else { return Vec::new() };
        let mut updates = Vec::new();
        for id in self.tracker.unknown_ids(receipt) {
            match self.store.log_by_provider_id(&id).await {
                Ok(Some(log)) => updates.push(LogUpdate {
                    find_by_provider_id: true,
                    send_id: log.send_id,
                    status,
                    provider_message_id: Some(id),
                    error: None,
                }),
                Ok(None) => {}
                Err(e) => tracing::warn!(account = %self.account, error = %e, "Could not look up a WhatsApp receipt."),
            }
        }
        updates
    }

    async fn set_state(&self, state: ChannelState) {
        *lock(&self.state) = state.clone();
        let json = serde_json::to_value(&state).unwrap_or_default();
        if let Err(e) = self.store.set_channel_state(&self.account, &json, Utc::now()).await {
            tracing::warn!(account = %self.account, error = %e, "Could not record the WhatsApp state.");
        }
    }

    fn current(&self) -> ChannelState {
        lock(&self.state).clone()
    }

    /// Returns whether a connection came up.
    async fn handle(&self, event: WaEvent) -> bool {
        if let WaEvent::Inbound(message) = &event {
            self.reply(message).await;
            return false;
        }
        if let WaEvent::Receipt(receipt) = &event {
            let mut updates = self.tracker.updates_for(receipt);
            updates.extend(self.stored_updates(receipt).await);
            if !updates.is_empty()
                && let Err(e) = self.store.apply_log_updates(&updates).await
            {
                tracing::warn!(account = %self.account, error = %e, "Could not apply WhatsApp receipts.");
            }
            return false;
        }
        let Some(mut next) = state_after(&event, Utc::now()) else { return false };
        // Keep the paired number across reconnects.
        if let (ChannelState::Connected { phone: None }, ChannelState::Connected { phone: Some(p) }) =
            (&next, self.current())
        {
            next = ChannelState::Connected { phone: Some(p) };
        }
        if let (ChannelState::Connected { phone }, Some(dir)) = (&mut next, &self.session_dir) {
            match session::note_connected(dir, phone.as_deref(), Utc::now()) {
                // The number the session was paired with, when this connect did not say it.
                Ok(info) => *phone = phone.take().or(info.phone),
                Err(e) => {
                    tracing::warn!(account = %self.account, error = %e, "Could not note the WhatsApp connection.")
                }
            }
        }
        let connected = matches!(next, ChannelState::Connected { .. });
        match &next {
            ChannelState::LoggedOut { reason } => {
                tracing::error!(account = %self.account, %reason, "WhatsApp session ended; sends paused until `crm whatsapp login`.");
            }
            ChannelState::TemporarilyBanned { until } => {
                tracing::error!(account = %self.account, %until, "WhatsApp temporarily banned this number; sends paused.");
            }
            ChannelState::Connected { .. } => tracing::info!(account = %self.account, "WhatsApp connected."),
            _ => {}
        }
        self.set_state(next).await;
        connected
    }

    /// Runs the client until `shutdown`, restarting it as the module explains.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut restarts = 0u32;
        while !shutdown.is_triggered() {
            self.set_state(ChannelState::Connecting).await;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut came_up = false;
            let ended = {
                let run = self.client.run(tx);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        ended = &mut run => break Some(ended),
                        Some(event) = rx.recv() => came_up |= self.handle(event).await,
                        _ = shutdown.wait() => break None,
                    }
                }
            };
            while let Ok(event) = rx.try_recv() {
                came_up |= self.handle(event).await;
            }
            let Some(ended) = ended else { break };
            if came_up {
                restarts = 0;
            }
            match self.current() {
                ChannelState::LoggedOut { .. } => {
                    tracing::warn!(account = %self.account, "Not reconnecting a logged-out WhatsApp session.");
                    shutdown.wait().await;
                    break;
                }
                ChannelState::TemporarilyBanned { until } => {
                    let wait = (until - Utc::now()).to_std().unwrap_or_default();
                    if sleep_or_shutdown(wait, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
                _ => {}
            }
            let why = ended.err().unwrap_or_else(|| "the client stopped".into());
            self.set_state(ChannelState::Disconnected { reason: why.clone() }).await;
            let delay = self.restart.delay(restarts, &mut rand::rng());
            restarts = restarts.saturating_add(1);
            tracing::warn!(account = %self.account, reason = %why, ?delay, "WhatsApp client stopped; restarting.");
            if sleep_or_shutdown(delay, &mut shutdown).await {
                break;
            }
        }
    }
}
