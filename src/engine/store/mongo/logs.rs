//! Communication logs and dead letters: inserting a chunk's logs once, claiming a log for a
//! sender, releasing it, moving it forward, completing campaigns, and replaying dead letters.
//!
//! A log's `_id` is its send id (so it is unique and idempotent to insert). Every change is one
//! single-document update whose filter names the status it moves from: a claim is a
//! `findOneAndUpdate` from `pending` (or from `sending` with the expired lease it saw), and
//! an update that lost a race reads the log again and decides again. A batch of claims or
//! updates is one `update` command of such statements (claims stamp `claim_token`, so the
//! claimer can tell which it won), with the single-document path for those that lost.

use super::docs::{date, int, on_key_index, opt_text, text, to_date};
use super::{DUPLICATE_KEY, MongoStore, collect};
use crate::engine::campaign::{
    CampaignId, CampaignStatus, CommunicationLog, DeadLetter, DeadLetterRecord, NewLog, SendJob, SendStatus,
};
use crate::engine::error::Result;
use crate::engine::store::campaigns::{Claim, LogQuery, LogUpdate};
use bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use std::collections::HashMap;
use std::time::Duration;

/// How often a call that keeps losing races to other processes looks again.
const RETRIES: usize = 8;

pub(super) fn log_from_doc(d: &Document) -> CommunicationLog {
    let created_at = date(d, "created_at").unwrap_or_default();
    CommunicationLog {
        send_id: text(d, "_id"),
        campaign_id: int(d, "campaign_id"),
        lead_id: int(d, "lead_id"),
        status: SendStatus::parse(d.get_str("status").unwrap_or_default()).unwrap_or(SendStatus::Failed),
        attempt: u32::try_from(int(d, "attempt")).unwrap_or(0),
        channel: text(d, "channel"),
        provider_message_id: opt_text(d, "provider_message_id"),
        error_message: opt_text(d, "error_message"),
        created_at,
        updated_at: date(d, "updated_at").unwrap_or(created_at),
    }
}

pub(super) fn dead_letter_from_doc(d: &Document) -> Result<DeadLetterRecord, String> {
    let id = int(d, "_id");
    let payload: SendJob = d
        .get_document("payload")
        .map_err(|e| e.to_string())
        .and_then(|p| bson::from_document(p.clone()).map_err(|e| e.to_string()))
        .map_err(|e| format!("dead letter {id} has no readable payload: {e}"))?;
    Ok(DeadLetterRecord {
        id,
        send_id: text(d, "send_id"),
        campaign_id: int(d, "campaign_id"),
        reason: text(d, "reason"),
        payload,
        created_at: date(d, "created_at").unwrap_or_default(),
        replayed_at: date(d, "replayed_at"),
    })
}

impl MongoStore {
    pub(super) fn logs(&self) -> mongodb::Collection<Document> {
        self.coll("communication_logs")
    }

    /// Inserts the logs that do not exist yet; returns the send ids among `logs` now pending.
    pub(super) async fn insert_new_logs(
        &self,
        campaign: CampaignId,
        channel: &str,
        logs: &[NewLog],
    ) -> Result<Vec<String>> {
        if logs.is_empty() {
            return Ok(Vec::new());
        }
        let now = to_date(&super::docs::now());
        let documents = logs
            .iter()
            .map(|log| {
                let status = if log.skip_reason.is_some() { SendStatus::Skipped } else { SendStatus::Pending };
                doc! {
                    "_id": &log.send_id,
                    "campaign_id": campaign,
                    "lead_id": log.lead_id,
                    "status": status.as_str(),
                    "attempt": 0_i64,
                    "channel": channel,
                    "lease_until": Bson::Null,
                    "error_message": super::docs::opt_bson(log.skip_reason.as_deref()),
                    "created_at": now,
                    "updated_at": now,
                }
            })
            .collect();
        let refused = self.write_many("insert", "communication_logs", "documents", documents).await?;
        if let Some((_, code)) = refused.iter().find(|(_, code)| *code != DUPLICATE_KEY) {
            return Err(self.fail(format!("the server refused to store a communication log (code {code})")));
        }
        let ids: Vec<&str> = logs.iter().map(|l| l.send_id.as_str()).collect();
        let filter = doc! { "_id": { "$in": ids }, "status": SendStatus::Pending.as_str() };
        let cursor = self.logs().find(filter).projection(doc! { "_id": 1 }).await.map_err(self.err())?;
        let pending: std::collections::HashSet<String> =
            collect(cursor).await.map_err(self.err())?.iter().map(|d| text(d, "_id")).collect();
        Ok(logs.iter().filter(|l| pending.contains(&l.send_id)).map(|l| l.send_id.clone()).collect())
    }

    /// Claims each log for a send, in a few round trips whatever their number: the logs are
    /// read at once, the pending ones (not opted out) claimed by one `update` command whose
    /// statements each name the status and attempt read and stamp a token of this call, and
    /// the ones that token then marks are this call's. The rest — taken meanwhile, opted out,
    /// a lease to recover — go through [`Self::claim_one`].
    pub(super) async fn claim_many(&self, send_ids: &[String], lease: Duration) -> Result<Vec<Claim>> {
        let mut claims: Vec<Option<Claim>> = vec![None; send_ids.len()];
        let found = self.logs_by_id(send_ids, doc! { "status": 1, "attempt": 1, "lead_id": 1, "channel": 1 }).await?;
        let leads: Vec<i64> = found.values().map(|d| int(d, "lead_id")).collect();
        let opted = if leads.is_empty() { Default::default() } else { self.opted_out_among(&leads).await? };
        let now = super::docs::now();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let until = bson::DateTime::from_millis(now.timestamp_millis().saturating_add(lease_ms));
        let token = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let mut statements = Vec::new();
        let mut asked = std::collections::HashSet::new();
        for (i, id) in send_ids.iter().enumerate() {
            let Some(log) = found.get(id) else {
                claims[i] = Some(Claim::Missing);
                continue;
            };
            match SendStatus::parse(log.get_str("status").unwrap_or_default()) {
                Some(SendStatus::Pending) => {}
                Some(SendStatus::Sending) | None => continue,
                Some(settled) => {
                    claims[i] = Some(Claim::Settled(settled));
                    continue;
                }
            }
            if opted.contains(&int(log, "lead_id")) || !asked.insert(id.as_str()) {
                continue;
            }
            let attempt = log.get("attempt").cloned().unwrap_or(Bson::Null);
            statements.push(doc! {
                "q": { "_id": id, "status": SendStatus::Pending.as_str(), "attempt": attempt },
                "u": { "$set": {
                    "status": SendStatus::Sending.as_str(),
                    "attempt": int(log, "attempt") + 1,
                    "lease_until": until,
                    "updated_at": to_date(&now),
                    "claim_token": &token,
                } },
            });
        }
        if !statements.is_empty() {
            // A statement refused by the server claimed nothing: claim_one below reports it.
            self.write_counted("update", "communication_logs", "updates", statements).await?;
            let filter = doc! { "_id": { "$in": send_ids.to_vec() }, "claim_token": &token };
            let cursor =
                self.logs().find(filter).projection(doc! { "attempt": 1, "channel": 1 }).await.map_err(self.err())?;
            let mine: HashMap<String, Document> =
                collect(cursor).await.map_err(self.err())?.into_iter().map(|d| (text(&d, "_id"), d)).collect();
            let mut given = std::collections::HashSet::new();
            for (i, id) in send_ids.iter().enumerate() {
                if let Some(d) = mine.get(id).filter(|_| given.insert(id.as_str())) {
                    let attempt = u32::try_from(int(d, "attempt")).unwrap_or(u32::MAX);
                    claims[i] = Some(Claim::Claimed { attempt, recovered: false, channel: text(d, "channel") });
                }
            }
        }
        let mut out = Vec::with_capacity(send_ids.len());
        for (i, claim) in claims.into_iter().enumerate() {
            out.push(match claim {
                Some(c) => c,
                None => self.claim_one(&send_ids[i], lease).await?,
            });
        }
        Ok(out)
    }

    /// The logs among `send_ids`, by send id, with the fields `projection` names.
    async fn logs_by_id(&self, send_ids: &[String], projection: Document) -> Result<HashMap<String, Document>> {
        let cursor = self
            .logs()
            .find(doc! { "_id": { "$in": send_ids.to_vec() } })
            .projection(projection)
            .await
            .map_err(self.err())?;
        Ok(collect(cursor).await.map_err(self.err())?.into_iter().map(|d| (text(&d, "_id"), d)).collect())
    }

    /// Applies forward-only updates; returns how many logs changed. The logs are read at once
    /// and the updates that move theirs forward written by one `update` command whose
    /// statements each name the status read; when fewer logs changed than were written (one
    /// moved meanwhile, or the same log is named twice), the updates whose log could still
    /// take them go through [`Self::apply_update`].
    pub(super) async fn apply_many(&self, updates: &[LogUpdate]) -> Result<usize> {
        if updates.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = updates.iter().map(|u| u.send_id.clone()).collect();
        let status_of = |d: &Document| SendStatus::parse(d.get_str("status").ok()?);
        let found = self.logs_by_id(&ids, doc! { "status": 1 }).await?;
        let now = to_date(&super::docs::now());
        let (mut statements, mut written, mut later) = (Vec::new(), Vec::new(), Vec::new());
        let mut named = std::collections::HashSet::new();
        for u in updates {
            let Some(current) = found.get(&u.send_id).and_then(status_of) else { continue };
            if !current.can_become(u.status) {
                continue;
            }
            if !named.insert(u.send_id.as_str()) {
                later.push(u);
                continue;
            }
            let set = update_set(u, now);
            statements.push(doc! { "q": { "_id": &u.send_id, "status": current.as_str() }, "u": { "$set": set } });
            written.push(u);
        }
        let (mut changed, mut lost) = (0, Vec::new());
        if !statements.is_empty() {
            let asked = statements.len();
            // A statement refused by the server changed nothing: it is retried below like one
            // that lost a race, where the single-document path reports the error.
            let (_, modified) = self.write_counted("update", "communication_logs", "updates", statements).await?;
            changed += usize::try_from(modified).unwrap_or(asked);
            if changed < asked {
                // Which lost is not in the reply: those whose log could still take them.
                let ids: Vec<String> = written.iter().map(|u| u.send_id.clone()).collect();
                let now_found = self.logs_by_id(&ids, doc! { "status": 1 }).await?;
                lost = written
                    .into_iter()
                    .filter(|u| now_found.get(&u.send_id).and_then(status_of).is_some_and(|s| s.can_become(u.status)))
                    .collect();
            }
        }
        // The lost ones before the repeated mentions, which come after them in the batch.
        for u in lost.into_iter().chain(later) {
            changed += usize::from(self.apply_update(u).await?);
        }
        Ok(changed)
    }

    /// Claims one log (see [`Claim`]).
    pub(super) async fn claim_one(&self, send_id: &str, lease: Duration) -> Result<Claim> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        for _ in 0..RETRIES {
            let Some(log) = self.logs().find_one(doc! { "_id": send_id }).await.map_err(self.err())? else {
                return Ok(Claim::Missing);
            };
            let now = super::docs::now();
            let status = SendStatus::parse(log.get_str("status").unwrap_or_default()).unwrap_or(SendStatus::Failed);
            let lease_until = log.get_datetime("lease_until").ok().copied();
            // The filter names what was read, so a log that changed meanwhile is read again.
            let read_attempt = log.get("attempt").cloned().unwrap_or(Bson::Null);
            let (filter, recovered) = match status {
                SendStatus::Pending => {
                    (doc! { "_id": send_id, "status": status.as_str(), "attempt": read_attempt }, false)
                }
                SendStatus::Sending => match lease_until {
                    Some(until) if until.timestamp_millis() > now.timestamp_millis() => {
                        let left = until.timestamp_millis() - now.timestamp_millis();
                        return Ok(Claim::Busy { retry_in: Duration::from_millis(left.unsigned_abs() + 1) });
                    }
                    // Recovered under the lease it had, so two recoverers cannot both win.
                    _ => {
                        let filter = doc! {
                            "_id": send_id, "status": status.as_str(), "attempt": read_attempt, "lease_until": lease_until,
                        };
                        (filter, true)
                    }
                },
                settled => return Ok(Claim::Settled(settled)),
            };
            if !recovered && self.is_opted_out(int(&log, "lead_id")).await? {
                let skip = doc! { "$set": {
                    "status": SendStatus::Skipped.as_str(),
                    "error_message": "opted out",
                    "updated_at": to_date(&now),
                } };
                if self.logs().update_one(filter, skip).await.map_err(self.err())?.matched_count > 0 {
                    return Ok(Claim::OptedOut);
                }
                continue;
            }
            // A recovered claim keeps its attempt: the same try is being finished, not a new one.
            let attempt = int(&log, "attempt");
            let attempt = if recovered { attempt.max(1) } else { attempt + 1 };
            let until = bson::DateTime::from_millis(now.timestamp_millis().saturating_add(lease_ms));
            let change = doc! { "$set": {
                "status": SendStatus::Sending.as_str(),
                "attempt": attempt,
                "lease_until": until,
                "updated_at": to_date(&now),
            } };
            let claimed = self
                .logs()
                .find_one_and_update(filter, change)
                .return_document(ReturnDocument::After)
                .await
                .map_err(self.err())?;
            if let Some(d) = claimed {
                let attempt = u32::try_from(int(&d, "attempt")).unwrap_or(u32::MAX);
                return Ok(Claim::Claimed { attempt, recovered, channel: text(&d, "channel") });
            }
        }
        Err(self.fail("a communication log kept changing while it was being claimed; try again"))
    }

    /// Returns `sending` logs to pending, giving the try back when `undo_attempt`.
    pub(super) async fn release(&self, send_ids: &[String], undo_attempt: bool) -> Result<()> {
        if send_ids.is_empty() {
            return Ok(());
        }
        let now = to_date(&super::docs::now());
        let set = doc! { "status": SendStatus::Pending.as_str(), "lease_until": Bson::Null, "updated_at": now };
        let filter = doc! { "_id": { "$in": send_ids.to_vec() }, "status": SendStatus::Sending.as_str() };
        if undo_attempt {
            let mut counted = filter.clone();
            counted.insert("attempt", doc! { "$gt": 0 });
            let change = doc! { "$set": set.clone(), "$inc": { "attempt": -1_i64 } };
            self.logs().update_many(counted, change).await.map_err(self.err())?;
        }
        self.logs().update_many(filter, doc! { "$set": set }).await.map_err(self.err())?;
        Ok(())
    }

    /// Applies one forward-only update; true when the log changed.
    pub(super) async fn apply_update(&self, u: &LogUpdate) -> Result<bool> {
        for _ in 0..RETRIES {
            let found = self
                .logs()
                .find_one(doc! { "_id": &u.send_id })
                .projection(doc! { "status": 1 })
                .await
                .map_err(self.err())?;
            let Some(current) = found.and_then(|d| SendStatus::parse(d.get_str("status").ok()?)) else {
                return Ok(false);
            };
            if !current.can_become(u.status) {
                return Ok(false);
            }
            let set = update_set(u, to_date(&super::docs::now()));
            let filter = doc! { "_id": &u.send_id, "status": current.as_str() };
            if self.logs().update_one(filter, doc! { "$set": set }).await.map_err(self.err())?.matched_count > 0 {
                return Ok(true);
            }
        }
        Err(self.fail("a communication log kept changing while it was being updated; try again"))
    }

    /// The latest logs `q` selects, newest change first.
    pub(super) async fn latest_logs(&self, q: &LogQuery) -> Result<Vec<CommunicationLog>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut filter = Document::new();
        if let Some(c) = q.campaign {
            filter.insert("campaign_id", c);
        }
        if let Some(lead) = q.lead {
            filter.insert("lead_id", lead);
        }
        if let Some(status) = q.status {
            filter.insert("status", status.as_str());
        }
        let cursor = self
            .logs()
            .find(filter)
            .sort(doc! { "updated_at": -1, "_id": 1 })
            .limit(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .await
            .map_err(self.err())?;
        Ok(collect(cursor).await.map_err(self.err())?.iter().map(log_from_doc).collect())
    }

    /// The log with this vendor message id (the `provider_message_id` index).
    pub(super) async fn log_by_vendor_id(&self, provider_message_id: &str) -> Result<Option<CommunicationLog>> {
        let found = self
            .logs()
            .find_one(on_key_index("provider_message_id", doc! { "$eq": provider_message_id }))
            .sort(doc! { "_id": 1 })
            .await
            .map_err(self.err())?;
        Ok(found.as_ref().map(log_from_doc))
    }

    /// Whether campaign `id` has a log still waiting or being sent.
    async fn has_unsettled_logs(&self, id: CampaignId) -> Result<bool> {
        let filter = doc! { "campaign_id": id, "status": { "$in": ["pending", "sending"] } };
        Ok(self.logs().find_one(filter).projection(doc! { "_id": 1 }).await.map_err(self.err())?.is_some())
    }

    /// RUNNING campaigns whose audience is fully expanded and settled become COMPLETED.
    pub(super) async fn complete_finished(&self) -> Result<Vec<CampaignId>> {
        let filter = doc! { "status": CampaignStatus::Running.as_str() };
        let cursor = self.campaigns().find(filter).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        let mut done = Vec::new();
        for c in collect(cursor).await.map_err(self.err())? {
            let id = int(&c, "_id");
            let logs = self.logs().count_documents(doc! { "campaign_id": id }).await.map_err(self.err())?;
            if logs < u64::try_from(int(&c, "audience")).unwrap_or(0) || self.has_unsettled_logs(id).await? {
                continue;
            }
            if !self.move_campaign(id, CampaignStatus::Running, CampaignStatus::Completed).await? {
                continue;
            }
            // A replay may have reset a log between the check and the move: undo the move then.
            if self.has_unsettled_logs(id).await? {
                self.move_campaign(id, CampaignStatus::Completed, CampaignStatus::Running).await?;
                continue;
            }
            done.push(id);
        }
        Ok(done)
    }

    /// Records the letter, then marks its log failed: a crash in between leaves the letter
    /// (replayable) and a log the sender will find again, never a failure without its letter.
    pub(super) async fn insert_dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let payload =
            bson::to_document(&letter.payload).map_err(|e| self.fail(format!("cannot store a dead letter: {e}")))?;
        let id = self.reserve_ids("dead_letters", 1).await?;
        let d = doc! {
            "_id": id,
            "send_id": &letter.payload.send_id,
            "campaign_id": letter.payload.campaign_id,
            "reason": &letter.reason,
            "payload": payload,
            "created_at": to_date(&super::docs::now()),
            "replayed_at": Bson::Null,
        };
        self.coll("dead_letters").insert_one(d).await.map_err(self.err())?;
        let failed = LogUpdate {
            find_by_provider_id: true,
            send_id: letter.payload.send_id.clone(),
            status: SendStatus::Failed,
            provider_message_id: None,
            error: Some(letter.reason.clone()),
        };
        self.apply_update(&failed).await?;
        Ok(())
    }

    pub(super) async fn dead_letters(
        &self,
        campaign: Option<CampaignId>,
        include_replayed: bool,
    ) -> Result<Vec<DeadLetterRecord>> {
        let mut filter = Document::new();
        if let Some(c) = campaign {
            filter.insert("campaign_id", c);
        }
        if !include_replayed {
            filter.insert("replayed_at", Bson::Null);
        }
        let cursor = self.coll("dead_letters").find(filter).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        let found = collect(cursor).await.map_err(self.err())?;
        found.iter().map(|d| dead_letter_from_doc(d).map_err(|e| self.fail(e))).collect()
    }

    /// Resets the logs of un-replayed letters to pending (attempt 0) and reopens their
    /// completed campaigns; returns the letters with fresh send jobs.
    pub(super) async fn replay(&self, campaign: Option<CampaignId>) -> Result<Vec<(i64, SendJob)>> {
        let letters = self.dead_letters(campaign, false).await?;
        for l in &letters {
            // Replay is the operator's explicit "try again": the one move back out of failed.
            let reset = doc! { "$set": {
                "status": SendStatus::Pending.as_str(),
                "attempt": 0_i64,
                "lease_until": Bson::Null,
                "error_message": Bson::Null,
                "updated_at": to_date(&super::docs::now()),
            } };
            let filter = doc! { "_id": &l.send_id, "status": SendStatus::Failed.as_str() };
            self.logs().update_one(filter, reset).await.map_err(self.err())?;
            self.move_campaign(l.campaign_id, CampaignStatus::Completed, CampaignStatus::Running).await?;
        }
        Ok(letters.into_iter().map(|l| (l.id, SendJob { attempt: 1, ..l.payload })).collect())
    }
}

/// What a forward-only update sets on its log.
fn update_set(u: &LogUpdate, now: bson::DateTime) -> Document {
    let mut set = doc! { "status": u.status.as_str(), "lease_until": Bson::Null, "updated_at": now };
    if let Some(id) = &u.provider_message_id {
        set.insert("provider_message_id", id);
    }
    if let Some(error) = &u.error {
        set.insert("error_message", error);
    }
    set
}
