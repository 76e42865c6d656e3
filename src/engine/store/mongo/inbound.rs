//! What arrives from leads and vendors besides receipts (opt-outs with their source, replies
//! kept once per vendor id, sends per account), and what running processes leave behind
//! (worker heartbeats, channel accounts' states). One document each, keyed so that a repeated
//! write is idempotent: opt-outs by lead id, heartbeats by worker id, states by account.

use super::docs::{date, int, on_key_index, opt_text, text, to_date};
use super::{MongoStore, collect, is_duplicate};
use crate::engine::campaign::{CampaignId, Heartbeat, SendStatus};
use crate::engine::error::Result;
use crate::engine::lead::LeadId;
use crate::engine::store::campaigns::{ChannelStateRecord, OptOutRecord, Reply};
use bson::doc;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

impl MongoStore {
    pub(super) async fn is_opted_out(&self, lead: LeadId) -> Result<bool> {
        let found = self.coll("opt_outs").find_one(doc! { "_id": lead }).await.map_err(self.err())?;
        Ok(found.is_some())
    }

    pub(super) async fn opted_out_among(&self, leads: &[LeadId]) -> Result<HashSet<LeadId>> {
        let filter = doc! { "_id": { "$in": leads.to_vec() } };
        let cursor = self.coll("opt_outs").find(filter).projection(doc! { "_id": 1 }).await.map_err(self.err())?;
        Ok(collect(cursor).await.map_err(self.err())?.iter().map(|d| int(d, "_id")).collect())
    }

    /// False when the lead was already opted out (the first source stays).
    pub(super) async fn record_opt_out(&self, lead: LeadId, source: Option<&str>) -> Result<bool> {
        let d = doc! { "_id": lead, "at": to_date(&super::docs::now()), "source": super::docs::opt_bson(source) };
        match self.coll("opt_outs").insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(self.err()(e)),
        }
    }

    pub(super) async fn opt_out_records(&self) -> Result<Vec<OptOutRecord>> {
        let cursor = self.coll("opt_outs").find(doc! {}).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        Ok(collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .map(|d| OptOutRecord {
                lead_id: int(d, "_id"),
                at: date(d, "at").unwrap_or_default(),
                source: opt_text(d, "source"),
            })
            .collect())
    }

    /// False when a reply with the same vendor message id is stored already.
    pub(super) async fn insert_reply(&self, reply: &Reply) -> Result<bool> {
        if let Some(id) = &reply.provider_message_id {
            let filter = on_key_index("provider_message_id", doc! { "$eq": id });
            let found = self.coll("replies").find_one(filter).await.map_err(self.err())?;
            if found.is_some() {
                return Ok(false);
            }
        }
        let mut d = doc! {
            "_id": self.reserve_ids("replies", 1).await?,
            "lead_id": reply.lead_id,
            "channel": &reply.channel,
            "body": &reply.body,
            "received_at": to_date(&reply.received_at),
        };
        if let Some(id) = &reply.provider_message_id {
            d.insert("provider_message_id", id);
        }
        match self.coll("replies").insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// A lead's replies, newest first, at most `limit`.
    pub(super) async fn replies(&self, lead: LeadId, limit: usize) -> Result<Vec<Reply>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cursor = self
            .coll("replies")
            .find(doc! { "lead_id": lead })
            .sort(doc! { "received_at": -1, "_id": -1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(self.err())?;
        Ok(collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .map(|d| Reply {
                lead_id: int(d, "lead_id"),
                channel: text(d, "channel"),
                body: text(d, "body"),
                received_at: date(d, "received_at").unwrap_or_default(),
                provider_message_id: opt_text(d, "provider_message_id"),
            })
            .collect())
    }

    /// Sent (or delivered, or read) logs of a campaign per account, by account name.
    pub(super) async fn sent_per_channel(&self, campaign: CampaignId) -> Result<Vec<(String, u64)>> {
        let sent = [SendStatus::Sent, SendStatus::Delivered, SendStatus::Read].map(SendStatus::as_str);
        let pipeline = [
            doc! { "$match": { "campaign_id": campaign, "status": { "$in": sent.to_vec() } } },
            doc! { "$group": { "_id": "$channel", "n": { "$sum": 1 } } },
            doc! { "$sort": { "_id": 1 } },
        ];
        let cursor = self.logs().aggregate(pipeline).await.map_err(self.err())?;
        Ok(collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .map(|d| (text(d, "_id"), u64::try_from(int(d, "n")).unwrap_or(0)))
            .collect())
    }

    /// Logs naming `account` that left (or may have) and last changed at or after `since`.
    pub(super) async fn sent_by_account_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64> {
        let left =
            [SendStatus::Sent, SendStatus::Delivered, SendStatus::Read, SendStatus::Uncertain].map(SendStatus::as_str);
        let filter =
            doc! { "channel": account, "status": { "$in": left.to_vec() }, "updated_at": { "$gte": to_date(&since) } };
        self.logs().count_documents(filter).await.map_err(self.err())
    }

    pub(super) async fn record_beat(&self, h: &Heartbeat) -> Result<()> {
        let change = doc! {
            "$set": {
                "last_seen": to_date(&h.last_seen),
                "processed": i64::try_from(h.processed).unwrap_or(i64::MAX),
                "rate": h.rate,
            },
            "$setOnInsert": { "kind": &h.kind, "pid": i64::from(h.pid), "started": to_date(&h.started) },
        };
        self.coll("heartbeats").update_one(doc! { "_id": &h.id }, change).upsert(true).await.map_err(self.err())?;
        Ok(())
    }

    /// Every heartbeat, most recent first.
    pub(super) async fn heartbeats(&self) -> Result<Vec<Heartbeat>> {
        let cursor =
            self.coll("heartbeats").find(doc! {}).sort(doc! { "last_seen": -1, "_id": 1 }).await.map_err(self.err())?;
        Ok(collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .map(|d| Heartbeat {
                id: text(d, "_id"),
                kind: text(d, "kind"),
                pid: u32::try_from(int(d, "pid")).unwrap_or(0),
                started: date(d, "started").unwrap_or_default(),
                last_seen: date(d, "last_seen").unwrap_or_default(),
                processed: u64::try_from(int(d, "processed")).unwrap_or(0),
                rate: super::docs::real(d, "rate"),
            })
            .collect())
    }

    /// Records an account's state unless a newer one is stored: the filter only matches an
    /// older (or equally new) state, and the upsert it then attempts collides on `_id` with
    /// the newer one, which leaves it alone.
    pub(super) async fn record_channel_state(
        &self,
        account: &str,
        state: &serde_json::Value,
        updated_at: DateTime<Utc>,
    ) -> Result<()> {
        let at = to_date(&updated_at);
        let filter = doc! { "_id": account, "updated_at": { "$lte": at } };
        let change = doc! { "$set": { "state": state.to_string(), "updated_at": at } };
        match self.coll("channel_states").update_one(filter, change).upsert(true).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Every account's last state, by account name.
    pub(super) async fn load_channel_states(&self) -> Result<Vec<ChannelStateRecord>> {
        let cursor = self.coll("channel_states").find(doc! {}).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        Ok(collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .map(|d| {
                let raw = text(d, "state");
                ChannelStateRecord {
                    account: text(d, "_id"),
                    state: serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)),
                    updated_at: date(d, "updated_at").unwrap_or_default(),
                }
            })
            .collect())
    }
}
