//! The root of the dashboard: the screens, the tab bar, the status line, the help overlay and
//! the confirmation popup. It takes terminal events and replies, routes what components push on
//! the queue, and hands requests to the runtime. It does no I/O, so tests drive it directly.

use super::campaigns::Campaigns;
use super::component::{Component, KeyHelp, Shared};
use super::dashboard::Dashboard;
use super::leads::Leads;
use super::queue::{Confirm, Event, Queue, Reply, Request};
use super::segments::Segments;
use super::theme::Theme;
use super::widgets::short_duration;
use chrono::{DateTime, Utc};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Dashboard,
    Campaigns,
    Leads,
    Segments,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Dashboard, Tab::Campaigns, Tab::Leads, Tab::Segments];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Dashboard => "Dashboard",
            Tab::Campaigns => "Campaigns",
            Tab::Leads => "Leads",
            Tab::Segments => "Segments",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

const GLOBAL_KEYS: KeyHelp = &[
    ("1-4 Tab S-Tab", "switch screens"),
    ("?", "help (Esc closes)"),
    ("q Ctrl-C", "quit"),
    ("mouse wheel", "scroll lists"),
];

pub struct Ui {
    pub shared: Shared,
    pub tab: Tab,
    pub dashboard: Dashboard,
    pub campaigns: Campaigns,
    pub leads: Leads,
    pub segments: Segments,
    pub help: bool,
    pub confirm: Option<Confirm>,
    toast: Option<(String, bool)>,
    queue: Queue,
    outbox: Vec<Request>,
    quit: bool,
}

impl Ui {
    pub fn new(theme: Theme, now: DateTime<Utc>) -> Ui {
        Ui {
            shared: Shared::new(theme, now),
            tab: Tab::Dashboard,
            dashboard: Dashboard::default(),
            campaigns: Campaigns::default(),
            leads: Leads::default(),
            segments: Segments::default(),
            help: false,
            confirm: None,
            toast: None,
            queue: Queue::default(),
            outbox: Vec::new(),
            quit: false,
        }
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// The requests pushed since the last call, for the runtime to carry out.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.outbox)
    }

    fn component(&mut self, tab: Tab) -> &mut dyn Component {
        match tab {
            Tab::Dashboard => &mut self.dashboard,
            Tab::Campaigns => &mut self.campaigns,
            Tab::Leads => &mut self.leads,
            Tab::Segments => &mut self.segments,
        }
    }

    /// Routes what components pushed.
    fn drain(&mut self) {
        while let Some(event) = self.queue.pop() {
            match event {
                Event::Request(r) => self.outbox.push(r),
                Event::Toast { text, error } => self.toast = Some((text, error)),
                Event::Confirm(c) => self.confirm = Some(c),
            }
        }
        self.shared.selected_campaign = self.campaigns.selected();
    }

    pub fn show(&mut self, tab: Tab) {
        self.tab = tab;
        self.with_component(tab, |c, shared, queue| c.on_show(shared, queue));
    }

    /// A terminal event; returns whether the screen needs drawing.
    pub fn on_event(&mut self, event: TermEvent) -> bool {
        match event {
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
                self.on_key(key);
                true
            }
            TermEvent::Mouse(m) => {
                let lines = match m.kind {
                    MouseEventKind::ScrollDown => 3,
                    MouseEventKind::ScrollUp => -3,
                    _ => return false,
                };
                if !self.help && self.confirm.is_none() {
                    let tab = self.tab;
                    self.with_component(tab, |c, shared, queue| c.on_scroll(lines, shared, queue));
                }
                true
            }
            TermEvent::Resize(..) => true,
            _ => false,
        }
    }

    fn with_component<R>(&mut self, tab: Tab, f: impl FnOnce(&mut dyn Component, &Shared, &mut Queue) -> R) -> R {
        let shared = &self.shared;
        let queue = &mut self.queue;
        let component: &mut dyn Component = match tab {
            Tab::Dashboard => &mut self.dashboard,
            Tab::Campaigns => &mut self.campaigns,
            Tab::Leads => &mut self.leads,
            Tab::Segments => &mut self.segments,
        };
        let out = f(component, shared, queue);
        self.drain();
        out
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c {
            self.quit = true;
            return;
        }
        if let Some(confirm) = &self.confirm {
            match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    let request = confirm.request.clone();
                    self.confirm = None;
                    self.outbox.push(request);
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.confirm = None;
                    self.toast = Some(("Not cancelled.".into(), false));
                }
                _ => {}
            }
            return;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => self.quit = true,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => self.help = false,
                _ => {}
            }
            return;
        }
        let tab = self.tab;
        let typing = self.component(tab).typing();
        if !typing {
            match key.code {
                KeyCode::Char('q') => {
                    self.quit = true;
                    return;
                }
                KeyCode::Char('?') => {
                    self.help = true;
                    return;
                }
                KeyCode::Char(c @ '1'..='4') => {
                    self.show(Tab::ALL[(c as u8 - b'1') as usize]);
                    return;
                }
                KeyCode::Tab => {
                    self.show(Tab::ALL[(tab.index() + 1) % Tab::ALL.len()]);
                    return;
                }
                KeyCode::BackTab => {
                    self.show(Tab::ALL[(tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]);
                    return;
                }
                _ => {}
            }
        }
        self.toast = None;
        self.with_component(tab, |c, shared, queue| c.on_key(key, shared, queue));
    }

    /// A reply from the poller or the runtime. Returns whether to draw at once: an answer to
    /// something the operator asked for (a preview, a page, an action) is on screen without
    /// waiting for the next render tick; the poller's snapshots wait for it.
    pub fn apply(&mut self, reply: Reply) -> bool {
        let now = !matches!(reply, Reply::Snapshot { .. } | Reply::PollEvery(_));
        match &reply {
            Reply::Snapshot { at, result } => match result {
                Ok(snapshot) => {
                    self.shared.history.record(snapshot);
                    self.shared.snapshot = Some(snapshot.clone());
                    self.shared.error = None;
                }
                Err(e) => {
                    self.shared.history.record_gap(*at);
                    self.shared.error = Some(e.clone());
                }
            },
            Reply::PollEvery(every) => {
                self.shared.poll_every_secs = i64::try_from(every.as_secs()).unwrap_or(i64::MAX).max(1);
            }
            Reply::Failed(text) => self.toast = Some((text.clone(), true)),
            Reply::Campaign { id, action, result } => {
                self.toast = Some(match result {
                    Ok(text) => (text.clone(), false),
                    Err(e) => (format!("Cannot {} campaign #{id}: {e}", action.verb()), true),
                });
            }
            _ => {}
        }
        let (shared, queue) = (&self.shared, &mut self.queue);
        self.campaigns.on_reply(&reply, shared, queue);
        self.leads.on_reply(&reply, shared, queue);
        self.segments.on_reply(&reply, shared, queue);
        self.drain();
        if let Reply::Snapshot { result: Ok(_), .. } = reply {
            let tab = self.tab;
            self.with_component(tab, |c, shared, queue| c.on_poll(shared, queue));
        }
        now
    }

    /// When the visible screen has time-based work due (see [`Component::due`]).
    pub fn next_due(&mut self) -> Option<Instant> {
        let tab = self.tab;
        self.component(tab).due()
    }

    /// A render tick: the clock moves on and debounced work goes out. Returns whether to redraw
    /// (the age shown on the status line changes every second).
    pub fn tick(&mut self, now: DateTime<Utc>, instant: Instant) -> bool {
        let second_changed = now.timestamp() != self.shared.now.timestamp();
        self.shared.now = now;
        let tab = self.tab;
        let changed = self.with_component(tab, |c, _, queue| c.on_tick(instant, queue));
        second_changed || changed
    }

    pub fn draw(&mut self, frame: &mut Frame) {
        let area = frame.area();
        let [tabs_area, body, status_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(area);
        self.draw_tabs(frame, tabs_area);
        let tab = self.tab;
        match tab {
            Tab::Dashboard => self.dashboard.draw(frame, body, &self.shared),
            Tab::Campaigns => self.campaigns.draw(frame, body, &self.shared),
            Tab::Leads => self.leads.draw(frame, body, &self.shared),
            Tab::Segments => self.segments.draw(frame, body, &self.shared),
        }
        self.draw_status(frame, status_area);
        if self.help {
            self.draw_help(frame, area);
        }
        if let Some(confirm) = &self.confirm {
            draw_confirm(confirm, &self.shared, frame, area);
        }
    }

    fn draw_tabs(&self, frame: &mut Frame, area: Rect) {
        let t = self.shared.theme;
        let mut spans = vec![Span::styled(" crm ", t.title())];
        for (i, tab) in Tab::ALL.iter().enumerate() {
            let label = format!(" {} {} ", i + 1, tab.title());
            spans.push(Span::styled(label, if *tab == self.tab { t.selected() } else { t.dim() }));
        }
        spans.push(Span::styled("  ? help  q quit", t.dim()));
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn draw_status(&self, frame: &mut Frame, area: Rect) {
        let t = self.shared.theme;
        let s = &self.shared;
        let mut spans = Vec::new();
        // A warning first, then the newest toast, then how fresh the data is.
        match (&s.snapshot, &s.error, s.age()) {
            (None, Some(e), _) => spans.push(Span::styled(format!("⚠ backend unreachable: {e}  "), t.warn())),
            (Some(_), Some(e), age) => spans.push(Span::styled(
                format!("⚠ STALE, data from {} ago: {e}  ", short_duration(age.unwrap_or(0))),
                t.warn(),
            )),
            (Some(_), None, Some(age)) if s.stale() => {
                spans.push(Span::styled(format!("⚠ STALE, data from {} ago  ", short_duration(age)), t.warn()))
            }
            _ => {}
        }
        if let Some((text, error)) = &self.toast {
            spans.push(Span::styled(format!("{text}  "), if *error { t.warn() } else { t.accent() }));
        }
        match (&s.snapshot, s.stale(), s.age()) {
            (None, false, _) => spans.push(Span::styled("connecting…", t.dim())),
            (Some(snap), false, age) => {
                let age = short_duration(age.unwrap_or(0));
                // Polling stretched on a very large store: say how often it looks.
                let fresh = if s.poll_every_secs > 1 {
                    format!("updated {age} ago, every {}", short_duration(s.poll_every_secs))
                } else {
                    format!("updated {age} ago")
                };
                let text = if self.toast.is_some() { fresh } else { format!("{} · {fresh}", snap.store) };
                spans.push(Span::styled(text, t.dim()));
            }
            _ => {}
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn draw_help(&mut self, frame: &mut Frame, area: Rect) {
        let t = self.shared.theme;
        let section = |lines: &mut Vec<Line<'static>>, title: &str, keys: KeyHelp| {
            lines.push(Line::styled(title.to_string(), t.title()));
            for (k, what) in keys {
                lines.push(Line::from(vec![Span::styled(format!(" {k:<14} "), t.key()), Span::raw(*what)]));
            }
        };
        let (mut left, mut right) = (Vec::new(), Vec::new());
        section(&mut left, "Everywhere", GLOBAL_KEYS);
        section(&mut left, "Campaigns (2)", self.campaigns.keys());
        left.push(Line::styled("Popups: y yes · n Esc no", t.dim()));
        section(&mut right, "Leads (3)", self.leads.keys());
        section(&mut right, "Segments (4)", self.segments.keys());
        let height = left.len().max(right.len()) as u16 + 2;
        let popup = centered(area, 96, height.min(area.height));
        frame.render_widget(Clear, popup);
        let b = Block::bordered().title(Span::styled(" Keys (Esc closes) ", t.title()));
        let inner = b.inner(popup);
        frame.render_widget(b, popup);
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
        frame.render_widget(Paragraph::new(left), l);
        frame.render_widget(Paragraph::new(right), r);
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height)]).flex(Flex::Center).areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))]).flex(Flex::Center).areas(row);
    cell
}

fn draw_confirm(confirm: &Confirm, shared: &Shared, frame: &mut Frame, area: Rect) {
    let t = shared.theme;
    let popup = centered(area, 56, 7);
    frame.render_widget(Clear, popup);
    let text = vec![
        Line::raw(confirm.question.clone()),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", t.key()),
            Span::raw(" yes   "),
            Span::styled("n Esc", t.key()),
            Span::raw(" no"),
        ]),
    ];
    let b = Block::bordered().title(Span::styled(format!(" {} ", confirm.title), t.warn()));
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(b), popup);
}
