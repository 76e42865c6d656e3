//! Why an account's next send waits, and until when: the answer `crm campaigns status` and the
//! dashboard give ("next send at 08:00, quiet hours at the recipient's"). [`Limits`] notes each
//! wait here as it decides it (in memory, cheap); the sender writes the latest to the store now
//! and then ([`WaitBoard::take_changed`]), so any process can read it.
//!
//! Of several waits of one kind noted together (sends waiting in parallel for their rate
//! slots), the earliest one still ahead wins: it is when the next send happens. A wait of
//! another kind is newer news (the daily cap was reached while a rate slot was ahead) and
//! replaces it.
//!
//! [`Limits`]: super::Limits

use super::lock;
use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::Mutex;

/// Why a send waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// The account's rate limit (messages per minute), or a vendor's "slow down".
    RateLimit,
    /// Safe sending's random pause between sends.
    Jitter,
    /// Quiet hours at the recipient's: until `until` (HH:MM) in the zone `zone` (`UTC+01:00`).
    QuietHours { until: String, zone: String },
    /// The account's daily cap is reached: until midnight UTC.
    DailyCap { cap: u32 },
    /// The vendor kept failing: the circuit breaker is open.
    BreakerOpen,
    /// The account cannot send (logged out, banned until …, waiting for pairing).
    AccountPaused { why: String },
}

impl WaitReason {
    /// A stable machine name: `rate_limit`, `jitter`, `quiet_hours`, `daily_cap`,
    /// `breaker_open`, `account_paused`.
    pub fn kind(&self) -> &'static str {
        match self {
            WaitReason::RateLimit => "rate_limit",
            WaitReason::Jitter => "jitter",
            WaitReason::QuietHours { .. } => "quiet_hours",
            WaitReason::DailyCap { .. } => "daily_cap",
            WaitReason::BreakerOpen => "breaker_open",
            WaitReason::AccountPaused { .. } => "account_paused",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::RateLimit => f.write_str("rate limit"),
            WaitReason::Jitter => f.write_str("random pause between sends (safe sending)"),
            WaitReason::QuietHours { until, zone } => {
                write!(f, "quiet hours at the recipient's until {until} ({zone})")
            }
            WaitReason::DailyCap { cap } => write!(f, "daily cap of {cap} messages reached; until midnight UTC"),
            WaitReason::BreakerOpen => f.write_str("the channel kept failing; circuit breaker open"),
            WaitReason::AccountPaused { why } => write!(f, "account paused: {why}"),
        }
    }
}

/// One noted wait: the next send is not before `next_at`, because of `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub next_at: DateTime<Utc>,
    pub reason: WaitReason,
}

/// The latest wait of one account, and whether it changed since it was last taken.
#[derive(Debug, Default)]
pub struct WaitBoard {
    state: Mutex<(Option<Wait>, bool)>,
}

impl WaitBoard {
    /// Notes a wait decided at `now`: it replaces the current one unless that one is of the
    /// same kind, still ahead and no later.
    pub fn note(&self, now: DateTime<Utc>, wait: Wait) {
        let mut state = lock(&self.state);
        let keep = state.0.as_ref().is_some_and(|current| {
            current == &wait
                || (current.reason.kind() == wait.reason.kind()
                    && current.next_at > now
                    && current.next_at <= wait.next_at)
        });
        if !keep {
            *state = (Some(wait), true);
        }
    }

    /// The latest wait, if it changed since the last call.
    pub fn take_changed(&self) -> Option<Wait> {
        let mut state = lock(&self.state);
        if !state.1 {
            return None;
        }
        state.1 = false;
        state.0.clone()
    }

    pub fn current(&self) -> Option<Wait> {
        lock(&self.state).0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_000_000 + secs, 0).expect("time")
    }

    #[test]
    fn the_earliest_wait_ahead_wins_and_changes_are_taken_once() {
        let board = WaitBoard::default();
        assert_eq!(board.take_changed(), None);
        board.note(at(0), Wait { next_at: at(4), reason: WaitReason::RateLimit });
        board.note(at(0), Wait { next_at: at(6), reason: WaitReason::RateLimit });
        assert_eq!(board.take_changed(), Some(Wait { next_at: at(4), reason: WaitReason::RateLimit }));
        assert_eq!(board.take_changed(), None, "taken once");
        board.note(at(1), Wait { next_at: at(4), reason: WaitReason::RateLimit });
        assert_eq!(board.take_changed(), None, "the same wait again is no change");
        // Once the earliest has passed, the next noted wait replaces it, later or not.
        board.note(at(5), Wait { next_at: at(8), reason: WaitReason::RateLimit });
        assert_eq!(board.take_changed().map(|w| w.next_at), Some(at(8)));
        // Another kind is newer news: it replaces a wait still ahead, even an earlier one.
        let quiet = WaitReason::QuietHours { until: "08:00".into(), zone: "UTC+00:00".into() };
        board.note(at(6), Wait { next_at: at(3600), reason: quiet.clone() });
        assert_eq!(board.take_changed().map(|w| w.reason), Some(quiet));
        assert_eq!(board.current().map(|w| w.next_at), Some(at(3600)));
    }

    #[test]
    fn reasons_have_stable_kinds_and_say_why_in_words() {
        let quiet = WaitReason::QuietHours { until: "08:00".into(), zone: "UTC+01:00".into() };
        assert_eq!(
            (quiet.kind(), quiet.to_string().as_str()),
            ("quiet_hours", "quiet hours at the recipient's until 08:00 (UTC+01:00)")
        );
        assert_eq!(WaitReason::DailyCap { cap: 200 }.kind(), "daily_cap");
        assert!(WaitReason::AccountPaused { why: "temporarily banned".into() }.to_string().contains("banned"));
    }
}
