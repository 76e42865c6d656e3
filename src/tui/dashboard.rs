//! The default screen: the WhatsApp / channels panel (see [`super::whatsapp`]), live counters
//! for running (or the selected) campaigns, queue depths with sparklines, workers, and the
//! newest events. While a WhatsApp account waits for a scan and the terminal has room, the
//! panel takes the right side at full height so the QR code is large enough to scan.

use super::component::{Component, KeyHelp, Shared, block, fit};
use super::queue::Queue;
use super::whatsapp::{self, QrCache};
use super::widgets::{Counters, next_send, short_duration, sparkline};
use crate::engine::app::snapshot::{RecentEvent, Snapshot};
use crate::engine::campaign::{Campaign, CampaignStatus, SendStatus};
use crate::engine::channel::whatsapp::ChannelState;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

#[derive(Debug, Default)]
pub struct Dashboard {
    /// The QR code shown while pairing, encoded once per payload.
    pub qr: QrCache,
}

/// Columns the rest of the dashboard keeps beside a QR code.
const MIN_BESIDE_QR: u16 = 40;

/// The campaigns the counters panel shows: the selected one first, then running and paused ones.
pub fn watched(snapshot: &Snapshot, selected: Option<i64>) -> Vec<&Campaign> {
    let mut out: Vec<&Campaign> = Vec::new();
    if let Some(c) = selected.and_then(|id| snapshot.campaigns.iter().find(|c| c.id == id)) {
        out.push(c);
    }
    for c in &snapshot.campaigns {
        if matches!(c.status, CampaignStatus::Running | CampaignStatus::Paused) && !out.iter().any(|o| o.id == c.id) {
            out.push(c);
        }
    }
    out
}

/// A message status's style: settled well, settled badly, or on its way.
pub fn status_style(status: SendStatus, shared: &Shared) -> ratatui::style::Style {
    match status {
        SendStatus::Failed | SendStatus::Uncertain => shared.theme.warn(),
        SendStatus::Sent | SendStatus::Delivered | SendStatus::Read => shared.theme.ok(),
        SendStatus::Pending | SendStatus::Sending | SendStatus::Skipped => ratatui::style::Style::new(),
    }
}

/// The topic without the common `campaign.` prefix.
pub fn short_topic(topic: &str) -> &str {
    topic.strip_prefix("campaign.").unwrap_or(topic)
}

impl Dashboard {
    fn campaigns(&self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let list = watched(snapshot, shared.selected_campaign);
        let title = match list.len() {
            0 | 1 => "Campaign".to_string(),
            n => format!("Campaigns ({n} watched)"),
        };
        let b = block(title, shared);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        if list.is_empty() {
            let text = "No running campaign. Pick one on the Campaigns screen (2).";
            frame.render_widget(Paragraph::new(text).style(shared.theme.dim()).wrap(Wrap { trim: true }), inner);
            return;
        }
        let mut y = inner.y;
        for campaign in list {
            if y + 1 > inner.y + inner.height {
                break;
            }
            let height = Counters::HEIGHT.min(inner.y + inner.height - y);
            let rect = Rect { y, height, ..inner };
            let rate = shared.history.rate(campaign.id);
            frame.render_widget(
                Counters { campaign, rate, waiting: next_send(snapshot, campaign), theme: shared.theme },
                rect,
            );
            y += Counters::HEIGHT + 1;
        }
    }

    /// The WhatsApp panel: every WhatsApp account's state, the QR code of one waiting for a
    /// scan when it fits, then every account.
    fn channels(&mut self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let t = shared.theme;
        let b = block("WhatsApp", shared);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        let mut lines = Vec::new();
        let accounts: Vec<_> = snapshot.channels.iter().filter(|a| a.kind == "whatsapp").collect();
        if accounts.is_empty() {
            lines.push(Line::styled("WhatsApp: not configured", t.dim()));
        }
        for a in &accounts {
            lines.extend(whatsapp::account_lines(a, shared, inner.width >= 30));
        }
        let text = Paragraph::new(lines).wrap(Wrap { trim: false });
        let text_height = (text.line_count(inner.width) as u16).min(inner.height);
        frame.render_widget(text, Rect { height: text_height, ..inner });
        let mut y = inner.y + text_height;
        let rest = |y: u16| Rect { y, height: (inner.y + inner.height).saturating_sub(y), ..inner };
        if let Some((_, payload)) = whatsapp::pending_qr(&snapshot.channels) {
            let room = rest(y);
            match self.qr.grid(&payload) {
                Ok(grid) => match whatsapp::fitting(grid, room.width, room.height) {
                    Some(fit) => {
                        let (w, h) = whatsapp::cells(&fit);
                        let x = room.x + (room.width - w) / 2;
                        whatsapp::draw_qr(&fit, Rect { x, y, width: w, height: h }, frame.buffer_mut());
                        y += h;
                    }
                    None => {
                        let text = whatsapp::too_small(terminal_for(grid, snapshot));
                        let p = Paragraph::new(text).style(t.warn()).wrap(Wrap { trim: true });
                        let h = p.line_count(room.width).min(usize::from(room.height)) as u16;
                        frame.render_widget(p, Rect { height: h, ..room });
                        y += h;
                    }
                },
                Err(e) => {
                    let text = format!("cannot draw the QR code: {e}; run crm whatsapp login");
                    frame.render_widget(Paragraph::new(text).style(t.warn()).wrap(Wrap { trim: true }), room);
                    return;
                }
            }
        }
        let mut others = vec![Line::styled("Accounts", t.title())];
        if snapshot.channels.is_empty() {
            others.push(Line::styled("none", t.dim()));
        }
        for a in &snapshot.channels {
            let style = if a.state == "ready" { t.ok() } else { t.warn() };
            others.push(Line::from(vec![
                Span::raw(format!("{} ", a.name)),
                Span::styled(format!("({}) ", a.kind), t.dim()),
                Span::styled(a.state.clone(), style),
            ]));
        }
        frame.render_widget(Paragraph::new(others), rest(y));
    }

    /// The width the WhatsApp panel takes at full height to show a QR code beside the rest,
    /// if one is waiting to be scanned and the terminal has room for both.
    fn qr_side_width(&mut self, area: Rect, snapshot: &Snapshot) -> Option<u16> {
        let (_, payload) = whatsapp::pending_qr(&snapshot.channels)?;
        let grid = self.qr.grid(&payload).as_ref().ok()?;
        let (width, height) = qr_panel(grid, snapshot);
        (area.width >= width + MIN_BESIDE_QR && area.height >= height).then_some(width)
    }

    fn queues(&self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let t = shared.theme;
        let title = format!("Queues · dead letters {}", snapshot.dead_letters);
        let b = block(title, shared);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        // Kafka: a topic's depth is its consumer groups' lag (what the workers have not finished).
        let lag = snapshot.bus.starts_with("kafka");
        let header = if lag {
            Line::styled(format!("{:<14}{:>21}  history", "topic", "consumer lag"), t.dim())
        } else {
            Line::styled(format!("{:<14}{:>7}{:>7}{:>7}  history", "topic", "ready", "flight", "delay"), t.dim())
        };
        frame.render_widget(Paragraph::new(header), Rect { height: 1.min(inner.height), ..inner });
        let spark_x = inner.x + 35;
        for (i, q) in snapshot.queues.iter().enumerate() {
            let y = inner.y + 1 + i as u16;
            if y >= inner.y + inner.height {
                break;
            }
            let d = &q.depth;
            let name = fit(short_topic(q.topic), 14);
            let text = if lag {
                format!("{name:<14}{:>21}", d.total())
            } else {
                format!("{name:<14}{:>7}{:>7}{:>7}", d.ready, d.in_flight, d.delayed)
            };
            frame.render_widget(Paragraph::new(text), Rect { y, height: 1, ..inner });
            if spark_x + 2 < inner.x + inner.width {
                let width = inner.x + inner.width - spark_x - 1;
                let series = shared.history.topic_series(q.topic);
                let rect = Rect { x: spark_x + 1, y, width, height: 1 };
                frame.render_widget(sparkline(&series, width, t), rect);
            }
        }
    }

    fn workers(&self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let t = shared.theme;
        let stale = snapshot.workers.iter().filter(|w| w.stale).count();
        let title = match stale {
            0 => format!("Workers ({})", snapshot.workers.len()),
            n => format!("Workers ({}, {n} stale)", snapshot.workers.len()),
        };
        let wide = area.width >= 50;
        let row = |mark: &str, kind: &str, id: &str, pid: String, seen: String, rate: String| {
            if wide {
                format!("{mark}{:<11}{:<14}{:>7} {:>6} {:>7}", fit(kind, 10), fit(id, 13), pid, seen, rate)
            } else {
                format!("{mark}{:<8}{:<6}{:>6} {:>5}{:>5}", fit(kind, 7), fit(id, 5), pid, seen, rate)
            }
        };
        let header = row(" ", "kind", "id", "pid".into(), "seen".into(), "rate".into());
        let mut lines = vec![Line::styled(header, t.dim())];
        if snapshot.workers.is_empty() {
            lines.push(Line::styled("none running (crm worker all)", t.dim()));
        }
        for w in &snapshot.workers {
            let h = &w.heartbeat;
            let seen = short_duration((shared.now - h.last_seen).num_seconds());
            let mark = if w.stale { "!" } else { " " };
            let text = row(mark, &h.kind, &h.id, h.pid.to_string(), seen, format!("{:.1}", h.rate));
            if w.stale {
                let mut spans = vec![Span::styled(text, t.warn())];
                if wide {
                    spans.push(Span::styled(" STALE", t.warn()));
                }
                lines.push(Line::from(spans));
            } else {
                lines.push(Line::raw(text));
            }
        }
        frame.render_widget(Paragraph::new(lines).block(block(title, shared)), area);
    }

    fn events(&self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let t = shared.theme;
        let mut lines = Vec::new();
        if snapshot.events.is_empty() {
            lines.push(Line::styled("nothing yet", t.dim()));
        }
        for e in &snapshot.events {
            let mut spans = vec![Span::styled(e.at().format("%H:%M:%S ").to_string(), t.dim())];
            match e {
                RecentEvent::Message(m) => {
                    spans.push(Span::raw(format!("campaign #{} lead {} ", m.campaign_id, m.lead_id)));
                    spans.push(Span::styled(m.status.as_str(), status_style(m.status, shared)));
                    spans.push(Span::styled(format!(" attempt {} via {}", m.attempt, m.channel), t.dim()));
                    if let Some(err) = &m.error_message {
                        spans.push(Span::styled(format!("  {err}"), t.warn()));
                    }
                }
                RecentEvent::DeadLetter(d) => {
                    spans.push(Span::raw(format!("campaign #{} lead {} ", d.campaign_id, d.payload.lead_id)));
                    spans.push(Span::styled("dead letter", t.warn()));
                    spans.push(Span::styled(format!("  {}", d.reason), t.warn()));
                }
                RecentEvent::OptOut(o) => {
                    spans.push(Span::raw(format!("lead {} ", o.lead_id)));
                    spans.push(Span::styled("opted out", t.accent()));
                    if let Some(source) = &o.source {
                        spans.push(Span::styled(format!(" ({source})"), t.dim()));
                    }
                }
                RecentEvent::ChannelState(c) => {
                    let words = serde_json::from_value::<ChannelState>(c.state.clone())
                        .map_or_else(|_| "state not understood by this build".to_string(), |s| s.describe());
                    spans.push(Span::raw(format!("channel {}: ", c.account)));
                    spans.push(Span::styled(words, t.accent()));
                }
            }
            lines.push(Line::from(spans));
        }
        frame.render_widget(Paragraph::new(lines).block(block("Recent events", shared)), area);
    }
}

/// The WhatsApp panel's size with the code at its most compact: borders, and each account's
/// two lines above the code.
fn qr_panel(grid: &[Vec<bool>], snapshot: &Snapshot) -> (u16, u16) {
    let (w, h) = whatsapp::compact_cells(grid);
    (w + 2, h + 2 + 2 * whatsapp_accounts(snapshot))
}

/// The terminal that shows the code beside the rest (the tab bar and status line included).
fn terminal_for(grid: &[Vec<bool>], snapshot: &Snapshot) -> (u16, u16) {
    let (w, h) = qr_panel(grid, snapshot);
    (w + MIN_BESIDE_QR, h + 2)
}

/// WhatsApp accounts configured (each takes up to two lines above a code).
fn whatsapp_accounts(snapshot: &Snapshot) -> u16 {
    snapshot.channels.iter().filter(|a| a.kind == "whatsapp").count().max(1) as u16
}

impl Component for Dashboard {
    fn on_key(&mut self, _key: KeyEvent, _shared: &Shared, _queue: &mut Queue) -> bool {
        false
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, shared: &Shared) {
        let Some(snapshot) = &shared.snapshot else {
            let text = match &shared.error {
                Some(e) => format!("No data yet: {e}"),
                None => "Waiting for the first snapshot…".to_string(),
            };
            let style = if shared.error.is_some() { shared.theme.warn() } else { shared.theme.dim() };
            frame.render_widget(
                Paragraph::new(text).style(style).wrap(Wrap { trim: true }).block(block("Dashboard", shared)),
                area,
            );
            return;
        };
        let (area, side) = match self.qr_side_width(area, snapshot) {
            Some(width) => {
                let [rest, qr] =
                    Layout::horizontal([Constraint::Min(MIN_BESIDE_QR), Constraint::Length(width)]).areas(area);
                self.channels(frame, qr, shared, snapshot);
                (rest, None)
            }
            None => (area, Some(if area.width >= 110 { 40 } else { 26 })),
        };
        let watched = watched(snapshot, shared.selected_campaign).len().clamp(1, 3) as u16;
        // Room for the counters, and for each WhatsApp account's two lines beside them.
        let wanted_top = ((Counters::HEIGHT + 1) * watched + 1).max(2 * whatsapp_accounts(snapshot) + 3);
        let top = wanted_top.min(area.height.saturating_sub(10) / 2).max(Counters::HEIGHT + 2);
        let [top_area, mid_area, events_area] =
            Layout::vertical([Constraint::Length(top), Constraint::Length(7), Constraint::Min(3)]).areas(area);
        match side {
            Some(side) => {
                let [camp, chan] = Layout::horizontal([Constraint::Min(40), Constraint::Length(side)]).areas(top_area);
                self.campaigns(frame, camp, shared, snapshot);
                self.channels(frame, chan, shared, snapshot);
            }
            None => self.campaigns(frame, top_area, shared, snapshot),
        }
        let split = if area.width >= 110 { 50 } else { 57 };
        let [queues, workers] =
            Layout::horizontal([Constraint::Percentage(split), Constraint::Percentage(100 - split)]).areas(mid_area);
        self.queues(frame, queues, shared, snapshot);
        self.workers(frame, workers, shared, snapshot);
        self.events(frame, events_area, shared, snapshot);
    }

    fn keys(&self) -> KeyHelp {
        &[]
    }
}
