//! What happens to a message a lead sends back, whichever channel it arrived on (the Twilio
//! inbound webhook, a WhatsApp session's events): the lead is found by phone; a stop word opts
//! them out, recording where it came from (`reply via ACCOUNT`); anything else is kept in the
//! lead's history, once per vendor message id. One function, so both channels behave the same.

use crate::engine::error::Result;
use crate::engine::lead::{LeadId, phone_key};
use crate::engine::store::Store;
use crate::engine::store::campaigns::{CampaignStore, Reply};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Where replies are matched and recorded, and which words opt a lead out.
#[derive(Clone)]
pub struct ReplyHandler {
    pub leads: Arc<dyn Store>,
    pub store: Arc<dyn CampaignStore>,
    /// A reply that is one of these (trimmed, ignoring case and a final `.` or `!`) opts out.
    pub stop_words: Vec<String>,
}

/// One message from a lead.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingReply {
    /// The channel account it arrived on.
    pub account: String,
    /// The sender's number, E.164.
    pub from: String,
    pub text: String,
    pub received_at: DateTime<Utc>,
    /// The vendor's id for it (a retried delivery is stored once).
    pub provider_message_id: Option<String>,
}

/// What a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// A stop word: the lead is opted out (`changed`: it was not already).
    OptedOut { lead: LeadId, changed: bool },
    /// Kept in the lead's history (`stored`: not a duplicate).
    Kept { lead: LeadId, stored: bool },
    /// No lead has this number: nothing recorded.
    UnknownSender,
}

impl ReplyHandler {
    pub fn is_stop_word(&self, text: &str) -> bool {
        let text = text.trim().trim_end_matches(['.', '!']).trim().to_lowercase();
        !text.is_empty() && self.stop_words.iter().any(|w| w.trim().to_lowercase() == text)
    }

    /// Opts the sender out or keeps the reply, as the module explains.
    pub async fn handle(&self, reply: &IncomingReply) -> Result<ReplyOutcome> {
        let Some(lead) = self.leads.find_lead_by_key(&phone_key(&reply.from)).await? else {
            tracing::info!(account = %reply.account, "A reply from a number no lead has; ignored.");
            return Ok(ReplyOutcome::UnknownSender);
        };
        if self.is_stop_word(&reply.text) {
            let changed = self.store.opt_out_via(lead.id, &format!("reply via {}", reply.account)).await?;
            tracing::info!(lead = lead.id, account = %reply.account, changed, "A stop word opted a lead out.");
            return Ok(ReplyOutcome::OptedOut { lead: lead.id, changed });
        }
        let kept = Reply {
            lead_id: lead.id,
            channel: reply.account.clone(),
            body: reply.text.clone(),
            received_at: reply.received_at,
            provider_message_id: reply.provider_message_id.clone(),
        };
        let stored = self.store.add_reply(&kept).await?;
        tracing::info!(lead = lead.id, account = %reply.account, stored, "A reply was kept in the lead's history.");
        Ok(ReplyOutcome::Kept { lead: lead.id, stored })
    }
}
