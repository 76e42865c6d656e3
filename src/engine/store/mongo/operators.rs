//! What an operator decides and sees: resolving messages whose outcome is unknown (UNCERTAIN),
//! why each channel account's next send waits, and the bounded reads a dashboard polls (dead
//! letters counted, the newest dead letters and opt-outs).
//!
//! No transaction: resolving is one conditional update per log whose filter requires it to be
//! UNCERTAIN (and of the campaign) at the moment of the write, so a log another process moved
//! meanwhile is left alone and not reported; a wait is one upsert per account that only
//! replaces an older one.

use super::docs::{date, int, opt_text, text, to_date};
use super::logs::{dead_letter_from_doc, log_from_doc};
use super::{MongoStore, collect, is_duplicate};
use crate::engine::campaign::{CampaignId, CampaignStatus, CommunicationLog, DeadLetterRecord, SendStatus};
use crate::engine::error::Result;
use crate::engine::store::campaigns::{AccountWait, OptOutRecord, Resolution};
use bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MongoStore {
    /// See `CampaignStore::resolve_uncertain`: the campaign's logs uncertain now (among
    /// `send_ids`, or all), by send id, as they are after the change.
    pub(super) async fn resolve(
        &self,
        campaign: CampaignId,
        send_ids: Option<&[String]>,
        resolution: Resolution,
    ) -> Result<Vec<CommunicationLog>> {
        let uncertain = SendStatus::Uncertain.as_str();
        let mut filter = doc! { "campaign_id": campaign, "status": uncertain };
        if let Some(ids) = send_ids {
            filter.insert("_id", doc! { "$in": ids.to_vec() });
        }
        let cursor = self.logs().find(filter).projection(doc! { "_id": 1 }).sort(doc! { "_id": 1 }).await;
        let candidates: Vec<String> =
            collect(cursor.map_err(self.err())?).await.map_err(self.err())?.iter().map(|d| text(d, "_id")).collect();
        let now = to_date(&super::docs::now());
        // Resending is the operator's explicit "try again": the one move back out of uncertain.
        let change = match resolution {
            Resolution::MarkSent => doc! { "$set": {
                "status": SendStatus::Sent.as_str(),
                "lease_until": Bson::Null,
                "error_message": "marked sent by an operator",
                "updated_at": now,
            } },
            Resolution::Resend => doc! { "$set": {
                "status": SendStatus::Pending.as_str(),
                "attempt": 0_i64,
                "lease_until": Bson::Null,
                "error_message": Bson::Null,
                "updated_at": now,
            } },
        };
        let mut changed = Vec::with_capacity(candidates.len());
        for id in &candidates {
            // Still this campaign's and still uncertain when written, or it is not ours to change.
            let filter = doc! { "_id": id, "campaign_id": campaign, "status": uncertain };
            let updated = self
                .logs()
                .find_one_and_update(filter, change.clone())
                .return_document(ReturnDocument::After)
                .await
                .map_err(self.err())?;
            changed.extend(updated.as_ref().map(log_from_doc));
        }
        // After the logs: a completion check racing this sees them pending and undoes its move
        // (see `complete_finished`), as for a replay.
        if resolution == Resolution::Resend && !changed.is_empty() {
            self.move_campaign(campaign, CampaignStatus::Completed, CampaignStatus::Running).await?;
        }
        Ok(changed)
    }

    /// Records an account's wait unless a newer one is stored: the filter only matches an
    /// older (or equally new) wait, and the upsert it then attempts collides on `_id` with the
    /// newer one, which leaves it alone.
    pub(super) async fn record_account_wait(&self, w: &AccountWait) -> Result<()> {
        let at = to_date(&w.updated_at);
        let filter = doc! { "_id": &w.account, "updated_at": { "$lte": at } };
        let change = doc! { "$set": {
            "next_at": to_date(&w.next_at),
            "reason": &w.reason,
            "detail": &w.detail,
            "updated_at": at,
        } };
        match self.coll("account_waits").update_one(filter, change).upsert(true).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Every account's last wait, by account name.
    pub(super) async fn load_account_waits(&self) -> Result<Vec<AccountWait>> {
        let cursor = self.coll("account_waits").find(doc! {}).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        Ok(collect(cursor)
            .await
            .map_err(self.err())?
            .iter()
            .map(|d| AccountWait {
                account: text(d, "_id"),
                next_at: date(d, "next_at").unwrap_or_default(),
                reason: text(d, "reason"),
                detail: text(d, "detail"),
                updated_at: date(d, "updated_at").unwrap_or_default(),
            })
            .collect())
    }

    /// Dead letters not yet replayed (all with `include_replayed`), counted by the server.
    pub(super) async fn dead_letter_count(&self, include_replayed: bool) -> Result<u64> {
        let filter = if include_replayed {
            Document::new()
        } else {
            doc! { "replayed_at": Bson::Null }
        };
        self.coll("dead_letters").count_documents(filter).await.map_err(self.err())
    }

    /// The newest dead letters (the highest ids), replayed or not, at most `n`.
    pub(super) async fn newest_dead_letters(&self, n: usize) -> Result<Vec<DeadLetterRecord>> {
        // A limit of 0 means "no limit" to the server.
        if n == 0 {
            return Ok(Vec::new());
        }
        let cursor = self
            .coll("dead_letters")
            .find(doc! {})
            .sort(doc! { "_id": -1 })
            .limit(limit(n))
            .await
            .map_err(self.err())?;
        let found = collect(cursor).await.map_err(self.err())?;
        found.iter().map(|d| dead_letter_from_doc(d).map_err(|e| self.fail(e))).collect()
    }

    /// The newest opt-outs (the same instant: the higher lead id first), at most `n`.
    pub(super) async fn newest_opt_outs(&self, n: usize) -> Result<Vec<OptOutRecord>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let cursor = self
            .coll("opt_outs")
            .find(doc! {})
            .sort(doc! { "at": -1, "_id": -1 })
            .limit(limit(n))
            .await
            .map_err(self.err())?;
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
}
