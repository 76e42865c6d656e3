//! Workers: starting the pipeline's expander, sender and aggregator (with the configured
//! policies and channel accounts) and the webhooks (receipts, Twilio status and inbound), and
//! listing heartbeats with stale workers marked.

use super::App;
use crate::engine::bus;
use crate::engine::campaign::Heartbeat;
use crate::engine::channel::whatsapp::session::SessionLock;
use crate::engine::channel::whatsapp::supervisor::Supervisor;
use crate::engine::error::{Error, Result};
use crate::engine::pipeline::aggregator::run_aggregator;
use crate::engine::pipeline::expander::run_expander;
use crate::engine::pipeline::replies::ReplyHandler;
use crate::engine::pipeline::sender::{SenderConfig, run_sender};
use crate::engine::pipeline::webhook::{InboundHooks, serve_webhooks, webhooks_router};
use crate::engine::pipeline::worker::{HEARTBEAT_EVERY, Shutdown};
use crate::engine::store::OpenedStore;
use chrono::Utc;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Which roles one worker process runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerPlan {
    pub expand: bool,
    pub send: bool,
    /// The aggregator, and the receipts webhook when `webhook_listen` is configured.
    pub status: bool,
}

/// A worker as its heartbeats show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerInfo {
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// No heartbeat for [`STALE_AFTER`]: the process is gone or hung.
    pub stale: bool,
}

/// A worker that missed this many heartbeats is shown as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(5 * HEARTBEAT_EVERY.as_secs());
/// Stale workers are no longer listed after this long (unless all are asked for).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl App {
    /// A new store handle and bus for one worker role: a SQLite connection serializes its
    /// calls, so roles sharing one would queue behind each other.
    async fn role_backends(&self) -> Result<(OpenedStore, Arc<dyn bus::Bus>)> {
        let store = self.opened_store().reopen().await?;
        let bus = bus::open(&self.config().bus.value, &store).await?;
        Ok((store, bus))
    }

    /// Runs the roles `plan` names until `shutdown`. The receipts listener (if configured) is
    /// bound first, so the sender can name it as the callback; `on_listen` is told its address.
    pub async fn run_workers(
        &self,
        plan: WorkerPlan,
        shutdown: Shutdown,
        on_listen: impl FnOnce(Option<SocketAddr>),
    ) -> Result<()> {
        let config = self.config();
        let channels = self.channels().await?.clone();
        // Open once up front so a bad bus URL is reported before anything starts.
        self.bus().await?;
        let mut tasks = tokio::task::JoinSet::new();
        let mut callback = config.worker.callback_url.value.clone();
        let mut listened = None;
        if let Some(addr) = config.webhook_listen().filter(|_| plan.status) {
            let (bound, handle) = serve_webhooks(self.webhook_router().await?, addr, shutdown.clone()).await?;
            callback.get_or_insert(format!("http://{bound}/receipts"));
            tracing::info!(listen = %bound, "Receipts webhook listening.");
            listened = Some(bound);
            tasks.spawn(async move {
                let _ = handle.await;
                Ok(())
            });
        }
        on_listen(listened);
        if plan.expand {
            let (store, bus) = self.role_backends().await?;
            tasks.spawn(run_expander(store.campaigns, bus, shutdown.clone()));
        }
        if plan.send {
            let sender = SenderConfig {
                lease: Duration::from_millis(config.worker.lease_ms.value),
                callback_url: callback,
                loops: 3,
            };
            let (store, bus) = self.role_backends().await?;
            // Each WhatsApp account's client runs under a supervisor, holding its session lock.
            for (name, account) in channels.whatsapp_accounts() {
                if !crate::engine::channel::whatsapp::session::has_session(&account.session_dir) {
                    // Nothing to connect with: the account stays paused until a login.
                    let state = crate::engine::channel::whatsapp::ChannelState::PairingNeeded { qr: None };
                    *account.channel.state_cell().lock().unwrap_or_else(|e| e.into_inner()) = state.clone();
                    let json = serde_json::to_value(&state).unwrap_or_default();
                    store.campaigns.set_channel_state(name, &json, Utc::now()).await?;
                    tracing::warn!(account = %name, "WhatsApp account has no session; its sends wait for a login.");
                    continue;
                }
                let lock = SessionLock::acquire(&account.session_dir).map_err(|e| Error::Conflict(e.to_string()))?;
                let replies = ReplyHandler {
                    leads: store.leads.clone(),
                    store: store.campaigns.clone(),
                    stop_words: config.webhook.stop_words.value.clone(),
                };
                let supervisor = Supervisor::for_channel(name, &account.channel, store.campaigns.clone())
                    .with_replies(replies)
                    .with_session_dir(account.session_dir.clone());
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    supervisor.run(shutdown).await;
                    drop(lock);
                    Ok(())
                });
            }
            tasks.spawn(run_sender(store.campaigns, bus, channels, sender, shutdown.clone()));
        }
        if plan.status {
            let (store, bus) = self.role_backends().await?;
            tasks.spawn(run_aggregator(store.campaigns, bus, shutdown.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| Error::store(self.describe_store(), format!("a worker task failed: {e}")))??;
        }
        Ok(())
    }

    /// Every webhook — the receipts of each channel account, Twilio's status and inbound
    /// callbacks — as one router on its own store handle: what the status worker serves and
    /// `crm serve` mounts, so both answer the same routes with the same implementation.
    pub async fn webhook_router(&self) -> Result<axum::Router> {
        let config = self.config();
        let store = self.opened_store().reopen().await?;
        let hooks = InboundHooks {
            leads: store.leads,
            store: store.campaigns,
            channels: self.channels().await?.clone(),
            public_url: config.webhook.public_url.value.clone(),
            stop_words: config.webhook.stop_words.value.clone(),
            region: config.region()?,
        };
        Ok(webhooks_router(hooks))
    }

    /// Workers by last heartbeat, newest first, stale ones marked; workers gone for longer
    /// than [`FORGET_AFTER`] only with `all`.
    pub async fn list_workers(&self, all: bool) -> Result<Vec<WorkerInfo>> {
        let now = Utc::now();
        let beats = self.campaign_store().list_heartbeats().await?;
        Ok(beats
            .into_iter()
            .filter_map(|heartbeat| {
                let silent = (now - heartbeat.last_seen).to_std().unwrap_or_default();
                let stale = silent >= STALE_AFTER;
                (all || silent < FORGET_AFTER).then_some(WorkerInfo { heartbeat, stale })
            })
            .collect())
    }
}
