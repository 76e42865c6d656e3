//! Campaign operations: create (template and channel checked, nothing saved on any error), run,
//! pause, resume, cancel, delete, status, list and logs.

use super::App;
use crate::engine::campaign::{Campaign, CampaignId, CampaignStatus, CommunicationLog, NewCampaign, SendStatus};
use crate::engine::error::{Error, Result};
use crate::engine::pipeline::launch;
use crate::engine::store::campaigns::LogQuery;
use crate::engine::template::Template;
use tracing::info;

/// A campaign moved from one status to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub campaign: Campaign,
    pub from: CampaignStatus,
    pub to: CampaignStatus,
}

/// A new campaign and, when asked for, its message as one lead would receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedCampaign {
    pub campaign: Campaign,
    pub segment_name: String,
    pub preview: Option<String>,
}

impl App {
    /// Validates the template against the campaign's channel account (fields, and the longest
    /// rendering against the account's maximum length), the segment and the preview lead, and
    /// only then saves a DRAFT campaign.
    pub async fn create_campaign(
        &self,
        name: &str,
        segment: &str,
        template: String,
        channel: &str,
        created_by: Option<String>,
        preview_lead: Option<i64>,
    ) -> Result<CreatedCampaign> {
        let channels = self.channels().await?;
        // An account this build cannot send through may still be named when its fallback can.
        let max_length = match channels.require(channel) {
            Ok(account) => account.channel.max_length(),
            Err(e) => match channels.fallback_for(channel).and_then(|f| channels.get(f)) {
                Some(fallback) => fallback.channel.max_length(),
                None => return Err(e),
            },
        };
        let segment = self.find_segment(segment).await?;
        let parsed = Template::parse(&template).map_err(|e| Error::Usage(format!("template: {e}")))?;
        let preview = match preview_lead {
            Some(id) => {
                let lead = self
                    .get_lead(id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("no lead has the id {id} (nothing was saved)")))?;
                Some(parsed.render(&lead))
            }
            None => None,
        };
        let new = NewCampaign {
            name: name.trim().to_string(),
            segment_id: segment.id,
            message_template: template,
            channel: channel.to_string(),
            created_by: created_by.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()),
        };
        let campaign = launch::create_campaign(self.campaign_store(), new, max_length).await?;
        info!(campaign = campaign.id, segment = segment.id, channel, "Campaign saved as a draft.");
        Ok(CreatedCampaign { campaign, segment_name: segment.name, preview })
    }

    /// The campaign a person named (id or name), with stats counted now.
    pub async fn find_campaign(&self, reference: &str) -> Result<Campaign> {
        launch::find_campaign(self.campaign_store(), reference).await
    }

    pub async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>> {
        self.campaign_store().get_campaign(id).await
    }

    pub async fn list_campaigns(&self) -> Result<Vec<Campaign>> {
        self.campaign_store().list_campaigns().await
    }

    /// Resolves a DRAFT campaign's audience, queues it and marks it RUNNING; returns the
    /// campaign and its audience size.
    pub async fn run_campaign(&self, reference: &str) -> Result<(Campaign, u64)> {
        let campaign = self.find_campaign(reference).await?;
        let bus = self.bus().await?;
        let audience =
            launch::run_campaign(self.leads_store(), self.campaign_store(), bus.as_ref(), campaign.id).await?;
        info!(campaign = campaign.id, audience, "Campaign queued for the workers.");
        Ok((campaign, audience))
    }

    /// Moves a campaign to `to` (pause: RUNNING → PAUSED, resume: PAUSED → RUNNING, cancel).
    pub async fn set_campaign_status(&self, reference: &str, to: CampaignStatus) -> Result<Transition> {
        let campaign = self.find_campaign(reference).await?;
        let from = self.campaign_store().set_campaign_status(campaign.id, to).await?;
        info!(campaign = campaign.id, %from, %to, "Campaign status changed.");
        Ok(Transition { campaign, from, to })
    }

    pub async fn pause_campaign(&self, reference: &str) -> Result<Transition> {
        self.set_campaign_status(reference, CampaignStatus::Paused).await
    }

    pub async fn resume_campaign(&self, reference: &str) -> Result<Transition> {
        self.set_campaign_status(reference, CampaignStatus::Running).await
    }

    pub async fn cancel_campaign(&self, reference: &str) -> Result<Transition> {
        self.set_campaign_status(reference, CampaignStatus::Cancelled).await
    }

    /// Deletes a DRAFT campaign; returns it.
    pub async fn delete_campaign(&self, reference: &str) -> Result<Campaign> {
        let campaign = self.find_campaign(reference).await?;
        self.campaign_store().delete_campaign(campaign.id).await?;
        info!(campaign = campaign.id, "Campaign deleted.");
        Ok(campaign)
    }

    /// A campaign's most recently changed messages, newest first (optionally in one status).
    pub async fn campaign_logs(
        &self,
        reference: &str,
        status: Option<SendStatus>,
        limit: usize,
    ) -> Result<(Campaign, Vec<CommunicationLog>)> {
        let campaign = self.find_campaign(reference).await?;
        let query = LogQuery { campaign: Some(campaign.id), lead: None, status, limit };
        let logs = self.campaign_store().list_logs(&query).await?;
        Ok((campaign, logs))
    }

    /// How many of the campaign's messages each channel account sent (failover shows here).
    pub async fn sent_by_channel(&self, id: CampaignId) -> Result<Vec<(String, u64)>> {
        self.campaign_store().sent_by_channel(id).await
    }

    /// A lead's messages across campaigns, newest first.
    pub async fn lead_logs(&self, lead: i64, limit: usize) -> Result<Vec<CommunicationLog>> {
        let query = LogQuery { campaign: None, lead: Some(lead), status: None, limit };
        self.campaign_store().list_logs(&query).await
    }
}
