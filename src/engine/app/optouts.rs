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
}

impl App {
    /// Opts out the lead `reference` names (id, email or phone).
    pub async fn opt_out(&self, reference: &str) -> Result<OptChange> {
        let lead = self.resolve_lead(reference).await?;
        let changed = self.campaign_store().opt_out(lead.id).await?;
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
        for (lead_id, opted_out_at) in self.campaign_store().list_opt_outs().await? {
            let lead = self.get_lead(lead_id).await?;
            all.push(OptOut {
                lead_id,
                name: lead.as_ref().map(|l| l.name.clone()),
                phone: lead.and_then(|l| l.phones.first().cloned()),
                opted_out_at,
            });
        }
        Ok(all)
    }
}
