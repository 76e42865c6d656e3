//! `crm dlq …`: messages the sender gave up on (a permanent failure, or every try used), with
//! the reason, and replaying them once the cause is fixed.

use super::Context;
use super::output::{Column, Out, Table};
use crate::engine::bus::{self, Outgoing, topic};
use crate::engine::lead::format_time;
use crate::engine::store::campaigns::open_campaign_store;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// List dead letters not yet replayed
    List {
        /// Only this campaign's
        #[arg(long, value_name = "ID")]
        campaign: Option<i64>,
        /// Include dead letters already replayed
        #[arg(long)]
        all: bool,
    },
    /// Send dead letters again: their messages go back to pending with fresh tries
    Replay {
        /// Only this campaign's
        #[arg(long, value_name = "ID")]
        campaign: Option<i64>,
    },
}

impl DlqCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let store = open_campaign_store(&ctx.config.store.value).await?;
        let mut out = Out::new();
        match self {
            DlqCmd::List { campaign, all } => {
                let letters = store.list_dead_letters(campaign, all).await?;
                if ctx.global.json {
                    out.json(&letters)?;
                } else {
                    let col = |header, flexible, right| Column { header, flexible, right };
                    let mut table = Table::new(vec![
                        col("ID", false, true),
                        col("CAMPAIGN", false, true),
                        col("LEAD", false, true),
                        col("TO", false, false),
                        col("TRIES", false, true),
                        col("AT", false, false),
                        col("REASON", true, false),
                    ]);
                    for l in letters {
                        table.push(vec![
                            l.id.to_string(),
                            l.campaign_id.to_string(),
                            l.payload.lead_id.to_string(),
                            l.payload.to.clone(),
                            l.payload.attempt.to_string(),
                            format_time(&l.created_at),
                            l.reason,
                        ]);
                    }
                    out.table(&table)?;
                }
            }
            DlqCmd::Replay { campaign } => {
                let bus = bus::open(&ctx.config.bus.value, &ctx.config.store.value).await?;
                let jobs = store.prepare_replay(campaign).await?;
                let ids: Vec<i64> = jobs.iter().map(|(id, _)| *id).collect();
                let outgoing: Vec<Outgoing> = jobs
                    .iter()
                    .map(|(_, job)| Ok(Outgoing::new(Some(&job.send_id), serde_json::to_vec(job)?)))
                    .collect::<anyhow::Result<_>>()?;
                if !outgoing.is_empty() {
                    bus.publish_batch(topic::SEND_JOBS, outgoing).await?;
                }
                store.mark_replayed(&ids).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "replayed": ids.len() }))?;
                } else {
                    out.line(format!("Replayed {} dead letters; the send workers pick them up.", ids.len()))?;
                }
            }
        }
        out.flush()?;
        Ok(0)
    }
}
