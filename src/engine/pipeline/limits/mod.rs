//! Sender policies, the same around every channel account: a rate limit ([`rate`]), a cap on
//! sends in flight, retries with capped and fully jittered exponential backoff ([`retry`]), and
//! a circuit breaker ([`breaker`]) that stops hammering a vendor that keeps failing, configured
//! by a [`SenderPolicy`] ([`policy`]). [`Limits::send`] is the one path every send takes through
//! them. All keep time with tokio's clock, so tests run under `tokio::time::pause`.
//!
//! Which failures count against the breaker: only [`ChannelError::Transient`] ones. A 429 means
//! the vendor is alive and wants us slower (the rate limiter holds off instead); a permanent
//! failure is the message's fault, not the vendor's.

pub mod breaker;
pub mod pacing;
pub mod policy;
pub mod rate;
pub mod retry;
pub mod waits;

pub use breaker::{BreakerOpen, BreakerPermit, BreakerState, CircuitBreaker};
pub use pacing::{Pace, Pacer, QuietHours};
pub use policy::SenderPolicy;
pub use rate::RateLimiter;
pub use retry::{RetryPolicy, backoff, backoff_ceiling};
pub use waits::{Wait, WaitBoard, WaitReason};

use super::worker::Shutdown;
use crate::engine::channel::{Channel, ChannelError, OutboundMessage, SendOutcome};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the caller of [`Limits::send`] says right before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Go,
    /// Not now (the campaign is paused): nothing is called; look again after this long.
    Hold(Duration),
    /// Never (the campaign was cancelled or deleted).
    Drop,
}

/// Why [`Limits`] did not deliver a send.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    /// The breaker is open: the channel was not called.
    #[error(transparent)]
    CircuitOpen(#[from] BreakerOpen),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The gate (or shutdown) held the send back; the channel was not called.
    #[error("held back for {0:?}")]
    Held(Duration),
    /// The gate dropped the send; the channel was not called.
    #[error("dropped")]
    Dropped,
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
    pacer: Pacer,
    waits: WaitBoard,
}

impl Limits {
    pub fn new(policy: &SenderPolicy) -> Limits {
        Limits::with_pacer(policy, Pacer::new(policy.jitter, policy.daily_cap, policy.quiet_hours))
    }

    /// Limits whose safe-sending clock reads `wall` now (tests under a paused clock).
    pub fn starting_at(policy: &SenderPolicy, wall: chrono::DateTime<chrono::Utc>) -> Limits {
        Limits::with_pacer(policy, Pacer::starting_at(policy.jitter, policy.daily_cap, policy.quiet_hours, wall))
    }

    fn with_pacer(policy: &SenderPolicy, pacer: Pacer) -> Limits {
        let max_concurrency = policy.concurrency.max(1);
        Limits {
            rate: RateLimiter::new(policy.rate_per_minute, policy.burst),
            concurrency: Semaphore::new(max_concurrency),
            max_concurrency,
            breaker: CircuitBreaker::new(policy.breaker_failures, policy.breaker_cooldown),
            retry: policy.retry(),
            pacer,
            waits: WaitBoard::default(),
        }
    }

    /// Why the account's next send waits, and until when (see [`waits`]).
    pub fn waits(&self) -> &WaitBoard {
        &self.waits
    }

    fn note_wait(&self, after: Duration, reason: WaitReason) {
        let now = self.pacer.now();
        let next_at = chrono::Duration::from_std(after)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        self.waits.note(now, Wait { next_at, reason });
    }

    pub fn pacer(&self) -> &Pacer {
        &self.pacer
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

    /// One try through every policy: the one path every send takes. `gate` is asked right
    /// before the call, once the breaker and the rate limit let it through (the campaign may
    /// have been paused while the send waited for its slot); `shutdown` ends the wait for a
    /// rate slot, never a call in progress. The caller decides about retrying, with
    /// [`Limits::retry`].
    pub async fn send(
        &self,
        channel: &dyn Channel,
        msg: &OutboundMessage,
        shutdown: &mut Shutdown,
        gate: impl Future<Output = Gate>,
    ) -> Result<SendOutcome, LimitError> {
        // An account that cannot send (logged out, banned) has its circuit opened at once.
        let paused = channel.paused_for();
        if let Some(pause) = paused {
            self.breaker.trip(pause);
        }
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(open) => {
                let reason = match (paused, channel.pause_reason()) {
                    (Some(_), Some(why)) => WaitReason::AccountPaused { why },
                    _ => WaitReason::BreakerOpen,
                };
                self.note_wait(open.retry_in, reason);
                return Err(open.into());
            }
        };
        // Safe sending: quiet hours at the recipient's and the daily cap hold the message
        // (nothing is sent); otherwise a jittered wait after the rate slot.
        let pace = self.pacer.check(&msg.to, msg.timezone.as_deref(), &mut rand::rng());
        let jitter = match pace {
            Pace::Go(jitter) => jitter,
            Pace::Hold { after, why } => {
                tracing::debug!(to = %msg.to, ?after, %why, "Send held by the safe-sending policy.");
                self.note_wait(after, why);
                return Err(LimitError::Held(after));
            }
        };
        let slot_in = self.rate.next_slot_in();
        if !slot_in.is_zero() {
            self.note_wait(slot_in, WaitReason::RateLimit);
        }
        if !jitter.is_zero() {
            self.note_wait(slot_in + jitter, WaitReason::Jitter);
        }
        let waited = async {
            self.rate.acquire().await;
            if !jitter.is_zero() {
                tokio::time::sleep(jitter).await;
            }
        };
        tokio::select! {
            _ = waited => {}
            _ = shutdown.wait() => {
                self.pacer.unreserve();
                return Err(LimitError::Held(Duration::ZERO));
            }
        }
        match gate.await {
            Gate::Go => {}
            Gate::Hold(after) => {
                self.pacer.unreserve();
                return Err(LimitError::Held(after));
            }
            Gate::Drop => {
                self.pacer.unreserve();
                return Err(LimitError::Dropped);
            }
        }
        let _slot = self.concurrency.acquire().await.map_err(|_| LimitError::Held(Duration::ZERO))?;
        let result = channel.send(msg).await;
        match &result {
            Ok(_) | Err(ChannelError::Permanent(_) | ChannelError::Skipped(_)) => permit.success(),
            // An ambiguous outcome is a connection in trouble: it counts against the breaker.
            Err(ChannelError::Transient(_) | ChannelError::Ambiguous(_)) => permit.failure(),
            Err(ChannelError::RateLimited { retry_after }) => {
                self.rate.hold_off(*retry_after);
                drop(permit);
            }
            Err(ChannelError::Paused { retry_after, .. }) => {
                drop(permit);
                self.pacer.unreserve();
                self.breaker.trip(*retry_after);
                let why = channel.pause_reason().unwrap_or_else(|| "the channel paused its sends".into());
                self.note_wait(*retry_after, WaitReason::AccountPaused { why });
                return Err(LimitError::CircuitOpen(BreakerOpen { retry_in: *retry_after }));
            }
        }
        Ok(result?)
    }
}

/// Time checks shared by the policies' tests (tokio's clock, paused).
#[cfg(test)]
mod test_time {
    use std::time::Duration;
    use tokio::time::Instant;

    pub fn elapsed_since(start: Instant) -> Duration {
        Instant::now() - start
    }

    /// Within a millisecond of `expected` (tokio's timer ticks in milliseconds).
    pub fn about(actual: Duration, expected: Duration) -> bool {
        actual >= expected && actual <= expected + Duration::from_millis(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::time::Instant;

    use super::test_time::{about, elapsed_since};

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
        OutboundMessage {
            send_id: "c1:l1".into(),
            to: "+447700900123".into(),
            body: "Hi".into(),
            callback_url: None,
            campaign_id: None,
            timezone: None,
        }
    }

    /// One send through every policy with the gate open.
    async fn go(limits: &Limits, channel: &dyn Channel) -> Result<SendOutcome, LimitError> {
        let (_trigger, mut shutdown) = crate::engine::pipeline::worker::shutdown_signal();
        limits.send(channel, &msg(), &mut shutdown, async { Gate::Go }).await
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
            tasks.spawn(async move { go(&limits, channel.as_ref()).await });
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
            assert!(matches!(go(&limits, &channel).await, Err(LimitError::Channel(_))));
        }
        assert!(matches!(go(&limits, &channel).await, Err(LimitError::CircuitOpen(_))));
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
        assert!(matches!(go(&limits, &channel).await, Err(LimitError::Channel(ChannelError::RateLimited { .. }))));
        assert!(matches!(go(&limits, &channel).await, Err(LimitError::Channel(ChannelError::Permanent(_)))));
        assert!(about(elapsed_since(start), Duration::from_secs(4)), "the second send waited out Retry-After");
        assert_eq!(limits.breaker().state(), BreakerState::Closed);
    }

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&chrono::Utc)
    }

    async fn send_to(limits: &Limits, channel: &dyn Channel, to: &str) -> Result<SendOutcome, LimitError> {
        let (_trigger, mut shutdown) = crate::engine::pipeline::worker::shutdown_signal();
        let msg = OutboundMessage { to: to.into(), ..msg() };
        limits.send(channel, &msg, &mut shutdown, async { Gate::Go }).await
    }

    fn noted(limits: &Limits) -> Option<(chrono::DateTime<chrono::Utc>, WaitReason)> {
        limits.waits().take_changed().map(|w| (w.next_at, w.reason))
    }

    #[tokio::test(start_paused = true)]
    async fn every_wait_is_noted_with_its_reason_and_when_it_ends() {
        // 06:00 UTC: quiet in London until 08:00, not in India; one message a day; 30 a minute.
        let policy = SenderPolicy {
            quiet_hours: QuietHours::parse("21:00-08:00").ok(),
            daily_cap: Some(1),
            ..SenderPolicy::default()
        };
        let limits = Limits::starting_at(&policy, at("2026-03-02T06:00:00Z"));
        let channel = Scripted::new(vec![], Duration::ZERO);
        assert_eq!(send_to(&limits, &channel, "+447911123456").await, Err(LimitError::Held(Duration::from_secs(7200))));
        let quiet = WaitReason::QuietHours { until: "08:00".into(), zone: "UTC+00:00".into() };
        assert_eq!(noted(&limits), Some((at("2026-03-02T08:00:00Z"), quiet)));
        assert!(send_to(&limits, &channel, "+919812345678").await.is_ok());
        assert_eq!(noted(&limits), None, "the first send had a free slot: no wait");
        assert!(matches!(send_to(&limits, &channel, "+919812345678").await, Err(LimitError::Held(_))));
        assert_eq!(noted(&limits), Some((at("2026-03-03T00:00:00Z"), WaitReason::DailyCap { cap: 1 })));

        // The rate limit: the second send waits two seconds for its slot.
        let limits = Limits::starting_at(&SenderPolicy::default(), at("2026-03-02T06:00:00Z"));
        assert!(send_to(&limits, &channel, "+447911123456").await.is_ok());
        assert!(send_to(&limits, &channel, "+447911123456").await.is_ok());
        assert_eq!(noted(&limits), Some((at("2026-03-02T06:00:02Z"), WaitReason::RateLimit)));

        // An open breaker.
        let policy = SenderPolicy { breaker_failures: 1, ..unlimited_policy() };
        let limits = Limits::starting_at(&policy, at("2026-03-02T06:00:00Z"));
        let failing = Scripted::new(vec![Err(ChannelError::Transient("503".into()))], Duration::ZERO);
        assert!(matches!(go(&limits, &failing).await, Err(LimitError::Channel(_))));
        assert!(matches!(go(&limits, &failing).await, Err(LimitError::CircuitOpen(_))));
        assert_eq!(noted(&limits), Some((at("2026-03-02T06:00:30Z"), WaitReason::BreakerOpen)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_gate_spends_no_call_and_an_open_breaker_is_asked_first() {
        let limits = Limits::new(&SenderPolicy { breaker_failures: 1, ..unlimited_policy() });
        let channel = Scripted::new(vec![Err(ChannelError::Transient("503".into()))], Duration::ZERO);
        let (_trigger, mut shutdown) = crate::engine::pipeline::worker::shutdown_signal();
        let held = limits.send(&channel, &msg(), &mut shutdown, async { Gate::Hold(Duration::from_secs(1)) }).await;
        assert_eq!(held, Err(LimitError::Held(Duration::from_secs(1))));
        let dropped = limits.send(&channel, &msg(), &mut shutdown, async { Gate::Drop }).await;
        assert_eq!(dropped, Err(LimitError::Dropped));
        assert_eq!(channel.calls.load(Ordering::SeqCst), 0, "a closed gate calls nothing");
        assert!(matches!(go(&limits, &channel).await, Err(LimitError::Channel(_))));
        let asked = std::sync::atomic::AtomicBool::new(false);
        let gate = async {
            asked.store(true, Ordering::SeqCst);
            Gate::Go
        };
        assert!(matches!(limits.send(&channel, &msg(), &mut shutdown, gate).await, Err(LimitError::CircuitOpen(_))));
        assert!(!asked.load(Ordering::SeqCst), "an open breaker answers before the gate is asked");
    }
}
