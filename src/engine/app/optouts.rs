//! Opt-outs: leads who asked not to be messaged. Campaigns skip them at expansion and again
//! right before each send, so an opt-out recorded mid-campaign is honoured.

use super::App;
use crate::engine::error::Result;
use crate::engine::lead::{Lead, LeadId};
use chrono::{DateTime, Utc};
use tracing::info;

/// An opt-out or opt-in and whether it changed anything.
#[derive(Debug, Clone, PartialEq)]
pub struct OptChange {
    pub lead: Lead,
    pub opted_out: bool,
    /// False when the lead already was in that state.
    pub changed: bool,
}

/// An opted-out lead, for listings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OptOut {
    pub lead_id: LeadId,
    /// None when the lead has been deleted since.
    pub name: Option<String>,
    pub phone: Option<String>,
    pub opted_out_at: DateTime<Utc>,
    /// Where the opt-out came from: `manual` (the CLI, the API), `reply via twilio` (a stop
    /// word), or None for opt-outs recorded before sources were kept.
    pub source: Option<String>,
}

/// The source recorded for opt-outs an operator makes.
pub const MANUAL: &str = "manual";

impl App {
    /// Opts out the lead `reference` names (id, email or phone).
    pub async fn opt_out(&self, reference: &str) -> Result<OptChange> {
        let lead = self.resolve_lead(reference).await?;
        let changed = self.campaign_store().opt_out_via(lead.id, MANUAL).await?;
        info!(lead = lead.id, changed, "Opt-out recorded.");
        Ok(OptChange { lead, opted_out: true, changed })
    }

    pub async fn opt_in(&self, reference: &str) -> Result<OptChange> {
        let lead = self.resolve_lead(reference).await?;
        let changed = self.campaign_store().opt_in(lead.id).await?;
        info!(lead = lead.id, changed, "Opt-in recorded.");
        Ok(OptChange { lead, opted_out: false, changed })
    }

    pub async fn list_opt_outs(&self) -> Result<Vec<OptOut>> {
        let mut all = Vec::new();
        for record in self.campaign_store().list_opt_out_records().await? {
            let lead = self.get_lead(record.lead_id).await?;
            all.push(OptOut {
                lead_id: record.lead_id,
                name: lead.as_ref().map(|l| l.name.clone()),
                phone: lead.and_then(|l| l.phones.first().cloned()),
                opted_out_at: record.at,
                source: record.source,
            });
        }
        Ok(all)
    }
}
