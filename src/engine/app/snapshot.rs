//! A read-only snapshot of everything an operator watches: campaigns with stats, queue depth
//! per topic, workers (stale ones marked), channel accounts (with their connection and why
//! their next send waits), and recent events (message changes, opt-outs, dead letters, channel
//! state changes, merged newest first). Dashboards and health checks poll it every second, so
//! every read in it is bounded: a limit, a count, or one row per channel account, never a
//! whole table.

use super::App;
use super::workers::WorkerInfo;
use crate::engine::bus::{TopicDepth, topic};
use crate::engine::campaign::{Campaign, CommunicationLog, DeadLetterRecord};
use crate::engine::channel::registry::AccountInfo;
use crate::engine::error::Result;
use crate::engine::store::campaigns::{ChannelStateRecord, LogQuery, OptOutRecord};
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
    /// The bus the queues are on (`embedded:…`, `kafka://…`): on Kafka a topic's depth is its
    /// consumer groups' lag.
    pub bus: String,
    pub campaigns: Vec<Campaign>,
    pub queues: Vec<QueueDepth>,
    pub workers: Vec<WorkerInfo>,
    pub channels: Vec<AccountInfo>,
    /// The newest events of every kind, newest first, at most [`EVENTS`].
    pub events: Vec<RecentEvent>,
    /// Dead letters not yet replayed.
    pub dead_letters: usize,
}

/// Something that happened, for an event tail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecentEvent {
    /// A message changed status (sent, delivered, failed…).
    Message(CommunicationLog),
    OptOut(OptOutRecord),
    DeadLetter(DeadLetterRecord),
    /// A channel account's connection changed (its state now).
    ChannelState(ChannelStateRecord),
}

impl RecentEvent {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            RecentEvent::Message(m) => m.updated_at,
            RecentEvent::OptOut(o) => o.at,
            RecentEvent::DeadLetter(d) => d.created_at,
            RecentEvent::ChannelState(c) => c.updated_at,
        }
    }
}

/// Recent events a snapshot carries.
pub const EVENTS: usize = 20;

/// The newest `EVENTS` of all kinds, newest first (a stable sort: equal times keep the order
/// they are given in).
fn merge_events(
    messages: Vec<CommunicationLog>,
    opt_outs: Vec<OptOutRecord>,
    dead_letters: Vec<DeadLetterRecord>,
    states: &[ChannelStateRecord],
) -> Vec<RecentEvent> {
    let mut events: Vec<RecentEvent> = messages
        .into_iter()
        .map(RecentEvent::Message)
        .chain(dead_letters.into_iter().map(RecentEvent::DeadLetter))
        .chain(opt_outs.into_iter().map(RecentEvent::OptOut))
        .chain(states.iter().cloned().map(RecentEvent::ChannelState))
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.at()));
    events.truncate(EVENTS);
    events
}

impl App {
    /// Each pipeline topic's depth (on Kafka, its consumer group's lag).
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>> {
        let bus = self.bus().await?;
        let mut queues = Vec::new();
        for name in topic::ALL {
            queues.push(QueueDepth { topic: name, depth: bus.depth(name).await? });
        }
        Ok(queues)
    }

    pub async fn snapshot(&self) -> Result<Snapshot> {
        let queues = self.queue_depths().await?;
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
        let messages = store.list_logs(&LogQuery { limit: EVENTS, ..LogQuery::default() }).await?;
        let events = merge_events(
            messages,
            store.recent_opt_outs(EVENTS).await?,
            store.recent_dead_letters(EVENTS).await?,
            &states,
        );
        Ok(Snapshot {
            taken_at: Utc::now(),
            store: self.describe_store(),
            bus: self.bus().await?.describe(),
            campaigns: store.list_campaigns().await?,
            queues,
            workers: self.list_workers(false).await?,
            channels,
            events,
            dead_letters: usize::try_from(store.count_dead_letters(false).await?).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::campaign::{SendJob, SendStatus};
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap_or_default()
    }

    fn message(lead: i64, secs: i64) -> CommunicationLog {
        CommunicationLog {
            send_id: format!("1:{lead}"),
            campaign_id: 1,
            lead_id: lead,
            status: SendStatus::Sent,
            attempt: 1,
            channel: "sim".into(),
            provider_message_id: None,
            error_message: None,
            created_at: at(secs),
            updated_at: at(secs),
        }
    }

    #[test]
    fn events_of_every_kind_merge_newest_first_and_stay_bounded() {
        let letter = DeadLetterRecord {
            id: 1,
            send_id: "1:9".into(),
            campaign_id: 1,
            reason: "blocked".into(),
            payload: SendJob {
                send_id: "1:9".into(),
                campaign_id: 1,
                lead_id: 9,
                to: "+447700900123".into(),
                message: "Hi".into(),
                attempt: 3,
                timezone: None,
            },
            created_at: at(5),
            replayed_at: None,
        };
        let opt_out = OptOutRecord { lead_id: 4, at: at(7), source: Some("manual".into()) };
        let state = ChannelStateRecord {
            account: "wa".into(),
            state: serde_json::json!({"state": "connecting"}),
            updated_at: at(6),
        };
        let events = merge_events(vec![message(1, 8), message(2, 1)], vec![opt_out], vec![letter], &[state]);
        let order: Vec<i64> = events.iter().map(|e| e.at().timestamp() - 1_700_000_000).collect();
        assert_eq!(order, [8, 7, 6, 5, 1]);
        assert!(matches!(events[1], RecentEvent::OptOut(_)) && matches!(events[3], RecentEvent::DeadLetter(_)));
        let many = (0..30).map(|i| message(i, i)).collect();
        let events = merge_events(many, Vec::new(), Vec::new(), &[]);
        assert_eq!(events.len(), EVENTS);
        assert_eq!(events[0].at(), at(29));
    }
}
