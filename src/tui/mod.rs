//! `crm tui`: the live operator dashboard (ratatui + crossterm).
//!
//! Event → action → update → render: one tokio loop reads crossterm's `EventStream`, replies
//! from the runtime and a render tick (~4/s). Keys go to the [`ui::Ui`], whose components push
//! [`queue::Event`]s; requests among them become `App` calls in spawned tasks whose results
//! come back over a channel as [`queue::Reply`] values. A poller task fetches `App::snapshot()`
//! every second with a timeout, so a slow or failing backend shows as stale data with its age,
//! never as a frozen screen. The screen is drawn only when something changed. The terminal is
//! restored on quit, on error and after a panic.

pub mod campaigns;
pub mod component;
pub mod dashboard;
pub mod leads;
pub mod queue;
pub mod segments;
pub mod theme;
pub mod ui;
pub mod whatsapp;
pub mod widgets;

use crate::engine::app::App;
use crate::engine::store::{LeadFilter, LeadQuery};
use chrono::Utc;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, EventStream};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use futures_util::StreamExt;
use queue::{CampaignAction, Reply, Request};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::io::Stdout;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

/// How often the poller asks for a snapshot (at most; see [`poll_interval`]).
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// The share of one core the poller may spend taking snapshots while the dashboard idles.
const POLL_BUDGET: u32 = 40; // 1/40: 2.5% of a core

/// The wait before the next snapshot, after one that took `took`: every [`POLL_EVERY`] while a
/// snapshot is cheap, and stretched on very large stores (a million logs to count) so that
/// polling never costs more than 1/[`POLL_BUDGET`] of a core, with at most 30 s between looks.
pub fn poll_interval(took: Duration) -> Duration {
    (took * POLL_BUDGET).clamp(POLL_EVERY, Duration::from_secs(30))
}
/// A snapshot that takes longer counts as failed (the screen shows stale data meanwhile).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(3);
/// Render ticks per second: at most this many redraws, and only when something changed.
const TICK: Duration = Duration::from_millis(250);
/// Messages shown for a campaign or a lead.
const LOGS: usize = 50;

/// Restores the terminal when dropped (quit, error, or unwinding from a panic).
struct TerminalGuard;

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), DisableMouseCapture, LeaveAlternateScreen, crossterm::cursor::Show);
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Runs the dashboard until `q`. `app` answers the keys (lists, previews, campaign actions);
/// `poll_app`, opened on the same backends with connections of its own, fetches the
/// snapshots, so a slow snapshot never holds a keypress's query behind it (SQLite readers on
/// separate connections run at once).
pub async fn run(app: Arc<App>, poll_app: Arc<App>) -> anyhow::Result<()> {
    let previous = std::panic::take_hook();
    // The loop runs on this thread (the runtime's `block_on`); requests run on worker threads.
    let ui_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            // Restore first, so the panic message lands on a usable screen.
            restore();
            previous(info);
        } else {
            // A request's task: the dashboard carries on; the message goes to the log file
            // rather than over the screen.
            tracing::error!(%info, "A dashboard task panicked.");
        }
    }));
    enable_raw_mode()?;
    let guard = TerminalGuard;
    execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let result = event_loop(&mut terminal, app, poll_app).await;
    drop(guard);
    // Back to the default hook: the terminal is ours again.
    let _ = std::panic::take_hook();
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    app: Arc<App>,
    poll_app: Arc<App>,
) -> anyhow::Result<()> {
    let mut ui = ui::Ui::new(theme::Theme::from_env(), Utc::now());
    let (tx, mut rx) = unbounded_channel();
    let poller = tokio::spawn(poll(poll_app, tx.clone()));
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let outcome = loop {
        let due = ui.next_due();
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    // Input is drawn at once; everything else waits for the tick.
                    if ui.on_event(event) {
                        terminal.draw(|f| ui.draw(f))?;
                        dirty = false;
                    }
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
            Some(reply) = rx.recv() => {
                if ui.apply(reply) {
                    terminal.draw(|f| ui.draw(f))?;
                    dirty = false;
                } else {
                    dirty = true;
                }
            }
            // Debounced work (a segment preview) goes out when due, not at the next tick.
            _ = wake_at(due) => {
                if ui.tick(Utc::now(), Instant::now()) {
                    terminal.draw(|f| ui.draw(f))?;
                    dirty = false;
                }
            }
            _ = tick.tick() => {
                dirty |= ui.tick(Utc::now(), Instant::now());
                if dirty {
                    terminal.draw(|f| ui.draw(f))?;
                    dirty = false;
                }
            }
        }
        for request in ui.take_requests() {
            let task = tokio::spawn(carry_out(app.clone(), request, tx.clone()));
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = task.await {
                    let _ = tx.send(Reply::Failed(format!("a request failed: {e}")));
                }
            });
        }
        if ui.should_quit() {
            break Ok(());
        }
    };
    poller.abort();
    outcome
}

/// Sleeps until `due`, or forever without one.
async fn wake_at(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
        None => std::future::pending().await,
    }
}

/// Fetches a snapshot every [`poll_interval`]; one that fails or times out is sent as an error.
async fn poll(app: Arc<App>, tx: UnboundedSender<Reply>) {
    let (mut wait, mut last_every) = (Duration::ZERO, POLL_EVERY);
    loop {
        tokio::time::sleep(wait).await;
        let at = Utc::now();
        let started = Instant::now();
        let result = match tokio::time::timeout(POLL_TIMEOUT, app.snapshot()).await {
            Ok(Ok(snapshot)) => Ok(snapshot),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {}s", POLL_TIMEOUT.as_secs())),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "Snapshot failed.");
        }
        if tx.send(Reply::Snapshot { at, result }).is_err() {
            return;
        }
        let every = poll_interval(started.elapsed());
        if every != last_every {
            if every > POLL_EVERY {
                tracing::info!(?every, took = ?started.elapsed(), "Snapshots are slow on this store; polling less often.");
            }
            if tx.send(Reply::PollEvery(every)).is_err() {
                return;
            }
            last_every = every;
        }
        wait = every.saturating_sub(started.elapsed());
    }
}

/// One request as `App` calls; the reply goes back to the UI.
async fn carry_out(app: Arc<App>, request: Request, tx: UnboundedSender<Reply>) {
    let text = |e: crate::engine::Error| e.to_string();
    let reply = match request {
        Request::Campaign { id, action } => {
            let reference = id.to_string();
            let result = match action {
                CampaignAction::Run => app
                    .run_campaign(&reference)
                    .await
                    .map(|(c, audience)| format!("Campaign #{} {} queued: {audience} leads.", c.id, c.name)),
                CampaignAction::Pause => app.pause_campaign(&reference).await.map(transition),
                CampaignAction::Resume => app.resume_campaign(&reference).await.map(transition),
                CampaignAction::Cancel => app.cancel_campaign(&reference).await.map(transition),
            };
            Reply::Campaign { id, action, result: result.map_err(text) }
        }
        Request::CampaignLogs { id, status } => {
            let result = app.campaign_logs(&id.to_string(), status, LOGS).await.map(|(_, logs)| logs);
            Reply::CampaignLogs { id, status, result: result.map_err(text) }
        }
        Request::Leads { seq, search, offset, limit, count } => {
            let filter = LeadFilter { search, ..LeadFilter::default() };
            let query = LeadQuery { filter: filter.clone(), limit: Some(limit), offset, ..LeadQuery::default() };
            let result = async {
                let rows = app.list_leads(&query).await?;
                let total = if count { Some(app.count_leads(&filter).await?) } else { None };
                Ok::<_, crate::engine::Error>((rows, total))
            }
            .await;
            Reply::Leads { seq, offset, result: result.map_err(text) }
        }
        Request::LeadHistory { id } => {
            let result = tokio::try_join!(app.lead_logs(id, LOGS), app.lead_replies(id, LOGS))
                .map(|(logs, replies)| queue::LeadHistory { logs, replies });
            Reply::LeadHistory { id, result: result.map_err(text) }
        }
        Request::Segments => Reply::Segments(app.list_segments().await.map_err(text)),
        Request::Preview { seq, rule } => {
            let result = app.preview_rule(&rule, segments::SAMPLE, false).await.map(|p| p.preview);
            Reply::Preview { seq, result: result.map_err(text) }
        }
        Request::SaveSegment { name, rule } => {
            Reply::SegmentSaved(app.create_segment(&name, rule, None).await.map_err(text))
        }
    };
    let _ = tx.send(reply);
}

fn transition(t: crate::engine::app::campaigns::Transition) -> String {
    format!("Campaign #{} {}: {} → {}.", t.campaign.id, t.campaign.name, t.from.as_str(), t.to.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_stays_within_its_budget_and_bounds() {
        assert_eq!(poll_interval(Duration::from_millis(3)), POLL_EVERY, "cheap: every second");
        assert_eq!(poll_interval(Duration::from_millis(100)), Duration::from_secs(4), "1/40 of a core");
        assert_eq!(poll_interval(Duration::from_secs(5)), Duration::from_secs(30), "never longer than 30 s");
    }
}
