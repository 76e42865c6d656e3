//! The config file's shape (TOML): top-level keys, `[worker]`, and one `[channels.NAME]` table
//! per channel account. Unknown keys are refused with the list of valid ones, so a typo is an
//! error rather than a silently ignored setting.

use crate::engine::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub store: Option<String>,
    pub bus: Option<String>,
    pub default_region: Option<String>,
    pub worker: Option<WorkerSection>,
    pub api: Option<ApiSection>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelSection>,
    pub webhook: Option<WebhookSection>,
}

/// `[webhook]`: what vendors that sign their posts (Twilio) and send replies need.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookSection {
    /// The public base URL vendors call (`https://crm.example.com`), which signatures cover.
    pub public_url: Option<String>,
    /// Replies that opt a lead out (case-insensitive, trimmed).
    pub stop_words: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApiSection {
    pub listen: Option<String>,
    pub jwt_secret: Option<String>,
    pub cors_origins: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkerSection {
    pub rate_per_minute: Option<u32>,
    pub concurrency: Option<u32>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_cap_ms: Option<u64>,
    pub breaker_cooldown_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    pub callback_url: Option<String>,
    pub webhook_listen: Option<String>,
}

/// What kind of vendor a channel account talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// The vendor simulator (`crm sim`).
    Sim,
    /// WhatsApp through wa-rs (not in this build yet).
    Whatsapp,
    /// Twilio's Messaging API (not in this build yet).
    Twilio,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sim => "sim",
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Twilio => "twilio",
        }
    }
}

/// One `[channels.NAME]` table. `kind` may be left out when the name is a kind (`[channels.sim]`).
/// Per-account `rate_per_minute` / `concurrency` override the `[worker]` ones for this account;
/// every other key is kept as the account's credentials and settings, and shown redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSection {
    pub kind: Option<ChannelKind>,
    pub url: Option<String>,
    pub rate_per_minute: Option<u32>,
    pub concurrency: Option<u32>,
    #[serde(flatten)]
    pub settings: BTreeMap<String, toml::Value>,
    /// True for the `sim` account crm provides when the file declares none.
    #[serde(skip)]
    pub builtin: bool,
}

impl ChannelSection {
    pub(super) fn builtin_sim() -> ChannelSection {
        ChannelSection {
            kind: Some(ChannelKind::Sim),
            url: None,
            rate_per_minute: None,
            concurrency: None,
            settings: BTreeMap::new(),
            builtin: true,
        }
    }

    /// The `twilio` account the `CRM_TWILIO_*` variables create when the file has none.
    pub(super) fn env_twilio() -> ChannelSection {
        ChannelSection { kind: Some(ChannelKind::Twilio), builtin: false, ..ChannelSection::builtin_sim() }
    }

    /// The account's kind (explicit, or its name).
    pub fn kind(&self) -> ChannelKind {
        self.kind.unwrap_or(ChannelKind::Sim)
    }

    /// Fills in `kind` from the account name and checks the name.
    pub(super) fn checked(mut self, name: &str) -> std::result::Result<ChannelSection, String> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '+'));
        if !valid_name {
            return Err(format!("[channels.{name}]: an account name uses letters, digits and - _ . : + (at most 64)"));
        }
        if self.kind.is_none() {
            self.kind = Some(match name {
                "sim" => ChannelKind::Sim,
                "whatsapp" => ChannelKind::Whatsapp,
                "twilio" => ChannelKind::Twilio,
                _ => return Err(format!("[channels.{name}] needs kind = \"sim\", \"whatsapp\" or \"twilio\"")),
            });
        }
        if self.concurrency == Some(0) {
            return Err(format!("[channels.{name}]: concurrency must be at least 1"));
        }
        Ok(self)
    }

    /// One line for `config show`: kind, URL and the names of other settings (values hidden).
    pub fn describe(&self, url: Option<&str>) -> String {
        let mut parts = vec![format!("kind={}", self.kind().as_str())];
        if let Some(url) = url {
            parts.push(format!("url={}", super::redact(url)));
        }
        if let Some(r) = self.rate_per_minute {
            parts.push(format!("rate_per_minute={r}"));
        }
        if let Some(c) = self.concurrency {
            parts.push(format!("concurrency={c}"));
        }
        for (key, value) in &self.settings {
            parts.push(format!("{key}={}", shown_setting(key, value)));
        }
        parts.join(" ")
    }

    /// A setting's text value (credentials such as `auth_token` included), if it is a string.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|v| !v.is_empty())
    }

    /// The account that sends this account's messages while it cannot (`fallback = "twilio"`).
    pub fn fallback(&self) -> Option<&str> {
        self.setting("fallback")
    }

    pub(super) fn redacted_json(&self) -> serde_json::Value {
        let settings: serde_json::Map<String, serde_json::Value> =
            self.settings.iter().map(|(k, v)| (k.clone(), shown_setting(k, v).into())).collect();
        serde_json::json!({
            "kind": self.kind().as_str(),
            "url": self.url.as_deref().map(super::redact),
            "rate_per_minute": self.rate_per_minute,
            "concurrency": self.concurrency,
            "settings": settings,
        })
    }
}

/// Settings that are not credentials, shown as they are; every other one is shown as `***`.
const PLAIN_SETTINGS: &[&str] = &["fallback", "api_base", "breaker_failures"];

fn shown_setting(key: &str, value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) if PLAIN_SETTINGS.contains(&key) => super::redact(s),
        toml::Value::Integer(n) if PLAIN_SETTINGS.contains(&key) => n.to_string(),
        _ => "***".into(),
    }
}

const VALID_KEYS: &str = "store, bus, default_region, [worker] (rate_per_minute, concurrency, max_attempts, \
    backoff_base_ms, backoff_cap_ms, breaker_cooldown_ms, lease_ms, callback_url, webhook_listen), \
    [api] (listen, jwt_secret, cors_origins), [webhook] (public_url, stop_words), [channels.NAME] (kind, url, rate_per_minute, concurrency, fallback, \
    breaker_failures; twilio: account_sid, auth_token, from, api_base; other credentials)";

pub(super) fn read(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| Error::Usage(format!("config file {}: {e}\nvalid keys: {VALID_KEYS}", path.display())))
}
