//! A `[channels.NAME]` WhatsApp account's settings, read from its section:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `rate_per_minute` | 6 | sends a minute (not the `[worker]` rate: WhatsApp's own default) |
//! | `concurrency` | 1 | sends in flight |
//! | `jitter_ms` | 5000 | random extra wait of up to this long after each rate slot |
//! | `daily_cap` | 200 | messages per UTC day (0: no cap) |
//! | `quiet_hours` | `"21:00-08:00"` | recipient's local time during which messages wait (`"off"`: none) |
//! | `check_on_whatsapp` | true | ask before a lead's first message; not on WhatsApp → skipped |
//! | `send_timeout_ms` | 30000 | after this long a send's outcome is ambiguous (UNCERTAIN) |
//! | `session_dir` | `<data dir>/whatsapp/NAME` | the session files |
//!
//! Other keys are refused (a typo must not silently leave a safety setting at its default).

use super::WaSettings;
use super::session::default_session_dir;
use crate::engine::config::{ChannelSection, Config};
use crate::engine::error::{Error, Result};
use crate::engine::pipeline::limits::{QuietHours, SenderPolicy};
use std::path::PathBuf;
use std::time::Duration;

const KEYS: &str = "rate_per_minute, concurrency, jitter_ms, daily_cap, quiet_hours, check_on_whatsapp, \
                    send_timeout_ms, session_dir, fallback, breaker_failures";

/// Everything one WhatsApp account is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct WaAccountConfig {
    pub settings: WaSettings,
    pub policy: SenderPolicy,
    pub session_dir: PathBuf,
}

pub fn account_config(config: &Config, name: &str, section: &ChannelSection) -> Result<WaAccountConfig> {
    let bad = |key: &str, want: &str| Error::Usage(format!("[channels.{name}] {key}: expected {want}"));
    let base = crate::engine::channel::registry::policy_for(config, Some(section))?;
    let wa = SenderPolicy::whatsapp();
    let mut policy = SenderPolicy {
        rate_per_minute: section.rate_per_minute.map_or(wa.rate_per_minute, |r| (r > 0).then_some(r)),
        concurrency: section.concurrency.map_or(wa.concurrency, |c| c as usize),
        jitter: wa.jitter,
        daily_cap: wa.daily_cap,
        quiet_hours: wa.quiet_hours,
        ..base
    };
    let mut settings = WaSettings::default();
    let mut session_dir = default_session_dir(name);
    for (key, value) in &section.settings {
        match key.as_str() {
            "jitter_ms" => {
                let ms = value.as_integer().filter(|v| *v >= 0).ok_or_else(|| bad(key, "milliseconds"))?;
                policy.jitter = Duration::from_millis(ms as u64);
            }
            "daily_cap" => {
                let n = value.as_integer().filter(|v| (0..=i64::from(u32::MAX)).contains(v));
                let n = n.ok_or_else(|| bad(key, "a number of messages (0: no cap)"))?;
                policy.daily_cap = (n > 0).then_some(n as u32);
            }
            "quiet_hours" => {
                policy.quiet_hours = match value {
                    toml::Value::String(s) if s.eq_ignore_ascii_case("off") => None,
                    toml::Value::Boolean(false) => None,
                    toml::Value::String(s) => {
                        Some(QuietHours::parse(s).map_err(|e| Error::Usage(format!("[channels.{name}] {e}")))?)
                    }
                    _ => return Err(bad(key, "\"HH:MM-HH:MM\" or \"off\"")),
                }
            }
            "check_on_whatsapp" => {
                settings.check_on_whatsapp = value.as_bool().ok_or_else(|| bad(key, "true or false"))?
            }
            "send_timeout_ms" => {
                let ms = value.as_integer().filter(|v| *v > 0).ok_or_else(|| bad(key, "milliseconds"))?;
                settings.send_timeout = Duration::from_millis(ms as u64);
            }
            "session_dir" => session_dir = PathBuf::from(value.as_str().ok_or_else(|| bad(key, "a directory"))?),
            // Read by the registry and `policy_for` for every kind of account.
            "fallback" | "breaker_failures" => {}
            other => {
                return Err(Error::Usage(format!(
                    "[channels.{name}]: unknown WhatsApp setting {other:?}; valid: {KEYS}"
                )));
            }
        }
    }
    policy.validate().map_err(|e| Error::Usage(format!("[channels.{name}] sender policy: {e}")))?;
    Ok(WaAccountConfig { settings, policy, session_dir })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::FlagConfig;

    fn load(file: &str) -> Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, file).expect("write");
        Config::load(&FlagConfig { config_file: Some(path), ..Default::default() }, &|_| None).expect("loads")
    }

    #[test]
    fn whatsapp_accounts_get_conservative_defaults_and_their_own_overrides() {
        let c = load("[worker]\nrate_per_minute = 600\n[channels.whatsapp]\n");
        let a = account_config(&c, "whatsapp", &c.channels["whatsapp"]).expect("valid");
        assert_eq!(a.policy.rate_per_minute, Some(6), "not the worker's 600");
        assert_eq!((a.policy.concurrency, a.policy.daily_cap), (1, Some(200)));
        assert_eq!(a.policy.quiet_hours.map(|q| q.to_string()).as_deref(), Some("21:00-08:00"));
        assert!(a.settings.check_on_whatsapp);
        assert!(a.session_dir.ends_with("whatsapp/whatsapp"));

        let c = load(
            "[channels.wa]\nkind = \"whatsapp\"\nrate_per_minute = 2\njitter_ms = 100\ndaily_cap = 0\n\
             quiet_hours = \"off\"\ncheck_on_whatsapp = false\nsend_timeout_ms = 500\nsession_dir = \"/tmp/s\"\n",
        );
        let a = account_config(&c, "wa", &c.channels["wa"]).expect("valid");
        assert_eq!((a.policy.rate_per_minute, a.policy.jitter), (Some(2), Duration::from_millis(100)));
        assert_eq!((a.policy.daily_cap, a.policy.quiet_hours), (None, None));
        assert_eq!(a.settings, WaSettings { check_on_whatsapp: false, send_timeout: Duration::from_millis(500) });
        assert_eq!(a.session_dir, PathBuf::from("/tmp/s"));

        let c = load("[channels.wa]\nkind = \"whatsapp\"\nquiet_hour = \"22:00-07:00\"\n");
        let err = account_config(&c, "wa", &c.channels["wa"]).expect_err("typo");
        assert!(err.to_string().contains("quiet_hour") && err.to_string().contains("valid:"), "{err}");
        let c = load("[channels.wa]\nkind = \"whatsapp\"\nquiet_hours = \"late\"\n");
        assert!(account_config(&c, "wa", &c.channels["wa"]).is_err());
    }
}
