//! A read-only snapshot of everything an operator watches: campaigns with stats, queue depth
//! per topic, workers (stale ones marked), channel accounts (with their connection and why
//! their next send waits), recent message events. Dashboards
//! and health checks poll it; it writes nothing.

use super::App;
use super::workers::WorkerInfo;
use crate::engine::bus::{TopicDepth, topic};
use crate::engine::campaign::{Campaign, CommunicationLog};
use crate::engine::channel::registry::AccountInfo;
use crate::engine::error::Result;
use crate::engine::store::campaigns::LogQuery;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One topic's depth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueDepth {
    pub topic: &'static str,
    #[serde(flatten)]
    pub depth: TopicDepth,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub taken_at: DateTime<Utc>,
    pub store: String,
    pub campaigns: Vec<Campaign>,
    pub queues: Vec<QueueDepth>,
    pub workers: Vec<WorkerInfo>,
    pub channels: Vec<AccountInfo>,
    /// The most recently changed messages, newest first.
    pub events: Vec<CommunicationLog>,
    /// Dead letters not yet replayed.
    pub dead_letters: usize,
}

/// Recent events a snapshot carries.
const EVENTS: usize = 20;

impl App {
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let bus = self.bus().await?;
        let mut queues = Vec::new();
        for name in topic::ALL {
            queues.push(QueueDepth { topic: name, depth: bus.depth(name).await? });
        }
        let store = self.campaign_store();
        let mut channels = self.channels().await?.describe();
        // Connection states recorded by any process (a WhatsApp session's, from the worker).
        let states = store.channel_states().await?;
        let mut waits = store.account_waits().await?;
        for account in &mut channels {
            if let Some(record) = states.iter().find(|r| r.account == account.name) {
                account.connection = Some(record.state.clone());
                account.connection_updated_at = Some(record.updated_at);
            }
            // Why its next send waits, as a send worker last recorded it.
            if let Some(i) = waits.iter().position(|w| w.account == account.name) {
                account.wait = Some(waits.swap_remove(i));
            }
        }
        Ok(Snapshot {
            taken_at: Utc::now(),
            store: self.describe_store(),
            campaigns: store.list_campaigns().await?,
            queues,
            workers: self.list_workers(false).await?,
            channels,
            events: store.list_logs(&LogQuery { limit: EVENTS, ..LogQuery::default() }).await?,
            dead_letters: store.list_dead_letters(None, false).await?.len(),
        })
    }
}
