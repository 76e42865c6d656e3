//! The campaigns screen: every campaign with its status and stats; on the selected one run,
//! pause, resume and cancel (asking first), with its counters and newest messages — all of
//! them, or (`U`) only its uncertain ones, the sends nobody can tell arrived.

use super::component::{Component, KeyHelp, Shared, block, fit, movement, step};
use super::dashboard::status_style;
use super::queue::{CampaignAction, Confirm, Event, Queue, Reply, Request};
use super::widgets::{Counters, next_send, progress};
use crate::engine::campaign::{Campaign, CampaignId, CampaignStatus, CommunicationLog, SendStatus};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};

#[derive(Debug, Default)]
pub struct Campaigns {
    /// The selected campaign, by id (stable while the list changes under it).
    selected: Option<CampaignId>,
    logs: Option<(CampaignId, Result<Vec<CommunicationLog>, String>)>,
    /// The messages shown: all (`None`) or only those in one status (`U`: uncertain).
    filter: Option<SendStatus>,
    table: TableState,
    page: i64,
    /// Shown at least once: until then nothing is selected (the dashboard shows running ones).
    shown: bool,
}

impl Campaigns {
    pub fn selected(&self) -> Option<CampaignId> {
        self.selected
    }

    fn list(shared: &Shared) -> &[Campaign] {
        shared.snapshot.as_ref().map_or(&[], |s| s.campaigns.as_slice())
    }

    fn index(&self, shared: &Shared) -> Option<usize> {
        let list = Self::list(shared);
        self.selected.and_then(|id| list.iter().position(|c| c.id == id))
    }

    fn current<'a>(&self, shared: &'a Shared) -> Option<&'a Campaign> {
        let id = self.selected?;
        Self::list(shared).iter().find(|c| c.id == id)
    }

    fn select(&mut self, index: Option<usize>, shared: &Shared, queue: &mut Queue) {
        let id = index.and_then(|i| Self::list(shared).get(i)).map(|c| c.id);
        if id != self.selected {
            self.selected = id;
            if let Some(id) = id {
                self.request_logs(id, queue);
            }
        }
    }

    fn request_logs(&self, id: CampaignId, queue: &mut Queue) {
        queue.request(Request::CampaignLogs { id, status: self.filter });
    }

    /// Only uncertain messages, or all again.
    fn toggle_uncertain(&mut self, queue: &mut Queue) {
        self.filter = match self.filter {
            Some(SendStatus::Uncertain) => None,
            _ => Some(SendStatus::Uncertain),
        };
        self.logs = None;
        if let Some(id) = self.selected {
            self.request_logs(id, queue);
        }
    }

    fn act(&self, action: CampaignAction, shared: &Shared, queue: &mut Queue) {
        let Some(c) = self.current(shared) else {
            queue.toast("No campaign selected.", true);
            return;
        };
        let allowed = match action {
            CampaignAction::Run => c.status == CampaignStatus::Draft,
            CampaignAction::Pause => c.status.can_become(CampaignStatus::Paused),
            CampaignAction::Resume => c.status == CampaignStatus::Paused,
            CampaignAction::Cancel => c.status.can_become(CampaignStatus::Cancelled),
        };
        if !allowed {
            queue.toast(format!("Campaign #{} is {}: it cannot {}.", c.id, c.status.as_str(), action.verb()), true);
            return;
        }
        let request = Request::Campaign { id: c.id, action };
        if action == CampaignAction::Cancel {
            let (done, total, _) = progress(&c.stats);
            queue.push(Event::Confirm(Confirm {
                title: "Cancel campaign".into(),
                question: format!(
                    "Cancel #{} {}? {} of {total} messages are settled; the other {} will never be sent.",
                    c.id,
                    c.name,
                    done,
                    total - done
                ),
                request,
            }));
        } else {
            queue.request(request);
        }
    }
}

impl Component for Campaigns {
    fn on_key(&mut self, key: KeyEvent, shared: &Shared, queue: &mut Queue) -> bool {
        if let Some(delta) = movement(&key, self.page) {
            let len = Self::list(shared).len();
            let next = step(self.index(shared), delta, len);
            self.select(next, shared, queue);
            return true;
        }
        let action = match key.code {
            KeyCode::Char('r') => CampaignAction::Run,
            KeyCode::Char('p') => CampaignAction::Pause,
            KeyCode::Char('u') => CampaignAction::Resume,
            KeyCode::Char('c') => CampaignAction::Cancel,
            KeyCode::Char('l') | KeyCode::Enter => {
                if let Some(id) = self.selected {
                    self.request_logs(id, queue);
                }
                return true;
            }
            KeyCode::Char('U') => {
                self.toggle_uncertain(queue);
                return true;
            }
            _ => return false,
        };
        self.act(action, shared, queue);
        true
    }

    fn on_show(&mut self, shared: &Shared, queue: &mut Queue) {
        self.shown = true;
        if self.index(shared).is_none() {
            self.select(step(None, 0, Self::list(shared).len()), shared, queue);
        } else if let Some(id) = self.selected {
            self.request_logs(id, queue);
        }
    }

    fn on_reply(&mut self, reply: &Reply, shared: &Shared, queue: &mut Queue) {
        match reply {
            Reply::CampaignLogs { id, status, result } if Some(*id) == self.selected && *status == self.filter => {
                self.logs = Some((*id, result.clone()));
            }
            Reply::Campaign { id, .. } if Some(*id) == self.selected => {
                self.request_logs(*id, queue);
            }
            Reply::Snapshot { result: Ok(_), .. } if self.shown && self.index(shared).is_none() => {
                // The first snapshot, or the selected campaign went away.
                self.select(step(None, 0, Self::list(shared).len()), shared, queue);
            }
            _ => {}
        }
    }

    fn on_poll(&mut self, _shared: &Shared, queue: &mut Queue) {
        if let Some(id) = self.selected {
            self.request_logs(id, queue);
        }
    }

    fn on_scroll(&mut self, lines: i32, shared: &Shared, queue: &mut Queue) {
        let next = step(self.index(shared), i64::from(lines), Self::list(shared).len());
        self.select(next, shared, queue);
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, shared: &Shared) {
        let t = shared.theme;
        let list = Self::list(shared);
        let list_height = (list.len() as u16 + 3).clamp(4, area.height.saturating_sub(9).max(4));
        let [list_area, counters_area, logs_area] = Layout::vertical([
            Constraint::Length(list_height),
            Constraint::Length(Counters::HEIGHT + 2),
            Constraint::Min(3),
        ])
        .areas(area);
        self.page = i64::from(list_height.saturating_sub(3));
        let name_width = usize::from(area.width.saturating_sub(52)).max(8);
        let rows = list.iter().map(|c| {
            let (done, total, ratio) = progress(&c.stats);
            Row::new(vec![
                Span::raw(format!("#{}", c.id)),
                Span::raw(fit(&c.name, name_width)),
                Span::styled(c.status.as_str(), t.status(c.status)),
                Span::raw(format!("{:>4.0}%", ratio * 100.0)),
                Span::raw(format!("{done}/{total}")),
                Span::styled(c.stats.failed.to_string(), if c.stats.failed > 0 { t.warn() } else { t.dim() }),
            ])
        });
        let widths = [
            Constraint::Length(5),
            Constraint::Min(8),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(15),
            Constraint::Length(7),
        ];
        let table = Table::new(rows, widths)
            .header(Row::new(["id", "name", "status", "done", "settled", "failed"]).style(t.dim()))
            .row_highlight_style(t.selected())
            .block(block(format!("Campaigns ({})", list.len()), shared));
        self.table.select(self.index(shared));
        frame.render_stateful_widget(table, list_area, &mut self.table);

        let counters = block("Selected", shared);
        let inner = counters.inner(counters_area);
        frame.render_widget(counters, counters_area);
        match self.current(shared) {
            Some(campaign) => {
                let rate = shared.history.rate(campaign.id);
                frame.render_widget(
                    Counters {
                        campaign,
                        rate,
                        waiting: shared.snapshot.as_ref().and_then(|s| next_send(s, campaign)),
                        theme: t,
                    },
                    inner,
                );
            }
            None => {
                frame.render_widget(Paragraph::new("No campaigns yet (crm campaigns create).").style(t.dim()), inner)
            }
        }

        let mut lines = Vec::new();
        match &self.logs {
            Some((id, _)) if Some(*id) != self.selected => {}
            None => {}
            Some((_, Err(e))) => lines.push(Line::styled(format!("cannot read the logs: {e}"), t.warn())),
            Some((_, Ok(logs))) if logs.is_empty() => {
                let none = if self.filter.is_some() { "no uncertain messages" } else { "no messages yet" };
                lines.push(Line::styled(none, t.dim()));
            }
            Some((_, Ok(logs))) => {
                for l in logs {
                    let mut spans = vec![
                        Span::styled(l.updated_at.format("%m-%d %H:%M:%S ").to_string(), t.dim()),
                        Span::raw(format!("lead {:<6} ", l.lead_id)),
                        Span::styled(format!("{:<9}", l.status.as_str()), status_style(l.status, shared)),
                        Span::styled(format!(" attempt {}", l.attempt), t.dim()),
                    ];
                    if let Some(err) = &l.error_message {
                        spans.push(Span::styled(format!("  {err}"), t.warn()));
                    }
                    lines.push(Line::from(spans));
                }
            }
        }
        let title = match self.filter {
            Some(_) => {
                // What uncertain means, since the operator must decide about these by hand.
                lines.insert(
                    0,
                    Line::styled("sent, but no answer says whether they arrived; never resent by crm", t.dim()),
                );
                "Uncertain messages (U: all, l: refresh)"
            }
            None => "Messages (l: refresh, U: uncertain only)",
        };
        frame.render_widget(Paragraph::new(lines).block(block(title, shared)), logs_area);
    }

    fn keys(&self) -> KeyHelp {
        &[
            ("↑↓ j k PgUp/Dn", "select"),
            ("r", "run a draft"),
            ("p u", "pause, resume"),
            ("c", "cancel (asks first)"),
            ("l Enter", "refresh messages"),
            ("U", "uncertain messages only / all"),
        ]
    }
}
