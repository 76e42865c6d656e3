//! `crm worker …`: the campaign pipeline's long-running processes. Run any number of each kind,
//! on any machines sharing the store and bus; Ctrl-C or SIGTERM stops one gracefully (it takes
//! no new work, finishes or releases what it holds, and exits 0).

use super::Context;
use super::output::{Column, Out, Table};
use crate::engine::bus::{self, Bus};
use crate::engine::channel::Channel;
use crate::engine::channel::sim::SimChannel;
use crate::engine::lead::format_time;
use crate::engine::pipeline::aggregator::{receipts_router, run_aggregator};
use crate::engine::pipeline::expander::run_expander;
use crate::engine::pipeline::limits::SenderPolicy;
use crate::engine::pipeline::sender::{SenderConfig, run_sender};
use crate::engine::pipeline::worker::{Shutdown, ShutdownTrigger, shutdown_signal};
use crate::engine::store::campaigns::{CampaignStore, open_campaign_store};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// Expand queued campaign chunks into messages (one log and send job per lead)
    Expand,
    /// Send messages through the channel, under the rate limit and retry policy
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
    /// List workers by their last heartbeat
    List,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The vendor simulator's base URL
    #[arg(long, value_name = "URL", env = "CRM_SIM_URL", default_value = "http://127.0.0.1:8089")]
    pub sim_url: String,
    /// Messages per minute per sender process; 0 = unlimited
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub rate_per_minute: u32,
    /// Sends in flight at once
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Tries per message before it goes to the dead-letter queue
    #[arg(long, value_name = "N", default_value_t = SenderPolicy::default().max_attempts)]
    pub max_attempts: u32,
    /// First retry backoff; doubles per try (with full jitter)
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub backoff_base_ms: u64,
    /// Longest retry backoff
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub backoff_cap_ms: u64,
    /// How long the circuit breaker stays open after repeated vendor failures
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub breaker_cooldown_ms: u64,
    /// Where the vendor posts receipts (default with `all --webhook-listen`: that listener)
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    /// How long a claimed message stays reserved if its worker dies (plus the batch's paced time)
    #[arg(long, value_name = "MS", default_value_t = 30_000, hide = true)]
    pub lease_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Listen for delivery receipts on ADDR (POST /receipts: one receipt or a JSON array)
    #[arg(long, value_name = "ADDR")]
    pub webhook_listen: Option<SocketAddr>,
}

impl SendArgs {
    fn config(&self, callback: Option<String>) -> anyhow::Result<SenderConfig> {
        let policy = SenderPolicy {
            rate_per_minute: (self.rate_per_minute > 0).then_some(self.rate_per_minute),
            concurrency: self.concurrency as usize,
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms),
            breaker_cooldown: Duration::from_millis(self.breaker_cooldown_ms),
            ..SenderPolicy::default()
        };
        policy.validate().map_err(crate::engine::Error::Usage)?;
        let mut config = SenderConfig::new(policy);
        config.lease = Duration::from_millis(self.lease_ms);
        config.callback_url = self.callback_url.clone().or(callback);
        Ok(config)
    }

    fn channel(&self) -> anyhow::Result<Arc<dyn Channel>> {
        let channel = SimChannel::new(&self.sim_url).map_err(|e| crate::engine::Error::Usage(e.to_string()))?;
        Ok(Arc::new(channel))
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

/// Serves the receipts webhook until shutdown; returns the bound address.
pub async fn serve_receipts(
    store: Arc<dyn CampaignStore>,
    addr: SocketAddr,
    mut shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let mut stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, receipts_router(store))
            .with_graceful_shutdown(async move { stop.wait().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "The receipts webhook stopped.");
        }
    });
    // Graceful shutdown waits for idle keep-alive connections (the vendor's pool); give
    // requests in progress a moment, then stop regardless.
    let handle = tokio::spawn(async move {
        let abort = server.abort_handle();
        tokio::select! {
            _ = server => {}
            _ = async { shutdown.wait().await; tokio::time::sleep(Duration::from_secs(1)).await } => abort.abort(),
        }
    });
    tracing::info!(%bound, "Listening for receipts.");
    Ok((bound, handle))
}

/// Where a worker process's roles find the store and the bus. Each role opens its own
/// connections: a SQLite store serializes the calls made through one connection, so roles
/// sharing one would queue behind each other even when the file could serve them at once.
pub struct Workers {
    pub store_url: String,
    pub bus_url: String,
}

impl Workers {
    async fn open(&self) -> anyhow::Result<(Arc<dyn CampaignStore>, Arc<dyn Bus>)> {
        Ok((open_campaign_store(&self.store_url).await?, bus::open(&self.bus_url, &self.store_url).await?))
    }

    /// Runs the kinds asked for until `shutdown`; the receipts listener (if any) is bound first
    /// so the sender can name it as the callback.
    pub async fn run_all(
        &self,
        send: Option<&SendArgs>,
        expand: bool,
        status: Option<&StatusArgs>,
        shutdown: Shutdown,
        on_listen: impl FnOnce(Option<SocketAddr>),
    ) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut callback = None;
        let mut listened = None;
        if let Some(addr) = status.and_then(|s| s.webhook_listen) {
            let (store, _) = self.open().await?;
            let (bound, handle) = serve_receipts(store, addr, shutdown.clone()).await?;
            callback = Some(format!("http://{bound}/receipts"));
            listened = Some(bound);
            tasks.spawn(async move {
                let _ = handle.await;
                Ok(())
            });
        }
        on_listen(listened);
        if expand {
            let (store, bus) = self.open().await?;
            tasks.spawn(run_expander(store, bus, shutdown.clone()));
        }
        if let Some(args) = send {
            let config = args.config(callback)?;
            let (store, bus) = self.open().await?;
            tasks.spawn(run_sender(store, bus, args.channel()?, config, shutdown.clone()));
        }
        if status.is_some() {
            let (store, bus) = self.open().await?;
            tasks.spawn(run_aggregator(store, bus, shutdown.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            done.context("a worker task panicked")??;
        }
        Ok(())
    }
}

impl WorkerCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        if let WorkerCmd::List = self {
            let store = open_campaign_store(&ctx.config.store.value).await?;
            return list(ctx, store.as_ref()).await;
        }
        let workers = Workers { store_url: ctx.config.store.value.clone(), bus_url: ctx.config.bus.value.clone() };
        // Open once up front so a bad URL is reported before anything starts.
        workers.open().await?;
        let (trigger, shutdown) = shutdown_signal();
        stop_on_signals(trigger);
        let json = ctx.global.json;
        let announce = move |addr: Option<SocketAddr>| {
            if let Some(addr) = addr {
                if json {
                    println!("{}", serde_json::json!({ "webhook": format!("http://{addr}/receipts") }));
                } else {
                    eprintln!("Receipts webhook: http://{addr}/receipts");
                }
            }
        };
        match &self {
            WorkerCmd::Expand => workers.run_all(None, true, None, shutdown, announce).await?,
            WorkerCmd::Send(args) => workers.run_all(Some(args), false, None, shutdown, announce).await?,
            WorkerCmd::Status(args) => workers.run_all(None, false, Some(args), shutdown, announce).await?,
            WorkerCmd::All { send, status } => {
                workers.run_all(Some(send), true, Some(status), shutdown, announce).await?
            }
            WorkerCmd::List => {}
        }
        Ok(0)
    }
}

async fn list(ctx: &Context, store: &dyn CampaignStore) -> anyhow::Result<u8> {
    let beats = store.list_heartbeats().await?;
    let mut out = Out::new();
    if ctx.global.json {
        out.json(&beats)?;
    } else {
        let col = |header, flexible, right| Column { header, flexible, right };
        let mut table = Table::new(vec![
            col("ID", true, false),
            col("KIND", false, false),
            col("PID", false, true),
            col("LAST SEEN", false, false),
            col("PROCESSED", false, true),
            col("RATE/S", false, true),
        ]);
        for b in beats {
            table.push(vec![
                b.id,
                b.kind,
                b.pid.to_string(),
                format_time(&b.last_seen),
                b.processed.to_string(),
                format!("{:.1}", b.rate),
            ]);
        }
        out.table(&table)?;
    }
    out.flush()?;
    Ok(0)
}
