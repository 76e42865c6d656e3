//! The circuit breaker of one channel account: it stops hammering a vendor that keeps failing.

use super::lock;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// What a dashboard shows of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Opens after `threshold` consecutive failures and rejects calls for `cooldown`; then lets one
/// probe through (half-open): its success closes the breaker, its failure opens it again.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<Breaker>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("circuit breaker open; next try in {retry_in:?}")]
pub struct BreakerOpen {
    pub retry_in: Duration,
}

/// Leave to make one call. Report its outcome with [`success`](Self::success) or
/// [`failure`](Self::failure); dropping it unreported counts for nothing (a probe's place is
/// freed for the next caller).
#[derive(Debug)]
#[must_use = "report the call's outcome, or drop the permit to count it for nothing"]
pub struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> CircuitBreaker {
        CircuitBreaker { threshold: threshold.max(1), cooldown, state: Mutex::new(Breaker::Closed { failures: 0 }) }
    }

    pub fn state(&self) -> BreakerState {
        match *lock(&self.state) {
            Breaker::Closed { .. } => BreakerState::Closed,
            Breaker::Open { until } if Instant::now() < until => BreakerState::Open,
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Leave to call the vendor, or how long until the breaker will consider it.
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>, BreakerOpen> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let probe = match *state {
            Breaker::Closed { .. } => false,
            Breaker::Open { until } if now < until => return Err(BreakerOpen { retry_in: until - now }),
            Breaker::Open { .. } | Breaker::HalfOpen { probing: false } => {
                *state = Breaker::HalfOpen { probing: true };
                true
            }
            // The probe's answer is awaited; ask again shortly.
            Breaker::HalfOpen { probing: true } => return Err(BreakerOpen { retry_in: self.cooldown.min(PROBE_WAIT) }),
        };
        Ok(BreakerPermit { breaker: self, probe, reported: false })
    }

    /// Opens the breaker at once for at least `duration`, whatever its state: the account
    /// cannot send (logged out, banned), so nothing is tried until then. An opening that lasts
    /// longer already is kept.
    pub fn trip(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut state = lock(&self.state);
        *state = match *state {
            Breaker::Open { until: later } if later > until => Breaker::Open { until: later },
            _ => Breaker::Open { until },
        };
    }

    /// Applies a call's outcome. Only the probe decides a half-open breaker; calls that started
    /// before the breaker opened do not shorten its cool-down.
    fn record(&self, probe: bool, ok: bool) {
        let mut state = lock(&self.state);
        *state = match (*state, probe, ok) {
            (Breaker::Closed { .. }, _, true) | (Breaker::HalfOpen { .. }, true, true) => {
                Breaker::Closed { failures: 0 }
            }
            (Breaker::Closed { failures }, _, false) if failures + 1 < self.threshold => {
                Breaker::Closed { failures: failures + 1 }
            }
            (Breaker::Closed { .. }, _, false) | (Breaker::HalfOpen { .. }, true, false) => {
                Breaker::Open { until: Instant::now() + self.cooldown }
            }
            (unchanged, _, _) => unchanged,
        };
    }
}

/// How long a caller is told to wait while a half-open probe is out.
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl BreakerPermit<'_> {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = lock(&self.breaker.state);
            if let Breaker::HalfOpen { probing: true } = *state {
                *state = Breaker::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_rejects_half_opens_and_closes() {
        let breaker = CircuitBreaker::new(3, Duration::from_secs(30));
        for _ in 0..2 {
            breaker.try_acquire().expect("closed").failure();
        }
        breaker.try_acquire().expect("closed").success();
        for _ in 0..2 {
            breaker.try_acquire().expect("closed").failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "a success resets the count");
        breaker.try_acquire().expect("closed").failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.try_acquire().expect_err("open"), BreakerOpen { retry_in: Duration::from_secs(30) });

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(breaker.try_acquire().expect_err("open").retry_in, Duration::from_secs(20));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let probe = breaker.try_acquire().expect("one probe");
        assert!(breaker.try_acquire().is_err(), "only one probe at a time");
        probe.failure();
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe re-opens");
        assert_eq!(breaker.try_acquire().expect_err("open").retry_in, Duration::from_secs(30));

        tokio::time::advance(Duration::from_secs(30)).await;
        breaker.try_acquire().expect("probe").success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.try_acquire().expect("closed").success();
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_opens_the_breaker_at_once_for_as_long_as_asked() {
        let breaker = CircuitBreaker::new(5, Duration::from_secs(5));
        breaker.trip(Duration::from_secs(600));
        assert_eq!(breaker.try_acquire().expect_err("tripped").retry_in, Duration::from_secs(600));
        breaker.trip(Duration::from_secs(60));
        assert_eq!(
            breaker.try_acquire().expect_err("kept").retry_in,
            Duration::from_secs(600),
            "the longer opening stays"
        );
        tokio::time::advance(Duration::from_secs(600)).await;
        breaker.try_acquire().expect("a probe after the pause").success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreported_probe_frees_its_place_and_late_outcomes_do_not_count() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(5));
        let early = breaker.try_acquire().expect("closed");
        breaker.try_acquire().expect("closed").failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        early.success();
        assert_eq!(breaker.state(), BreakerState::Open, "a call from before the opening does not close it");

        tokio::time::advance(Duration::from_secs(5)).await;
        drop(breaker.try_acquire().expect("probe"));
        breaker.try_acquire().expect("the next caller probes").success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
