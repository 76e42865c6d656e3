//! The expander: turns `campaign.jobs` chunks (a campaign and up to a thousand lead ids) into
//! communication logs and `campaign.send_jobs`. Idempotent end to end: a chunk handled twice
//! inserts nothing new (logs are keyed by the deterministic `send_id`) and republishes send
//! jobs only for logs still pending, which the sender's claim turns into no-ops if they are
//! duplicates. The chunk is acknowledged only after its send jobs are published.

use super::worker::{Progress, Shutdown, heartbeat_loop, sleep_or_shutdown, worker_id};
use crate::engine::bus::{Bus, Delivery, Outgoing, topic};
use crate::engine::campaign::{Campaign, CampaignId, CampaignStatus, ExpandJob, NewLog, SendJob};
use crate::engine::error::Result;
use crate::engine::store::campaigns::{AudienceLead, CampaignStore};
use crate::engine::template::Template;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

pub const GROUP: &str = crate::engine::bus::group::EXPANDER;
const LEASE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

/// Runs an expander until `shutdown`; returns after the chunk in hand is done.
pub async fn run_expander(store: Arc<dyn CampaignStore>, bus: Arc<dyn Bus>, shutdown: Shutdown) -> Result<()> {
    let id = worker_id("expand");
    let progress = Arc::new(Progress::default());
    let beat = tokio::spawn(heartbeat_loop(store.clone(), id.clone(), "expand", progress.clone(), shutdown.clone()));
    tracing::info!(worker = %id, "Expander started.");
    let mut templates: HashMap<CampaignId, Option<(Template, Campaign)>> = HashMap::new();
    while !shutdown.is_triggered() {
        let step = async {
            let deliveries = bus.consume_wait(topic::JOBS, GROUP, 2, LEASE, POLL).await?;
            for delivery in deliveries {
                let leads = expand_chunk(store.as_ref(), bus.as_ref(), &delivery, &mut templates).await?;
                bus.ack(&delivery).await?;
                progress.add(leads as u64);
            }
            Ok::<_, crate::engine::Error>(())
        };
        if let Err(e) = step.await {
            // A backend hiccup must not kill the worker; the chunk's lease brings it back.
            tracing::warn!(worker = %id, error = %e, "Expanding failed; retrying shortly.");
            let mut s = shutdown.clone();
            sleep_or_shutdown(Duration::from_secs(1), &mut s).await;
        }
    }
    let _ = beat.await;
    tracing::info!(worker = %id, processed = progress.get(), "Expander stopped.");
    Ok(())
}

/// The message `entry` gets from `campaign` (its first phone, the rendered template, attempt 1),
/// or why it gets none: `lead deleted`, `opted out`, `no phone number` (the skipped log's reason).
pub(crate) fn send_job_for(
    campaign: &Campaign,
    template: &Template,
    entry: &AudienceLead,
) -> std::result::Result<SendJob, &'static str> {
    let Some(lead) = &entry.lead else { return Err("lead deleted") };
    if entry.opted_out {
        return Err("opted out");
    }
    let Some(to) = lead.phones.first().cloned() else { return Err("no phone number") };
    Ok(SendJob {
        send_id: campaign.send_id(entry.id),
        campaign_id: campaign.id,
        lead_id: entry.id,
        to,
        message: template.render(lead),
        attempt: 1,
        timezone: lead.metadata.get("timezone").cloned(),
    })
}

/// Expands one chunk; returns how many leads it held.
async fn expand_chunk(
    store: &dyn CampaignStore,
    bus: &dyn Bus,
    delivery: &Delivery,
    templates: &mut HashMap<CampaignId, Option<(Template, Campaign)>>,
) -> Result<usize> {
    let job: ExpandJob = match serde_json::from_slice(&delivery.payload) {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(message = delivery.id, error = %e, "Dropping an unreadable campaign job.");
            return Ok(0);
        }
    };
    match store.campaign_status(job.campaign_id).await? {
        None | Some(CampaignStatus::Cancelled) => return Ok(0),
        Some(_) => {}
    }
    if let Entry::Vacant(slot) = templates.entry(job.campaign_id) {
        let found = store.get_campaign(job.campaign_id).await?;
        slot.insert(found.and_then(|c| Template::parse(&c.message_template).ok().map(|t| (t, c))));
    }
    let Some(Some((template, campaign))) = templates.get(&job.campaign_id) else {
        tracing::warn!(campaign = job.campaign_id, "Campaign has no usable template; dropping its job.");
        return Ok(0);
    };
    let leads = store.audience_leads(&job.lead_ids).await?;
    let mut logs = Vec::with_capacity(leads.len());
    let mut jobs: HashMap<String, SendJob> = HashMap::with_capacity(leads.len());
    for entry in leads {
        let id = campaign.send_id(entry.id);
        let skip_reason = match send_job_for(campaign, template, &entry) {
            Ok(send) => {
                jobs.insert(id.clone(), send);
                None
            }
            Err(reason) => Some(reason.to_string()),
        };
        logs.push(NewLog { send_id: id, lead_id: entry.id, skip_reason });
    }
    let pending = store.insert_logs(job.campaign_id, &campaign.channel, &logs).await?;
    let outgoing: Vec<Outgoing> = pending
        .iter()
        .filter_map(|id| jobs.get(id))
        .filter_map(|job| serde_json::to_vec(job).ok().map(|p| Outgoing::new(Some(&job.send_id), p)))
        .collect();
    let published = outgoing.len();
    if !outgoing.is_empty() {
        bus.publish_batch(topic::SEND_JOBS, outgoing).await?;
    }
    tracing::debug!(campaign = job.campaign_id, leads = logs.len(), published, "Chunk expanded.");
    Ok(logs.len())
}
