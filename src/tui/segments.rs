//! The segments screen: saved segments with their audience now, and a builder that checks a text
//! rule as it is typed (the error with a caret under its column), previews its audience and a
//! sample off the UI path (debounced), and saves it under a name.

use super::component::{Component, Input, KeyHelp, Shared, block, fit, movement, step};
use super::queue::{Queue, Reply, Request};
use crate::engine::app::segments::CountedSegment;
use crate::engine::audience::Preview;
use crate::engine::segment::{Rule, RuleError};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};
use std::time::{Duration, Instant};

/// How long typing must pause before the audience is counted. Short: one count is in flight
/// at a time and newer text waits for it (not a queue of stale counts), so a pause of 40 ms
/// costs at most one count the typist did not need.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// Preview numbers, unique across builders (a reply for a closed builder is never mistaken
/// for the new one's).
fn next_seq() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}
/// Leads the preview samples.
pub const SAMPLE: usize = 5;

/// The builder: the rule being typed, what parsing it says, and the newest preview.
#[derive(Debug, Default)]
pub struct Builder {
    pub rule: Input,
    pub parsed: Option<Result<Rule, RuleError>>,
    /// Set by an edit that parsed; the preview goes out once typing pauses and the previous
    /// count is back.
    due: Option<Instant>,
    seq: u64,
    pub preview: Option<Result<Preview, String>>,
    previewing: bool,
    /// Asking for the name to save under.
    pub name: Option<Input>,
    saving: bool,
}

impl Builder {
    fn edited(&mut self, now: Instant) {
        let text = self.rule.text.trim();
        if text.is_empty() {
            self.parsed = None;
            self.due = None;
            return;
        }
        let parsed = Rule::parse_any(text);
        self.due = parsed.is_ok().then(|| now + DEBOUNCE);
        self.parsed = Some(parsed);
    }
}

#[derive(Debug, Default)]
pub struct Segments {
    list: Option<Result<Vec<CountedSegment>, String>>,
    selected: Option<usize>,
    table: TableState,
    pub builder: Option<Builder>,
    page: i64,
}

impl Segments {
    fn segments(&self) -> &[CountedSegment] {
        match &self.list {
            Some(Ok(list)) => list,
            _ => &[],
        }
    }

    /// Starts the builder (tests call it to reach the builder without the `n` key).
    pub fn open_builder(&mut self, text: &str) {
        let mut b = Builder { rule: Input::with(text), ..Builder::default() };
        b.edited(Instant::now());
        self.builder = Some(b);
    }

    fn builder_key(&mut self, key: KeyEvent, queue: &mut Queue) {
        let Some(b) = &mut self.builder else { return };
        if let Some(name) = &mut b.name {
            match key.code {
                KeyCode::Esc => b.name = None,
                KeyCode::Enter => {
                    let name = name.text.trim().to_string();
                    if name.is_empty() {
                        queue.toast("Type a name for the segment.", true);
                    } else if let Some(Ok(rule)) = &b.parsed {
                        b.saving = true;
                        queue.request(Request::SaveSegment { name, rule: rule.clone() });
                    }
                }
                _ => {
                    name.edit(key);
                }
            }
            return;
        }
        match key.code {
            KeyCode::Esc => self.builder = None,
            KeyCode::Enter => match &b.parsed {
                Some(Ok(_)) => b.name = Some(Input::default()),
                Some(Err(_)) => queue.toast("The rule has an error; fix it first.", true),
                None => queue.toast("Type a rule, e.g. total_spend > 100 AND tags contains vip", true),
            },
            _ => {
                if b.rule.edit(key) {
                    b.edited(Instant::now());
                }
            }
        }
    }

    fn draw_builder(b: &Builder, frame: &mut Frame, area: Rect, shared: &Shared) {
        let t = shared.theme;
        let [rule_area, check_area, preview_area] =
            Layout::vertical([Constraint::Length(3), Constraint::Length(4), Constraint::Min(3)]).areas(area);
        let rule_block = block("Rule (Enter: save · Esc: back)", shared);
        let inner = rule_block.inner(rule_area);
        // The rule scrolls sideways to keep the cursor in view.
        let width = usize::from(inner.width.max(1));
        let scroll = b.rule.cursor.saturating_sub(width - 1);
        let shown: String = b.rule.text.chars().skip(scroll).take(width).collect();
        frame.render_widget(Paragraph::new(shown).block(rule_block), rule_area);
        if b.name.is_none() {
            frame.set_cursor_position((inner.x + (b.rule.cursor - scroll) as u16, inner.y));
        }
        let check: Vec<Line> = match &b.parsed {
            None => vec![Line::styled("e.g. total_spend > 100 AND tags contains \"vip\"", t.dim())],
            Some(Ok(rule)) => vec![Line::from(vec![Span::styled("✓ ", t.ok()), Span::raw(rule.to_text())])],
            Some(Err(RuleError::Text(e))) => {
                // The caret under the column (characters from 1), shifted like the rule line.
                let line_scroll = if e.line == 1 { scroll } else { 0 };
                let col = e.column.saturating_sub(1).saturating_sub(line_scroll);
                let mut lines = Vec::new();
                if e.line > 1 {
                    lines.push(Line::raw(e.line_text.clone()));
                }
                lines.push(Line::styled(format!("{}^", " ".repeat(col)), t.warn()));
                lines.push(Line::styled(format!("line {}, column {}: {}", e.line, e.column, e.message), t.warn()));
                if !e.expected.is_empty() {
                    lines.push(Line::styled(format!("expected {}", e.expected), t.dim()));
                }
                lines
            }
            Some(Err(e)) => vec![Line::styled(e.to_string(), t.warn())],
        };
        // The caret lines up with the rule's text: the same left edge as the rule block's inside.
        let check_inner = Rect { x: inner.x, width: inner.width, ..check_area };
        frame.render_widget(Paragraph::new(check).wrap(Wrap { trim: false }), check_inner);

        let mut lines = Vec::new();
        if let Some(name) = &b.name {
            lines.push(Line::from(vec![Span::styled("Save as: ", t.key()), Span::raw(name.text.clone())]));
            lines.push(Line::styled(if b.saving { "saving…" } else { "Enter: save · Esc: back to the rule" }, t.dim()));
        }
        match (&b.preview, b.previewing) {
            (_, true) if b.preview.is_none() => lines.push(Line::styled("counting…", t.dim())),
            (None, _) => {}
            (Some(Err(e)), _) => lines.push(Line::styled(format!("cannot preview: {e}"), t.warn())),
            (Some(Ok(p)), busy) => {
                let mut head = vec![Span::styled("audience ", t.dim()), Span::styled(p.count.to_string(), t.title())];
                if busy || b.due.is_some() {
                    head.push(Span::styled("  (updating…)", t.dim()));
                }
                lines.push(Line::from(head));
                for lead in &p.sample {
                    let contact = lead.emails.first().or(lead.phones.first()).map_or("", String::as_str);
                    lines.push(Line::raw(format!("  #{:<6} {} {}", lead.id, fit(&lead.name, 24), contact)));
                }
            }
        }
        frame.render_widget(Paragraph::new(lines).block(block("Preview", shared)), preview_area);
        if let Some(name) = &b.name {
            let x = preview_area.x + 1 + 9 + name.cursor as u16;
            frame.set_cursor_position((x, preview_area.y + 1));
        }
    }
}

impl Component for Segments {
    fn typing(&self) -> bool {
        self.builder.is_some()
    }

    fn on_key(&mut self, key: KeyEvent, _shared: &Shared, queue: &mut Queue) -> bool {
        if self.builder.is_some() {
            self.builder_key(key, queue);
            return true;
        }
        if let Some(delta) = movement(&key, self.page) {
            self.selected = step(self.selected, delta, self.segments().len());
            return true;
        }
        match key.code {
            KeyCode::Char('n') => {
                self.builder = Some(Builder::default());
                true
            }
            KeyCode::Char('e') | KeyCode::Enter => {
                let text = self.selected.and_then(|i| self.segments().get(i)).map(|s| s.segment.rule_ast.to_text());
                if let Some(text) = text {
                    self.open_builder(&text);
                }
                true
            }
            KeyCode::Char('R') => {
                queue.request(Request::Segments);
                true
            }
            _ => false,
        }
    }

    fn on_show(&mut self, _shared: &Shared, queue: &mut Queue) {
        queue.request(Request::Segments);
    }

    fn due(&self) -> Option<Instant> {
        self.builder.as_ref().filter(|b| !b.previewing).and_then(|b| b.due)
    }

    fn on_tick(&mut self, now: Instant, queue: &mut Queue) -> bool {
        let Some(b) = &mut self.builder else { return false };
        match (b.due, &b.parsed) {
            (Some(due), Some(Ok(rule))) if now >= due && !b.previewing => {
                b.due = None;
                b.seq = next_seq();
                b.previewing = true;
                queue.request(Request::Preview { seq: b.seq, rule: rule.clone() });
                true
            }
            _ => false,
        }
    }

    fn on_reply(&mut self, reply: &Reply, _shared: &Shared, queue: &mut Queue) {
        match reply {
            Reply::Segments(result) => {
                self.list = Some(result.clone());
                let len = self.segments().len();
                self.selected = step(self.selected, 0, len);
            }
            Reply::Preview { seq, result } => {
                if let Some(b) = &mut self.builder {
                    if *seq == b.seq {
                        b.previewing = false;
                        b.preview = Some(result.clone());
                    }
                }
            }
            Reply::SegmentSaved(result) => match result {
                Ok(segment) => {
                    self.builder = None;
                    queue.toast(format!("Saved segment #{} {}.", segment.id, segment.name), false);
                    queue.request(Request::Segments);
                }
                Err(e) => {
                    if let Some(b) = &mut self.builder {
                        b.saving = false;
                    }
                    queue.toast(format!("Not saved: {e}"), true);
                }
            },
            _ => {}
        }
    }

    fn on_scroll(&mut self, lines: i32, _shared: &Shared, _queue: &mut Queue) {
        if self.builder.is_none() {
            self.selected = step(self.selected, i64::from(lines), self.segments().len());
        }
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, shared: &Shared) {
        if let Some(b) = &self.builder {
            Self::draw_builder(b, frame, area, shared);
            return;
        }
        let t = shared.theme;
        self.page = i64::from(area.height.saturating_sub(3));
        let title = match &self.list {
            None => "Segments · loading…".to_string(),
            Some(Err(e)) => format!("Segments · error: {e}"),
            Some(Ok(list)) => format!("Segments ({}) · n: new · Enter: edit as new", list.len()),
        };
        let rule_width = usize::from(area.width.saturating_sub(40)).max(10);
        let rows = self.segments().iter().map(|s| {
            Row::new(vec![
                format!("#{}", s.segment.id),
                fit(&s.segment.name, 20),
                s.count.to_string(),
                fit(&s.segment.rule_ast.to_text(), rule_width),
            ])
        });
        let widths = [Constraint::Length(5), Constraint::Length(20), Constraint::Length(9), Constraint::Min(10)];
        let table = Table::new(rows, widths)
            .header(Row::new(["id", "name", "leads", "rule"]).style(t.dim()))
            .row_highlight_style(t.selected())
            .block(block(title, shared));
        self.table.select(self.selected);
        frame.render_stateful_widget(table, area, &mut self.table);
    }

    fn keys(&self) -> KeyHelp {
        &[
            ("↑↓ j k", "select"),
            ("n", "new rule (builder)"),
            ("Enter e", "edit selected as new"),
            ("typing", "checked, previewed"),
            ("Enter", "save (asks a name)"),
            ("Esc", "leave the builder"),
            ("R", "reload"),
        ]
    }
}
