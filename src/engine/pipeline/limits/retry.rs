//! Retries: capped, fully jittered exponential backoff, and when to stop.

use crate::engine::channel::ChannelError;
use rand::Rng;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::super::SenderPolicy;
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

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
}
