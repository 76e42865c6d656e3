//! [`CampaignStore`] on MongoDB: campaign records and statuses here; logs, dead letters and
//! claims in `logs.rs`; opt-outs, replies, heartbeats and channel states in `inbound.rs`;
//! resolving uncertain logs, account waits and dashboards' bounded reads in `operators.rs`.
//!
//! A status change names the status it moves from in its filter, so two processes moving one
//! campaign cannot both succeed. Stats are counted from the logs when read (an aggregation
//! grouping a campaign's logs by status over the `{campaign_id, status}` index), as on SQLite.

use super::docs::{date, int, opt_int, opt_text, text, to_date};
use super::{MongoStore, collect, is_duplicate};
use crate::engine::campaign::{
    Campaign, CampaignId, CampaignStats, CampaignStatus, CommunicationLog, DeadLetter, DeadLetterRecord, Heartbeat,
    NewCampaign, NewLog, SendIds, SendJob, SendStatus,
};
use crate::engine::error::{Error, Result};
use crate::engine::lead::LeadId;
use crate::engine::segment::Rule;
use crate::engine::store::campaigns::{
    AccountWait, AudienceLead, CampaignStore, ChannelStateRecord, Claim, LogQuery, LogUpdate, OptOutRecord, Reply,
    Resolution,
};
use async_trait::async_trait;
use bson::{Document, doc};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

fn campaign_from_doc(d: &Document) -> Campaign {
    let created_at = date(d, "created_at").unwrap_or_default();
    Campaign {
        id: int(d, "_id"),
        name: text(d, "name"),
        segment_id: int(d, "segment_id"),
        message_template: text(d, "message_template"),
        channel: text(d, "channel"),
        created_by: opt_text(d, "created_by"),
        status: text(d, "status").parse().unwrap_or(CampaignStatus::Draft),
        stats: CampaignStats { audience: u64::try_from(int(d, "audience")).unwrap_or(0), ..CampaignStats::default() },
        created_at,
        updated_at: date(d, "updated_at").unwrap_or(created_at),
        send_ids: SendIds::from_salt(opt_int(d, "send_id_salt")),
    }
}

fn no_campaign(id: CampaignId) -> Error {
    Error::NotFound(format!("no campaign has the id {id}"))
}

impl MongoStore {
    pub(super) fn campaigns(&self) -> mongodb::Collection<Document> {
        self.coll("campaigns")
    }

    /// Fills in the stats of `c` by counting its logs per status.
    async fn with_stats(&self, mut c: Campaign) -> Result<Campaign> {
        let pipeline =
            [doc! { "$match": { "campaign_id": c.id } }, doc! { "$group": { "_id": "$status", "n": { "$sum": 1 } } }];
        let cursor = self.logs().aggregate(pipeline).await.map_err(self.err())?;
        let counts: Vec<(SendStatus, u64)> = collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .filter_map(|d| Some((SendStatus::parse(d.get_str("_id").ok()?)?, u64::try_from(int(d, "n")).ok()?)))
            .collect();
        c.stats = CampaignStats::from_counts(c.stats.audience, &counts).for_status(c.status);
        Ok(c)
    }

    async fn load_campaign(&self, filter: Document) -> Result<Option<Campaign>> {
        let found = self.campaigns().find_one(filter).await.map_err(self.err())?;
        match found {
            Some(d) => Ok(Some(self.with_stats(campaign_from_doc(&d)).await?)),
            None => Ok(None),
        }
    }

    pub(super) async fn status_of(&self, id: CampaignId) -> Result<Option<CampaignStatus>> {
        let found =
            self.campaigns().find_one(doc! { "_id": id }).projection(doc! { "status": 1 }).await.map_err(self.err())?;
        Ok(found.and_then(|d| text(&d, "status").parse().ok()))
    }

    /// Moves campaign `id` from `from` to `to` if it is still `from`; true when it moved.
    pub(super) async fn move_campaign(&self, id: CampaignId, from: CampaignStatus, to: CampaignStatus) -> Result<bool> {
        let change = doc! { "$set": { "status": to.as_str(), "updated_at": to_date(&super::docs::now()) } };
        let result = self
            .campaigns()
            .update_one(doc! { "_id": id, "status": from.as_str() }, change)
            .await
            .map_err(self.err())?;
        Ok(result.matched_count > 0)
    }
}

#[async_trait]
impl CampaignStore for MongoStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn create_campaign(&self, c: NewCampaign) -> Result<Campaign> {
        let key = c.name.to_lowercase();
        let taken = || Error::Conflict(format!("a campaign named '{}' already exists", c.name));
        if self.campaigns().find_one(doc! { "name_key": &key }).await.map_err(self.err())?.is_some() {
            return Err(taken());
        }
        let id = self.reserve_ids("campaigns", 1).await?;
        let now = super::docs::now();
        let mut d = doc! {
            "_id": id,
            "name": &c.name,
            "name_key": &key,
            "segment_id": c.segment_id,
            "message_template": &c.message_template,
            "channel": &c.channel,
            "created_by": super::docs::opt_bson(c.created_by.as_deref()),
            "status": CampaignStatus::Draft.as_str(),
            "audience": 0_i64,
            "created_at": to_date(&now),
            "updated_at": to_date(&now),
        };
        if let Some(salt) = c.send_ids.salt() {
            d.insert("send_id_salt", i64::from(salt));
        }
        match self.campaigns().insert_one(d.clone()).await {
            Ok(_) => Ok(campaign_from_doc(&d)),
            Err(e) if is_duplicate(&e) => Err(taken()),
            Err(e) => Err(self.err()(e)),
        }
    }

    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>> {
        self.load_campaign(doc! { "_id": id }).await
    }

    async fn get_campaign_by_name(&self, name: &str) -> Result<Option<Campaign>> {
        self.load_campaign(doc! { "name_key": name.to_lowercase() }).await
    }

    async fn list_campaigns(&self) -> Result<Vec<Campaign>> {
        let cursor = self.campaigns().find(doc! {}).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        let mut all = Vec::new();
        for d in collect(cursor).await.map_err(self.err())? {
            all.push(self.with_stats(campaign_from_doc(&d)).await?);
        }
        Ok(all)
    }

    async fn campaign_status(&self, id: CampaignId) -> Result<Option<CampaignStatus>> {
        self.status_of(id).await
    }

    async fn delete_campaign(&self, id: CampaignId) -> Result<bool> {
        match self.status_of(id).await? {
            None => return Ok(false),
            Some(CampaignStatus::Draft) => {}
            Some(other) => {
                return Err(Error::Conflict(format!(
                    "campaign {id} is {other}; only drafts can be deleted (cancel it instead)"
                )));
            }
        }
        // The draft goes first (only while it is still a draft), then its logs.
        let deleted = self
            .campaigns()
            .delete_one(doc! { "_id": id, "status": CampaignStatus::Draft.as_str() })
            .await
            .map_err(self.err())?;
        if deleted.deleted_count == 0 {
            return Err(Error::Conflict(format!("campaign {id} changed while it was being deleted; look again")));
        }
        self.logs().delete_many(doc! { "campaign_id": id }).await.map_err(self.err())?;
        Ok(true)
    }

    async fn set_campaign_status(&self, id: CampaignId, to: CampaignStatus) -> Result<CampaignStatus> {
        // A lost race (another process moved it in between) is looked at again.
        for _ in 0..5 {
            let from = self.status_of(id).await?.ok_or_else(|| no_campaign(id))?;
            if from == to {
                return Ok(from);
            }
            if !from.can_become(to) {
                return Err(Error::Conflict(format!("campaign {id} is {from}; it cannot become {to}")));
            }
            if self.move_campaign(id, from, to).await? {
                return Ok(from);
            }
        }
        Err(Error::Conflict(format!("campaign {id} kept changing; try again")))
    }

    async fn start_campaign(&self, id: CampaignId, audience: u64) -> Result<()> {
        let change = doc! { "$set": {
            "status": CampaignStatus::Running.as_str(),
            "audience": i64::try_from(audience).unwrap_or(i64::MAX),
            "updated_at": to_date(&super::docs::now()),
        } };
        let filter = doc! { "_id": id, "status": CampaignStatus::Draft.as_str() };
        if self.campaigns().update_one(filter, change).await.map_err(self.err())?.matched_count > 0 {
            return Ok(());
        }
        match self.status_of(id).await? {
            None => Err(no_campaign(id)),
            Some(from) => Err(Error::Conflict(format!("campaign {id} is {from}; only a draft can be run"))),
        }
    }

    async fn audience_ids(&self, rule: &Rule, now: DateTime<Utc>, after: LeadId, limit: usize) -> Result<Vec<LeadId>> {
        self.scan_rule_ids(rule, now, after, limit).await
    }

    async fn audience_leads(&self, ids: &[LeadId]) -> Result<Vec<AudienceLead>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let leads = self.find_leads(doc! { "_id": { "$in": ids.to_vec() } }, doc! { "_id": 1 }, None).await?;
        let mut found: HashMap<LeadId, _> = leads.into_iter().map(|l| (l.id, l)).collect();
        let opted = self.opted_out_among(ids).await?;
        Ok(ids.iter().map(|&id| AudienceLead { id, lead: found.remove(&id), opted_out: opted.contains(&id) }).collect())
    }

    async fn insert_logs(&self, campaign: CampaignId, channel: &str, logs: &[NewLog]) -> Result<Vec<String>> {
        self.insert_new_logs(campaign, channel, logs).await
    }

    async fn claim_logs(&self, send_ids: &[String], lease: Duration) -> Result<Vec<Claim>> {
        self.claim_many(send_ids, lease).await
    }

    async fn release_logs(&self, send_ids: &[String], undo_attempt: bool) -> Result<()> {
        self.release(send_ids, undo_attempt).await
    }

    async fn apply_log_updates(&self, updates: &[LogUpdate]) -> Result<usize> {
        self.apply_many(updates).await
    }

    async fn log_status(&self, send_id: &str) -> Result<Option<SendStatus>> {
        let found =
            self.logs().find_one(doc! { "_id": send_id }).projection(doc! { "status": 1 }).await.map_err(self.err())?;
        Ok(found.and_then(|d| SendStatus::parse(d.get_str("status").ok()?)))
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<CommunicationLog>> {
        self.latest_logs(query).await
    }

    async fn complete_finished_campaigns(&self) -> Result<Vec<CampaignId>> {
        self.complete_finished().await
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        self.insert_dead_letter(letter).await
    }

    async fn list_dead_letters(
        &self,
        campaign: Option<CampaignId>,
        include_replayed: bool,
    ) -> Result<Vec<DeadLetterRecord>> {
        self.dead_letters(campaign, include_replayed).await
    }

    async fn count_dead_letters(&self, include_replayed: bool) -> Result<u64> {
        self.dead_letter_count(include_replayed).await
    }

    async fn recent_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterRecord>> {
        self.newest_dead_letters(limit).await
    }

    async fn prepare_replay(&self, campaign: Option<CampaignId>) -> Result<Vec<(i64, SendJob)>> {
        self.replay(campaign).await
    }

    async fn mark_replayed(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let change = doc! { "$set": { "replayed_at": to_date(&super::docs::now()) } };
        self.coll("dead_letters")
            .update_many(doc! { "_id": { "$in": ids.to_vec() } }, change)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()> {
        self.record_beat(heartbeat).await
    }

    async fn list_heartbeats(&self) -> Result<Vec<Heartbeat>> {
        self.heartbeats().await
    }

    async fn opt_out(&self, lead: LeadId) -> Result<bool> {
        self.record_opt_out(lead, None).await
    }

    async fn opt_in(&self, lead: LeadId) -> Result<bool> {
        let result = self.coll("opt_outs").delete_one(doc! { "_id": lead }).await.map_err(self.err())?;
        Ok(result.deleted_count > 0)
    }

    async fn list_opt_outs(&self) -> Result<Vec<(LeadId, DateTime<Utc>)>> {
        Ok(self.opt_out_records().await?.into_iter().map(|r| (r.lead_id, r.at)).collect())
    }

    async fn log_by_provider_id(&self, provider_message_id: &str) -> Result<Option<CommunicationLog>> {
        self.log_by_vendor_id(provider_message_id).await
    }

    async fn set_log_channel(&self, send_id: &str, channel: &str) -> Result<bool> {
        let change = doc! { "$set": { "channel": channel, "updated_at": to_date(&super::docs::now()) } };
        let filter = doc! { "_id": send_id, "status": SendStatus::Sending.as_str() };
        Ok(self.logs().update_one(filter, change).await.map_err(self.err())?.matched_count > 0)
    }

    async fn opt_out_via(&self, lead: LeadId, source: &str) -> Result<bool> {
        self.record_opt_out(lead, Some(source)).await
    }

    async fn list_opt_out_records(&self) -> Result<Vec<OptOutRecord>> {
        self.opt_out_records().await
    }

    async fn recent_opt_outs(&self, limit: usize) -> Result<Vec<OptOutRecord>> {
        self.newest_opt_outs(limit).await
    }

    async fn add_reply(&self, reply: &Reply) -> Result<bool> {
        self.insert_reply(reply).await
    }

    async fn list_replies(&self, lead: LeadId, limit: usize) -> Result<Vec<Reply>> {
        self.replies(lead, limit).await
    }

    async fn sent_by_channel(&self, campaign: CampaignId) -> Result<Vec<(String, u64)>> {
        self.sent_per_channel(campaign).await
    }

    async fn sent_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64> {
        self.sent_by_account_since(account, since).await
    }

    async fn set_channel_state(
        &self,
        account: &str,
        state: &serde_json::Value,
        updated_at: DateTime<Utc>,
    ) -> Result<()> {
        self.record_channel_state(account, state, updated_at).await
    }

    async fn channel_states(&self) -> Result<Vec<ChannelStateRecord>> {
        self.load_channel_states().await
    }

    async fn set_account_wait(&self, wait: &AccountWait) -> Result<()> {
        self.record_account_wait(wait).await
    }

    async fn account_waits(&self) -> Result<Vec<AccountWait>> {
        self.load_account_waits().await
    }

    async fn resolve_uncertain(
        &self,
        campaign: CampaignId,
        send_ids: Option<&[String]>,
        resolution: Resolution,
    ) -> Result<Vec<CommunicationLog>> {
        self.resolve(campaign, send_ids, resolution).await
    }
}
