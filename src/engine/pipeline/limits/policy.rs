//! The sending policy of one channel account (rate, concurrency, retries, breaker), as the
//! config file spells it (durations in milliseconds), and its validation.

use super::pacing::QuietHours;
use super::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The sending policy of one channel account, as the config file spells it (durations in ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SenderPolicy {
    /// Messages per minute; `None` is unlimited (in a file: `"unlimited"` or 0).
    #[serde(with = "rate_serde")]
    pub rate_per_minute: Option<u32>,
    /// How many messages may go back to back after a quiet spell (1 = evenly spaced).
    pub burst: u32,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Tries per message, the first included, before it goes to the dead-letter queue.
    pub max_attempts: u32,
    #[serde(rename = "backoff_base_ms", with = "millis")]
    pub backoff_base: Duration,
    #[serde(rename = "backoff_cap_ms", with = "millis")]
    pub backoff_cap: Duration,
    /// Consecutive temporary failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker rejects before letting one probe through.
    #[serde(rename = "breaker_cooldown_ms", with = "millis")]
    pub breaker_cooldown: Duration,
    /// Safe sending ([`super::pacing`]): a random extra wait of up to this long after every
    /// rate slot (0: none).
    #[serde(rename = "jitter_ms", with = "millis")]
    pub jitter: Duration,
    /// Messages per UTC day through this account (one phone number); `None`: no cap.
    pub daily_cap: Option<u32>,
    /// Hours in the recipient's local time during which messages wait (`"21:00-08:00"`).
    pub quiet_hours: Option<QuietHours>,
}

impl Default for SenderPolicy {
    fn default() -> Self {
        SenderPolicy {
            rate_per_minute: Some(30),
            burst: 1,
            concurrency: 5,
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            jitter: Duration::ZERO,
            daily_cap: None,
            quiet_hours: None,
        }
    }
}

impl SenderPolicy {
    /// The conservative defaults of a WhatsApp account (a personal number that WhatsApp bans
    /// for bot-like traffic): 6 a minute, one at a time, up to 5 s of jitter after each, 200 a
    /// day, nothing between 21:00 and 08:00 at the recipient's.
    pub fn whatsapp() -> SenderPolicy {
        SenderPolicy {
            rate_per_minute: Some(6),
            concurrency: 1,
            jitter: Duration::from_secs(5),
            daily_cap: Some(200),
            quiet_hours: QuietHours::parse("21:00-08:00").ok(),
            ..SenderPolicy::default()
        }
    }

    /// What is wrong with the policy, if anything, in words for the config file's author.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("burst", u64::from(self.burst)),
            ("concurrency", self.concurrency as u64),
            ("max_attempts", u64::from(self.max_attempts)),
            ("breaker_failures", u64::from(self.breaker_failures)),
            ("daily_cap", self.daily_cap.map_or(1, u64::from)),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if self.backoff_base > self.backoff_cap {
            return Err("backoff_base_ms must not exceed backoff_cap_ms".into());
        }
        Ok(())
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy { max_attempts: self.max_attempts, base: self.backoff_base, cap: self.backoff_cap }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod rate_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Count(u32),
        Word(String),
    }

    pub fn serialize<S: Serializer>(rate: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match rate {
            Some(n) => s.serialize_u32(*n),
            None => s.serialize_str("unlimited"),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None | Some(Raw::Count(0)) => Ok(None),
            Some(Raw::Count(n)) => Ok(Some(n)),
            Some(Raw::Word(w)) if w.eq_ignore_ascii_case("unlimited") => Ok(None),
            Some(Raw::Word(w)) => {
                Err(serde::de::Error::custom(format!("expected messages per minute or \"unlimited\", not {w:?}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_reads_from_toml_with_defaults_and_unlimited() {
        let policy: SenderPolicy =
            toml::from_str("rate_per_minute = 120\nconcurrency = 2\nbackoff_base_ms = 250").expect("valid");
        assert_eq!(policy.rate_per_minute, Some(120));
        assert_eq!(policy.concurrency, 2);
        assert_eq!(policy.backoff_base, Duration::from_millis(250));
        assert_eq!(policy.max_attempts, 5, "unset fields keep their defaults");
        for text in ["rate_per_minute = \"unlimited\"", "rate_per_minute = 0"] {
            let policy: SenderPolicy = toml::from_str(text).expect("valid");
            assert_eq!(policy.rate_per_minute, None, "{text}");
        }
        assert!(toml::from_str::<SenderPolicy>("rate_per_minute = \"fast\"").is_err());
        assert!(toml::from_str::<SenderPolicy>("concurency = 2").is_err(), "typos are refused");
        let unlimited = SenderPolicy { rate_per_minute: None, ..SenderPolicy::default() };
        let back: SenderPolicy = toml::from_str(&toml::to_string(&unlimited).expect("writes")).expect("reads");
        assert_eq!(back, unlimited);
    }

    #[test]
    fn policy_validation_names_the_bad_setting() {
        assert_eq!(SenderPolicy::default().validate(), Ok(()));
        let zero = SenderPolicy { concurrency: 0, ..SenderPolicy::default() };
        assert_eq!(zero.validate(), Err("concurrency must be at least 1".into()));
        let upside_down = SenderPolicy { backoff_base: Duration::from_secs(90), ..SenderPolicy::default() };
        assert!(upside_down.validate().expect_err("invalid").contains("backoff_base_ms"));
    }
}
