//! The rate limiter of one channel account: a token bucket in its GCRA form, keeping time with
//! tokio's clock so tests run under `tokio::time::pause` without sleeping.

use super::lock;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

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

    /// How long until a slot would be free (taking nothing): zero when one is free now.
    pub fn next_slot_in(&self) -> Duration {
        let now = Instant::now();
        let slots = lock(&self.state);
        let (start, _) = self.plan(&slots, now);
        start.saturating_duration_since(now)
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

#[cfg(test)]
mod tests {
    use super::super::SenderPolicy;
    use super::*;
    use std::sync::Arc;

    use super::super::test_time::{about, elapsed_since};

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
}
