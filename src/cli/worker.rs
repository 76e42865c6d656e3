//! `crm worker …`: the campaign pipeline's long-running processes. Run any number of each kind,
//! on any machines sharing the store and bus; Ctrl-C or SIGTERM stops one gracefully (it takes
//! no new work, finishes or releases what it holds, and exits 0). Every flag here is also a
//! `[worker]` key in the config file and a `CRM_*` variable (see `crm config show`).

use super::output::{Column, Out, Table};
use super::{Context, say};
use crate::engine::app::workers::WorkerPlan;
use crate::engine::app::{ShutdownTrigger, shutdown_signal};
use crate::engine::config::WorkerFlags;
use crate::engine::lead::format_time;
use crate::engine::store::Access;
use clap::{Args, Subcommand};
use std::net::SocketAddr;

#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// Expand queued campaign chunks into messages (one log and send job per lead)
    Expand,
    /// Send messages through every configured channel account, under the rate limit and retry policy
    Send(SendArgs),
    /// Apply status updates and delivery receipts; complete finished campaigns
    Status(StatusArgs),
    /// All three in one process (the easy way to run campaigns on one machine)
    #[command(after_help = "Examples:\n  crm sim &\n  crm worker all --webhook-listen 127.0.0.1:8090\n  \
        crm worker all --sim-url http://127.0.0.1:8089 --rate-per-minute 600 --concurrency 10")]
    All {
        #[command(flatten)]
        send: SendArgs,
        #[command(flatten)]
        status: StatusArgs,
    },
    /// List workers by their last heartbeat (stale: no heartbeat for 5 s)
    List {
        /// Also list workers gone for more than an hour
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct SendArgs {
    /// The `sim` channel account's simulator URL [env: CRM_SIM_URL; default: http://127.0.0.1:8089]
    #[arg(long, value_name = "URL")]
    pub sim_url: Option<String>,
    /// Messages per minute per channel account and process; 0 = unlimited [default: 30]
    #[arg(long, value_name = "N")]
    pub rate_per_minute: Option<u32>,
    /// Sends in flight at once, per channel account [default: 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
    /// Tries per message before it goes to the dead-letter queue [default: 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,
    /// First retry backoff; doubles per try (with full jitter) [default: 1000]
    #[arg(long, value_name = "MS")]
    pub backoff_base_ms: Option<u64>,
    /// Longest retry backoff [default: 60000]
    #[arg(long, value_name = "MS")]
    pub backoff_cap_ms: Option<u64>,
    /// How long the circuit breaker stays open after repeated vendor failures [default: 30000]
    #[arg(long, value_name = "MS")]
    pub breaker_cooldown_ms: Option<u64>,
    /// Base URL of the receipts webhook the vendor posts to (…/receipts; the account name is
    /// appended). Default with `all --webhook-listen`: that listener
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// How long a claimed message stays reserved if its worker dies (plus the batch's paced time)
    #[arg(long, value_name = "MS", hide = true)]
    pub lease_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Listen for delivery receipts on ADDR (POST /receipts/ACCOUNT: one receipt or a JSON array)
    #[arg(long, value_name = "ADDR")]
    pub webhook_listen: Option<SocketAddr>,
}

impl WorkerCmd {
    /// The settings these flags give, layered over the file and environment by the config.
    pub fn flags(&self) -> WorkerFlags {
        let (send, status) = match self {
            WorkerCmd::Send(send) => (Some(send), None),
            WorkerCmd::Status(status) => (None, Some(status)),
            WorkerCmd::All { send, status } => (Some(send), Some(status)),
            WorkerCmd::Expand | WorkerCmd::List { .. } => (None, None),
        };
        let send = send.cloned().unwrap_or_default();
        WorkerFlags {
            rate_per_minute: send.rate_per_minute,
            concurrency: send.concurrency,
            max_attempts: send.max_attempts,
            backoff_base_ms: send.backoff_base_ms,
            backoff_cap_ms: send.backoff_cap_ms,
            breaker_cooldown_ms: send.breaker_cooldown_ms,
            lease_ms: send.lease_ms,
            sim_url: send.sim_url,
            callback_url: send.callback_url,
            webhook_listen: status.and_then(|s| s.webhook_listen).map(|a| a.to_string()),
        }
    }

    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let app = ctx.app(Access::Existing).await?;
        let plan = match &self {
            WorkerCmd::List { all } => return list(ctx, &app, *all).await,
            WorkerCmd::Expand => WorkerPlan { expand: true, ..WorkerPlan::default() },
            WorkerCmd::Send(_) => WorkerPlan { send: true, ..WorkerPlan::default() },
            WorkerCmd::Status(_) => WorkerPlan { status: true, ..WorkerPlan::default() },
            WorkerCmd::All { .. } => WorkerPlan { expand: true, send: true, status: true },
        };
        let (trigger, shutdown) = shutdown_signal();
        stop_on_signals(trigger);
        let json = ctx.global.json;
        let announce = move |addr: Option<SocketAddr>| {
            if let Some(addr) = addr {
                if json {
                    use std::io::Write as _;
                    let line = serde_json::json!({ "webhook": format!("http://{addr}/receipts") });
                    let _ = writeln!(std::io::stdout(), "{line}");
                } else {
                    say!("Receipts webhook: http://{addr}/receipts");
                }
            }
        };
        app.run_workers(plan, shutdown, announce).await?;
        Ok(0)
    }
}

/// Triggers `trigger` on Ctrl-C or SIGTERM.
pub fn stop_on_signals(trigger: ShutdownTrigger) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Stopping: finishing in-flight work.");
        trigger.trigger();
    });
}

async fn list(ctx: &Context, app: &crate::engine::app::App, all: bool) -> anyhow::Result<u8> {
    let workers = app.list_workers(all).await?;
    let mut out = Out::new();
    if ctx.global.json {
        out.json(&workers)?;
    } else {
        let col = |header, flexible, right| Column { header, flexible, right };
        let mut table = Table::new(vec![
            col("ID", true, false),
            col("KIND", false, false),
            col("PID", false, true),
            col("LAST SEEN", false, false),
            col("STATE", false, false),
            col("PROCESSED", false, true),
            col("RATE/S", false, true),
        ]);
        for w in workers {
            let b = w.heartbeat;
            table.push(vec![
                b.id,
                b.kind,
                b.pid.to_string(),
                format_time(&b.last_seen),
                if w.stale { "stale" } else { "alive" }.to_string(),
                b.processed.to_string(),
                if w.stale { "-".to_string() } else { format!("{:.1}", b.rate) },
            ]);
        }
        out.table(&table)?;
        // How far behind the workers are: each topic's depth (Kafka: the groups' lag).
        let queues = super::campaigns::status::read_queues(app).await;
        if let Some(line) = super::campaigns::status::queues_line(&queues) {
            out.line(line.trim_start())?;
        }
    }
    out.flush()?;
    Ok(0)
}
