//! `crm optout …`: leads who asked not to be messaged. Campaigns skip them, at expansion and
//! again right before each send, so an opt-out recorded mid-campaign is honoured.

use super::Context;
use super::output::{Column, Out, Table};
use crate::cli::exit;
use crate::engine::app::App;
use crate::engine::lead::format_time;
use crate::engine::store::Access;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum OptoutCmd {
    /// Opt a lead out of every campaign (by lead id, email or phone number)
    Add {
        /// Lead id, or one of its emails or phone numbers
        lead: String,
    },
    /// Opt a lead back in
    Remove {
        /// Lead id, or one of its emails or phone numbers
        lead: String,
    },
    /// List opted-out leads
    List,
}

impl OptoutCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let app = ctx.app(Access::Existing).await?;
        let mut out = Out::new();
        match self {
            OptoutCmd::Add { lead } => {
                change(ctx, &app, &lead, true, &mut out).await?;
            }
            OptoutCmd::Remove { lead } => {
                change(ctx, &app, &lead, false, &mut out).await?;
            }
            OptoutCmd::List => {
                let all = app.list_opt_outs().await?;
                if ctx.global.json {
                    out.json(&all)?;
                } else {
                    let col = |header, flexible, right| Column { header, flexible, right };
                    let mut table = Table::new(vec![
                        col("LEAD", false, true),
                        col("NAME", true, false),
                        col("PHONE", false, false),
                        col("OPTED OUT AT", false, false),
                        col("SOURCE", true, false),
                    ]);
                    for o in &all {
                        table.push(vec![
                            o.lead_id.to_string(),
                            o.name.clone().unwrap_or_else(|| "(deleted)".into()),
                            o.phone.clone().unwrap_or_default(),
                            format_time(&o.opted_out_at),
                            o.source.clone().unwrap_or_default(),
                        ]);
                    }
                    out.table(&table)?;
                }
            }
        }
        out.flush()?;
        Ok(exit::OK)
    }
}

/// Opts a lead out (or back in) and reports it; shared with `crm leads opt-out|opt-in`.
pub async fn change(ctx: &Context, app: &App, lead: &str, opt_out: bool, out: &mut Out) -> anyhow::Result<u8> {
    let done = if opt_out { app.opt_out(lead).await? } else { app.opt_in(lead).await? };
    let id = done.lead.id;
    if ctx.global.json {
        out.json(&serde_json::json!({ "lead_id": id, "opted_out": done.opted_out, "changed": done.changed }))?;
    } else {
        let what = if done.opted_out { "opted out" } else { "opted in" };
        let note = if done.changed { "" } else { " (already)" };
        out.line(format!("Lead {id} {what}{note}."))?;
    }
    Ok(exit::OK)
}
