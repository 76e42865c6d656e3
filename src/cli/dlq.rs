//! `crm dlq …`: messages the sender gave up on (a permanent failure, or every try used), with
//! the reason, and replaying them once the cause is fixed.

use super::Context;
use super::output::{Column, Out, Table};
use crate::engine::lead::format_time;
use crate::engine::store::Access;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// List dead letters not yet replayed
    List {
        /// Only this campaign's (id or name)
        #[arg(long, value_name = "CAMPAIGN")]
        campaign: Option<String>,
        /// Include dead letters already replayed
        #[arg(long)]
        all: bool,
    },
    /// Send dead letters again: their messages go back to pending with fresh tries
    Replay {
        /// Only this campaign's (id or name)
        #[arg(long, value_name = "CAMPAIGN")]
        campaign: Option<String>,
    },
}

impl DlqCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let app = ctx.app(Access::Existing).await?;
        let mut out = Out::new();
        match self {
            DlqCmd::List { campaign, all } => {
                let letters = app.list_dead_letters(campaign.as_deref(), all).await?;
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
                let n = app.replay_dead_letters(campaign.as_deref()).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "replayed": n }))?;
                } else {
                    out.line(format!("Replayed {n} dead letters; the send workers pick them up."))?;
                }
            }
        }
        out.flush()?;
        Ok(0)
    }
}
