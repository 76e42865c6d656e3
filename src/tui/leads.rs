//! The leads screen: a searchable list paged through the store (one page of [`PAGE`] leads at
//! a time via `LeadQuery` limit/offset; the store is never loaded whole), and a lead's detail
//! with its message history and the replies it sent back.

use super::component::{Component, Input, KeyHelp, Shared, block, fit, movement};
use super::dashboard::status_style;
use super::queue::{LeadHistory, Queue, Reply, Request};
use crate::engine::lead::Lead;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

/// Leads fetched per request.
pub const PAGE: usize = 100;

/// A lead's messages and replies, or why they could not be read.
type History = Result<LeadHistory, String>;

#[derive(Debug, Default)]
pub struct Leads {
    /// The applied search.
    search: Option<String>,
    /// While `/` is open: the text being typed.
    input: Option<Input>,
    /// The page held: its offset and rows.
    offset: usize,
    rows: Vec<Lead>,
    /// Leads matching the search, all pages.
    total: u64,
    /// The search changed since `total` was counted: the next page request counts again.
    recount: bool,
    /// The selected lead's position among all matches.
    selected: usize,
    /// The newest request's number; older replies are dropped.
    seq: u64,
    loading: bool,
    error: Option<String>,
    /// The lead shown in detail, with its messages and replies once they arrive.
    detail: Option<(Lead, Option<History>)>,
    table: TableState,
    visible: usize,
    loaded_once: bool,
}

impl Leads {
    fn fetch(&mut self, offset: usize, queue: &mut Queue) {
        self.seq += 1;
        self.loading = true;
        let count = self.recount;
        queue.request(Request::Leads { seq: self.seq, search: self.search.clone(), offset, limit: PAGE, count });
    }

    /// Fetches the first page of a new search (or a reload), counting its matches again.
    fn fetch_counted(&mut self, offset: usize, queue: &mut Queue) {
        self.recount = true;
        self.fetch(offset, queue);
    }

    /// Moves the selection; asks for the page holding it when that is not the one held.
    fn move_by(&mut self, delta: i64, queue: &mut Queue) {
        if self.total == 0 {
            return;
        }
        let last = self.total as i64 - 1;
        self.selected = (self.selected as i64).saturating_add(delta).clamp(0, last) as usize;
        let page_offset = self.selected / PAGE * PAGE;
        // Also while a page is on its way: the newest request wins.
        if page_offset != self.offset {
            self.fetch(page_offset, queue);
        }
    }

    fn current(&self) -> Option<&Lead> {
        self.selected.checked_sub(self.offset).and_then(|i| self.rows.get(i))
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    fn draw_detail(&self, frame: &mut Frame, area: Rect, shared: &Shared) {
        let Some((lead, logs)) = &self.detail else { return };
        let t = shared.theme;
        let field = |k: &str, v: String| Line::from(vec![Span::styled(format!("{k:<12}"), t.dim()), Span::raw(v)]);
        let mut lines = vec![
            field("id", lead.id.to_string()),
            field("name", lead.name.clone()),
            field("emails", lead.emails.join(", ")),
            field("phones", lead.phones.join(", ")),
            field("spend", format!("{:.2}", lead.total_spend)),
            field("visits", lead.visits.to_string()),
            field("last order", lead.last_order_at.map_or("–".into(), |d| d.format("%Y-%m-%d").to_string())),
            field("tags", lead.tags.join(", ")),
        ];
        for (k, v) in &lead.metadata {
            lines.push(field(k, v.clone()));
        }
        lines.push(Line::raw(""));
        lines.push(Line::styled("Messages", t.title()));
        let history = match logs {
            None => {
                lines.push(Line::styled("loading…", t.dim()));
                None
            }
            Some(Err(e)) => {
                lines.push(Line::styled(format!("cannot read the messages: {e}"), t.warn()));
                None
            }
            Some(Ok(history)) => Some(history),
        };
        if let Some(history) = history {
            if history.logs.is_empty() {
                lines.push(Line::styled("none", t.dim()));
            }
            for l in &history.logs {
                let mut spans = vec![
                    Span::styled(l.updated_at.format("%Y-%m-%d %H:%M ").to_string(), t.dim()),
                    Span::raw(format!("campaign #{:<4} ", l.campaign_id)),
                    Span::styled(l.status.as_str(), status_style(l.status, shared)),
                    Span::styled(format!(" via {}", l.channel), t.dim()),
                ];
                if let Some(err) = &l.error_message {
                    spans.push(Span::styled(format!("  {err}"), t.warn()));
                }
                lines.push(Line::from(spans));
            }
            lines.push(Line::raw(""));
            lines.push(Line::styled("Replies", t.title()));
            if history.replies.is_empty() {
                lines.push(Line::styled("none", t.dim()));
            }
            for r in &history.replies {
                lines.push(Line::from(vec![
                    Span::styled(r.received_at.format("%Y-%m-%d %H:%M ").to_string(), t.dim()),
                    Span::styled(format!("via {}  ", r.channel), t.dim()),
                    Span::raw(printable(&r.body)),
                ]));
            }
        }
        let title = format!("Lead #{} (Esc: back)", lead.id);
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(title, shared)), area);
    }
}

/// A lead's text on one line: control characters (escape sequences, new lines) become spaces,
/// so what a lead sends cannot move the cursor or restyle the terminal.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

impl Component for Leads {
    fn typing(&self) -> bool {
        self.input.is_some()
    }

    fn on_key(&mut self, key: KeyEvent, _shared: &Shared, queue: &mut Queue) -> bool {
        if let Some(input) = &mut self.input {
            match key.code {
                KeyCode::Enter => {
                    let text = input.text.trim().to_string();
                    self.search = (!text.is_empty()).then_some(text);
                    self.input = None;
                    self.selected = 0;
                    self.fetch_counted(0, queue);
                }
                KeyCode::Esc => self.input = None,
                _ => {
                    input.edit(key);
                }
            }
            return true;
        }
        if self.detail.is_some() {
            if matches!(key.code, KeyCode::Esc | KeyCode::Backspace | KeyCode::Left) {
                self.detail = None;
                return true;
            }
            return false;
        }
        if let Some(delta) = movement(&key, self.visible as i64) {
            self.move_by(delta, queue);
            return true;
        }
        match key.code {
            KeyCode::Char('/') => {
                self.input = Some(Input::with(self.search.as_deref().unwrap_or("")));
                true
            }
            KeyCode::Esc if self.search.is_some() => {
                self.search = None;
                self.selected = 0;
                self.fetch_counted(0, queue);
                true
            }
            KeyCode::Enter => {
                if let Some(lead) = self.current().cloned() {
                    queue.request(Request::LeadHistory { id: lead.id });
                    self.detail = Some((lead, None));
                }
                true
            }
            KeyCode::Char('R') => {
                self.fetch_counted(self.offset, queue);
                true
            }
            _ => false,
        }
    }

    fn on_show(&mut self, _shared: &Shared, queue: &mut Queue) {
        if !self.loaded_once {
            self.loaded_once = true;
            self.fetch_counted(0, queue);
        }
    }

    fn on_reply(&mut self, reply: &Reply, _shared: &Shared, _queue: &mut Queue) {
        match reply {
            Reply::Leads { seq, offset, result } if *seq == self.seq => {
                self.loading = false;
                match result {
                    Ok((rows, total)) => {
                        self.error = None;
                        self.offset = *offset;
                        self.rows = rows.clone();
                        if let Some(total) = total {
                            self.total = *total;
                            self.recount = false;
                        }
                        let last = (self.offset + self.rows.len()).saturating_sub(1);
                        self.selected = self.selected.clamp(self.offset, last.max(self.offset));
                    }
                    Err(e) => self.error = Some(e.clone()),
                }
            }
            Reply::LeadHistory { id, result } => {
                if let Some((lead, logs)) = &mut self.detail {
                    if lead.id == *id {
                        *logs = Some(result.clone());
                    }
                }
            }
            _ => {}
        }
    }

    fn on_poll(&mut self, _shared: &Shared, queue: &mut Queue) {
        // An open lead's messages follow the campaign; the list stays put while browsing.
        if let Some((lead, _)) = &self.detail {
            queue.request(Request::LeadHistory { id: lead.id });
        }
    }

    fn on_scroll(&mut self, lines: i32, _shared: &Shared, queue: &mut Queue) {
        if self.detail.is_none() {
            self.move_by(i64::from(lines), queue);
        }
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, shared: &Shared) {
        let t = shared.theme;
        if self.detail.is_some() {
            self.draw_detail(frame, area, shared);
            return;
        }
        let [search_area, list_area] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
        let search = match (&self.input, &self.search) {
            (Some(input), _) => {
                let x = search_area.x
                    + 8
                    + input.text[..input.text.char_indices().nth(input.cursor).map_or(input.text.len(), |(i, _)| i)]
                        .chars()
                        .count() as u16;
                frame.set_cursor_position((x.min(search_area.x + search_area.width.saturating_sub(1)), search_area.y));
                Line::from(vec![Span::styled("search: ", t.key()), Span::raw(input.text.clone())])
            }
            (None, Some(s)) => Line::from(vec![
                Span::styled("search: ", t.dim()),
                Span::raw(s.clone()),
                Span::styled("  (/ to change, Esc to clear)", t.dim()),
            ]),
            (None, None) => Line::styled("/ to search names, emails and phones · Enter: details", t.dim()),
        };
        frame.render_widget(Paragraph::new(search), search_area);
        self.visible = usize::from(list_area.height.saturating_sub(3));
        let wide = area.width >= 110;
        let rows = self.rows.iter().map(|l| {
            let mut cells = vec![
                l.id.to_string(),
                fit(&l.name, 22),
                fit(l.emails.first().map_or("", String::as_str), if wide { 30 } else { 22 }),
                fit(l.phones.first().map_or("", String::as_str), 16),
                format!("{:.2}", l.total_spend),
            ];
            if wide {
                cells.push(l.visits.to_string());
                cells.push(fit(&l.tags.join(","), 20));
            }
            Row::new(cells)
        });
        let mut widths = vec![
            Constraint::Length(7),
            Constraint::Length(22),
            Constraint::Length(if wide { 30 } else { 22 }),
            Constraint::Length(16),
            Constraint::Length(10),
        ];
        let mut header = vec!["id", "name", "email", "phone", "spend"];
        if wide {
            widths.extend([Constraint::Length(7), Constraint::Min(10)]);
            header.extend(["visits", "tags"]);
        }
        let status = if let Some(e) = &self.error {
            format!("Leads · error: {e}")
        } else if self.loading && self.rows.is_empty() {
            "Leads · loading…".to_string()
        } else if self.total == 0 {
            "Leads · none match".to_string()
        } else {
            format!(
                "Leads {}/{} (page {}–{})",
                self.selected + 1,
                self.total,
                self.offset + 1,
                self.offset + self.rows.len()
            )
        };
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(t.dim()))
            .row_highlight_style(t.selected())
            .block(block(status, shared));
        self.table.select(self.selected.checked_sub(self.offset).filter(|i| *i < self.rows.len()));
        frame.render_stateful_widget(table, list_area, &mut self.table);
    }

    fn keys(&self) -> KeyHelp {
        &[
            ("↑↓ j k PgUp/Dn", "move; pages load"),
            ("g G", "first, last"),
            ("/", "search, Enter applies"),
            ("Esc", "clear search / back"),
            ("Enter", "details, messages, replies"),
            ("R", "reload"),
        ]
    }
}
