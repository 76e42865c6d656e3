//! `crm campaigns status [--watch]`: a campaign's counts, with rate and ETA while watching, and
//! why each account's next send waits.

use super::super::Context;
use super::super::output::Out;
use crate::engine::app::App;
use crate::engine::app::campaigns::AccountWait;
use crate::engine::app::snapshot::QueueDepth;
use crate::engine::campaign::{Campaign, CampaignStatus};
use crate::engine::lead::format_time;
use anyhow::Context as _;
use std::time::Duration;

pub(super) fn stats_line(c: &Campaign) -> String {
    let s = c.stats;
    format!(
        "{} {}: audience {}, sent {}, delivered {}, read {}, failed {}, uncertain {}, skipped {}, pending {}{}",
        c.id,
        c.status,
        s.audience,
        s.sent,
        s.delivered,
        s.read,
        s.failed,
        s.uncertain,
        s.skipped,
        s.pending,
        if s.cancelled > 0 { format!(", cancelled {}", s.cancelled) } else { String::new() }
    )
}

/// `75` → `1m15s`.
pub(super) fn humanize(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

fn status_json(c: &Campaign, waits: &[AccountWait], queues: &Queues) -> serde_json::Value {
    let waits: Vec<serde_json::Value> = waits
        .iter()
        .map(|w| serde_json::json!({ "account": w.account, "next_at": w.next_at, "reason": w.reason, "detail": w.detail }))
        .collect();
    let mut json = serde_json::json!({ "id": c.id, "status": c.status, "stats": c.stats, "waits": waits });
    match queues {
        Queues::Read(q) => json["queues"] = serde_json::json!(q),
        Queues::Unavailable(why) => json["queues_error"] = serde_json::json!(why),
        Queues::NotRead => {}
    }
    json
}

/// The pipeline's queue depths as a status shows them.
pub(crate) enum Queues {
    /// Not asked for (the campaign is not running or paused).
    NotRead,
    Read(Vec<QueueDepth>),
    /// The bus did not answer (in time): why.
    Unavailable(String),
}

/// How long a status waits for the bus's depths before showing the store's counts without them.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Reads the queue depths, giving up after [`QUEUE_WAIT`] (a broker down must not hold up a
/// status that the store can answer).
pub(crate) async fn read_queues(app: &App) -> Queues {
    match tokio::time::timeout(QUEUE_WAIT, app.queue_depths()).await {
        Ok(Ok(q)) => Queues::Read(q),
        Ok(Err(e)) => Queues::Unavailable(e.to_string()),
        Err(_) => Queues::Unavailable(format!("the bus did not answer within {} s", QUEUE_WAIT.as_secs())),
    }
}

/// `  queues: campaign.jobs 0 · campaign.send_jobs 1200 (1000 ready, 200 in flight) · …`; on
/// Kafka the counts are the consumer groups' lag.
pub(crate) fn queues_line(queues: &Queues) -> Option<String> {
    match queues {
        Queues::NotRead => None,
        Queues::Unavailable(why) => Some(format!("  queues: unknown ({why})")),
        Queues::Read(q) => {
            let parts: Vec<String> = q
                .iter()
                .map(|q| {
                    let d = q.depth;
                    if d.in_flight + d.delayed == 0 {
                        format!("{} {}", q.topic, d.total())
                    } else {
                        format!(
                            "{} {} ({} ready, {} in flight, {} delayed)",
                            q.topic,
                            d.total(),
                            d.ready,
                            d.in_flight,
                            d.delayed
                        )
                    }
                })
                .collect();
            Some(format!("  queues: {}", parts.join(" · ")))
        }
    }
}

/// `next send on whatsapp at 2026-03-02T08:00:00Z (in 1h59m): quiet hours at the recipient's …`
fn wait_line(w: &AccountWait) -> String {
    let secs = (w.next_at - chrono::Utc::now()).num_seconds().max(0) as u64;
    let when = if secs < 1 { "in under a second".to_string() } else { format!("in {}", humanize(secs)) };
    format!("  next send on {} at {} ({when}): {}", w.account, format_time(&w.next_at), w.detail)
}

pub(super) async fn status(
    ctx: &Context,
    app: &App,
    reference: &str,
    watch: bool,
    out: &mut Out,
) -> anyhow::Result<()> {
    let id = app.find_campaign(reference).await?.id;
    // Rate and ETA while watching: messages settled since the watch began, per second.
    let mut first: Option<(std::time::Instant, u64)> = None;
    loop {
        let c = app.get_campaign(id).await?.with_context(|| format!("campaign {id} was deleted"))?;
        let settled = c.stats.audience.saturating_sub(c.stats.pending);
        let waits = if c.status == CampaignStatus::Running && c.stats.pending > 0 {
            app.campaign_waits(&c).await?
        } else {
            Vec::new()
        };
        let queues = if matches!(c.status, CampaignStatus::Running | CampaignStatus::Paused) {
            read_queues(app).await
        } else {
            Queues::NotRead
        };
        if ctx.global.json {
            if watch {
                out.line(serde_json::to_string(&status_json(&c, &waits, &queues))?)?;
            } else {
                out.json(&status_json(&c, &waits, &queues))?;
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
        if !ctx.global.json {
            for w in &waits {
                out.line(wait_line(w))?;
            }
            if let Some(line) = queues_line(&queues) {
                out.line(line)?;
            }
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
