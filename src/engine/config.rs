//! Configuration in one layering: defaults < config file < `CRM_*` environment < flags.
//!
//! [`Config::load`] records where each value came from, so `crm config show` can say why a
//! setting has the value it has. Every setting a worker flag sets can also come from the file
//! (`[worker]`) or the environment, and each channel account has a `[channels.NAME]` section.
//! Secrets (URL passwords, channel credentials) are redacted whenever a value is shown.

mod file;
#[cfg(test)]
mod tests;

use crate::engine::error::{Error, Result};
use crate::engine::phone::Region;
use file::FileConfig;
pub use file::{ChannelKind, ChannelSection};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Values given on the command line (`None` when absent).
#[derive(Debug, Clone, Default)]
pub struct FlagConfig {
    pub store: Option<String>,
    pub bus: Option<String>,
    pub config_file: Option<PathBuf>,
    pub worker: WorkerFlags,
    /// `crm serve --listen`.
    pub api_listen: Option<String>,
}

/// The worker settings a command line can give.
#[derive(Debug, Clone, Default)]
pub struct WorkerFlags {
    pub rate_per_minute: Option<u32>,
    pub concurrency: Option<u32>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_cap_ms: Option<u64>,
    pub breaker_cooldown_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    pub sim_url: Option<String>,
    pub callback_url: Option<String>,
    pub webhook_listen: Option<String>,
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    fn default(value: T) -> Setting<T> {
        Setting { value, source: Source::Default }
    }

    fn set(&mut self, value: Option<T>, source: Source) {
        if let Some(value) = value {
            *self = Setting { value, source };
        }
    }
}

/// How the pipeline's workers behave (the `[worker]` section, `CRM_*` variables, worker flags).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSettings {
    /// Messages per minute per channel account and sender process; 0 = unlimited.
    pub rate_per_minute: Setting<u32>,
    /// Sends in flight at once, per channel account.
    pub concurrency: Setting<u32>,
    /// Tries per message before it becomes a dead letter.
    pub max_attempts: Setting<u32>,
    pub backoff_base_ms: Setting<u64>,
    pub backoff_cap_ms: Setting<u64>,
    pub breaker_cooldown_ms: Setting<u64>,
    /// How long a claimed message stays reserved if its worker dies.
    pub lease_ms: Setting<u64>,
    /// The `sim` channel account's simulator URL.
    pub sim_url: Setting<String>,
    /// Where vendors post receipts (default: the status worker's own listener).
    pub callback_url: Setting<Option<String>>,
    /// Where the status worker listens for receipts (none: it does not listen).
    pub webhook_listen: Setting<Option<String>>,
}

/// How `crm serve` listens and authenticates (the `[api]` section, `CRM_API_*`, serve flags).
#[derive(Debug, Clone, Serialize)]
pub struct ApiSettings {
    pub listen: Setting<String>,
    /// The HS256 secret of the API's tokens; never shown.
    #[serde(skip)]
    pub jwt_secret: Setting<Option<String>>,
    /// Origins a browser may call the API from (CORS).
    pub cors_origins: Setting<Vec<String>>,
}

/// Where `crm serve` listens when nothing else is configured.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8080";
/// What signed vendor webhooks and replies need (the `[webhook]` section, `CRM_WEBHOOK_*`).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookSettings {
    /// The public base URL vendors post to (`https://crm.example.com`): Twilio signs the full
    /// URL it calls, so this must be what Twilio was given. None: the request's Host is used.
    pub public_url: Setting<Option<String>>,
    /// A reply that is one of these (case-insensitive, trimmed) opts its lead out.
    pub stop_words: Setting<Vec<String>>,
}

/// The stop words when none are configured: Twilio's own, and Portuguese and Spanish ones.
pub const DEFAULT_STOP_WORDS: &[&str] =
    &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "PARAR", "CANCELAR", "SAIR", "BAJA"];

/// The `[channels.twilio]` settings the `CRM_TWILIO_*` variables set.
const TWILIO_ENV: &[(&str, &str)] = &[
    ("CRM_TWILIO_ACCOUNT_SID", "account_sid"),
    ("CRM_TWILIO_AUTH_TOKEN", "auth_token"),
    ("CRM_TWILIO_FROM", "from"),
    ("CRM_TWILIO_API_BASE", "api_base"),
];

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Store URL: a path, `sqlite:PATH`, or `mongodb://…`.
    pub store: Setting<String>,
    /// Bus URL: `embedded` or `kafka://host:port,…`.
    pub bus: Setting<String>,
    /// Region for phone numbers written without a country code.
    pub default_region: Setting<Option<String>>,
    pub worker: WorkerSettings,
    pub api: ApiSettings,
    pub webhook: WebhookSettings,
    /// Channel accounts by name, as the config file declares them (plus the built-in `sim`).
    /// Not serialized as is: it holds credentials ([`Config::to_redacted_json`] shows them).
    #[serde(skip)]
    pub channels: BTreeMap<String, ChannelSection>,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
}

/// The default data file: `crm.db` in the platform data directory.
pub fn default_store_path() -> PathBuf {
    directories::ProjectDirs::from("", "", "crm")
        .map(|d| d.data_dir().join("crm.db"))
        .unwrap_or_else(|| PathBuf::from("crm.db"))
}

/// The config file read when `--config`/`CRM_CONFIG` is not given (used only if it exists).
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "crm").map(|d| d.config_dir().join("config.toml"))
}

/// The simulator's address when nothing else is configured (`crm sim`'s default).
pub const DEFAULT_SIM_URL: &str = "http://127.0.0.1:8089";

impl WorkerSettings {
    fn defaults() -> WorkerSettings {
        WorkerSettings {
            rate_per_minute: Setting::default(30),
            concurrency: Setting::default(5),
            max_attempts: Setting::default(5),
            backoff_base_ms: Setting::default(1_000),
            backoff_cap_ms: Setting::default(60_000),
            breaker_cooldown_ms: Setting::default(30_000),
            lease_ms: Setting::default(30_000),
            sim_url: Setting::default(DEFAULT_SIM_URL.to_string()),
            callback_url: Setting::default(None),
            webhook_listen: Setting::default(None),
        }
    }
}

/// Reads one `CRM_*` variable; an empty value counts as unset, a malformed one is an error
/// naming the variable.
fn env_value<T: FromStr>(env: &dyn Fn(&str) -> Option<String>, name: &str, expected: &str) -> Result<Option<T>> {
    match env(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => {
            v.trim().parse().map(Some).map_err(|_| {
                Error::Usage(format!("environment variable {name}={v:?} is not valid: expected {expected}"))
            })
        }
    }
}

impl Config {
    /// Loads the effective configuration. `env` is the process environment (a parameter so
    /// tests can give their own).
    pub fn load(flags: &FlagConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let mut config = Config {
            store: Setting::default(format!("sqlite:{}", default_store_path().display())),
            bus: Setting::default("embedded".into()),
            default_region: Setting::default(None),
            worker: WorkerSettings::defaults(),
            api: ApiSettings {
                listen: Setting::default(DEFAULT_API_LISTEN.to_string()),
                jwt_secret: Setting::default(None),
                cors_origins: Setting::default(Vec::new()),
            },
            webhook: WebhookSettings {
                public_url: Setting::default(None),
                stop_words: Setting::default(DEFAULT_STOP_WORDS.iter().map(|w| w.to_string()).collect()),
            },
            channels: BTreeMap::new(),
            config_file: None,
        };
        let explicit = flags.config_file.clone().or_else(|| env("CRM_CONFIG").map(PathBuf::from));
        let file_path = match explicit {
            Some(path) => Some(path),
            None => default_config_path().filter(|p| p.exists()),
        };
        if let Some(path) = file_path {
            let file = file::read(&path)?;
            config.apply_file(file, &path)?;
            config.config_file = Some(path);
        }
        config.apply_env(env)?;
        config.apply_flags(flags);
        config.channels.entry("sim".into()).or_insert_with(ChannelSection::builtin_sim);
        config.validate()?;
        Ok(config)
    }

    fn apply_file(&mut self, file: FileConfig, path: &Path) -> Result<()> {
        let f = Source::File;
        self.store.set(file.store, f);
        self.bus.set(file.bus, f);
        self.default_region.set(file.default_region.map(Some), f);
        let a = file.api.unwrap_or_default();
        self.api.listen.set(a.listen, f);
        self.api.jwt_secret.set(a.jwt_secret.map(Some), f);
        self.api.cors_origins.set(a.cors_origins, f);
        let w = file.worker.unwrap_or_default();
        self.worker.rate_per_minute.set(w.rate_per_minute, f);
        self.worker.concurrency.set(w.concurrency, f);
        self.worker.max_attempts.set(w.max_attempts, f);
        self.worker.backoff_base_ms.set(w.backoff_base_ms, f);
        self.worker.backoff_cap_ms.set(w.backoff_cap_ms, f);
        self.worker.breaker_cooldown_ms.set(w.breaker_cooldown_ms, f);
        self.worker.lease_ms.set(w.lease_ms, f);
        self.worker.callback_url.set(w.callback_url.map(Some), f);
        self.worker.webhook_listen.set(w.webhook_listen.map(Some), f);
        let hook = file.webhook.unwrap_or_default();
        self.webhook.public_url.set(hook.public_url.map(Some), f);
        self.webhook.stop_words.set(hook.stop_words, f);
        for (name, section) in file.channels {
            let section =
                section.checked(&name).map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
            if name == "sim" {
                self.worker.sim_url.set(section.url.clone(), f);
            }
            self.channels.insert(name, section);
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let e = Source::Env;
        let n = "a whole number";
        self.store.set(env_value(env, "CRM_STORE", "a store URL")?, e);
        self.bus.set(env_value(env, "CRM_BUS", "a bus URL")?, e);
        self.default_region.set(env_value::<String>(env, "CRM_DEFAULT_REGION", "a region")?.map(Some), e);
        self.api.listen.set(env_value(env, "CRM_API_LISTEN", "HOST:PORT")?, e);
        self.api.jwt_secret.set(env_value::<String>(env, "CRM_JWT_SECRET", "a secret")?.map(Some), e);
        let origins = env_value::<String>(env, "CRM_CORS_ORIGINS", "origins separated by commas")?;
        self.api.cors_origins.set(origins.map(|o| o.split(',').map(|s| s.trim().to_string()).collect()), e);
        let w = &mut self.worker;
        w.rate_per_minute.set(env_value(env, "CRM_RATE_PER_MINUTE", n)?, e);
        w.concurrency.set(env_value(env, "CRM_CONCURRENCY", n)?, e);
        w.max_attempts.set(env_value(env, "CRM_MAX_ATTEMPTS", n)?, e);
        w.backoff_base_ms.set(env_value(env, "CRM_BACKOFF_BASE_MS", n)?, e);
        w.backoff_cap_ms.set(env_value(env, "CRM_BACKOFF_CAP_MS", n)?, e);
        w.breaker_cooldown_ms.set(env_value(env, "CRM_BREAKER_COOLDOWN_MS", n)?, e);
        w.lease_ms.set(env_value(env, "CRM_LEASE_MS", n)?, e);
        w.sim_url.set(env_value(env, "CRM_SIM_URL", "a URL")?, e);
        w.callback_url.set(env_value::<String>(env, "CRM_CALLBACK_URL", "a URL")?.map(Some), e);
        w.webhook_listen.set(env_value::<String>(env, "CRM_WEBHOOK_LISTEN", "HOST:PORT")?.map(Some), e);
        let hook = &mut self.webhook;
        hook.public_url.set(env_value::<String>(env, "CRM_WEBHOOK_PUBLIC_URL", "a URL")?.map(Some), e);
        let words = env_value::<String>(env, "CRM_STOP_WORDS", "words separated by commas")?;
        hook.stop_words
            .set(words.map(|w| w.split(',').map(|w| w.trim().to_string()).filter(|w| !w.is_empty()).collect()), e);
        // The `twilio` account's credentials may come from the environment alone.
        for (var, key) in TWILIO_ENV {
            if let Some(value) = env_value::<String>(env, var, "a value")? {
                let section = self.channels.entry("twilio".into()).or_insert_with(ChannelSection::env_twilio);
                section.settings.insert(key.to_string(), toml::Value::String(value));
            }
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &FlagConfig) {
        let g = Source::Flag;
        self.api.listen.set(flags.api_listen.clone(), g);
        self.store.set(flags.store.clone(), g);
        self.bus.set(flags.bus.clone(), g);
        let (w, f) = (&mut self.worker, &flags.worker);
        w.rate_per_minute.set(f.rate_per_minute, g);
        w.concurrency.set(f.concurrency, g);
        w.max_attempts.set(f.max_attempts, g);
        w.backoff_base_ms.set(f.backoff_base_ms, g);
        w.backoff_cap_ms.set(f.backoff_cap_ms, g);
        w.breaker_cooldown_ms.set(f.breaker_cooldown_ms, g);
        w.lease_ms.set(f.lease_ms, g);
        w.sim_url.set(f.sim_url.clone(), g);
        w.callback_url.set(f.callback_url.clone().map(Some), g);
        w.webhook_listen.set(f.webhook_listen.clone().map(Some), g);
    }

    fn validate(&self) -> Result<()> {
        self.region()?;
        if self.bus.value != "embedded" && !self.bus.value.starts_with("kafka://") {
            return Err(Error::Usage(format!(
                "bus '{}' ({}): expected 'embedded' or kafka://HOST:PORT",
                self.bus.value, self.bus.source
            )));
        }
        if let Some(addr) = &self.worker.webhook_listen.value {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                Error::Usage(format!(
                    "webhook_listen '{addr}' ({}): expected HOST:PORT such as 127.0.0.1:8090",
                    self.worker.webhook_listen.source
                ))
            })?;
        }
        if let Some(url) = &self.webhook.public_url.value {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Usage(format!(
                    "webhook public_url '{url}' ({}): expected http(s)://HOST[:PORT]",
                    self.webhook.public_url.source
                )));
            }
        }
        if self.worker.concurrency.value == 0 {
            return Err(Error::Usage(format!("concurrency ({}) must be at least 1", self.worker.concurrency.source)));
        }
        Ok(())
    }

    /// The default region, validated.
    pub fn region(&self) -> Result<Option<Region>> {
        match &self.default_region.value {
            None => Ok(None),
            Some(r) => r
                .parse()
                .map(Some)
                .map_err(|e| Error::Usage(format!("default_region ({}): {e}", self.default_region.source))),
        }
    }

    /// The webhook address, if the status worker should listen.
    pub fn webhook_listen(&self) -> Option<std::net::SocketAddr> {
        self.worker.webhook_listen.value.as_deref().and_then(|a| a.parse().ok())
    }

    /// Every setting as (name, shown value, source), secrets redacted: what `config show` prints.
    pub fn rows(&self) -> Vec<(String, String, Source)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let w = &self.worker;
        let mut rows = vec![
            ("store".to_string(), redact(&self.store.value), self.store.source),
            ("bus".into(), redact(&self.bus.value), self.bus.source),
            ("default_region".into(), opt(&self.default_region.value), self.default_region.source),
            ("worker.rate_per_minute".into(), w.rate_per_minute.value.to_string(), w.rate_per_minute.source),
            ("worker.concurrency".into(), w.concurrency.value.to_string(), w.concurrency.source),
            ("worker.max_attempts".into(), w.max_attempts.value.to_string(), w.max_attempts.source),
            ("worker.backoff_base_ms".into(), w.backoff_base_ms.value.to_string(), w.backoff_base_ms.source),
            ("worker.backoff_cap_ms".into(), w.backoff_cap_ms.value.to_string(), w.backoff_cap_ms.source),
            (
                "worker.breaker_cooldown_ms".into(),
                w.breaker_cooldown_ms.value.to_string(),
                w.breaker_cooldown_ms.source,
            ),
            ("worker.lease_ms".into(), w.lease_ms.value.to_string(), w.lease_ms.source),
            ("worker.callback_url".into(), opt(&w.callback_url.value.as_deref().map(redact)), w.callback_url.source),
            ("worker.webhook_listen".into(), opt(&w.webhook_listen.value), w.webhook_listen.source),
            ("api.listen".into(), self.api.listen.value.clone(), self.api.listen.source),
            (
                "api.jwt_secret".into(),
                if self.api.jwt_secret.value.is_some() { "***".into() } else { "(none)".into() },
                self.api.jwt_secret.source,
            ),
            ("api.cors_origins".into(), self.api.cors_origins.value.join(","), self.api.cors_origins.source),
            (
                "webhook.public_url".into(),
                opt(&self.webhook.public_url.value.as_deref().map(redact)),
                self.webhook.public_url.source,
            ),
            ("webhook.stop_words".into(), self.webhook.stop_words.value.join(","), self.webhook.stop_words.source),
        ];
        for (name, section) in &self.channels {
            let source = if name == "sim" && section.builtin { w.sim_url.source } else { Source::File };
            let url = if name == "sim" { Some(w.sim_url.value.clone()) } else { section.url.clone() };
            rows.push((format!("channels.{name}"), section.describe(url.as_deref()), source));
        }
        rows
    }

    /// The configuration as JSON, secrets redacted.
    pub fn to_redacted_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["store"]["value"] = redact(&self.store.value).into();
        value["bus"]["value"] = redact(&self.bus.value).into();
        if let Some(url) = &self.worker.callback_url.value {
            value["worker"]["callback_url"]["value"] = redact(url).into();
        }
        let secret = if self.api.jwt_secret.value.is_some() { "***" } else { "" };
        value["api"]["jwt_secret"] = serde_json::json!({ "value": (!secret.is_empty()).then_some(secret), "source": self.api.jwt_secret.source });
        if let Some(url) = &self.webhook.public_url.value {
            value["webhook"]["public_url"]["value"] = redact(url).into();
        }
        let channels: serde_json::Map<String, serde_json::Value> =
            self.channels.iter().map(|(name, section)| (name.clone(), section.redacted_json())).collect();
        value["channels"] = channels.into();
        if let Some(sim) = value["channels"].get_mut("sim") {
            sim["url"] = redact(&self.worker.sim_url.value).into();
        }
        value
    }
}

/// `mongodb://user:secret@host` → `mongodb://user:***@host`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((auth, host)) = rest.split_once('@') {
            if let Some((user, _)) = auth.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "config file",
            Source::Env => "environment",
            Source::Flag => "command line",
        })
    }
}
