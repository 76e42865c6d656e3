//! Campaigns and their communication logs: the records the pipeline moves forward, the one rule
//! that keeps it honest (a log's status only moves forward, see [`SendStatus::can_become`]),
//! the deterministic `send_id` that makes every step idempotent, and the JSON payloads of the
//! pipeline's topics (field names as the system we replace wrote them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub type CampaignId = i64;

/// Most lead ids in one `campaign.jobs` message.
pub const JOB_CHUNK: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub enum CampaignStatus {
    Draft,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "DRAFT",
            CampaignStatus::Running => "RUNNING",
            CampaignStatus::Paused => "PAUSED",
            CampaignStatus::Completed => "COMPLETED",
            CampaignStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether an operator (or the aggregator) may move a campaign from `self` to `to`.
    pub fn can_become(self, to: CampaignStatus) -> bool {
        use CampaignStatus::*;
        matches!(
            (self, to),
            (Draft, Running)
                | (Running, Paused)
                | (Paused, Running)
                | (Running, Completed)
                | (Draft | Running | Paused, Cancelled)
        )
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CampaignStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "DRAFT" => CampaignStatus::Draft,
            "RUNNING" => CampaignStatus::Running,
            "PAUSED" => CampaignStatus::Paused,
            "COMPLETED" => CampaignStatus::Completed,
            "CANCELLED" => CampaignStatus::Cancelled,
            other => return Err(format!("unknown campaign status '{other}'")),
        })
    }
}

/// Counts over a campaign's logs. `sent` counts every message the vendor accepted (so it
/// includes delivered and read ones), `delivered` includes read ones; `pending` is the audience
/// not yet settled either way (not expanded yet, waiting, or being sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct CampaignStats {
    pub audience: u64,
    pub sent: u64,
    pub failed: u64,
    pub delivered: u64,
    pub read: u64,
    pub pending: u64,
    pub uncertain: u64,
    pub skipped: u64,
    /// Messages never sent because the campaign was cancelled (0 for any other status).
    #[serde(default)]
    pub cancelled: u64,
}

impl CampaignStats {
    /// Stats from the number of logs in each status and the audience size.
    pub fn from_counts(audience: u64, counts: &[(SendStatus, u64)]) -> CampaignStats {
        let mut s = CampaignStats { audience, ..CampaignStats::default() };
        for &(status, n) in counts {
            match status {
                SendStatus::Sent => s.sent += n,
                SendStatus::Delivered => {
                    s.sent += n;
                    s.delivered += n;
                }
                SendStatus::Read => {
                    s.sent += n;
                    s.delivered += n;
                    s.read += n;
                }
                SendStatus::Failed => s.failed += n,
                SendStatus::Uncertain => s.uncertain += n,
                SendStatus::Skipped => s.skipped += n,
                SendStatus::Pending | SendStatus::Sending => {}
            }
        }
        s.pending = audience.saturating_sub(s.sent + s.failed + s.uncertain + s.skipped);
        s
    }

    /// The stats of a campaign in `status`: a cancelled campaign's unsent messages will never
    /// be sent, so they count as `cancelled` rather than `pending`.
    pub fn for_status(mut self, status: CampaignStatus) -> CampaignStats {
        if status == CampaignStatus::Cancelled {
            self.cancelled = self.pending;
            self.pending = 0;
        }
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Campaign {
    #[cfg_attr(feature = "api", schema(value_type = i64))]
    pub id: CampaignId,
    pub name: String,
    pub segment_id: i64,
    pub message_template: String,
    pub channel: String,
    pub created_by: Option<String>,
    pub status: CampaignStatus,
    pub stats: CampaignStats,
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
    /// How its messages are named (internal: a `send_id` is what the outside sees).
    #[serde(skip)]
    pub send_ids: SendIds,
}

impl Campaign {
    /// The send id of `lead`'s message in this campaign.
    pub fn send_id(&self, lead: i64) -> String {
        self.send_ids.send_id(self.id, lead)
    }
}

/// What `campaigns create` hands the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    pub name: String,
    pub segment_id: i64,
    pub message_template: String,
    pub channel: String,
    pub created_by: Option<String>,
    /// The scheme its messages are named by ([`SendIds::fresh`] for a new campaign).
    pub send_ids: SendIds,
}

/// Where one message stands. Order matters: `pending < sending < sent < delivered < read`;
/// `failed` and `skipped` are terminal; `uncertain` (a crash hid whether the vendor accepted
/// it) sits between sending and sent, so a later receipt can still settle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub enum SendStatus {
    Pending,
    Sending,
    Uncertain,
    Sent,
    Delivered,
    Read,
    Failed,
    Skipped,
}

impl SendStatus {
    pub const ALL: [SendStatus; 8] = [
        SendStatus::Pending,
        SendStatus::Sending,
        SendStatus::Uncertain,
        SendStatus::Sent,
        SendStatus::Delivered,
        SendStatus::Read,
        SendStatus::Failed,
        SendStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Pending => "pending",
            SendStatus::Sending => "sending",
            SendStatus::Uncertain => "uncertain",
            SendStatus::Sent => "sent",
            SendStatus::Delivered => "delivered",
            SendStatus::Read => "read",
            SendStatus::Failed => "failed",
            SendStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<SendStatus> {
        SendStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Position on the forward path (failed and skipped are off it).
    fn rank(self) -> Option<u8> {
        match self {
            SendStatus::Pending => Some(0),
            SendStatus::Sending => Some(1),
            SendStatus::Uncertain => Some(2),
            SendStatus::Sent => Some(3),
            SendStatus::Delivered => Some(4),
            SendStatus::Read => Some(5),
            SendStatus::Failed | SendStatus::Skipped => None,
        }
    }

    /// Whether a log may move from `self` to `to`: only forward, never out of failed or
    /// skipped, never back to pending (a retry releases a claim through its own store call).
    /// Receipts that arrive late, twice or out of order are refused here and change nothing.
    pub fn can_become(self, to: SendStatus) -> bool {
        use SendStatus::*;
        match (self, to) {
            (Failed | Skipped, _) | (_, Pending) => false,
            (Pending | Sending, Skipped) => true,
            (_, Skipped) => false,
            (Pending | Sending | Uncertain | Sent, Failed) => true,
            (_, Failed) => false,
            (Sending, Uncertain) => true,
            (_, Uncertain) => false,
            (from, to) => from.rank() < to.rank(),
        }
    }

    /// Nothing more for the pipeline to do (receipts may still move sent messages forward).
    pub fn is_settled(self) -> bool {
        !matches!(self, SendStatus::Pending | SendStatus::Sending)
    }
}

impl fmt::Display for SendStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a campaign names its messages: the `send_id` of each (campaign, lead), the log's key and
/// the vendor's idempotency key. Deterministic per campaign, so every worker that expands the
/// same chunk twice computes the same key, and the vendor sees the same key on every retry.
/// A campaign keeps the scheme it was created with: re-expanding a chunk under another scheme
/// would give its leads a second log, and a second message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendIds {
    /// Campaigns created before store schema 10: the 128-bit xxh3 of `"{campaign_id}:{lead_id}"`
    /// in lower-case hex (32 characters). Random keys: each chunk's log inserts dirtied pages all
    /// over the `send_id` index.
    #[default]
    Hashed,
    /// `{campaign_id:08x}{salt:08x}{lead_id:016x}` in lower-case hex (32 characters while the
    /// campaign id fits 32 bits): sorts by lead within a campaign, so a chunk's logs (expanded
    /// in lead order) append to the `send_id` index and a batch's lookups read neighbouring
    /// pages. The salt, random per campaign, keeps two stores that send through one vendor
    /// account from sharing idempotency keys (campaign 1's lead 1 in each).
    Sequential { salt: u32 },
}

impl SendIds {
    /// The scheme of a campaign created now: sequential, with a fresh salt.
    pub fn fresh() -> SendIds {
        SendIds::Sequential { salt: rand::random() }
    }

    /// The send id of `lead`'s message in `campaign`.
    pub fn send_id(self, campaign: CampaignId, lead: i64) -> String {
        match self {
            SendIds::Hashed => send_id(campaign, lead),
            SendIds::Sequential { salt } => format!("{:08x}{salt:08x}{:016x}", campaign as u64, lead as u64),
        }
    }

    /// The salt as stored (`None`: hashed).
    pub fn salt(self) -> Option<u32> {
        match self {
            SendIds::Hashed => None,
            SendIds::Sequential { salt } => Some(salt),
        }
    }

    /// The scheme from a stored salt (`None`, or an out-of-range value: hashed).
    pub fn from_salt(salt: Option<i64>) -> SendIds {
        match salt.and_then(|s| u32::try_from(s).ok()) {
            Some(salt) => SendIds::Sequential { salt },
            None => SendIds::Hashed,
        }
    }
}

/// The send id of (campaign, lead) under [`SendIds::Hashed`], the scheme of campaigns created
/// before store schema 10. A campaign's own ids come from [`Campaign::send_id`].
pub fn send_id(campaign: CampaignId, lead: i64) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(format!("{campaign}:{lead}").as_bytes()))
}

/// One (campaign, lead) message and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct CommunicationLog {
    pub send_id: String,
    #[cfg_attr(feature = "api", schema(value_type = i64))]
    pub campaign_id: CampaignId,
    pub lead_id: i64,
    pub status: SendStatus,
    pub attempt: u32,
    pub channel: String,
    pub provider_message_id: Option<String>,
    pub error_message: Option<String>,
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "api", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
}

/// A log the expander wants to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLog {
    pub send_id: String,
    pub lead_id: i64,
    /// Created settled (skipped: opted out, no phone) instead of pending, with this reason.
    pub skip_reason: Option<String>,
}

/// `campaign.jobs`: a chunk of a campaign's audience for the expander.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpandJob {
    #[serde(rename = "campaignId")]
    pub campaign_id: CampaignId,
    #[serde(rename = "leadIds")]
    pub lead_ids: Vec<i64>,
}

/// `campaign.send_jobs`: one message for the sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendJob {
    pub send_id: String,
    pub campaign_id: CampaignId,
    pub lead_id: i64,
    pub to: String,
    pub message: String,
    pub attempt: u32,
    /// The lead's `metadata.timezone`, for quiet hours at the recipient's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// `campaign.status_updates`: a log moving forward, from the sender or a receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub send_id: String,
    pub campaign_id: CampaignId,
    pub lead_id: i64,
    pub status: SendStatus,
    pub attempt: u32,
    pub error: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// The vendor's id, when the update carries one (sent, receipts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// True when the publisher wrote the update to the store before publishing it (the send
    /// worker records a send's outcome first): the status worker has nothing left to apply.
    /// Absent (false) in updates from anyone else, which the status worker applies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recorded: bool,
}

/// `campaign.dlq`: a send job given up on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub payload: SendJob,
    pub reason: String,
}

/// A dead letter as stored, for `crm dlq list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    pub id: i64,
    pub send_id: String,
    pub campaign_id: CampaignId,
    pub reason: String,
    pub payload: SendJob,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

/// One worker's last heartbeat, for `crm worker list` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: String,
    pub kind: String,
    pub pid: u32,
    pub started: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub processed: u64,
    /// Items per second over the last beat.
    pub rate: f64,
}

#[cfg(test)]
mod tests {
    use super::SendStatus::*;
    use super::*;

    #[test]
    fn a_status_update_is_recorded_only_when_it_says_so() {
        // The guide's payload, as the system we replace (or any other producer) writes it.
        let theirs = r#"{"send_id":"1:2","campaign_id":1,"lead_id":2,"status":"sent","attempt":1,
            "error":null,"timestamp":"2026-12-06T01:00:00Z"}"#;
        let mut u: StatusUpdate = serde_json::from_str(theirs).expect("the documented payload");
        assert!(!u.recorded, "an update from elsewhere must be applied");
        assert!(!serde_json::to_string(&u).expect("json").contains("recorded"));
        u.recorded = true;
        let ours = serde_json::to_string(&u).expect("json");
        assert!(ours.contains(r#""recorded":true"#), "{ours}");
        assert_eq!(serde_json::from_str::<StatusUpdate>(&ours).expect("round trip"), u);
    }

    #[test]
    fn status_moves_only_forward() {
        let path = [Pending, Sending, Sent, Delivered, Read];
        for (i, a) in path.iter().enumerate() {
            for (j, b) in path.iter().enumerate() {
                assert_eq!(a.can_become(*b), i < j && *b != Pending, "{a} -> {b}");
            }
        }
        assert!(Sent.can_become(Failed));
        assert!(!Delivered.can_become(Failed));
        assert!(!Failed.can_become(Sent));
        assert!(!Skipped.can_become(Sent));
        assert!(Pending.can_become(Skipped));
        assert!(!Sent.can_become(Skipped));
        assert!(Sending.can_become(Uncertain));
        assert!(!Sent.can_become(Uncertain));
        assert!(Uncertain.can_become(Delivered));
        assert!(!Uncertain.can_become(Sending));
    }

    #[test]
    fn late_or_repeated_receipts_change_nothing() {
        // read then delivered (out of order), then read again (a repeat)
        let mut s = Sent;
        for next in [Read, Delivered, Read] {
            if s.can_become(next) {
                s = next;
            }
        }
        assert_eq!(s, Read);
    }

    #[test]
    fn send_ids_are_deterministic_and_distinct() {
        assert_eq!(send_id(1, 2), send_id(1, 2));
        assert_ne!(send_id(1, 2), send_id(2, 1));
        assert_ne!(send_id(1, 23), send_id(12, 3));
        assert_eq!(send_id(1, 2).len(), 32);
    }

    #[test]
    fn sequential_send_ids_sort_by_lead_and_keep_the_old_length() {
        let ids = SendIds::Sequential { salt: 0xdead_beef };
        assert_eq!(ids.send_id(3, 255), "00000003deadbeef00000000000000ff");
        let leads: Vec<i64> = vec![1, 9, 10, 16, 255, 256, 1 << 40, i64::MAX];
        let keys: Vec<String> = leads.iter().map(|&l| ids.send_id(7, l)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys.iter().all(|k| k.len() == 32));
        // Another campaign's, another salt's and the hashed scheme's keys never meet these.
        assert_ne!(ids.send_id(7, 1), SendIds::Sequential { salt: 1 }.send_id(7, 1));
        assert_ne!(ids.send_id(7, 1), ids.send_id(8, 1));
        assert_ne!(ids.send_id(7, 1), SendIds::Hashed.send_id(7, 1));
        assert_eq!(SendIds::Hashed.send_id(7, 1), send_id(7, 1));
        // Stored as the salt: NULL (campaigns from before) is hashed.
        assert_eq!(SendIds::from_salt(ids.salt().map(i64::from)), ids);
        assert_eq!(SendIds::from_salt(None), SendIds::Hashed);
        assert_eq!(SendIds::from_salt(Some(-1)), SendIds::Hashed);
    }

    #[test]
    fn stats_count_each_message_once_per_level() {
        let s = CampaignStats::from_counts(10, &[(Read, 1), (Delivered, 2), (Sent, 3), (Failed, 1), (Skipped, 1)]);
        assert_eq!((s.sent, s.delivered, s.read, s.failed, s.skipped, s.pending), (6, 3, 1, 1, 1, 2));
    }

    #[test]
    fn payloads_use_the_topic_field_names() {
        let job = ExpandJob { campaign_id: 3, lead_ids: vec![1, 2] };
        assert_eq!(serde_json::to_string(&job).ok().as_deref(), Some(r#"{"campaignId":3,"leadIds":[1,2]}"#));
        let status: CampaignStatus = "paused".parse().unwrap_or(CampaignStatus::Draft);
        assert_eq!(status, CampaignStatus::Paused);
        assert!(CampaignStatus::Paused.can_become(CampaignStatus::Running));
        assert!(!CampaignStatus::Completed.can_become(CampaignStatus::Running));
    }
}
