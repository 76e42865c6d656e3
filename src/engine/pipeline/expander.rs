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
/// Send jobs per bus key: the jobs of a chunk go out in runs of this many neighbouring
/// messages (in lead order, so their logs are neighbouring rows), each run keyed by its first
/// `send_id`. Keyed one by one, a partition of six held every sixth message at random, and a
/// sender's batch touched rows all over a wide range: a 100,000-lead campaign on Kafka wrote
/// 530–555 MB from the send worker, 390–410 MB in runs of 128 (`benches/pipeline_split.sh`).
/// Short enough that a chunk still spreads over the partitions (and send workers) of a topic.
const KEY_RUN: usize = 128;

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
        let log = match send_job_for(campaign, template, &entry) {
            Ok(send) => {
                let log = NewLog { send_id: send.send_id.clone(), lead_id: entry.id, skip_reason: None };
                jobs.insert(send.send_id.clone(), send);
                log
            }
            Err(reason) => {
                NewLog { send_id: campaign.send_id(entry.id), lead_id: entry.id, skip_reason: Some(reason.to_string()) }
            }
        };
        logs.push(log);
    }
    let pending = store.insert_logs(job.campaign_id, &campaign.channel, &logs).await?;
    // Keyed by run: a run of neighbouring messages shares a partition, so a batch the sender
    // takes from it claims and records log rows that share table pages.
    let outgoing: Vec<Outgoing> = pending
        .chunks(KEY_RUN)
        .flat_map(|run| {
            let key = run.first().map(String::as_str);
            run.iter()
                .filter_map(|id| jobs.get(id))
                .filter_map(move |job| serde_json::to_vec(job).ok().map(|p| Outgoing::new(key, p)))
        })
        .collect();
    let published = outgoing.len();
    if !outgoing.is_empty() {
        bus.publish_batch(topic::SEND_JOBS, outgoing).await?;
    }
    tracing::debug!(campaign = job.campaign_id, leads = logs.len(), published, "Chunk expanded.");
    Ok(logs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bus::embedded::EmbeddedBus;
    use crate::engine::campaign::{NewCampaign, SendIds};
    use crate::engine::lead::LeadDraft;
    use crate::engine::store::Store;
    use crate::engine::store::sqlite::SqliteStore;

    /// A chunk's send jobs go out in lead order, keyed by run: each run of `KEY_RUN`
    /// neighbouring messages carries its first message's `send_id` as key.
    #[tokio::test]
    async fn send_jobs_are_keyed_in_runs_of_neighbouring_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crm.db");
        let store = SqliteStore::open(&path).await.expect("store");
        let mut leads = Vec::new();
        for i in 0..300 {
            let draft = LeadDraft { phones: vec![format!("+4479110{i:05}")], ..LeadDraft::default() };
            leads.push(store.add_lead(draft).await.expect("lead").id);
        }
        let new = NewCampaign {
            name: "runs".into(),
            segment_id: 1,
            message_template: "Hi".into(),
            channel: "sim".into(),
            created_by: None,
            send_ids: SendIds::fresh(),
        };
        let campaign = store.create_campaign(new).await.expect("campaign");
        let bus = EmbeddedBus::open(&path).await.expect("bus");
        let job = serde_json::to_vec(&ExpandJob { campaign_id: campaign.id, lead_ids: leads.clone() }).expect("json");
        bus.publish_batch(topic::JOBS, vec![Outgoing::new(Some("1"), job)]).await.expect("publish");
        let chunk = bus.consume(topic::JOBS, GROUP, 1, LEASE).await.expect("consume");
        let expanded = expand_chunk(&store, &bus, &chunk[0], &mut HashMap::new()).await.expect("expand");
        assert_eq!(expanded, 300);

        let jobs = bus.consume(topic::SEND_JOBS, "test", 1_000, LEASE).await.expect("send jobs");
        let got: Vec<(String, Option<String>)> = jobs
            .iter()
            .map(|d| {
                let job: SendJob = serde_json::from_slice(&d.payload).expect("send job");
                (job.send_id, d.key.clone())
            })
            .collect();
        let wanted: Vec<(String, Option<String>)> = leads
            .iter()
            .enumerate()
            .map(|(i, &l)| (campaign.send_id(l), Some(campaign.send_id(leads[i / KEY_RUN * KEY_RUN]))))
            .collect();
        assert_eq!(got, wanted);
    }
}
