//! `crm demo`: the whole product in one command. Imports the sample leads, saves a segment and
//! a campaign, starts the vendor simulator and the three workers in this process, runs the
//! campaign with the rate limit raised, shows progress, and prints the final stats.

use super::Context;
use super::output::Out;
use crate::engine::app::App;
use crate::engine::app::leads::open_import;
use crate::engine::app::shutdown_signal;
use crate::engine::app::workers::WorkerPlan;
use crate::engine::campaign::CampaignStatus;
use crate::engine::config::{Setting, Source};
use crate::engine::import::{ImportOptions, ImportSource};
use crate::engine::lead::ConflictPolicy;
use crate::engine::segment::Rule;
use crate::engine::sim::{SimConfig, SimServer};
use crate::engine::store::Access;
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;

/// The sample file, built in so the demo runs from anywhere.
const SAMPLE: &[u8] = include_bytes!("../../examples/leads.csv");

/// Try everything on sample data: import, segment, campaign, simulated sending
///
/// Always uses a fresh store in a new temporary directory (its path is printed, so you can
/// look around afterwards with --store), unless --store is given on this command line: then
/// the demo's leads, segment and campaign are added to that store.
#[derive(Debug, clap::Args)]
pub struct DemoCmd {
    /// Messages per minute for the demo's sender
    #[arg(long, value_name = "N", default_value_t = 6000)]
    pub rate_per_minute: u32,
}

fn setting<T>(value: T) -> Setting<T> {
    Setting { value, source: Source::Flag }
}

impl DemoCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let mut out = Out::new();
        let mut config = ctx.config.clone();
        // CRM_STORE or a config file name the user's real store: the demo never writes there.
        if config.store.source != Source::Flag {
            let dir = std::env::temp_dir().join(format!(
                "crm-demo-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp()
            ));
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            config.store = setting(dir.join("crm.db").display().to_string());
        }
        let sim_config = SimConfig {
            delivered_after: Duration::from_millis(300),
            read_after: Duration::from_millis(900),
            ..SimConfig::default()
        };
        let sim = SimServer::start("127.0.0.1:0".parse()?, sim_config).await?;
        let w = &mut config.worker;
        w.sim_url = setting(sim.url());
        w.rate_per_minute = setting(self.rate_per_minute);
        w.concurrency = setting(10);
        w.backoff_base_ms = setting(200);
        w.backoff_cap_ms = setting(5_000);
        w.breaker_cooldown_ms = setting(2_000);
        w.webhook_listen = setting(Some("127.0.0.1:0".into()));
        w.callback_url = setting(None);
        let store_url = config.store.value.clone();
        out.line(format!("Store: {store_url}"))?;
        let app = Arc::new(App::open(config, Access::CreateIfMissing).await?);

        let options =
            ImportOptions { policy: ConflictPolicy::Merge, region: "GB".parse().ok(), ..ImportOptions::default() };
        let source = ImportSource {
            name: "examples/leads.csv".into(),
            reader: Box::new(std::io::Cursor::new(SAMPLE)),
            size: Some(SAMPLE.len() as u64),
        };
        let opened = open_import(app.config(), source, None, &options)?;
        let report = app.import_leads(opened, &options, &()).await?;
        out.line(format!(
            "Imported the sample leads: {} inserted, {} updated, {} rejected (messy rows, on purpose).",
            report.inserted, report.updated, report.rejected
        ))?;

        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let rule = Rule::parse_text("visits >= 0").map_err(|e| anyhow::anyhow!("{e}"))?;
        let segment = app.create_segment(&format!("demo-{stamp}"), rule, None).await?;
        let template = "Hi {{first_name|there}}, thanks for your {{visits}} visits! 20% off this week.";
        let name = format!("demo-{stamp}");
        let created = app
            .create_campaign(&name, &segment.id.to_string(), template.into(), "sim", Some("demo".into()), None)
            .await?;
        let campaign = created.campaign;
        out.line(format!("Segment {} and campaign {} created: \"{template}\"", segment.id, campaign.id))?;
        out.line(format!("Vendor simulator on {}", sim.url()))?;
        out.flush()?;

        let (trigger, shutdown) = shutdown_signal();
        super::worker::stop_on_signals(trigger.clone());
        let workers = app.clone();
        let worker_shutdown = shutdown.clone();
        let plan = WorkerPlan { expand: true, send: true, status: true };
        let running = tokio::spawn(async move { workers.run_workers(plan, worker_shutdown, |_| {}).await });

        let (_, audience) = app.run_campaign(&campaign.id.to_string()).await?;
        out.line(format!("Campaign running for {audience} leads."))?;
        out.flush()?;
        let final_stats = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let c = app.get_campaign(campaign.id).await?.context("the demo campaign vanished")?;
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
