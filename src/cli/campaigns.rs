//! `crm campaigns …`: create a message for a segment, run it through the pipeline, watch its
//! progress, pause, resume or cancel it. Sending is done by `crm worker …` processes; `run`
//! only resolves the audience and queues it, so it returns at once.

use super::Context;
use super::output::{Column, Out, Table};
use crate::engine::audience::find_segment;
use crate::engine::bus;
use crate::engine::campaign::{Campaign, CampaignStatus, NewCampaign};
use crate::engine::lead::format_time;
use crate::engine::pipeline::launch::{create_campaign, find_campaign, run_campaign};
use crate::engine::store::campaigns::{CampaignStore, open_campaign_store};
use crate::engine::template::Template;
use anyhow::Context as _;
use clap::{ArgGroup, Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum CampaignsCmd {
    /// Save a message for a segment as a DRAFT campaign
    ///
    /// The template's {{placeholders}} are checked now: an unknown field is refused with its
    /// line and column (exit 2) and nothing is saved.
    #[command(after_help = "Examples:\n  crm campaigns create spring --segment big-spenders \\\n    \
        --template 'Hi {{first_name|there}}, 20% off this week in {{metadata.city|your city}}!'\n  \
        crm campaigns create spring --segment 3 --template-file msg.txt --preview-lead 42")]
    Create(CreateArgs),
    /// List campaigns with their status and progress
    List,
    /// Show one campaign: its template, status and stats
    Show {
        /// Campaign id or name
        campaign: String,
    },
    /// Print a campaign's status and stats (--watch: every second until it finishes)
    Status {
        /// Campaign id or name
        campaign: String,
        /// Keep printing until the campaign is COMPLETED or CANCELLED
        #[arg(long)]
        watch: bool,
    },
    /// Resolve the audience, queue it for the workers and mark the campaign RUNNING
    Run {
        /// Campaign id or name
        campaign: String,
    },
    /// Stop sending (within a second); `resume` continues where it stopped
    Pause { campaign: String },
    /// Continue a paused campaign
    Resume { campaign: String },
    /// Stop for good: messages not yet sent are dropped
    Cancel { campaign: String },
    /// Delete a DRAFT campaign
    Delete { campaign: String },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("text").required(true).args(["template", "template_file"])))]
pub struct CreateArgs {
    /// The campaign's name (unique, ignoring case)
    pub name: String,
    /// The audience: a segment id or name
    #[arg(long, value_name = "SEGMENT")]
    pub segment: String,
    /// The message, with {{field}} or {{field|default}} placeholders
    #[arg(long, value_name = "TEXT")]
    pub template: Option<String>,
    /// Read the message from a file
    #[arg(long, value_name = "FILE")]
    pub template_file: Option<PathBuf>,
    /// The channel to send through
    #[arg(long, default_value = "sim", value_parser = ["sim"])]
    pub channel: String,
    /// Who created it (free text)
    #[arg(long, value_name = "USER")]
    pub created_by: Option<String>,
    /// Also print the message as this lead would receive it
    #[arg(long, value_name = "LEAD_ID")]
    pub preview_lead: Option<i64>,
}

impl CampaignsCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let campaigns = open_campaign_store(&ctx.config.store.value).await?;
        let mut out = Out::new();
        match self {
            CampaignsCmd::Create(args) => create(ctx, campaigns.as_ref(), args, &mut out).await?,
            CampaignsCmd::List => list(ctx, campaigns.as_ref(), &mut out).await?,
            CampaignsCmd::Show { campaign } => {
                let c = find_campaign(campaigns.as_ref(), &campaign).await?;
                show(ctx, &c, &mut out)?;
            }
            CampaignsCmd::Status { campaign, watch } => status(ctx, campaigns, &campaign, watch, &mut out).await?,
            CampaignsCmd::Run { campaign } => {
                let c = find_campaign(campaigns.as_ref(), &campaign).await?;
                let store = ctx.store().await?;
                let bus = bus::open(&ctx.config.bus.value, &ctx.config.store.value).await?;
                let audience = run_campaign(store.as_ref(), campaigns.as_ref(), bus.as_ref(), c.id).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "id": c.id, "status": "RUNNING", "audience": audience }))?;
                } else {
                    out.line(format!(
                        "Campaign {} ({}) is RUNNING: {audience} leads queued. Workers send it (`crm worker all`); \
                         follow with `crm campaigns status {} --watch`.",
                        c.id, c.name, c.id
                    ))?;
                }
            }
            CampaignsCmd::Pause { campaign } => {
                transition(ctx, campaigns.as_ref(), &campaign, CampaignStatus::Paused, &mut out).await?
            }
            CampaignsCmd::Resume { campaign } => {
                transition(ctx, campaigns.as_ref(), &campaign, CampaignStatus::Running, &mut out).await?
            }
            CampaignsCmd::Cancel { campaign } => {
                transition(ctx, campaigns.as_ref(), &campaign, CampaignStatus::Cancelled, &mut out).await?
            }
            CampaignsCmd::Delete { campaign } => {
                let c = find_campaign(campaigns.as_ref(), &campaign).await?;
                campaigns.delete_campaign(c.id).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "deleted": c.id }))?;
                } else {
                    out.line(format!("Deleted campaign {} ({}).", c.id, c.name))?;
                }
            }
        }
        out.flush()?;
        Ok(0)
    }
}

async fn create(ctx: &Context, campaigns: &dyn CampaignStore, args: CreateArgs, out: &mut Out) -> anyhow::Result<()> {
    let text = match (&args.template, &args.template_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| crate::engine::Error::Input { path: path.display().to_string(), source: e })?,
        (None, None) => unreachable!("clap requires one of --template and --template-file"),
    };
    let max_length = crate::engine::channel::max_length_for(&args.channel)
        .ok_or_else(|| crate::engine::Error::Usage(format!("--channel: unknown channel {:?}", args.channel)))?;
    let store = ctx.store().await?;
    let segment = find_segment(store.as_ref(), &args.segment).await?;
    let campaign = create_campaign(
        campaigns,
        NewCampaign {
            name: args.name.trim().to_string(),
            segment_id: segment.id,
            message_template: text.clone(),
            channel: args.channel.clone(),
            created_by: args.created_by.clone(),
        },
        max_length,
    )
    .await?;
    let preview = match args.preview_lead {
        Some(id) => {
            let lead = store
                .get_lead(id)
                .await?
                .ok_or_else(|| crate::engine::Error::NotFound(format!("no lead has the id {id}")))?;
            Some(Template::parse(&text).map(|t| t.render(&lead)).unwrap_or_default())
        }
        None => None,
    };
    if ctx.global.json {
        let mut value = serde_json::to_value(&campaign)?;
        if let (Some(p), Some(obj)) = (&preview, value.as_object_mut()) {
            obj.insert("preview".into(), serde_json::Value::String(p.clone()));
        }
        out.json(&value)?;
    } else {
        out.line(format!(
            "Created campaign {} ({}) for segment '{}' as a DRAFT.",
            campaign.id, campaign.name, segment.name
        ))?;
        if let Some(p) = preview {
            out.line(format!("Preview for lead {}: {p}", args.preview_lead.unwrap_or_default()))?;
        }
        out.line(format!("Start it with `crm campaigns run {}`.", campaign.id))?;
    }
    Ok(())
}

async fn list(ctx: &Context, campaigns: &dyn CampaignStore, out: &mut Out) -> anyhow::Result<()> {
    let all = campaigns.list_campaigns().await?;
    if ctx.global.json {
        out.json(&all)?;
        return Ok(());
    }
    let col = |header, flexible, right| Column { header, flexible, right };
    let mut table = Table::new(vec![
        col("ID", false, true),
        col("NAME", true, false),
        col("STATUS", false, false),
        col("AUDIENCE", false, true),
        col("SENT", false, true),
        col("DELIVERED", false, true),
        col("FAILED", false, true),
        col("PENDING", false, true),
    ]);
    for c in &all {
        let s = c.stats;
        table.push(vec![
            c.id.to_string(),
            c.name.clone(),
            c.status.to_string(),
            s.audience.to_string(),
            s.sent.to_string(),
            s.delivered.to_string(),
            s.failed.to_string(),
            s.pending.to_string(),
        ]);
    }
    out.table(&table)?;
    Ok(())
}

fn show(ctx: &Context, c: &Campaign, out: &mut Out) -> anyhow::Result<()> {
    if ctx.global.json {
        out.json(c)?;
        return Ok(());
    }
    out.line(format!("Campaign {}: {}", c.id, c.name))?;
    out.line(format!("Status:    {}", c.status))?;
    out.line(format!("Segment:   {}", c.segment_id))?;
    out.line(format!("Channel:   {}", c.channel))?;
    out.line(format!(
        "Created:   {}{}",
        format_time(&c.created_at),
        c.created_by.as_ref().map(|u| format!(" by {u}")).unwrap_or_default()
    ))?;
    out.line(format!("Template:  {}", c.message_template))?;
    out.line(stats_line(c))?;
    Ok(())
}

fn stats_line(c: &Campaign) -> String {
    let s = c.stats;
    format!(
        "{} {}: audience {}, sent {}, delivered {}, read {}, failed {}, uncertain {}, skipped {}, pending {}",
        c.id, c.status, s.audience, s.sent, s.delivered, s.read, s.failed, s.uncertain, s.skipped, s.pending
    )
}

/// `75` → `1m15s`.
fn humanize(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

fn status_json(c: &Campaign) -> serde_json::Value {
    let s = c.stats;
    serde_json::json!({
        "id": c.id,
        "status": c.status,
        "stats": {
            "audience": s.audience, "pending": s.pending, "sent": s.sent, "delivered": s.delivered,
            "read": s.read, "failed": s.failed, "uncertain": s.uncertain,
        }
    })
}

async fn status(
    ctx: &Context,
    campaigns: Arc<dyn CampaignStore>,
    reference: &str,
    watch: bool,
    out: &mut Out,
) -> anyhow::Result<()> {
    let id = find_campaign(campaigns.as_ref(), reference).await?.id;
    // Rate and ETA while watching: messages settled since the watch began, per second.
    let mut first: Option<(std::time::Instant, u64)> = None;
    loop {
        let c = campaigns.get_campaign(id).await?.with_context(|| format!("campaign {id} was deleted"))?;
        let settled = c.stats.audience.saturating_sub(c.stats.pending);
        if ctx.global.json {
            if watch {
                out.line(serde_json::to_string(&status_json(&c))?)?;
            } else {
                out.json(&status_json(&c))?;
            }
        } else if let Some((since, from)) = first.filter(|_| c.status == CampaignStatus::Running) {
            let secs = since.elapsed().as_secs_f64().max(0.001);
            let rate = settled.saturating_sub(from) as f64 / secs;
            let eta = if rate > 0.0 {
                format!("ETA {}", humanize((c.stats.pending as f64 / rate).ceil() as u64))
            } else {
                "ETA unknown".to_string()
            };
            out.line(format!("{} — {rate:.1}/s, {eta}", stats_line(&c)))?;
        } else {
            out.line(stats_line(&c))?;
        }
        first.get_or_insert((std::time::Instant::now(), settled));
        out.flush()?;
        let finished = matches!(c.status, CampaignStatus::Completed | CampaignStatus::Cancelled);
        if !watch || finished {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn transition(
    ctx: &Context,
    campaigns: &dyn CampaignStore,
    reference: &str,
    to: CampaignStatus,
    out: &mut Out,
) -> anyhow::Result<()> {
    let c = find_campaign(campaigns, reference).await?;
    let from = campaigns.set_campaign_status(c.id, to).await?;
    if ctx.global.json {
        out.json(&serde_json::json!({ "id": c.id, "from": from, "status": to }))?;
    } else {
        out.line(format!("Campaign {} ({}): {from} → {to}.", c.id, c.name))?;
    }
    Ok(())
}
