//! Dead letters: messages the sender gave up on (a permanent failure, or every try used), and
//! replaying them once the cause is fixed.

use super::App;
use crate::engine::bus::{Outgoing, topic};
use crate::engine::campaign::{CampaignId, DeadLetterRecord};
use crate::engine::error::{Error, Result};
use tracing::info;

impl App {
    /// The campaign id a person named, if they named one (an unknown campaign is an error).
    async fn campaign_filter(&self, campaign: Option<&str>) -> Result<Option<CampaignId>> {
        match campaign {
            None => Ok(None),
            Some(reference) => Ok(Some(self.find_campaign(reference).await?.id)),
        }
    }

    /// Dead letters, oldest first; of one campaign (id or name) when given.
    pub async fn list_dead_letters(
        &self,
        campaign: Option<&str>,
        include_replayed: bool,
    ) -> Result<Vec<DeadLetterRecord>> {
        let campaign = self.campaign_filter(campaign).await?;
        self.campaign_store().list_dead_letters(campaign, include_replayed).await
    }

    /// Sends dead letters again: their logs go back to pending with fresh tries and their send
    /// jobs are published; returns how many. A crash in between leaves them replayable, and the
    /// sender's claim makes a double replay harmless.
    pub async fn replay_dead_letters(&self, campaign: Option<&str>) -> Result<usize> {
        let campaign = self.campaign_filter(campaign).await?;
        let bus = self.bus().await?;
        let store = self.campaign_store();
        let jobs = store.prepare_replay(campaign).await?;
        let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
        let outgoing: Vec<Outgoing> = jobs
            .iter()
            .map(|(_, job)| {
                let payload = serde_json::to_vec(job).map_err(|e| Error::store(bus.describe(), e))?;
                Ok(Outgoing::new(Some(&job.send_id), payload))
            })
            .collect::<Result<_>>()?;
        if !outgoing.is_empty() {
            bus.publish_batch(topic::SEND_JOBS, outgoing).await?;
        }
        store.mark_replayed(&ids).await?;
        info!(replayed = ids.len(), campaign = ?campaign, "Dead letters replayed.");
        Ok(ids.len())
    }
}
