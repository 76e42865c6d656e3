//! The channel registry: every channel account the configuration names, built once, each with
//! its own sending policy. A campaign's `channel` names an account; one send worker serves every
//! account, keeping rate, concurrency and breaker state per account (see `pipeline::sender`).
//!
//! A new kind of channel plugs in here: a [`ChannelKind`] arm in [`ChannelRegistry::from_config`]
//! that builds it from its `[channels.NAME]` section.

use super::Channel;
use super::sim::{SimChannel, SimChannelOptions};
use super::twilio::{DEFAULT_API_BASE, STATUS_PATH, TwilioChannel, TwilioConfig};
use crate::engine::config::{ChannelKind, ChannelSection, Config};
use crate::engine::error::{Error, Result};
use crate::engine::pipeline::limits::SenderPolicy;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One account: its channel and the policy its sends follow.
#[derive(Clone)]
pub struct ChannelAccount {
    pub name: String,
    pub kind: ChannelKind,
    pub channel: Arc<dyn Channel>,
    pub policy: SenderPolicy,
}

/// What an account looks like from outside (for `config show`, snapshots and dashboards).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccountInfo {
    pub name: String,
    pub kind: &'static str,
    /// `ready`, or why the account cannot send (`not available in this build`).
    pub state: String,
    pub max_length: Option<usize>,
    /// The connection state the account last recorded in the store (WhatsApp sessions), and
    /// when; filled in by `App::snapshot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the account's next send waits and until when, as a sender last recorded it (a
    /// `next_at` in the past: it is not waiting); filled in by `App::snapshot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<crate::engine::store::campaigns::AccountWait>,
}

#[derive(Clone, Default)]
pub struct ChannelRegistry {
    accounts: BTreeMap<String, ChannelAccount>,
    /// Accounts configured with a kind this build cannot send through, and why.
    unavailable: BTreeMap<String, (ChannelKind, String)>,
    /// Each account's `fallback` account, by name (see `pipeline::sender`: failover).
    fallbacks: BTreeMap<String, String>,
    /// The Twilio accounts, for the webhook that checks their signatures.
    twilio: BTreeMap<String, Arc<TwilioChannel>>,
    /// The WhatsApp accounts' channels and session directories, for the send worker to
    /// supervise (see `channel::whatsapp::supervisor`).
    whatsapp: BTreeMap<String, WhatsAppAccount>,
}

/// A WhatsApp account's channel (its client, state and receipts) and session directory.
#[derive(Clone)]
pub struct WhatsAppAccount {
    pub channel: Arc<super::whatsapp::WhatsAppChannel>,
    pub session_dir: std::path::PathBuf,
}

/// The worker-wide policy, with an account's own overrides.
pub fn policy_for(config: &Config, section: Option<&ChannelSection>) -> Result<SenderPolicy> {
    let w = &config.worker;
    let rate = section.and_then(|s| s.rate_per_minute).unwrap_or(w.rate_per_minute.value);
    let concurrency = section.and_then(|s| s.concurrency).unwrap_or(w.concurrency.value);
    let policy = SenderPolicy {
        rate_per_minute: (rate > 0).then_some(rate),
        concurrency: concurrency as usize,
        max_attempts: w.max_attempts.value,
        backoff_base: Duration::from_millis(w.backoff_base_ms.value),
        backoff_cap: Duration::from_millis(w.backoff_cap_ms.value),
        breaker_cooldown: Duration::from_millis(w.breaker_cooldown_ms.value),
        ..SenderPolicy::default()
    };
    let breaker_failures = section.and_then(|s| s.settings.get("breaker_failures")).and_then(|v| v.as_integer());
    let policy = match breaker_failures {
        Some(n) => SenderPolicy {
            breaker_failures: u32::try_from(n)
                .map_err(|_| Error::Usage(format!("breaker_failures = {n}: expected a whole number")))?,
            ..policy
        },
        None => policy,
    };
    policy.validate().map_err(|e| Error::Usage(format!("sender policy: {e}")))?;
    Ok(policy)
}

impl ChannelRegistry {
    /// Builds every account the configuration names (the `sim` account always exists).
    pub fn from_config(config: &Config) -> Result<ChannelRegistry> {
        let mut registry = ChannelRegistry::default();
        for (name, section) in &config.channels {
            let policy = policy_for(config, Some(section))?;
            if let Some(fallback) = section.fallback() {
                if fallback == name || !config.channels.contains_key(fallback) {
                    return Err(Error::Usage(format!(
                        "[channels.{name}] fallback = \"{fallback}\" must name another configured account"
                    )));
                }
                registry.fallbacks.insert(name.clone(), fallback.to_string());
            }
            match section.kind() {
                ChannelKind::Sim => {
                    let url =
                        if name == "sim" { Some(config.worker.sim_url.value.clone()) } else { section.url.clone() };
                    let url = url.ok_or_else(|| Error::Usage(format!("[channels.{name}] needs url = \"http://…\"")))?;
                    let options = SimChannelOptions { name: name.clone(), ..SimChannelOptions::default() };
                    let channel = SimChannel::with_options(&url, options)
                        .map_err(|e| Error::Usage(format!("channel account '{name}': {e}")))?;
                    registry.insert(ChannelAccount {
                        name: name.clone(),
                        kind: ChannelKind::Sim,
                        channel: Arc::new(channel),
                        policy,
                    });
                }
                ChannelKind::Twilio => {
                    let status_callback = config
                        .webhook
                        .public_url
                        .value
                        .as_deref()
                        .map(|base| format!("{}{STATUS_PATH}", base.trim_end_matches('/')));
                    let twilio = TwilioConfig {
                        name: name.clone(),
                        account_sid: section.setting("account_sid").unwrap_or_default().to_string(),
                        auth_token: section.setting("auth_token").unwrap_or_default().to_string(),
                        from: section.setting("from").unwrap_or_default().to_string(),
                        api_base: section.setting("api_base").unwrap_or(DEFAULT_API_BASE).to_string(),
                        status_callback,
                    };
                    let channel = Arc::new(
                        TwilioChannel::new(twilio)
                            .map_err(|e| Error::Usage(format!("[channels.{name}] (twilio): {e}")))?,
                    );
                    registry.twilio.insert(name.clone(), channel.clone());
                    registry.insert(ChannelAccount { name: name.clone(), kind: ChannelKind::Twilio, channel, policy });
                }
                #[cfg(feature = "whatsapp")]
                ChannelKind::Whatsapp => {
                    let wa = super::whatsapp::account::account_config(config, name, section)?;
                    let client = super::whatsapp::real::RealWaClient::new(wa.session_dir.clone(), None);
                    registry.insert_whatsapp(name, Arc::new(client), wa);
                }
                #[cfg(not(feature = "whatsapp"))]
                ChannelKind::Whatsapp => {
                    registry.unavailable.insert(
                        name.clone(),
                        (ChannelKind::Whatsapp, "not available in this build (feature whatsapp)".into()),
                    );
                }
            }
        }
        Ok(registry)
    }

    /// Adds (or replaces) a WhatsApp account over `client` (the real one, or a fake in tests).
    pub fn insert_whatsapp(
        &mut self,
        name: &str,
        client: Arc<dyn super::whatsapp::WaClient>,
        wa: super::whatsapp::account::WaAccountConfig,
    ) -> Arc<super::whatsapp::WhatsAppChannel> {
        let channel = Arc::new(super::whatsapp::WhatsAppChannel::new(name, client, wa.settings));
        self.insert(ChannelAccount {
            name: name.to_string(),
            kind: ChannelKind::Whatsapp,
            channel: channel.clone(),
            policy: wa.policy,
        });
        self.whatsapp
            .insert(name.to_string(), WhatsAppAccount { channel: channel.clone(), session_dir: wa.session_dir });
        channel
    }

    /// The WhatsApp accounts, by name.
    pub fn whatsapp_accounts(&self) -> impl Iterator<Item = (&String, &WhatsAppAccount)> {
        self.whatsapp.iter()
    }

    /// Adds (or replaces) an account: for tests, the demo, and channels built elsewhere.
    pub fn insert(&mut self, account: ChannelAccount) {
        self.unavailable.remove(&account.name);
        self.whatsapp.remove(&account.name);
        self.accounts.insert(account.name.clone(), account);
    }

    /// The account that sends `name`'s messages while `name` cannot, if one is configured.
    pub fn fallback_for(&self, name: &str) -> Option<&str> {
        self.fallbacks.get(name).map(String::as_str)
    }

    /// Every (account, fallback) pair.
    pub fn fallbacks(&self) -> impl Iterator<Item = (&String, &String)> {
        self.fallbacks.iter()
    }

    /// Sets (or, with None, removes) an account's fallback: for tests and channels built elsewhere.
    pub fn set_fallback(&mut self, name: &str, fallback: Option<&str>) {
        match fallback {
            Some(f) => self.fallbacks.insert(name.to_string(), f.to_string()),
            None => self.fallbacks.remove(name),
        };
    }

    /// The Twilio accounts by name (their webhooks are signed with each one's auth token).
    pub fn twilio_accounts(&self) -> impl Iterator<Item = (&String, &Arc<TwilioChannel>)> {
        self.twilio.iter()
    }

    pub fn get(&self, name: &str) -> Option<&ChannelAccount> {
        self.accounts.get(name)
    }

    /// The account a campaign names, or an error that lists the accounts there are.
    pub fn require(&self, name: &str) -> Result<&ChannelAccount> {
        if let Some(account) = self.accounts.get(name) {
            return Ok(account);
        }
        if let Some((kind, why)) = self.unavailable.get(name) {
            return Err(Error::Usage(format!("channel account '{name}' ({}) is {why}", kind.as_str())));
        }
        let names: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
        Err(Error::Usage(format!(
            "there is no channel account '{name}'; configured: {} (add a [channels.{name}] section to the config \
             file)",
            names.join(", ")
        )))
    }

    pub fn accounts(&self) -> impl Iterator<Item = &ChannelAccount> {
        self.accounts.values()
    }

    /// Every configured account, sendable or not, by name.
    pub fn describe(&self) -> Vec<AccountInfo> {
        let mut all: Vec<AccountInfo> = self
            .accounts
            .values()
            .map(|a| AccountInfo {
                name: a.name.clone(),
                kind: a.kind.as_str(),
                state: "ready".into(),
                max_length: Some(a.channel.max_length()),
                connection: None,
                connection_updated_at: None,
                wait: None,
            })
            .chain(self.unavailable.iter().map(|(name, (kind, why))| AccountInfo {
                name: name.clone(),
                kind: kind.as_str(),
                state: why.clone(),
                max_length: None,
                connection: None,
                connection_updated_at: None,
                wait: None,
            }))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::FlagConfig;

    fn config(file: &str) -> Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, file).expect("write");
        let flags = FlagConfig { config_file: Some(path), ..Default::default() };
        Config::load(&flags, &|_| None).expect("config loads")
    }

    #[test]
    fn every_configured_account_is_built_with_its_own_policy() {
        let c = config(
            "[worker]\nrate_per_minute = 60\n[channels.eu]\nkind = \"sim\"\nurl = \"http://127.0.0.1:9\"\n\
             concurrency = 2\nrate_per_minute = 0\n[channels.backup]\nkind = \"whatsapp\"\ndaily_cap = 50\n",
        );
        let registry = ChannelRegistry::from_config(&c).expect("builds");
        let sim = registry.require("sim").expect("the built-in sim account");
        assert_eq!((sim.policy.rate_per_minute, sim.policy.concurrency), (Some(60), 5));
        let eu = registry.require("eu").expect("configured");
        assert_eq!((eu.policy.rate_per_minute, eu.policy.concurrency, eu.channel.name()), (None, 2, "eu"));
        let backup = registry.describe().into_iter().find(|a| a.name == "backup").map(|a| a.kind);
        assert_eq!(backup, Some("whatsapp"), "a WhatsApp account is built (this build has the feature)");
        let err = registry.require("nope").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("configured: ") && err.contains("eu, sim"), "{err}");
        let states: Vec<(String, String)> = registry.describe().into_iter().map(|a| (a.name, a.state)).collect();
        assert_eq!(states.len(), 3);
    }
}
