//! `crm config`: what configuration is in effect, and why.

use super::Context;
use super::output::Out;
use crate::engine::config::redact;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration (defaults < file < CRM_* env < flags), secrets redacted
    Show,
}

impl ConfigCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let c = &ctx.config;
        let mut out = Out::new();
        if ctx.global.json {
            let mut value = serde_json::to_value(c)?;
            value["store"]["value"] = redact(&c.store.value).into();
            value["bus"]["value"] = redact(&c.bus.value).into();
            out.json(&value)?;
        } else {
            let region = c.default_region.value.clone().unwrap_or_else(|| "(none)".into());
            out.line(format!("store           = {:<40} # from {}", redact(&c.store.value), c.store.source))?;
            out.line(format!("bus             = {:<40} # from {}", redact(&c.bus.value), c.bus.source))?;
            out.line(format!("default_region  = {:<40} # from {}", region, c.default_region.source))?;
            let file = c.config_file.as_ref().map_or("(none)".to_string(), |p| p.display().to_string());
            out.line(format!("config file     = {file}"))?;
        }
        out.flush()?;
        Ok(0)
    }
}
