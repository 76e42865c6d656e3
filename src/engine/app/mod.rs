//! The application layer: one [`App`] value, opened once from the effective configuration,
//! holds the backends (the store behind both store traits, the bus, the channel registry) and
//! offers every operation a front end performs as a typed async call. The CLI, the dashboard and
//! the HTTP API parse, call these, and present; none opens a backend or builds a channel itself.
//!
//! One file per noun: [`leads`], [`segments`], [`campaigns`], [`optouts`], [`dlq`],
//! [`workers`], [`whatsapp`] (login, status, logout), [`health`] (do the backends answer), and
//! the read-only [`snapshot`] for dashboards. Errors carry no
//! front-end syntax (no `crm …` command text): a front end adds hints in its own words.

pub mod campaigns;
pub mod dlq;
pub mod health;
pub mod lead_edit;
pub mod leads;
pub mod optouts;
pub mod segments;
pub mod snapshot;
pub mod whatsapp;
pub mod workers;

use crate::engine::bus::{self, Bus};
use crate::engine::channel::ChannelRegistry;
use crate::engine::config::Config;
use crate::engine::error::Result;
use crate::engine::store::campaigns::CampaignStore;
use crate::engine::store::{Access, OpenedStore, Store, StoreLocation};
use std::sync::Arc;
use tokio::sync::OnceCell;
use tracing::info;

/// Stopping long-running operations (workers) gracefully: front ends trigger it on a signal.
pub use crate::engine::pipeline::worker::{Shutdown, ShutdownTrigger, shutdown_signal};

/// The opened backends and configuration every operation runs against.
pub struct App {
    config: Config,
    store: OpenedStore,
    bus: OnceCell<Arc<dyn Bus>>,
    channels: OnceCell<ChannelRegistry>,
}

impl App {
    /// Opens the configured store (refusing a missing one for [`Access::Existing`]); the bus and
    /// the channels are opened when first needed.
    pub async fn open(config: Config, access: Access) -> Result<App> {
        let store = OpenedStore::open(&config.store.value, access).await?;
        info!(store = %store.describe(), from = %config.store.source, created = store.created, "Store opened.");
        Ok(App { config, store, bus: OnceCell::new(), channels: OnceCell::new() })
    }

    /// The same app with these channel accounts instead of the configured ones (the demo's
    /// in-process simulator, tests with fake channels).
    pub fn with_channels(self, channels: ChannelRegistry) -> App {
        App { channels: OnceCell::new_with(Some(channels)), ..self }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether opening created the store (front ends say so).
    pub fn created_store(&self) -> bool {
        self.store.created
    }

    /// What the front end should tell the user about the store it opened, if anything.
    pub fn store_notice(&self) -> Option<&str> {
        self.store.notice.as_deref()
    }

    /// Where the store lives, for messages.
    pub fn describe_store(&self) -> String {
        self.store.describe()
    }

    pub fn store_location(&self) -> &StoreLocation {
        &self.store.location
    }

    pub(crate) fn leads_store(&self) -> &dyn Store {
        self.store.leads.as_ref()
    }

    pub(crate) fn campaign_store(&self) -> &dyn CampaignStore {
        self.store.campaigns.as_ref()
    }

    pub(crate) fn opened_store(&self) -> &OpenedStore {
        &self.store
    }

    /// The bus, opened on first use.
    pub async fn bus(&self) -> Result<&Arc<dyn Bus>> {
        self.bus.get_or_try_init(|| bus::open(&self.config.bus.value, &self.store)).await
    }

    /// The channel accounts, built on first use.
    pub async fn channels(&self) -> Result<&ChannelRegistry> {
        self.channels.get_or_try_init(|| async { ChannelRegistry::from_config(&self.config) }).await
    }
}

/// How a front end names a lead, segment or campaign: an id (digits only) or, failing that, a
/// name, email or phone.
pub(crate) fn as_id(reference: &str) -> Option<i64> {
    let reference = reference.trim();
    if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    reference.parse().ok()
}
