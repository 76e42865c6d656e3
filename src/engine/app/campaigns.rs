//! Campaign operations: create (template and channel checked, nothing saved on any error), run,
//! pause, resume, cancel, delete, status, list, logs, and resolving uncertain messages.

use super::App;
use crate::engine::bus::{Outgoing, topic};
use crate::engine::campaign::{
    Campaign, CampaignId, CampaignStatus, CommunicationLog, NewCampaign, SendIds, SendStatus,
};
use crate::engine::error::{Error, Result};
use crate::engine::lead::LeadId;
use crate::engine::pipeline::{expander, launch};
pub use crate::engine::store::campaigns::{AccountWait, Resolution};
use crate::engine::store::campaigns::{LogQuery, LogUpdate};
use crate::engine::template::Template;
use std::collections::HashMap;
use tracing::info;

/// Which of a campaign's uncertain messages an operator resolves.
#[derive(Debug, Clone, PartialEq)]
pub enum UncertainSelection {
    /// These logs, by send id.
    SendIds(Vec<String>),
    /// The campaign's messages to these leads.
    Leads(Vec<LeadId>),
    /// Every uncertain message of the campaign.
    All,
}

/// What resolving uncertain messages did.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub campaign: Campaign,
    pub resolution: Resolution,
    /// The messages resolved, as they are now (resent ones: pending again, their jobs queued).
    pub resolved: Vec<CommunicationLog>,
    /// Send ids that were named but are not uncertain (or not of this campaign): left alone.
    pub left_alone: Vec<String>,
    /// Resent messages that could not be queued (lead deleted, opted out, no phone), by lead:
    /// they are marked skipped with this reason.
    pub skipped: Vec<(LeadId, String)>,
}

/// How waiting for a campaign ended ([`App::wait_campaign`]), with its status then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Waited {
    /// COMPLETED or CANCELLED.
    Finished(CampaignStatus),
    /// Still RUNNING or PAUSED when the time ran out.
    TimedOut(CampaignStatus),
}

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

/// A message whose outcome is unknown, with where it went, for an operator to resolve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UncertainMessage {
    pub send_id: String,
    pub lead_id: LeadId,
    /// The lead's phone now (None when the lead was deleted or has none).
    pub to: Option<String>,
    pub channel: String,
    /// When it became uncertain.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Why the outcome is unknown.
    pub reason: Option<String>,
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
            send_ids: SendIds::fresh(),
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

    /// Waits until campaign `id` finishes (COMPLETED or CANCELLED) or `within` runs out,
    /// reading only its status every `poll` — no stats, no bus. A DRAFT is refused: nothing
    /// would ever finish it.
    pub async fn wait_campaign(
        &self,
        id: CampaignId,
        poll: std::time::Duration,
        within: Option<std::time::Duration>,
    ) -> Result<Waited> {
        let deadline = within.map(|w| tokio::time::Instant::now() + w);
        let gone = || Error::NotFound(format!("campaign {id} was deleted while waiting for it"));
        loop {
            let status = self.campaign_store().campaign_status(id).await?.ok_or_else(gone)?;
            match status {
                CampaignStatus::Draft => {
                    return Err(Error::Usage(format!(
                        "campaign {id} is a DRAFT, so it will not finish: run it first (`crm campaigns run {id}`)"
                    )));
                }
                CampaignStatus::Completed | CampaignStatus::Cancelled => return Ok(Waited::Finished(status)),
                CampaignStatus::Running | CampaignStatus::Paused => {}
            }
            let now = tokio::time::Instant::now();
            let nap = match deadline {
                Some(deadline) if now >= deadline => return Ok(Waited::TimedOut(status)),
                Some(deadline) => poll.min(deadline - now),
                None => poll,
            };
            tokio::time::sleep(nap).await;
        }
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

    /// Resolves uncertain messages (sent or not, nobody knows: a channel without an idempotency
    /// key cannot be asked, so they are never resent on their own). `MarkSent` records them as
    /// sent; `Resend` puts them back to pending and queues their send jobs again (a COMPLETED
    /// campaign runs again until they settle). Only messages uncertain now are touched.
    pub async fn resolve_uncertain(
        &self,
        reference: &str,
        selection: UncertainSelection,
        resolution: Resolution,
    ) -> Result<Resolved> {
        let campaign = self.find_campaign(reference).await?;
        let named: Option<Vec<String>> = match selection {
            UncertainSelection::SendIds(ids) => Some(ids.into_iter().map(|id| id.trim().to_string()).collect()),
            UncertainSelection::Leads(leads) => Some(leads.iter().map(|&lead| campaign.send_id(lead)).collect()),
            UncertainSelection::All => None,
        };
        let mut queue = None;
        if resolution == Resolution::Resend {
            if campaign.status == CampaignStatus::Cancelled {
                return Err(Error::Conflict(format!(
                    "campaign {} is CANCELLED; its messages are not sent any more",
                    campaign.id
                )));
            }
            // Both checked before anything changes: a resend that could not be queued would
            // leave its messages pending with no job.
            let template = Template::parse(&campaign.message_template)
                .map_err(|e| Error::invalid("message_template", e.to_string()))?;
            queue = Some((self.bus().await?, template));
        }
        let store = self.campaign_store();
        let resolved = store.resolve_uncertain(campaign.id, named.as_deref(), resolution).await?;
        let left_alone: Vec<String> =
            named.unwrap_or_default().into_iter().filter(|id| !resolved.iter().any(|l| &l.send_id == id)).collect();
        let mut skipped = Vec::new();
        if let Some((bus, template)) = queue {
            let ids: Vec<LeadId> = resolved.iter().map(|l| l.lead_id).collect();
            let leads: HashMap<LeadId, _> =
                store.audience_leads(&ids).await?.into_iter().map(|entry| (entry.id, entry)).collect();
            let (mut outgoing, mut unsendable) = (Vec::new(), Vec::new());
            for log in &resolved {
                let job = match leads.get(&log.lead_id) {
                    Some(entry) => expander::send_job_for(&campaign, &template, entry),
                    None => Err("lead deleted"),
                };
                match job {
                    Ok(job) => {
                        let payload = serde_json::to_vec(&job).map_err(|e| Error::store(bus.describe(), e))?;
                        outgoing.push(Outgoing::new(Some(&job.send_id), payload));
                    }
                    Err(reason) => {
                        skipped.push((log.lead_id, reason.to_string()));
                        unsendable.push(LogUpdate {
                            find_by_provider_id: true,
                            send_id: log.send_id.clone(),
                            status: SendStatus::Skipped,
                            provider_message_id: None,
                            error: Some(reason.to_string()),
                        });
                    }
                }
            }
            if !outgoing.is_empty() {
                bus.publish_batch(topic::SEND_JOBS, outgoing).await?;
            }
            store.apply_log_updates(&unsendable).await?;
        }
        info!(
            campaign = campaign.id,
            ?resolution,
            resolved = resolved.len(),
            skipped = skipped.len(),
            "Uncertain messages resolved."
        );
        Ok(Resolved { campaign, resolution, resolved, left_alone, skipped })
    }

    /// Why the campaign's next send waits: the waits a send worker recorded for its channel
    /// account and that account's fallback that are still ahead (empty: nothing holds it back).
    pub async fn campaign_waits(&self, campaign: &Campaign) -> Result<Vec<AccountWait>> {
        let mut accounts = vec![campaign.channel.as_str()];
        // A configuration this process cannot build channels from still shows the primary's.
        let channels = self.channels().await.ok();
        if let Some(fallback) = channels.and_then(|c| c.fallback_for(&campaign.channel)) {
            accounts.push(fallback);
        }
        let now = chrono::Utc::now();
        let waits = self.campaign_store().account_waits().await?;
        Ok(waits.into_iter().filter(|w| accounts.contains(&w.account.as_str()) && w.next_at > now).collect())
    }

    /// The campaign's uncertain messages, most recent first, at most `limit`.
    pub async fn uncertain_messages(&self, campaign: CampaignId, limit: usize) -> Result<Vec<UncertainMessage>> {
        let store = self.campaign_store();
        let query = LogQuery { campaign: Some(campaign), lead: None, status: Some(SendStatus::Uncertain), limit };
        let logs = store.list_logs(&query).await?;
        let ids: Vec<LeadId> = logs.iter().map(|l| l.lead_id).collect();
        let phones: HashMap<LeadId, String> = store
            .audience_leads(&ids)
            .await?
            .into_iter()
            .filter_map(|entry| Some((entry.id, entry.lead?.phones.first()?.clone())))
            .collect();
        Ok(logs
            .into_iter()
            .map(|l| UncertainMessage {
                to: phones.get(&l.lead_id).cloned(),
                send_id: l.send_id,
                lead_id: l.lead_id,
                channel: l.channel,
                since: l.updated_at,
                reason: l.error_message,
            })
            .collect())
    }

    /// A lead's messages across campaigns, newest first.
    pub async fn lead_logs(&self, lead: i64, limit: usize) -> Result<Vec<CommunicationLog>> {
        let query = LogQuery { campaign: None, lead: Some(lead), status: None, limit };
        self.campaign_store().list_logs(&query).await
    }
}
