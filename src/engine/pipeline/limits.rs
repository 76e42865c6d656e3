//! Sender policies, the same around every channel: a rate limit per channel account, a cap on
//! sends in flight, retries with capped and fully jittered exponential backoff, and a circuit
//! breaker that stops hammering a vendor that keeps failing. [`Limits`] puts them together;
//! each piece is usable on its own, and all of them keep time with tokio's clock so tests run
//! under `tokio::time::pause` without sleeping.
//!
//! Which failures count against the breaker: only [`ChannelError::Transient`] ones. A 429 means
//! the vendor is alive and wants us slower (the rate limiter holds off instead); a permanent
//! failure is the message's fault, not the vendor's.

use crate::engine::channel::{Channel, ChannelError, OutboundMessage, SendOutcome};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::time::Instant;

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
        }
    }
}

impl SenderPolicy {
    /// What is wrong with the policy, if anything, in words for the config file's author.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("burst", u64::from(self.burst)),
            ("concurrency", self.concurrency as u64),
            ("max_attempts", u64::from(self.max_attempts)),
            ("breaker_failures", u64::from(self.breaker_failures)),
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A token bucket in its GCRA form: one "theoretical arrival time" instead of a token count,
/// so waiting callers queue up fairly (each reserves the next free slot and sleeps until it).
#[derive(Debug)]
pub struct RateLimiter {
    /// Time per message and the slack that allows a burst; `None` is unlimited.
    rule: Option<(Duration, Duration)>,
    state: Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    /// When the bucket would be empty again if every reserved slot were used.
    tat: Instant,
    /// Nothing goes before this (the vendor asked us to wait).
    not_before: Instant,
}

impl RateLimiter {
    /// `per_minute` messages a minute (`None`: unlimited), up to `burst` back to back.
    pub fn new(per_minute: Option<u32>, burst: u32) -> RateLimiter {
        let rule = per_minute.filter(|n| *n > 0).map(|n| {
            let interval = Duration::from_secs(60) / n;
            (interval, interval * burst.max(1).saturating_sub(1))
        });
        let now = Instant::now();
        RateLimiter { rule, state: Mutex::new(Slots { tat: now, not_before: now }) }
    }

    pub fn unlimited() -> RateLimiter {
        RateLimiter::new(None, 1)
    }

    /// Waits for the next slot. A caller dropped while waiting forfeits its slot.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let start = {
            let mut slots = lock(&self.state);
            let (start, tat) = self.plan(&slots, now);
            slots.tat = tat;
            start
        };
        if start > now {
            tokio::time::sleep_until(start).await;
        }
    }

    /// Takes a slot if one is free now; otherwise says how long until one is (taking nothing),
    /// for a sender that would rather requeue the job than hold a worker.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut slots = lock(&self.state);
        let (start, tat) = self.plan(&slots, now);
        if start > now {
            return Err(start - now);
        }
        slots.tat = tat;
        Ok(())
    }

    /// Lets nothing through for `pause` (a vendor's `Retry-After`), whatever the rate.
    pub fn hold_off(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut slots = lock(&self.state);
        slots.not_before = slots.not_before.max(until);
    }

    /// When a request arriving `now` may go, and the arrival time after it.
    fn plan(&self, slots: &Slots, now: Instant) -> (Instant, Instant) {
        let mut start = now.max(slots.not_before);
        let Some((interval, slack)) = self.rule else { return (start, slots.tat) };
        let tat = slots.tat.max(now);
        start = start.max(tat.checked_sub(slack).unwrap_or(now));
        (start, tat.max(start) + interval)
    }
}

/// The largest backoff before retry number `attempt + 1`: `min(cap, base · 2^attempt)`.
pub fn backoff_ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// Full-jitter exponential backoff: uniform in `[0, min(cap, base · 2^attempt)]`. Jitter over
/// the whole range keeps a crowd of failed sends from retrying in lockstep.
pub fn backoff<R: Rng + ?Sized>(attempt: u32, base: Duration, cap: Duration, rng: &mut R) -> Duration {
    let ceiling = backoff_ceiling(attempt, base, cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

/// How often and how patiently to retry a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait before retrying after try number `attempt` (1-based) failed with `err`; `None`
    /// when the failure is permanent or the tries are used up. A vendor's `Retry-After` is a
    /// floor under the jittered backoff.
    pub fn delay_after<R: Rng + ?Sized>(&self, attempt: u32, err: &ChannelError, rng: &mut R) -> Option<Duration> {
        if !err.is_retryable() || attempt >= self.max_attempts {
            return None;
        }
        let jittered = backoff(attempt.saturating_sub(1), self.base, self.cap, rng);
        Some(err.retry_after().map_or(jittered, |floor| floor.max(jittered)))
    }
}

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

/// Why [`Limits`] did not deliver a send.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    /// The breaker is open: the channel was not called.
    #[error(transparent)]
    CircuitOpen(#[from] BreakerOpen),
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// Every policy for one channel account, applied in the order that wastes least: the breaker
/// first (no rate slot is spent on a vendor that is down), then the rate limit, then the
/// concurrency cap, then the call.
#[derive(Debug)]
pub struct Limits {
    rate: RateLimiter,
    concurrency: Semaphore,
    max_concurrency: usize,
    breaker: CircuitBreaker,
    retry: RetryPolicy,
}

impl Limits {
    pub fn new(policy: &SenderPolicy) -> Limits {
        let max_concurrency = policy.concurrency.max(1);
        Limits {
            rate: RateLimiter::new(policy.rate_per_minute, policy.burst),
            concurrency: Semaphore::new(max_concurrency),
            max_concurrency,
            breaker: CircuitBreaker::new(policy.breaker_failures, policy.breaker_cooldown),
            retry: policy.retry(),
        }
    }

    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.rate
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends in flight right now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrency - self.concurrency.available_permits()
    }

    /// One try through every policy. The caller decides about retrying, with [`Limits::retry`].
    pub async fn send(&self, channel: &dyn Channel, msg: &OutboundMessage) -> Result<SendOutcome, LimitError> {
        let permit = self.breaker.try_acquire()?;
        self.rate.acquire().await;
        let _slot = self.concurrency.acquire().await.map_err(|_| ChannelError::Transient("sender closed".into()))?;
        let result = channel.send(msg).await;
        match &result {
            Ok(_) | Err(ChannelError::Permanent(_)) => permit.success(),
            Err(ChannelError::Transient(_)) => permit.failure(),
            Err(ChannelError::RateLimited { retry_after }) => {
                self.rate.hold_off(*retry_after);
                drop(permit);
            }
        }
        Ok(result?)
    }

    /// Tries until success, a permanent failure, or the last attempt, waiting the retry policy's
    /// backoff (or the breaker's cool-down) in between. For in-process senders such as a demo;
    /// the pipeline's sender requeues through the bus instead of holding a worker.
    pub async fn send_with_retries(
        &self,
        channel: &dyn Channel,
        msg: &OutboundMessage,
    ) -> Result<SendOutcome, LimitError> {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let mut attempt = 1;
        loop {
            let err = match self.send(channel, msg).await {
                Ok(outcome) => return Ok(outcome),
                Err(err) => err,
            };
            let delay = match &err {
                LimitError::CircuitOpen(open) if attempt < self.retry.max_attempts => Some(open.retry_in),
                LimitError::CircuitOpen(_) => None,
                LimitError::Channel(e) => self.retry.delay_after(attempt, e, &mut rng),
            };
            let Some(delay) = delay else { return Err(err) };
            tracing::debug!(send_id = %msg.send_id, attempt, ?delay, error = %err, "Send failed; retrying.");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn elapsed_since(start: Instant) -> Duration {
        Instant::now() - start
    }

    /// Within a millisecond of `expected` (tokio's timer ticks in milliseconds).
    fn about(actual: Duration, expected: Duration) -> bool {
        actual >= expected && actual <= expected + Duration::from_millis(2)
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_rate_spaces_sends_two_seconds_apart() {
        let limiter = RateLimiter::new(SenderPolicy::default().rate_per_minute, 1);
        let start = Instant::now();
        for i in 0..5u32 {
            limiter.acquire().await;
            assert!(about(elapsed_since(start), Duration::from_secs(2) * i), "send {i} at {:?}", elapsed_since(start));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_rate_applies_and_idle_time_refills_only_the_burst() {
        let limiter = RateLimiter::new(Some(60), 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(elapsed_since(start), Duration::ZERO, "the burst waits for nothing");
        limiter.acquire().await;
        assert!(about(elapsed_since(start), Duration::from_secs(1)));

        tokio::time::advance(Duration::from_secs(60)).await;
        let idle_end = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(elapsed_since(idle_end), Duration::ZERO);
        limiter.acquire().await;
        assert!(
            about(elapsed_since(idle_end), Duration::from_secs(1)),
            "a long idle spell saves no more than the burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_callers_queue_for_successive_slots() {
        let limiter = Arc::new(RateLimiter::new(Some(30), 1));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                limiter.acquire().await;
                Instant::now()
            });
        }
        let mut times: Vec<Duration> = tasks.join_all().await.into_iter().map(|t| t - start).collect();
        times.sort();
        for (i, t) in times.iter().enumerate() {
            assert!(about(*t, Duration::from_secs(2) * i as u32), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn try_acquire_says_how_long_and_takes_nothing_when_refused() {
        let limiter = RateLimiter::new(Some(30), 1);
        assert_eq!(limiter.try_acquire(), Ok(()));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(limiter.try_acquire(), Err(Duration::from_millis(500)), "the refusal reserved nothing");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(limiter.try_acquire(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits_but_honours_hold_off() {
        let limiter = RateLimiter::unlimited();
        let start = Instant::now();
        for _ in 0..10_000 {
            limiter.acquire().await;
        }
        assert_eq!(elapsed_since(start), Duration::ZERO);
        limiter.hold_off(Duration::from_secs(3));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(3)));
        limiter.acquire().await;
        assert!(about(elapsed_since(start), Duration::from_secs(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn hold_off_pushes_a_rate_limited_bucket_back() {
        let limiter = RateLimiter::new(Some(60), 10);
        let start = Instant::now();
        limiter.hold_off(Duration::from_secs(5));
        limiter.acquire().await;
        assert!(about(elapsed_since(start), Duration::from_secs(5)));
    }

    #[test]
    fn backoff_stays_within_its_ceiling_and_the_ceiling_grows_to_the_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(10));
        let mut rng = SmallRng::seed_from_u64(7);
        let mut previous_ceiling = Duration::ZERO;
        for attempt in 0..40 {
            let ceiling = backoff_ceiling(attempt, base, cap);
            let expected = if attempt < 7 { base * 2u32.pow(attempt) } else { cap };
            assert_eq!(ceiling, expected.min(cap), "attempt {attempt}");
            assert!(ceiling >= previous_ceiling);
            previous_ceiling = ceiling;
            for _ in 0..500 {
                let d = backoff(attempt, base, cap, &mut rng);
                assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
            }
        }
        assert_eq!(backoff_ceiling(u32::MAX, base, cap), cap, "no overflow");
        assert_eq!(backoff_ceiling(3, Duration::MAX, cap), cap, "no overflow");
    }

    #[test]
    fn backoff_is_spread_over_the_whole_range_and_grows_on_average() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(60));
        let mut rng = SmallRng::seed_from_u64(1);
        let mean = |attempt, rng: &mut SmallRng| -> Duration {
            (0..2_000).map(|_| backoff(attempt, base, cap, rng)).sum::<Duration>() / 2_000
        };
        let means: Vec<Duration> = (0..6).map(|a| mean(a, &mut rng)).collect();
        for (attempt, pair) in means.windows(2).enumerate() {
            assert!(pair[1] > pair[0], "mean backoff shrank after attempt {attempt}: {means:?}");
        }
        let half = backoff_ceiling(3, base, cap) / 2;
        let m = means[3];
        assert!(m > half * 9 / 10 && m < half * 11 / 10, "full jitter averages half the ceiling: {m:?}");
        let samples: Vec<Duration> = (0..1_000).map(|_| backoff(2, base, cap, &mut rng)).collect();
        assert!(samples.iter().any(|d| *d < Duration::from_millis(40)), "jitter reaches near zero");
        assert!(samples.iter().any(|d| *d > Duration::from_millis(360)), "jitter reaches near the ceiling");
    }

    #[test]
    fn retry_policy_stops_at_permanent_failures_and_the_last_attempt() {
        let policy = SenderPolicy::default().retry();
        let mut rng = SmallRng::seed_from_u64(3);
        let transient = ChannelError::Transient("503".into());
        for attempt in 1..5 {
            let delay = policy.delay_after(attempt, &transient, &mut rng).expect("retries");
            assert!(delay <= backoff_ceiling(attempt - 1, policy.base, policy.cap));
        }
        assert_eq!(policy.delay_after(5, &transient, &mut rng), None, "five tries in all");
        assert_eq!(policy.delay_after(1, &ChannelError::Permanent("bad number".into()), &mut rng), None);
        let limited = ChannelError::RateLimited { retry_after: Duration::from_secs(30) };
        assert!(policy.delay_after(1, &limited, &mut rng).expect("retries") >= Duration::from_secs(30));
    }

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

    /// A channel answering from a script, counting calls and the most calls at once.
    struct Scripted {
        answers: Mutex<VecDeque<Result<SendOutcome, ChannelError>>>,
        calls: AtomicUsize,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        takes: Duration,
    }

    impl Scripted {
        fn new(answers: Vec<Result<SendOutcome, ChannelError>>, takes: Duration) -> Scripted {
            Scripted {
                answers: Mutex::new(answers.into()),
                calls: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
                takes,
            }
        }
    }

    fn ok() -> Result<SendOutcome, ChannelError> {
        Ok(SendOutcome { provider_message_id: "p1".into(), duplicate: false })
    }

    #[async_trait]
    impl Channel for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn max_length(&self) -> usize {
            100
        }
        async fn send(&self, _msg: &OutboundMessage) -> Result<SendOutcome, ChannelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.takes).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            lock(&self.answers).pop_front().unwrap_or_else(ok)
        }
        async fn lookup(&self, _key: &str) -> Result<Option<String>, ChannelError> {
            Ok(None)
        }
    }

    fn msg() -> OutboundMessage {
        OutboundMessage { send_id: "c1:l1".into(), to: "+447700900123".into(), body: "Hi".into(), callback_url: None }
    }

    fn unlimited_policy() -> SenderPolicy {
        SenderPolicy { rate_per_minute: None, ..SenderPolicy::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_concurrency_limit_is_in_flight() {
        let limits = Arc::new(Limits::new(&unlimited_policy()));
        let channel = Arc::new(Scripted::new(vec![], Duration::from_secs(1)));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (limits, channel) = (limits.clone(), channel.clone());
            tasks.spawn(async move { limits.send(channel.as_ref(), &msg()).await });
        }
        for result in tasks.join_all().await {
            assert!(result.is_ok());
        }
        assert_eq!(channel.most_in_flight.load(Ordering::SeqCst), 5);
        assert!(about(elapsed_since(start), Duration::from_secs(4)), "20 sends of 1 s, 5 at a time");
        assert_eq!(limits.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_open_the_breaker_and_then_the_channel_is_spared() {
        let limits = Limits::new(&unlimited_policy());
        let failures = (0..5).map(|_| Err(ChannelError::Transient("503".into()))).collect();
        let channel = Scripted::new(failures, Duration::ZERO);
        for _ in 0..5 {
            assert!(matches!(limits.send(&channel, &msg()).await, Err(LimitError::Channel(_))));
        }
        assert!(matches!(limits.send(&channel, &msg()).await, Err(LimitError::CircuitOpen(_))));
        assert_eq!(channel.calls.load(Ordering::SeqCst), 5, "the open breaker did not call the channel");
        assert_eq!(limits.breaker().state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_the_rate_limiter_off_and_permanent_failures_spare_the_breaker() {
        let limits = Limits::new(&SenderPolicy { breaker_failures: 1, ..unlimited_policy() });
        let answers = vec![
            Err(ChannelError::RateLimited { retry_after: Duration::from_secs(4) }),
            Err(ChannelError::Permanent("bad number".into())),
        ];
        let channel = Scripted::new(answers, Duration::ZERO);
        let start = Instant::now();
        assert!(matches!(
            limits.send(&channel, &msg()).await,
            Err(LimitError::Channel(ChannelError::RateLimited { .. }))
        ));
        assert!(matches!(limits.send(&channel, &msg()).await, Err(LimitError::Channel(ChannelError::Permanent(_)))));
        assert!(about(elapsed_since(start), Duration::from_secs(4)), "the second send waited out Retry-After");
        assert_eq!(limits.breaker().state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn send_with_retries_retries_transient_failures_only() {
        let limits = Limits::new(&unlimited_policy());
        let flaky = Scripted::new(
            vec![Err(ChannelError::Transient("timeout".into())), Err(ChannelError::Transient("503".into()))],
            Duration::ZERO,
        );
        assert!(limits.send_with_retries(&flaky, &msg()).await.is_ok());
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);

        let refused = Scripted::new(vec![Err(ChannelError::Permanent("bad number".into()))], Duration::ZERO);
        assert!(limits.send_with_retries(&refused, &msg()).await.is_err());
        assert_eq!(refused.calls.load(Ordering::SeqCst), 1);

        let limits = Limits::new(&SenderPolicy { breaker_failures: 100, ..unlimited_policy() });
        let down = Scripted::new((0..10).map(|_| Err(ChannelError::Transient("503".into()))).collect(), Duration::ZERO);
        let start = Instant::now();
        assert!(matches!(limits.send_with_retries(&down, &msg()).await, Err(LimitError::Channel(_))));
        assert_eq!(down.calls.load(Ordering::SeqCst), 5, "max_attempts in all");
        assert!(elapsed_since(start) <= Duration::from_secs(1 + 2 + 4 + 8) + Duration::from_millis(10));
    }

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
        let back: SenderPolicy = toml::from_str(&toml::to_string(&unlimited_policy()).expect("writes")).expect("reads");
        assert_eq!(back, unlimited_policy());
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
