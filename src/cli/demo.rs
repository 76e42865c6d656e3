//! `crm demo`: the whole product in one command. Imports the sample leads, saves a segment and
//! a campaign, starts the vendor simulator and the three workers in this process, runs the
//! campaign with the rate limit raised, shows progress, and prints the final stats.

use super::Context;
use super::output::Out;
use super::worker::{SendArgs, StatusArgs, Workers};
use crate::engine::bus;
use crate::engine::campaign::{CampaignStatus, NewCampaign};
use crate::engine::config::Source;
use crate::engine::import::{ImportOptions, ImportSource, import_csv};
use crate::engine::lead::ConflictPolicy;
use crate::engine::pipeline::launch::{create_campaign, run_campaign};
use crate::engine::pipeline::worker::shutdown_signal;
use crate::engine::segment::{NewSegment, Rule};
use crate::engine::sim::{SimConfig, SimServer};
use crate::engine::store::campaigns::open_campaign_store;
use crate::engine::store::{self};
use anyhow::Context as _;
use std::time::Duration;

/// The sample file, built in so the demo runs from anywhere.
const SAMPLE: &[u8] = include_bytes!("../../examples/leads.csv");

/// Try everything on sample data: import, segment, campaign, simulated sending
///
/// Uses --store / CRM_STORE when given; otherwise a fresh store in a new temporary directory
/// (its path is printed, so you can look around afterwards with --store).
#[derive(Debug, clap::Args)]
pub struct DemoCmd {
    /// Messages per minute for the demo's sender
    #[arg(long, value_name = "N", default_value_t = 6000)]
    pub rate_per_minute: u32,
}

impl DemoCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let mut out = Out::new();
        let store_url = if matches!(ctx.config.store.source, Source::Default) {
            let dir = std::env::temp_dir().join(format!(
                "crm-demo-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp()
            ));
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.join("crm.db").display().to_string()
        } else {
            ctx.config.store.value.clone()
        };
        out.line(format!("Store: {store_url}"))?;
        let leads = store::open(&store_url).await?;
        let campaigns = open_campaign_store(&store_url).await?;
        let bus = bus::open(&ctx.config.bus.value, &store_url).await?;

        let options = ImportOptions {
            policy: ConflictPolicy::Merge,
            dry_run: false,
            region: "GB".parse().ok(),
            overrides: Vec::new(),
            errors_file: None,
        };
        let source = ImportSource {
            name: "examples/leads.csv".into(),
            reader: Box::new(std::io::Cursor::new(SAMPLE)),
            size: Some(SAMPLE.len() as u64),
        };
        let report = import_csv(leads.as_ref(), source, &options, &()).await?;
        out.line(format!(
            "Imported the sample leads: {} inserted, {} updated, {} rejected (messy rows, on purpose).",
            report.inserted, report.updated, report.rejected
        ))?;

        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let rule = Rule::parse_text("visits >= 0").map_err(|e| anyhow::anyhow!("{e}"))?;
        let segment =
            leads.create_segment(NewSegment { name: format!("demo-{stamp}"), owner_user_id: None, rule }).await?;
        let template = "Hi {{first_name|there}}, thanks for your {{visits}} visits! 20% off this week.";
        let campaign = create_campaign(
            campaigns.as_ref(),
            NewCampaign {
                name: format!("demo-{stamp}"),
                segment_id: segment.id,
                message_template: template.into(),
                channel: "sim".into(),
                created_by: Some("demo".into()),
            },
            crate::engine::channel::max_length_for("sim").unwrap_or(4_096),
        )
        .await?;
        out.line(format!("Segment {} and campaign {} created: \"{template}\"", segment.id, campaign.id))?;

        let sim_config = SimConfig {
            delivered_after: Duration::from_millis(300),
            read_after: Duration::from_millis(900),
            ..SimConfig::default()
        };
        let sim = SimServer::start("127.0.0.1:0".parse()?, sim_config).await?;
        out.line(format!("Vendor simulator on {}", sim.url()))?;
        out.flush()?;

        let (trigger, shutdown) = shutdown_signal();
        super::worker::stop_on_signals(trigger.clone());
        let send = SendArgs {
            sim_url: sim.url(),
            rate_per_minute: self.rate_per_minute,
            concurrency: 10,
            max_attempts: 5,
            backoff_base_ms: 200,
            backoff_cap_ms: 5_000,
            breaker_cooldown_ms: 2_000,
            callback_url: None,
            lease_ms: 30_000,
        };
        let status = StatusArgs { webhook_listen: Some("127.0.0.1:0".parse()?) };
        let workers = Workers { store_url: store_url.clone(), bus_url: ctx.config.bus.value.clone() };
        let worker_shutdown = shutdown.clone();
        let running =
            tokio::spawn(
                async move { workers.run_all(Some(&send), true, Some(&status), worker_shutdown, |_| {}).await },
            );

        let audience = run_campaign(leads.as_ref(), campaigns.as_ref(), bus.as_ref(), campaign.id).await?;
        out.line(format!("Campaign running for {audience} leads."))?;
        out.flush()?;
        let final_stats = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let c = campaigns.get_campaign(campaign.id).await?.context("the demo campaign vanished")?;
            let s = c.stats;
            out.line(format!(
                "  {:<9} sent {:>4}/{:<4} delivered {:>4} read {:>4} failed {:>3} skipped {:>3}",
                c.status, s.sent, s.audience, s.delivered, s.read, s.failed, s.skipped
            ))?;
            out.flush()?;
            // Done once completed and the receipts have caught up (or shutdown was asked for).
            let receipts_in = s.delivered + s.failed >= s.sent;
            if (c.status == CampaignStatus::Completed && receipts_in) || shutdown.is_triggered() {
                break c;
            }
        };
        trigger.trigger();
        running.await.context("the workers panicked")??;
        let _ = sim.stop().await;
        let s = final_stats.stats;
        out.line(format!(
            "Final: campaign {} {} — audience {}, sent {}, delivered {}, read {}, failed {}, uncertain {}, skipped {} (no phone or opted out), pending {}.",
            final_stats.id, final_stats.status, s.audience, s.sent, s.delivered, s.read, s.failed, s.uncertain, s.skipped, s.pending
        ))?;
        out.line(format!("Look around: crm --store {store_url} campaigns show {}", final_stats.id))?;
        out.flush()?;
        Ok(0)
    }
}
