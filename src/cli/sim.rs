//! `crm sim`: runs the messaging-vendor simulator in the foreground until Ctrl-C.

use super::output::Out;
use super::{Context, say};
use crate::cli::exit;
use crate::engine::error::Error;
use crate::engine::sim::{SimConfig, serve};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::time::Duration;

/// Run a pretend messaging vendor on this machine, for trying campaigns without a phone
///
/// It accepts messages on POST /messages, never sends anything real, and posts delivery
/// receipts (delivered, read, failed) back to the callback URL each message names. It can
/// imitate a bad day: slow answers, failed messages, "slow down" (429) and server errors.
/// GET /stats shows what it accepted, GET /health that it is up. Ctrl-C stops it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  crm sim\n  \
    crm sim --listen 127.0.0.1:0 --json            # pick a free port and print it as JSON\n  \
    crm sim --failure-rate 0.1 --rate-limit-rate 0.05 --server-error-rate 0.02 --latency-ms 50\n  \
    curl -s localhost:8089/messages -H 'content-type: application/json' \\\n    \
    -d '{\"to\":\"+447700900123\",\"body\":\"Hi\",\"idempotency_key\":\"k1\"}'\n  \
    curl -s localhost:8089/stats")]
pub struct SimCmd {
    /// Address to listen on; port 0 picks a free port (printed on start)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Wait this long before answering each send, like a slow vendor
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of accepted messages whose receipt says `failed` (0 to 1, e.g. 0.1 = 10%)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub failure_rate: f64,
    /// Share of sends refused with 429 "too many requests" and a Retry-After (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate_limit_rate: f64,
    /// Seconds a 429 answer asks the sender to wait before trying again
    #[arg(long, value_name = "SECS", default_value_t = SimConfig::default().retry_after_secs)]
    pub retry_after_secs: u64,
    /// Share of sends answered with a 500/503 server error (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    pub server_error_rate: f64,
    /// Post the `delivered` (or `failed`) receipt this long after accepting a message
    #[arg(long, value_name = "MS", default_value_t = millis(SimConfig::default().delivered_after))]
    pub delivered_after_ms: u64,
    /// Post the `read` receipt this long after accepting a message (below --delivered-after-ms
    /// sends receipts out of order, to test that late receipts change nothing)
    #[arg(long, value_name = "MS", default_value_t = millis(SimConfig::default().read_after))]
    pub read_after_ms: u64,
    /// Share of delivered messages that are also read (0 to 1)
    #[arg(long, value_name = "RATE", default_value_t = SimConfig::default().read_rate, value_parser = parse_rate)]
    pub read_rate: f64,
    /// Seed for every random choice: the same seed fails the same messages each run
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Receipts per callback request; above 1 the callback receives JSON arrays of receipts
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub receipt_batch: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A share between 0 and 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) { Ok(rate) } else { Err(format!("{rate} is not between 0 and 1 (0.1 means 10%)")) }
}

impl SimCmd {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            latency: Duration::from_millis(self.latency_ms),
            failure_rate: self.failure_rate,
            rate_limit_rate: self.rate_limit_rate,
            retry_after_secs: self.retry_after_secs,
            server_error_rate: self.server_error_rate,
            delivered_after: Duration::from_millis(self.delivered_after_ms),
            read_after: Duration::from_millis(self.read_after_ms),
            read_rate: self.read_rate,
            seed: self.seed,
            receipt_batch: usize::try_from(self.receipt_batch).unwrap_or(usize::MAX),
            ..SimConfig::default()
        }
    }

    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let config = self.config();
        config.validate().map_err(|e| Error::Usage(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", self.listen)))?;
        let addr = listener.local_addr().context("reading the listening address")?;
        let mut out = Out::new();
        if ctx.global.json {
            out.json(&serde_json::json!({ "listen": addr.to_string(), "url": format!("http://{addr}") }))?;
        } else {
            out.line(format!("crm sim listening on http://{addr}"))?;
        }
        out.flush()?;
        if ctx.chatty() {
            say!("Send with POST /messages; see GET /stats. Press Ctrl-C to stop.");
        }
        serve(listener, config, stop_signal()).await.context("the simulator failed")?;
        if ctx.chatty() {
            say!("Simulator stopped.");
        }
        Ok(exit::OK)
    }
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (scripts and CI stop it that way).
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        sim: SimCmd,
    }

    #[test]
    fn defaults_match_the_engine_defaults() {
        let cmd = Harness::try_parse_from(["crm"]).expect("parses").sim;
        assert_eq!(cmd.listen, "127.0.0.1:8089".parse().expect("addr"));
        assert_eq!(cmd.config(), SimConfig::default());
    }

    #[test]
    fn flags_fill_the_config() {
        let args = [
            "crm",
            "--listen",
            "127.0.0.1:0",
            "--latency-ms",
            "50",
            "--failure-rate",
            "0.1",
            "--rate-limit-rate",
            "0.05",
            "--server-error-rate",
            "0.02",
            "--delivered-after-ms",
            "10",
            "--read-after-ms",
            "20",
            "--read-rate",
            "1",
            "--seed",
            "9",
            "--receipt-batch",
            "100",
            "--retry-after-secs",
            "2",
        ];
        let config = Harness::try_parse_from(args).expect("parses").sim.config();
        assert_eq!(config.latency, Duration::from_millis(50));
        assert_eq!((config.failure_rate, config.rate_limit_rate, config.server_error_rate), (0.1, 0.05, 0.02));
        assert_eq!((config.delivered_after, config.read_after), (Duration::from_millis(10), Duration::from_millis(20)));
        assert_eq!((config.read_rate, config.seed, config.receipt_batch, config.retry_after_secs), (1.0, 9, 100, 2));
    }

    #[test]
    fn rates_outside_zero_to_one_are_usage_errors() {
        let err = Harness::try_parse_from(["crm", "--failure-rate", "10"]).expect_err("refused");
        assert!(err.to_string().contains("not between 0 and 1"), "{err}");
        assert!(Harness::try_parse_from(["crm", "--read-rate", "lots"]).is_err());
        assert!(Harness::try_parse_from(["crm", "--receipt-batch", "0"]).is_err());
        assert!(Harness::try_parse_from(["crm", "--listen", "localhost"]).is_err());
    }
}
