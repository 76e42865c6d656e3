//! `crm config`: what configuration is in effect, and why.

use super::Context;
use super::output::Out;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration (defaults < file < CRM_* env < flags), secrets redacted
    #[command(after_help = "Config file keys: store, bus, default_region; [worker] rate_per_minute, concurrency, \
        max_attempts, backoff_base_ms, backoff_cap_ms, breaker_cooldown_ms, callback_url, webhook_listen; \
        [channels.NAME] kind (sim, whatsapp, twilio), url, rate_per_minute, concurrency and credentials.\n\
        Environment: CRM_STORE, CRM_BUS, CRM_DEFAULT_REGION, CRM_CONFIG, CRM_RATE_PER_MINUTE, CRM_CONCURRENCY, \
        CRM_MAX_ATTEMPTS, CRM_BACKOFF_BASE_MS, CRM_BACKOFF_CAP_MS, CRM_BREAKER_COOLDOWN_MS, CRM_SIM_URL, \
        CRM_CALLBACK_URL, CRM_WEBHOOK_LISTEN.")]
    Show,
}

impl ConfigCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let c = &ctx.config;
        let mut out = Out::new();
        if ctx.global.json {
            out.json(&c.to_redacted_json())?;
        } else {
            for (name, value, source) in c.rows() {
                out.line(format!("{name:<27} = {value:<40} # from {source}"))?;
            }
            let file = c.config_file.as_ref().map_or("(none)".to_string(), |p| p.display().to_string());
            out.line(format!("{:<27} = {file}", "config file"))?;
        }
        out.flush()?;
        Ok(0)
    }
}
