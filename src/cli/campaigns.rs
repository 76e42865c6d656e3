//! `crm campaigns …`: create a message for a segment, run it through the pipeline, watch its
//! progress, pause, resume or cancel it. Sending is done by `crm worker …` processes; `run`
//! only resolves the audience and queues it, so it returns at once.

use super::Context;
use super::output::{Column, Out, Table};
use crate::engine::app::App;
use crate::engine::app::campaigns::{Resolution, Transition, UncertainMessage, UncertainSelection, Waited};
use crate::engine::campaign::{Campaign, SendStatus};
use crate::engine::lead::format_time;
use crate::engine::store::Access;
use clap::{ArgGroup, Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) mod status;
use status::{humanize, stats_line, status};

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
    /// Print a campaign's status and stats, and when its next send happens if something holds
    /// it back (rate limit, quiet hours, daily cap, an open breaker, a paused account);
    /// --watch: every second until it finishes
    Status {
        /// Campaign id or name
        campaign: String,
        /// Keep printing until the campaign is COMPLETED or CANCELLED
        #[arg(long)]
        watch: bool,
    },
    /// Wait until a campaign finishes (COMPLETED or CANCELLED), then print its status and stats
    ///
    /// For scripts: it returns when the workers are done with the campaign. While it waits it
    /// reads only the campaign's status, ten times a second, which costs the store next to
    /// nothing (unlike polling `status` or `list`, which count the stats each time). A PAUSED
    /// campaign is waited for until it is resumed and finishes, or cancelled. Exit 0 when it
    /// finished; 4 when --timeout ran out first (the campaign keeps running); 2 for a DRAFT.
    #[command(after_help = "Examples:\n  crm campaigns run spring && crm campaigns wait spring --timeout 2h\n  \
        crm --json campaigns wait 3 | jq .stats")]
    Wait {
        /// Campaign id or name
        campaign: String,
        /// Give up after this long: 90s, 30m, 2h, 1d (default: wait as long as it takes)
        #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
        timeout: Option<i64>,
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
    /// Decide what happens to messages whose outcome is unknown (UNCERTAIN)
    ///
    /// A message is UNCERTAIN when the send may or may not have reached the recipient: the
    /// worker crashed between sending it and recording the answer, or the channel timed out
    /// after accepting the request. WhatsApp and Twilio cannot be asked whether they have it, so
    /// `crm` never sends these again on its own: resending might message the lead twice.
    /// Look at them with `crm campaigns show` (or `crm campaigns logs ID --status uncertain`),
    /// then either resend them (pending again; running workers send them, and a COMPLETED
    /// campaign runs until they settle) or mark them sent. Only messages that are UNCERTAIN
    /// now are changed; others you name are reported and left alone (exit 1).
    #[command(after_help = "Examples:\n  crm campaigns resolve spring --all --mark-sent\n  \
        crm campaigns resolve spring --lead 42 --lead 57 --resend\n  \
        crm campaigns resolve 3 --send-id 4f9d0c1e2b3a49587a6b5c4d3e2f1a0b --resend")]
    Resolve(ResolveArgs),
    /// A campaign's most recently changed messages, newest first
    #[command(
        after_help = "Examples:\n  crm campaigns logs spring\n  crm campaigns logs 3 --status uncertain --limit 100"
    )]
    Logs {
        /// Campaign id or name
        campaign: String,
        /// Only messages in this status (pending, sending, sent, delivered, read, failed, uncertain, skipped)
        #[arg(long, value_parser = parse_status)]
        status: Option<SendStatus>,
        /// How many messages to show
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        limit: u64,
    },
}

fn parse_status(text: &str) -> Result<SendStatus, String> {
    SendStatus::parse(&text.trim().to_ascii_lowercase()).ok_or_else(|| {
        format!(
            "'{text}' is not a status; expected pending, sending, sent, delivered, read, failed, uncertain or skipped"
        )
    })
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["send_id", "lead", "all"])))]
#[command(group(ArgGroup::new("decision").required(true).args(["resend", "mark_sent"])))]
pub struct ResolveArgs {
    /// Campaign id or name
    pub campaign: String,
    /// These messages, by send id (as `crm campaigns show` and `logs --json` print it);
    /// repeat the flag or separate ids with commas
    #[arg(long = "send-id", value_name = "ID", value_delimiter = ',')]
    pub send_id: Vec<String>,
    /// The campaign's messages to these leads (lead ids); repeat or separate with commas
    #[arg(long, value_name = "LEAD_ID", value_delimiter = ',')]
    pub lead: Vec<i64>,
    /// Every uncertain message of the campaign
    #[arg(long)]
    pub all: bool,
    /// Send them again (the lead may get the message twice if the first one did arrive)
    #[arg(long)]
    pub resend: bool,
    /// Record them as sent (nothing is sent)
    #[arg(long)]
    pub mark_sent: bool,
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
    /// The channel account to send through (see `crm config show`: [channels.NAME])
    #[arg(long, value_name = "ACCOUNT", default_value = "sim")]
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
        let access = Access::Existing; // a campaign needs a segment, so a store that exists
        let app = ctx.app(access).await?;
        let mut out = Out::new();
        let json = ctx.global.json;
        match self {
            CampaignsCmd::Create(args) => create(ctx, &app, args, &mut out).await?,
            CampaignsCmd::List => list(ctx, &app, &mut out).await?,
            CampaignsCmd::Show { campaign } => {
                let c = app.find_campaign(&campaign).await?;
                let by_channel = app.sent_by_channel(c.id).await?;
                let uncertain = app.uncertain_messages(c.id, SHOWN_UNCERTAIN).await?;
                show(ctx, &c, &by_channel, &uncertain, &mut out)?
            }
            CampaignsCmd::Status { campaign, watch } => status(ctx, &app, &campaign, watch, &mut out).await?,
            CampaignsCmd::Wait { campaign, timeout } => {
                let c = app.find_campaign(&campaign).await?;
                let within = timeout.map(|secs| Duration::from_secs(secs.unsigned_abs()));
                if let Waited::TimedOut(now) = app.wait_campaign(c.id, WAIT_POLL, within).await? {
                    eprintln!(
                        "crm: campaign {} ({}) is still {now} after {}; it goes on (wait again to follow it).",
                        c.id,
                        c.name,
                        humanize(timeout.unwrap_or_default().unsigned_abs())
                    );
                    return Ok(super::exit::TIMED_OUT);
                }
                status(ctx, &app, &c.id.to_string(), false, &mut out).await?
            }
            CampaignsCmd::Run { campaign } => {
                let (c, audience) = app.run_campaign(&campaign).await?;
                if json {
                    out.json(&serde_json::json!({ "id": c.id, "status": "RUNNING", "audience": audience }))?;
                } else {
                    out.line(format!(
                        "Campaign {} ({}) is RUNNING: {audience} leads queued. Workers send it (`crm worker all`); \
                         follow with `crm campaigns status {} --watch`.",
                        c.id, c.name, c.id
                    ))?;
                }
            }
            CampaignsCmd::Pause { campaign } => transition(ctx, app.pause_campaign(&campaign).await?, &mut out)?,
            CampaignsCmd::Resume { campaign } => transition(ctx, app.resume_campaign(&campaign).await?, &mut out)?,
            CampaignsCmd::Cancel { campaign } => transition(ctx, app.cancel_campaign(&campaign).await?, &mut out)?,
            CampaignsCmd::Delete { campaign } => {
                let c = app.delete_campaign(&campaign).await?;
                if json {
                    out.json(&serde_json::json!({ "deleted": c.id }))?;
                } else {
                    out.line(format!("Deleted campaign {} ({}).", c.id, c.name))?;
                }
            }
            CampaignsCmd::Resolve(args) => return resolve(ctx, &app, args, &mut out).await,
            CampaignsCmd::Logs { campaign, status, limit } => {
                let (_, logs) = app.campaign_logs(&campaign, status, limit as usize).await?;
                if json {
                    out.json(&logs)?;
                } else {
                    let col = |header, flexible, right| Column { header, flexible, right };
                    let mut table = Table::new(vec![
                        col("LEAD", false, true),
                        col("STATUS", false, false),
                        col("TRIES", false, true),
                        col("CHANNEL", false, false),
                        col("UPDATED", false, false),
                        col("ERROR", true, false),
                    ]);
                    for l in &logs {
                        table.push(vec![
                            l.lead_id.to_string(),
                            l.status.as_str().to_string(),
                            l.attempt.to_string(),
                            l.channel.clone(),
                            format_time(&l.updated_at),
                            l.error_message.clone().unwrap_or_default(),
                        ]);
                    }
                    out.table(&table)?;
                }
            }
        }
        out.flush()?;
        Ok(0)
    }
}

async fn create(ctx: &Context, app: &App, args: CreateArgs, out: &mut Out) -> anyhow::Result<()> {
    let text = match (&args.template, &args.template_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| crate::engine::Error::Input { path: path.display().to_string(), source: e })?,
        (None, None) => return Err(crate::engine::Error::Usage("give --template or --template-file".into()).into()),
    };
    let created = app
        .create_campaign(&args.name, &args.segment, text, &args.channel, args.created_by.clone(), args.preview_lead)
        .await?;
    let campaign = &created.campaign;
    if ctx.global.json {
        let mut value = serde_json::to_value(campaign)?;
        if let (Some(p), Some(obj)) = (&created.preview, value.as_object_mut()) {
            obj.insert("preview".into(), serde_json::Value::String(p.clone()));
        }
        out.json(&value)?;
    } else {
        out.line(format!(
            "Created campaign {} ({}) for segment '{}' as a DRAFT.",
            campaign.id, campaign.name, created.segment_name
        ))?;
        if let Some(p) = &created.preview {
            out.line(format!("Preview for lead {}: {p}", args.preview_lead.unwrap_or_default()))?;
        }
        out.line(format!("Start it with `crm campaigns run {}`.", campaign.id))?;
    }
    Ok(())
}

async fn list(ctx: &Context, app: &App, out: &mut Out) -> anyhow::Result<()> {
    let all = app.list_campaigns().await?;
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

/// How many uncertain messages `show` lists (the most recent; `logs --status uncertain` has all).
const SHOWN_UNCERTAIN: usize = 20;
/// How often `campaigns wait` reads the campaign's status.
const WAIT_POLL: Duration = Duration::from_millis(100);

fn show(
    ctx: &Context,
    c: &Campaign,
    by_channel: &[(String, u64)],
    uncertain: &[UncertainMessage],
    out: &mut Out,
) -> anyhow::Result<()> {
    if ctx.global.json {
        let mut shown = serde_json::to_value(c)?;
        let counts: serde_json::Map<String, serde_json::Value> =
            by_channel.iter().map(|(name, n)| (name.clone(), (*n).into())).collect();
        shown["sent_by_channel"] = counts.into();
        shown["uncertain"] = serde_json::to_value(uncertain)?;
        out.json(&shown)?;
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
    if !by_channel.is_empty() {
        let each: Vec<String> = by_channel.iter().map(|(name, n)| format!("{name} {n}")).collect();
        out.line(format!("Sent via:  {}", each.join(", ")))?;
    }
    if !uncertain.is_empty() {
        show_uncertain(c, uncertain, out)?;
    }
    Ok(())
}

/// The uncertain messages and how to resolve them.
fn show_uncertain(c: &Campaign, uncertain: &[UncertainMessage], out: &mut Out) -> anyhow::Result<()> {
    let total = c.stats.uncertain.max(uncertain.len() as u64);
    let listed =
        if total > uncertain.len() as u64 { format!(" (the latest {})", uncertain.len()) } else { String::new() };
    out.line(String::new())?;
    out.line(format!(
        "Uncertain: {total} message{} may or may not have arrived{listed}; they are never resent on their own.",
        if total == 1 { "" } else { "s" }
    ))?;
    let col = |header, flexible, right| Column { header, flexible, right };
    let mut table = Table::new(vec![
        col("LEAD", false, true),
        col("TO", false, false),
        col("CHANNEL", false, false),
        col("SINCE", false, false),
        col("SEND ID", false, false),
        col("WHY", true, false),
    ]);
    for m in uncertain {
        table.push(vec![
            m.lead_id.to_string(),
            m.to.clone().unwrap_or_else(|| "-".into()),
            m.channel.clone(),
            format_time(&m.since),
            m.send_id.clone(),
            m.reason.clone().unwrap_or_default(),
        ]);
    }
    out.table(&table)?;
    out.line(format!(
        "Resolve them: `crm campaigns resolve {} --all --resend` sends them again, `--mark-sent` records them as sent \
         (or name them with --lead / --send-id).",
        c.id
    ))?;
    Ok(())
}

async fn resolve(ctx: &Context, app: &App, args: ResolveArgs, out: &mut Out) -> anyhow::Result<u8> {
    let selection = if args.all {
        UncertainSelection::All
    } else if !args.lead.is_empty() {
        UncertainSelection::Leads(args.lead.clone())
    } else {
        UncertainSelection::SendIds(args.send_id.clone())
    };
    let resolution = if args.resend { Resolution::Resend } else { Resolution::MarkSent };
    let done = app.resolve_uncertain(&args.campaign, selection, resolution).await?;
    let c = &done.campaign;
    // Name what was left alone the way it was asked for: by lead when --lead was given.
    let left_alone: Vec<String> = done
        .left_alone
        .iter()
        .map(|id| match args.lead.iter().find(|&&lead| c.send_id(lead) == *id) {
            Some(lead) => format!("lead {lead}"),
            None => format!("send id {id}"),
        })
        .collect();
    if ctx.global.json {
        let resolved: Vec<serde_json::Value> = done
            .resolved
            .iter()
            .map(|l| serde_json::json!({ "send_id": l.send_id, "lead_id": l.lead_id, "status": l.status }))
            .collect();
        let skipped: Vec<serde_json::Value> =
            done.skipped.iter().map(|(lead, why)| serde_json::json!({ "lead_id": lead, "reason": why })).collect();
        out.json(&serde_json::json!({
            "id": c.id,
            "resolution": if args.resend { "resend" } else { "mark-sent" },
            "resolved": resolved,
            "skipped": skipped,
            "left_alone": left_alone,
        }))?;
    } else {
        let n = done.resolved.len() - done.skipped.len();
        let messages = |n: usize| if n == 1 { "message".to_string() } else { "messages".to_string() };
        if done.resolved.is_empty() {
            out.line(format!("Campaign {} ({}): no uncertain message matched; nothing changed.", c.id, c.name))?;
        } else if args.resend {
            out.line(format!(
                "Campaign {} ({}): {n} uncertain {} queued to send again; running workers send them \
                 (`crm worker all`).",
                c.id,
                c.name,
                messages(n)
            ))?;
        } else {
            out.line(format!("Campaign {} ({}): {n} uncertain {} marked sent.", c.id, c.name, messages(n)))?;
        }
        for (lead, why) in &done.skipped {
            out.line(format!("  lead {lead}: not resent ({why}); marked skipped"))?;
        }
        for what in &left_alone {
            out.line(format!("  {what}: not uncertain in this campaign; left alone"))?;
        }
    }
    out.flush()?;
    Ok(if left_alone.is_empty() { 0 } else { 1 })
}

fn transition(ctx: &Context, t: Transition, out: &mut Out) -> anyhow::Result<()> {
    let Transition { campaign: c, from, to } = t;
    if ctx.global.json {
        out.json(&serde_json::json!({ "id": c.id, "from": from, "status": to }))?;
    } else {
        out.line(format!("Campaign {} ({}): {from} → {to}.", c.id, c.name))?;
    }
    Ok(())
}
