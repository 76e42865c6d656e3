//! `crm optout …`: leads who asked not to be messaged. Campaigns skip them, at expansion and
//! again right before each send, so an opt-out recorded mid-campaign is honoured.

use super::Context;
use super::output::Out;
use crate::engine::lead::{LeadId, format_time, phone_key};
use crate::engine::store::campaigns::open_campaign_store;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum OptoutCmd {
    /// Opt a lead out of every campaign (by lead id or phone number)
    Add { lead: String },
    /// Opt a lead back in
    Remove { lead: String },
    /// List opted-out leads
    List,
}

impl OptoutCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let campaigns = open_campaign_store(&ctx.config.store.value).await?;
        let mut out = Out::new();
        match self {
            OptoutCmd::Add { lead } => {
                let id = resolve(ctx, &lead).await?;
                let changed = campaigns.opt_out(id).await?;
                report(ctx, &mut out, id, true, changed)?;
            }
            OptoutCmd::Remove { lead } => {
                let id = resolve(ctx, &lead).await?;
                let changed = campaigns.opt_in(id).await?;
                report(ctx, &mut out, id, false, changed)?;
            }
            OptoutCmd::List => {
                let all = campaigns.list_opt_outs().await?;
                if ctx.global.json {
                    let rows: Vec<_> =
                        all.iter().map(|(id, at)| serde_json::json!({ "lead_id": id, "opted_out_at": at })).collect();
                    out.json(&rows)?;
                } else {
                    for (id, at) in all {
                        out.line(format!("{id}\t{}", format_time(&at)))?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(0)
    }
}

/// A lead id, or a phone number (normalized as imports do) looked up in the identity index.
async fn resolve(ctx: &Context, reference: &str) -> anyhow::Result<LeadId> {
    let store = ctx.store().await?;
    let reference = reference.trim();
    if !reference.starts_with('+') {
        if let Ok(id) = reference.parse::<LeadId>() {
            if store.get_lead(id).await?.is_some() {
                return Ok(id);
            }
        }
    }
    let region = ctx.config.region()?;
    let phone = crate::engine::phone::normalize_phone(reference, region).unwrap_or_else(|_| reference.to_string());
    match store.find_lead_by_key(&phone_key(&phone)).await? {
        Some(lead) => Ok(lead.id),
        None => Err(crate::engine::Error::NotFound(format!("no lead has the id or phone '{reference}'")).into()),
    }
}

fn report(ctx: &Context, out: &mut Out, id: LeadId, opted_out: bool, changed: bool) -> anyhow::Result<()> {
    if ctx.global.json {
        out.json(&serde_json::json!({ "lead_id": id, "opted_out": opted_out, "changed": changed }))?;
    } else {
        let what = if opted_out { "opted out" } else { "opted in" };
        let note = if changed { "" } else { " (already)" };
        out.line(format!("Lead {id} {what}{note}."))?;
    }
    Ok(())
}
