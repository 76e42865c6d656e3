//! Creating and running campaigns: the operations `crm campaigns create|run` and the dashboard
//! share. `run` resolves the audience with keyset pages of lead ids (never whole leads),
//! publishes every chunk in one bus transaction (all or none: a failed run publishes nothing and
//! can simply be run again) and only then marks the campaign RUNNING with its audience size.
//! Workers treat a job whose campaign is still a DRAFT as "not yet": they hold it back.

use crate::engine::bus::{Bus, Outgoing, topic};
use crate::engine::campaign::{Campaign, CampaignId, CampaignStatus, ExpandJob, JOB_CHUNK, NewCampaign};
use crate::engine::error::{Error, Result};
use crate::engine::store::Store;
use crate::engine::store::campaigns::CampaignStore;
use crate::engine::template::Template;
use chrono::Utc;

/// Lead ids fetched per audience query.
const ID_PAGE: usize = 50_000;

/// Validates the template (unknown fields are refused with their line and column; an empty one,
/// or one that could render longer than the channel's `max_length` characters, is refused too)
/// and saves a DRAFT campaign for the segment.
pub async fn create_campaign(campaigns: &dyn CampaignStore, new: NewCampaign, max_length: usize) -> Result<Campaign> {
    let name = new.name.trim();
    if name.is_empty() {
        return Err(Error::Usage("a campaign needs a name".into()));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Usage(format!(
            "'{name}' would read as a campaign id; add a letter (e.g. 'campaign-{name}')"
        )));
    }
    Template::parse(&new.message_template)
        .and_then(|t| t.check_sendable(max_length))
        .map_err(|e| Error::Usage(format!("template: {e}")))?;
    campaigns.create_campaign(new).await
}

/// The campaign a user named: an id (digits only) or a name, ignoring case.
pub async fn find_campaign(campaigns: &dyn CampaignStore, reference: &str) -> Result<Campaign> {
    let reference = reference.trim();
    let by_id = match reference.parse::<CampaignId>() {
        Ok(id) if reference.bytes().all(|b| b.is_ascii_digit()) => campaigns.get_campaign(id).await?,
        _ => None,
    };
    let found = match by_id {
        Some(c) => Some(c),
        None => campaigns.get_campaign_by_name(reference).await?,
    };
    found.ok_or_else(|| Error::NotFound(format!("no campaign has the id or name '{reference}'")))
}

/// Resolves a DRAFT campaign's audience, publishes its jobs and marks it RUNNING. Returns the
/// audience size.
pub async fn run_campaign(
    store: &dyn Store,
    campaigns: &dyn CampaignStore,
    bus: &dyn Bus,
    id: CampaignId,
) -> Result<u64> {
    let campaign =
        campaigns.get_campaign(id).await?.ok_or_else(|| Error::NotFound(format!("no campaign has the id {id}")))?;
    if campaign.status != CampaignStatus::Draft {
        return Err(Error::Conflict(format!("campaign {id} is {}; only a draft can be run", campaign.status)));
    }
    let segment = store
        .get_segment(campaign.segment_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("segment {} of campaign {id} no longer exists", campaign.segment_id)))?;
    let now = Utc::now();
    let (mut after, mut audience) = (0, 0u64);
    let mut jobs = Vec::new();
    loop {
        let ids = campaigns.audience_ids(&segment.rule_ast, now, after, ID_PAGE).await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        audience += ids.len() as u64;
        for chunk in ids.chunks(JOB_CHUNK) {
            let job = ExpandJob { campaign_id: id, lead_ids: chunk.to_vec() };
            let payload = serde_json::to_vec(&job).map_err(|e| Error::store(bus.describe(), e))?;
            jobs.push(Outgoing::new(Some(&id.to_string()), payload));
        }
    }
    if !jobs.is_empty() {
        bus.publish_batch(topic::JOBS, jobs).await?;
    }
    campaigns.start_campaign(id, audience).await?;
    tracing::info!(campaign = id, audience, "Campaign running.");
    Ok(audience)
}
