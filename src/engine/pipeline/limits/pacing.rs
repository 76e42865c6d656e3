//! Safe sending for accounts a vendor bans for bot-like traffic (WhatsApp): a random jitter
//! after every rate slot, so sends are not evenly spaced; a daily cap per account (one phone
//! number); and quiet hours in the recipient's local time, during which a message waits (it
//! is held and offered again when they end, nothing is sent).
//!
//! The recipient's time zone is the lead's `metadata.timezone` when present (`+05:30`,
//! `UTC-3`, or one of the IANA names in [`ZONES`]), otherwise the one of the phone number's
//! country calling code ([`CALLING_CODES`]). **Limitation:** both tables are fixed UTC
//! offsets (chrono-tz is not a dependency): no daylight saving time, and a country with
//! several zones gets one (the US and Canada count as Eastern, Russia as Moscow, Australia as
//! Sydney standard time, Brazil as Brasília). The daily cap counts sends since UTC midnight:
//! a sender starts from the store's count of the account's messages today
//! ([`Pacer::seed_today`]), so a restart does not reset it; two send workers serving one
//! account at the same time each count their own sends from there (run one per account).
//!
//! Time is tokio's clock, anchored to the wall clock once, so tests run under
//! `tokio::time::pause` and can start at any wall time.

use super::lock;
use super::waits::WaitReason;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Timelike, Utc};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A daily window in the recipient's local time, `start` inclusive, `end` exclusive; it may
/// wrap midnight (`21:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    pub fn parse(text: &str) -> Result<QuietHours, String> {
        let bad = || format!("quiet hours are HH:MM-HH:MM (e.g. \"21:00-08:00\"), not {text:?}");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let q = QuietHours { start: time(a)?, end: time(b)? };
        if q.start == q.end {
            return Err(format!("quiet hours {text:?} are empty"));
        }
        Ok(q)
    }

    /// How long until the quiet hours end, if `local` falls inside them.
    pub fn remaining(&self, local: NaiveTime) -> Option<Duration> {
        let inside = if self.start < self.end {
            local >= self.start && local < self.end
        } else {
            local >= self.start || local < self.end
        };
        if !inside {
            return None;
        }
        let secs = |t: NaiveTime| i64::from(t.num_seconds_from_midnight());
        let wait = (secs(self.end) - secs(local)).rem_euclid(86_400);
        Some(Duration::from_secs(wait as u64))
    }
}

impl std::fmt::Display for QuietHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start.format("%H:%M"), self.end.format("%H:%M"))
    }
}

impl Serialize for QuietHours {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for QuietHours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        QuietHours::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// IANA names understood in `metadata.timezone`, as fixed offsets in minutes (no DST).
pub const ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("Europe/London", 0),
    ("Europe/Dublin", 0),
    ("Europe/Lisbon", 0),
    ("Europe/Paris", 60),
    ("Europe/Berlin", 60),
    ("Europe/Madrid", 60),
    ("Europe/Rome", 60),
    ("Europe/Amsterdam", 60),
    ("Europe/Brussels", 60),
    ("Europe/Vienna", 60),
    ("Europe/Zurich", 60),
    ("Europe/Stockholm", 60),
    ("Europe/Warsaw", 60),
    ("Europe/Athens", 120),
    ("Europe/Helsinki", 120),
    ("Europe/Kyiv", 120),
    ("Europe/Istanbul", 180),
    ("Europe/Moscow", 180),
    ("Africa/Lagos", 60),
    ("Africa/Cairo", 120),
    ("Africa/Johannesburg", 120),
    ("Africa/Nairobi", 180),
    ("Asia/Dubai", 240),
    ("Asia/Karachi", 300),
    ("Asia/Kolkata", 330),
    ("Asia/Calcutta", 330),
    ("Asia/Dhaka", 360),
    ("Asia/Bangkok", 420),
    ("Asia/Jakarta", 420),
    ("Asia/Singapore", 480),
    ("Asia/Shanghai", 480),
    ("Asia/Manila", 480),
    ("Asia/Tokyo", 540),
    ("Asia/Seoul", 540),
    ("Australia/Sydney", 600),
    ("Pacific/Auckland", 720),
    ("America/New_York", -300),
    ("America/Toronto", -300),
    ("America/Chicago", -360),
    ("America/Mexico_City", -360),
    ("America/Denver", -420),
    ("America/Los_Angeles", -480),
    ("America/Bogota", -300),
    ("America/Lima", -300),
    ("America/Santiago", -240),
    ("America/Sao_Paulo", -180),
    ("America/Argentina/Buenos_Aires", -180),
];

/// Country calling code → a fixed UTC offset in minutes (one zone per country; no DST).
pub const CALLING_CODES: &[(&str, i32)] = &[
    ("1", -300),
    ("7", 180),
    ("20", 120),
    ("27", 120),
    ("30", 120),
    ("31", 60),
    ("32", 60),
    ("33", 60),
    ("34", 60),
    ("36", 60),
    ("39", 60),
    ("40", 120),
    ("41", 60),
    ("43", 60),
    ("44", 0),
    ("45", 60),
    ("46", 60),
    ("47", 60),
    ("48", 60),
    ("49", 60),
    ("51", -300),
    ("52", -360),
    ("54", -180),
    ("55", -180),
    ("56", -240),
    ("57", -300),
    ("60", 480),
    ("61", 600),
    ("62", 420),
    ("63", 480),
    ("64", 720),
    ("65", 480),
    ("66", 420),
    ("81", 540),
    ("82", 540),
    ("84", 420),
    ("86", 480),
    ("90", 180),
    ("91", 330),
    ("92", 300),
    ("212", 0),
    ("234", 60),
    ("254", 180),
    ("351", 0),
    ("353", 0),
    ("358", 120),
    ("380", 120),
    ("880", 360),
    ("966", 180),
    ("971", 240),
    ("972", 120),
];

/// `+05:30`, `-3`, `UTC+2`, `GMT-03:00` or a name in [`ZONES`] → offset in minutes.
pub fn parse_zone(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Some((_, m)) = ZONES.iter().find(|(name, _)| name.eq_ignore_ascii_case(t)) {
        return Some(*m);
    }
    let t = t.strip_prefix("UTC").or_else(|| t.strip_prefix("GMT")).unwrap_or(t);
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

/// The recipient's UTC offset: `timezone` when it parses, else the number's calling code,
/// else UTC.
pub fn recipient_offset(e164: &str, timezone: Option<&str>) -> FixedOffset {
    let minutes = timezone.and_then(parse_zone).or_else(|| {
        let digits = e164.strip_prefix('+')?;
        (1..=3)
            .rev()
            .filter_map(|n| digits.get(..n))
            .find_map(|p| CALLING_CODES.iter().find(|(c, _)| *c == p))
            .map(|(_, m)| *m)
    });
    FixedOffset::east_opt(minutes.unwrap_or(0) * 60).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
}

/// What the pacer says about one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pace {
    /// Go, after this extra (jitter) wait.
    Go(Duration),
    /// Not now: quiet hours at the recipient's, or the daily cap is reached; look again after.
    Hold { after: Duration, why: WaitReason },
}

/// The safe-sending state of one account.
#[derive(Debug)]
pub struct Pacer {
    jitter: Duration,
    daily_cap: Option<u32>,
    quiet: Option<QuietHours>,
    anchor: (DateTime<Utc>, Instant),
    day: Mutex<(NaiveDate, u32)>,
}

impl Pacer {
    pub fn new(jitter: Duration, daily_cap: Option<u32>, quiet: Option<QuietHours>) -> Pacer {
        Pacer::starting_at(jitter, daily_cap, quiet, Utc::now())
    }

    /// A pacer whose clock reads `wall` now (tests).
    pub fn starting_at(
        jitter: Duration,
        daily_cap: Option<u32>,
        quiet: Option<QuietHours>,
        wall: DateTime<Utc>,
    ) -> Pacer {
        Pacer { jitter, daily_cap, quiet, anchor: (wall, Instant::now()), day: Mutex::new((wall.date_naive(), 0)) }
    }

    pub fn is_noop(&self) -> bool {
        self.jitter.is_zero() && self.daily_cap.is_none() && self.quiet.is_none()
    }

    pub fn now(&self) -> DateTime<Utc> {
        let (wall, at) = self.anchor;
        wall + chrono::Duration::from_std(Instant::now() - at).unwrap_or_default()
    }

    /// Whether a send to `to` may go now; a `Go` reserves a place under the daily cap.
    pub fn check(&self, to: &str, timezone: Option<&str>, rng: &mut impl Rng) -> Pace {
        let now = self.now();
        if let Some(quiet) = self.quiet {
            let zone = recipient_offset(to, timezone);
            let local = now.with_timezone(&zone).time();
            if let Some(after) = quiet.remaining(local) {
                let until = quiet.end.format("%H:%M").to_string();
                return Pace::Hold { after, why: WaitReason::QuietHours { until, zone: format!("UTC{zone}") } };
            }
        }
        if let Some(cap) = self.daily_cap {
            let mut day = lock(&self.day);
            if day.0 != now.date_naive() {
                *day = (now.date_naive(), 0);
            }
            if day.1 >= cap {
                let midnight = now.date_naive().succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
                let after = midnight.and_then(|m| (m - now).to_std().ok()).unwrap_or(Duration::from_secs(3600));
                return Pace::Hold { after, why: WaitReason::DailyCap { cap } };
            }
            day.1 += 1;
        }
        let jitter =
            if self.jitter.is_zero() { Duration::ZERO } else { rng.random_range(Duration::ZERO..=self.jitter) };
        Pace::Go(jitter)
    }

    /// Gives back a place reserved by [`Pacer::check`] that was not used (the gate held it).
    pub fn unreserve(&self) {
        if self.daily_cap.is_some() {
            let mut day = lock(&self.day);
            day.1 = day.1.saturating_sub(1);
        }
    }

    /// The midnight (UTC) the daily cap counts from.
    pub fn today_start(&self) -> DateTime<Utc> {
        self.now().date_naive().and_time(NaiveTime::MIN).and_utc()
    }

    /// Starts today's count at `sent` (what the store says the account sent today), unless
    /// this process already counted more.
    pub fn seed_today(&self, sent: u32) {
        let today = self.now().date_naive();
        let mut day = lock(&self.day);
        if day.0 != today {
            *day = (today, 0);
        }
        day.1 = day.1.max(sent);
    }

    pub fn has_daily_cap(&self) -> bool {
        self.daily_cap.is_some()
    }

    /// Sends counted today.
    pub fn sent_today(&self) -> u32 {
        lock(&self.day).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn quiet_hours_parse_wrap_midnight_and_say_how_long_is_left() {
        let q = QuietHours::parse("21:00-08:00").expect("valid");
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").expect("time");
        assert_eq!(q.remaining(t("22:30")), Some(Duration::from_secs(9 * 3600 + 1800)));
        assert_eq!(q.remaining(t("07:59")), Some(Duration::from_secs(60)));
        assert_eq!(q.remaining(t("08:00")), None);
        assert_eq!(q.remaining(t("12:00")), None);
        let day = QuietHours::parse("12:00-13:00").expect("valid");
        assert_eq!(day.remaining(t("12:15")), Some(Duration::from_secs(45 * 60)));
        assert!(QuietHours::parse("9pm-8am").is_err() && QuietHours::parse("08:00-08:00").is_err());
        assert_eq!(q.to_string(), "21:00-08:00");
    }

    #[test]
    fn the_recipient_zone_comes_from_metadata_then_the_calling_code() {
        assert_eq!(recipient_offset("+447911123456", None).local_minus_utc(), 0);
        assert_eq!(recipient_offset("+919812345678", None).local_minus_utc(), 330 * 60);
        assert_eq!(recipient_offset("+12025550123", None).local_minus_utc(), -5 * 3600);
        assert_eq!(recipient_offset("+971501234567", None).local_minus_utc(), 4 * 3600, "three-digit codes win");
        assert_eq!(recipient_offset("+447911123456", Some("Asia/Tokyo")).local_minus_utc(), 9 * 3600);
        assert_eq!(recipient_offset("+447911123456", Some("UTC-03:00")).local_minus_utc(), -3 * 3600);
        assert_eq!(recipient_offset("+447911123456", Some("+05:30")).local_minus_utc(), 330 * 60);
        assert_eq!(
            recipient_offset("+447911123456", Some("Mars/Olympus")).local_minus_utc(),
            0,
            "unknown: the number's"
        );
        assert_eq!(recipient_offset("+999", None).local_minus_utc(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_hours_hold_in_the_recipients_time_and_end_on_time() {
        let quiet = QuietHours::parse("21:00-08:00").ok();
        // 06:00 UTC: 06:00 in London (quiet), 11:30 in India (not).
        let pacer = Pacer::starting_at(Duration::ZERO, None, quiet, at("2026-03-02T06:00:00Z"));
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(pacer.check("+919812345678", None, &mut rng), Pace::Go(Duration::ZERO));
        let Pace::Hold { after, why } = pacer.check("+447911123456", None, &mut rng) else { panic!("quiet in London") };
        assert_eq!(after, Duration::from_secs(2 * 3600));
        let quiet_until = WaitReason::QuietHours { until: "08:00".into(), zone: "UTC+00:00".into() };
        assert_eq!(why, quiet_until);
        tokio::time::advance(after).await;
        assert_eq!(pacer.check("+447911123456", None, &mut rng), Pace::Go(Duration::ZERO), "they ended");
        // The lead's own zone wins: Tokyo at 17:00 is not quiet.
        assert_eq!(pacer.check("+447911123456", Some("Asia/Tokyo"), &mut rng), Pace::Go(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_seeded_count_counts_toward_the_cap_and_never_lowers_it() {
        let pacer = Pacer::starting_at(Duration::ZERO, Some(3), None, at("2026-03-02T10:00:00Z"));
        assert_eq!(pacer.today_start(), at("2026-03-02T00:00:00Z"));
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(pacer.check("+447911123456", None, &mut rng), Pace::Go(Duration::ZERO));
        pacer.seed_today(0);
        assert_eq!(pacer.sent_today(), 1, "a lower count from the store does not undo this process's");
        pacer.seed_today(2);
        assert_eq!(pacer.check("+447911123456", None, &mut rng), Pace::Go(Duration::ZERO), "2 sent, 1 left");
        assert!(matches!(pacer.check("+447911123456", None, &mut rng), Pace::Hold { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_cap_holds_until_midnight_and_jitter_stays_within_its_bound() {
        let jitter = Duration::from_secs(5);
        let pacer = Pacer::starting_at(jitter, Some(3), None, at("2026-03-02T23:00:00Z"));
        let mut rng = SmallRng::seed_from_u64(7);
        let mut waits = Vec::new();
        for _ in 0..3 {
            match pacer.check("+447911123456", None, &mut rng) {
                Pace::Go(w) => waits.push(w),
                hold => panic!("under the cap: {hold:?}"),
            }
        }
        assert!(waits.iter().all(|w| *w <= jitter), "{waits:?}");
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "jittered, not evenly spaced: {waits:?}");
        let Pace::Hold { after, .. } = pacer.check("+447911123456", None, &mut rng) else { panic!("capped") };
        assert_eq!(after, Duration::from_secs(3600), "until UTC midnight");
        pacer.unreserve();
        assert!(matches!(pacer.check("+447911123456", None, &mut rng), Pace::Go(_)), "a place given back");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(matches!(pacer.check("+447911123456", None, &mut rng), Pace::Go(_)), "a new day");
        assert_eq!(pacer.sent_today(), 1);
    }
}
