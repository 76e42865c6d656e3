//! `trait CampaignStore`: what the campaign pipeline persists — campaigns, one communication
//! log per (campaign, lead), dead letters, worker heartbeats and lead opt-outs.
//!
//! It is a trait of its own, beside [`super::Store`], so that campaigns could land while the
//! lead and segment store was still changing; [`super::OpenedStore`] opens both from one URL.
//! Every call that the pipeline repeats on redelivery is idempotent, and calls take batches,
//! because the pipeline's throughput is bounded by write transactions.

use crate::engine::campaign::{
    Campaign, CampaignId, CampaignStatus, CommunicationLog, DeadLetter, DeadLetterRecord, Heartbeat, NewCampaign,
    NewLog, SendJob, SendStatus,
};
use crate::engine::error::Result;
use crate::engine::lead::{Lead, LeadId};
use crate::engine::segment::Rule;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What a sender's claim on a log found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The log is now `sending` under this worker's lease, at this attempt (1 the first time).
    /// `channel` is the account the log was created for. `recovered`: it was found `sending` with an expired lease (a worker died mid-send), so
    /// the vendor may already have it; ask the channel before sending again.
    Claimed { attempt: u32, recovered: bool, channel: String },
    /// Another worker holds a live lease; look again after this long.
    Busy { retry_in: Duration },
    /// Already sent, failed or beyond: the job is a duplicate.
    Settled(SendStatus),
    /// The lead opted out; the log was marked skipped.
    OptedOut,
    /// No such log (its campaign was deleted).
    Missing,
}

/// A log moving forward (forward-only: a move that [`SendStatus::can_become`] refuses is
/// ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct LogUpdate {
    pub send_id: String,
    pub status: SendStatus,
    pub provider_message_id: Option<String>,
    pub error: Option<String>,
    /// Whether the log must be found by `provider_message_id` later
    /// ([`CampaignStore::log_by_provider_id`]): true for channels whose receipts name only the
    /// vendor's id (Twilio, WhatsApp). False lets a store skip indexing the id — the simulator's
    /// receipts name our send id, and indexing random vendor ids costs a random index page per
    /// message.
    pub find_by_provider_id: bool,
}

/// Which logs [`CampaignStore::list_logs`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub campaign: Option<CampaignId>,
    pub lead: Option<LeadId>,
    pub status: Option<SendStatus>,
    pub limit: usize,
}

/// A lead for the expander: the lead (None when it was deleted) and whether it opted out.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceLead {
    pub id: LeadId,
    pub lead: Option<Lead>,
    pub opted_out: bool,
}

/// A message a lead sent back (an inbound reply that was not a stop word).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reply {
    pub lead_id: LeadId,
    /// The channel account it arrived on.
    pub channel: String,
    pub body: String,
    pub received_at: DateTime<Utc>,
    /// The vendor's id for the message; a reply is stored once per id.
    pub provider_message_id: Option<String>,
}

/// An opted-out lead, with where the opt-out came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OptOutRecord {
    pub lead_id: LeadId,
    pub at: DateTime<Utc>,
    /// `manual`, `reply via twilio`, …; None for opt-outs recorded before sources were kept.
    pub source: Option<String>,
}

/// Why a channel account's next send waits, and until when, as a sender last noted it (so
/// `crm campaigns status` and dashboards in any process can say when the next send happens).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccountWait {
    pub account: String,
    /// The next send is not before this (a time in the past: the account is not waiting).
    pub next_at: DateTime<Utc>,
    /// A stable name: `rate_limit`, `jitter`, `quiet_hours`, `daily_cap`, `breaker_open`,
    /// `account_paused`.
    pub reason: String,
    /// The reason in words (`quiet hours at the recipient's until 08:00 (UTC+01:00)`).
    pub detail: String,
    pub updated_at: DateTime<Utc>,
}

/// What an operator decided about messages whose outcome is unknown (UNCERTAIN: the vendor may
/// or may not have them, and a channel without an idempotency key cannot be asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Send again: the log goes back to pending with a fresh try.
    Resend,
    /// The recipient got it: the log becomes sent.
    MarkSent,
}

/// The connection state a channel account last reported (e.g. a WhatsApp session's), as JSON
/// the channel defines, so `crm whatsapp status` and dashboards in any process can show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChannelStateRecord {
    pub account: String,
    pub state: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait CampaignStore: Send + Sync {
    fn describe(&self) -> String;

    /// `Error::Conflict` when the name is taken.
    async fn create_campaign(&self, campaign: NewCampaign) -> Result<Campaign>;
    /// The campaign with stats counted from its logs.
    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>>;
    async fn get_campaign_by_name(&self, name: &str) -> Result<Option<Campaign>>;
    async fn list_campaigns(&self) -> Result<Vec<Campaign>>;
    /// Statuses only (cheap), for workers that check pause/cancel often.
    async fn campaign_status(&self, id: CampaignId) -> Result<Option<CampaignStatus>>;
    /// Deletes a DRAFT campaign; `Error::Conflict` for any other status; false if none.
    async fn delete_campaign(&self, id: CampaignId) -> Result<bool>;
    /// Moves a campaign to `to` if [`CampaignStatus::can_become`] allows it; returns the status
    /// it had (`Error::NotFound` if none, `Error::Conflict` if the move is not allowed).
    async fn set_campaign_status(&self, id: CampaignId, to: CampaignStatus) -> Result<CampaignStatus>;
    /// DRAFT → RUNNING, recording the audience size.
    async fn start_campaign(&self, id: CampaignId, audience: u64) -> Result<()>;
    /// Ids of the leads `rule` matches with id > `after`, by id, at most `limit` (keyset pages).
    async fn audience_ids(&self, rule: &Rule, now: DateTime<Utc>, after: LeadId, limit: usize) -> Result<Vec<LeadId>>;
    async fn audience_leads(&self, ids: &[LeadId]) -> Result<Vec<AudienceLead>>;

    /// Inserts the logs that do not exist yet (idempotent on `send_id`) and returns the
    /// send ids of those among `logs` that are pending now, new or not.
    async fn insert_logs(&self, campaign: CampaignId, channel: &str, logs: &[NewLog]) -> Result<Vec<String>>;
    /// Claims each log for sending (pending → sending, leased for `lease`), in one transaction.
    async fn claim_logs(&self, send_ids: &[String], lease: Duration) -> Result<Vec<Claim>>;
    /// Returns claimed logs to pending: a retry comes later (`undo_attempt` false: the try
    /// counted), or nothing was tried (paused, breaker open, shutdown: the try is given back).
    async fn release_logs(&self, send_ids: &[String], undo_attempt: bool) -> Result<()>;
    /// Applies updates forward-only in one transaction; returns how many changed a log.
    async fn apply_log_updates(&self, updates: &[LogUpdate]) -> Result<usize>;
    async fn log_status(&self, send_id: &str) -> Result<Option<SendStatus>>;
    /// The most recently changed logs, newest first: of one campaign or of all, optionally of
    /// one lead and in one status, at most `limit`.
    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<CommunicationLog>>;
    /// RUNNING campaigns whose audience is fully expanded and settled become COMPLETED;
    /// returns their ids.
    async fn complete_finished_campaigns(&self) -> Result<Vec<CampaignId>>;

    /// Records a dead letter and marks its log failed, in one transaction.
    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<()>;
    async fn list_dead_letters(
        &self,
        campaign: Option<CampaignId>,
        include_replayed: bool,
    ) -> Result<Vec<DeadLetterRecord>>;
    /// How many dead letters there are (not yet replayed unless `include_replayed`), without
    /// reading them.
    async fn count_dead_letters(&self, include_replayed: bool) -> Result<u64>;
    /// The newest dead letters, replayed or not, newest first, at most `limit`.
    async fn recent_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterRecord>>;
    /// Resets the logs of un-replayed dead letters to pending (attempt 0) and returns them
    /// with send jobs to publish; call [`CampaignStore::mark_replayed`] once published.
    async fn prepare_replay(&self, campaign: Option<CampaignId>) -> Result<Vec<(i64, SendJob)>>;
    async fn mark_replayed(&self, ids: &[i64]) -> Result<()>;

    async fn beat(&self, heartbeat: &Heartbeat) -> Result<()>;
    async fn list_heartbeats(&self) -> Result<Vec<Heartbeat>>;

    /// Returns false when the lead was already opted out.
    async fn opt_out(&self, lead: LeadId) -> Result<bool>;
    async fn opt_in(&self, lead: LeadId) -> Result<bool>;
    async fn list_opt_outs(&self) -> Result<Vec<(LeadId, DateTime<Utc>)>>;

    // Inbound traffic and failover (Twilio): status callbacks name the vendor's id, replies and
    // stop words arrive from leads, and a message may leave through a fallback account.

    /// The log whose vendor message id is `provider_message_id`, if any.
    async fn log_by_provider_id(&self, provider_message_id: &str) -> Result<Option<CommunicationLog>>;
    /// Records that a `sending` log is going out through another channel account (failover);
    /// false when the log is not `sending` (nothing changed).
    async fn set_log_channel(&self, send_id: &str, channel: &str) -> Result<bool>;
    /// [`CampaignStore::opt_out`] recording where the opt-out came from; false when the lead
    /// was already opted out (the first source is kept).
    async fn opt_out_via(&self, lead: LeadId, source: &str) -> Result<bool>;
    /// Every opt-out with its source, by lead.
    async fn list_opt_out_records(&self) -> Result<Vec<OptOutRecord>>;
    /// The newest opt-outs, newest first (ties: the higher lead id first), at most `limit`.
    async fn recent_opt_outs(&self, limit: usize) -> Result<Vec<OptOutRecord>>;
    /// Keeps a reply in the lead's history; false when a reply with the same vendor message id
    /// is already stored (a retried webhook).
    async fn add_reply(&self, reply: &Reply) -> Result<bool>;
    /// A lead's replies, newest first, at most `limit`.
    async fn list_replies(&self, lead: LeadId, limit: usize) -> Result<Vec<Reply>>;
    /// How many of a campaign's messages each account sent (logs sent, delivered or read, by
    /// the account the log names), by account name.
    async fn sent_by_channel(&self, campaign: CampaignId) -> Result<Vec<(String, u64)>>;
    /// How many messages `account` has sent since `since`, over all campaigns: logs that name
    /// the account, sent, delivered, read or uncertain (it may have left), last changed since
    /// then. Seeds a restarted sender's daily cap, so a restart does not reset it.
    async fn sent_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64>;
    /// Records `account`'s channel state (one row per account; the newer `updated_at` wins, so
    /// a late write from a stopped process cannot overwrite a newer state).
    async fn set_channel_state(
        &self,
        account: &str,
        state: &serde_json::Value,
        updated_at: DateTime<Utc>,
    ) -> Result<()>;
    /// Every account's last recorded state, by account name.
    async fn channel_states(&self) -> Result<Vec<ChannelStateRecord>>;

    /// Records why `wait.account`'s next send waits (one row per account; the newer
    /// `updated_at` wins, as for [`CampaignStore::set_channel_state`]).
    async fn set_account_wait(&self, wait: &AccountWait) -> Result<()>;
    /// Every account's last recorded wait, by account name.
    async fn account_waits(&self) -> Result<Vec<AccountWait>>;

    /// Resolves `campaign`'s logs that are UNCERTAIN now — those among `send_ids`, or every one
    /// when `send_ids` is None — in one transaction; logs in any other status (or of another
    /// campaign) are left alone. `MarkSent`: they become sent. `Resend`: they go back to pending
    /// (attempt 0, no lease, error cleared) and a COMPLETED campaign becomes RUNNING again, so
    /// the caller can publish their send jobs. Returns the logs it changed, as they are now.
    async fn resolve_uncertain(
        &self,
        campaign: CampaignId,
        send_ids: Option<&[String]>,
        resolution: Resolution,
    ) -> Result<Vec<CommunicationLog>>;
}
