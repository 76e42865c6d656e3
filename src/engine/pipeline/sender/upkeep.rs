//! The sender's per-account upkeep beside the batch loops: each capped account's daily count
//! seeded from the store at start, and why each account's next send waits written to the store.

use super::super::worker::Shutdown;
use super::Shared;
use crate::engine::store::campaigns::AccountWait;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// Starts each capped account's daily count from the store, so a restarted worker does not
/// send a second day's worth. A store error leaves the count at zero, loudly.
pub(super) async fn seed_daily_caps(shared: &Shared) {
    for (name, account) in &shared.accounts {
        let pacer = account.limits.pacer();
        if !pacer.has_daily_cap() {
            continue;
        }
        match shared.store.sent_since(name, pacer.today_start()).await {
            Ok(sent) => {
                pacer.seed_today(u32::try_from(sent).unwrap_or(u32::MAX));
                tracing::info!(account = %name, sent_today = sent, "Daily cap counted from the store.");
            }
            Err(e) => {
                tracing::warn!(account = %name, error = %e, "Could not count today's sends; the daily cap starts at 0.")
            }
        }
    }
}

/// How often the accounts' waits are written to the store (when they changed).
const WAITS_EVERY: Duration = Duration::from_secs(1);

/// Writes each account's latest wait (why its next send waits, until when) to the store when
/// it changed, so `campaigns status` in another process can say it; once more on shutdown.
pub(super) async fn publish_waits(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(WAITS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.wait() => true,
        };
        for (name, account) in &shared.accounts {
            let Some(wait) = account.limits.waits().take_changed() else { continue };
            let record = AccountWait {
                account: name.clone(),
                next_at: wait.next_at,
                reason: wait.reason.kind().to_string(),
                detail: wait.reason.to_string(),
                updated_at: Utc::now(),
            };
            if let Err(e) = shared.store.set_account_wait(&record).await {
                tracing::debug!(account = %name, error = %e, "Could not record why the account waits.");
            }
        }
        if stopping {
            return;
        }
    }
}
