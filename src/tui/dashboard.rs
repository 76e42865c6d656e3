//! The default screen: the WhatsApp / channels panel, live counters for running (or the
//! selected) campaigns, queue depths with sparklines, workers, and the newest events.

use super::component::{Component, KeyHelp, Shared, block, fit};
use super::queue::Queue;
use super::widgets::{Counters, short_duration, sparkline};
use crate::engine::app::snapshot::Snapshot;
use crate::engine::campaign::{Campaign, CampaignStatus, SendStatus};
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

#[derive(Debug, Default)]
pub struct Dashboard;

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
            frame.render_widget(Counters { campaign, rate, theme: shared.theme }, rect);
            y += Counters::HEIGHT + 1;
        }
    }

    fn channels(&self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let t = shared.theme;
        let mut lines = Vec::new();
        let whatsapp: Vec<_> = snapshot.channels.iter().filter(|a| a.kind == "whatsapp").collect();
        if whatsapp.is_empty() {
            lines.push(Line::styled("WhatsApp: not configured", t.dim()));
        }
        for a in &whatsapp {
            let style = if a.state == "ready" { t.ok() } else { t.warn() };
            lines.push(Line::from(vec![Span::raw(format!("{}: ", a.name)), Span::styled(a.state.clone(), style)]));
        }
        lines.push(Line::styled("Accounts", t.title()));
        if snapshot.channels.is_empty() {
            lines.push(Line::styled("none", t.dim()));
        }
        for a in &snapshot.channels {
            let style = if a.state == "ready" { t.ok() } else { t.warn() };
            lines.push(Line::from(vec![
                Span::raw(format!("{} ", a.name)),
                Span::styled(format!("({}) ", a.kind), t.dim()),
                Span::styled(a.state.clone(), style),
            ]));
        }
        frame.render_widget(Paragraph::new(lines).block(block("WhatsApp", shared)), area);
    }

    fn queues(&self, frame: &mut Frame, area: Rect, shared: &Shared, snapshot: &Snapshot) {
        let t = shared.theme;
        let title = format!("Queues · dead letters {}", snapshot.dead_letters);
        let b = block(title, shared);
        let inner = b.inner(area);
        frame.render_widget(b, area);
        let header =
            Line::styled(format!("{:<14}{:>7}{:>7}{:>7}  history", "topic", "ready", "flight", "delay"), t.dim());
        frame.render_widget(Paragraph::new(header), Rect { height: 1.min(inner.height), ..inner });
        let spark_x = inner.x + 35;
        for (i, q) in snapshot.queues.iter().enumerate() {
            let y = inner.y + 1 + i as u16;
            if y >= inner.y + inner.height {
                break;
            }
            let d = &q.depth;
            let text = format!("{:<14}{:>7}{:>7}{:>7}", fit(short_topic(q.topic), 14), d.ready, d.in_flight, d.delayed);
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
            lines.push(Line::styled("no messages yet", t.dim()));
        }
        for e in &snapshot.events {
            let style = status_style(e.status, shared);
            let mut spans = vec![
                Span::styled(e.updated_at.format("%H:%M:%S ").to_string(), t.dim()),
                Span::raw(format!("campaign #{} lead {} ", e.campaign_id, e.lead_id)),
                Span::styled(e.status.as_str(), style),
                Span::styled(format!(" attempt {} via {}", e.attempt, e.channel), t.dim()),
            ];
            if let Some(err) = &e.error_message {
                spans.push(Span::styled(format!("  {err}"), t.warn()));
            }
            lines.push(Line::from(spans));
        }
        frame.render_widget(Paragraph::new(lines).block(block("Recent events", shared)), area);
    }
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
        let watched = watched(snapshot, shared.selected_campaign).len().clamp(1, 3) as u16;
        let wanted_top = (Counters::HEIGHT + 1) * watched + 1;
        let top = wanted_top.min(area.height.saturating_sub(10) / 2).max(Counters::HEIGHT + 2);
        let [top_area, mid_area, events_area] =
            Layout::vertical([Constraint::Length(top), Constraint::Length(7), Constraint::Min(3)]).areas(area);
        let side = if area.width >= 110 { 40 } else { 26 };
        let [camp, chan] = Layout::horizontal([Constraint::Min(40), Constraint::Length(side)]).areas(top_area);
        self.campaigns(frame, camp, shared, snapshot);
        self.channels(frame, chan, shared, snapshot);
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
