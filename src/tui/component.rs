//! The component contract (the model is gitui's `src/components/mod.rs`): each screen owns its
//! state, handles its keys, and draws itself from that state and the shared [`Shared`] data. A
//! component that wants something done elsewhere pushes onto the [`Queue`].

use super::queue::{Queue, Reply};
use super::theme::Theme;
use super::widgets::History;
use crate::engine::app::snapshot::Snapshot;
use crate::engine::campaign::CampaignId;
use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use std::time::Instant;

/// What every component reads: the newest snapshot and how fresh it is.
#[derive(Debug)]
pub struct Shared {
    pub theme: Theme,
    /// The newest snapshot that arrived (kept when later polls fail).
    pub snapshot: Option<Snapshot>,
    /// The last poll's error, cleared by the next success.
    pub error: Option<String>,
    pub history: History,
    /// The wall clock, set on every tick (tests set it by hand).
    pub now: DateTime<Utc>,
    /// The campaign chosen on the campaigns screen; the dashboard shows it first.
    pub selected_campaign: Option<CampaignId>,
    /// How often snapshots come now (whole seconds, at least 1).
    pub poll_every_secs: i64,
}

/// A snapshot older than this is shown as stale even without an error.
pub const STALE_SECS: i64 = 5;

impl Shared {
    pub fn new(theme: Theme, now: DateTime<Utc>) -> Shared {
        Shared {
            theme,
            snapshot: None,
            error: None,
            history: History::new(240),
            now,
            selected_campaign: None,
            poll_every_secs: 1,
        }
    }

    /// Seconds since the newest snapshot was taken.
    pub fn age(&self) -> Option<i64> {
        self.snapshot.as_ref().map(|s| (self.now - s.taken_at).num_seconds().max(0))
    }

    pub fn stale(&self) -> bool {
        self.error.is_some() || self.age().is_some_and(|a| a > STALE_SECS.max(2 * self.poll_every_secs))
    }
}

/// Key help: (keys, what they do).
pub type KeyHelp = &'static [(&'static str, &'static str)];

pub trait Component {
    /// Handles a key; returns whether it was used.
    fn on_key(&mut self, key: KeyEvent, shared: &Shared, queue: &mut Queue) -> bool;

    /// A result from the runtime (every component sees every reply and takes its own).
    fn on_reply(&mut self, _reply: &Reply, _shared: &Shared, _queue: &mut Queue) {}

    /// A fresh snapshot arrived while this screen is visible (refresh what it shows besides).
    fn on_poll(&mut self, _shared: &Shared, _queue: &mut Queue) {}

    /// The screen became visible.
    fn on_show(&mut self, _shared: &Shared, _queue: &mut Queue) {}

    /// A render tick: time-based work such as debounced previews. Returns whether to redraw.
    fn on_tick(&mut self, _now: Instant, _queue: &mut Queue) -> bool {
        false
    }

    /// When time-based work is due (a debounced preview), so the loop wakes then rather than
    /// at the next render tick.
    fn due(&self) -> Option<Instant> {
        None
    }

    /// Mouse wheel: `lines` down (negative: up).
    fn on_scroll(&mut self, _lines: i32, _shared: &Shared, _queue: &mut Queue) {}

    /// Whether the component is reading text (then `q`, `?` and digits are typed, not commands).
    fn typing(&self) -> bool {
        false
    }

    fn draw(&mut self, frame: &mut Frame, area: Rect, shared: &Shared);

    fn keys(&self) -> KeyHelp;
}

/// A one-line text field: characters, Backspace, Delete, ←/→, Home/End, Ctrl-U.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    pub text: String,
    /// In characters.
    pub cursor: usize,
}

impl Input {
    pub fn with(text: &str) -> Input {
        Input { text: text.to_string(), cursor: text.chars().count() }
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text.char_indices().nth(chars).map_or(self.text.len(), |(i, _)| i)
    }

    /// Returns whether the text changed; keys it does not edit with are ignored (`false`).
    pub fn edit(&mut self, key: KeyEvent) -> bool {
        let len = self.text.chars().count();
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                self.cursor = 0;
                true
            }
            KeyCode::Char(c) if !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) => {
                let at = self.byte_at(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let at = self.byte_at(self.cursor - 1);
                self.text.remove(at);
                self.cursor -= 1;
                true
            }
            KeyCode::Delete if self.cursor < len => {
                let at = self.byte_at(self.cursor);
                self.text.remove(at);
                true
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                false
            }
            KeyCode::Home => {
                self.cursor = 0;
                false
            }
            KeyCode::End => {
                self.cursor = len;
                false
            }
            _ => false,
        }
    }
}

/// Moves a selection by `delta` within `0..len` (nothing to select: `None`).
pub fn step(selected: Option<usize>, delta: i64, len: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let current = selected.unwrap_or(0) as i64;
    Some((current + delta).clamp(0, len as i64 - 1) as usize)
}

/// The vertical movement a key means, if any (`page`: rows a page holds).
pub fn movement(key: &KeyEvent, page: i64) -> Option<i64> {
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => Some(-1),
        KeyCode::Down | KeyCode::Char('j') => Some(1),
        KeyCode::PageUp => Some(-page.max(1)),
        KeyCode::PageDown => Some(page.max(1)),
        KeyCode::Home | KeyCode::Char('g') => Some(i64::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => Some(i64::MAX / 2),
        _ => None,
    }
}

/// A block with the title in the title style.
pub fn block(title: impl Into<String>, shared: &Shared) -> ratatui::widgets::Block<'static> {
    ratatui::widgets::Block::bordered()
        .title(ratatui::text::Span::styled(format!(" {} ", title.into()), shared.theme.title()))
}

/// Cuts text to `width` characters, ending in `…` when cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn input_edits_by_character_not_byte() {
        let mut input = Input::with("café");
        assert_eq!(input.cursor, 4);
        assert!(input.edit(key(KeyCode::Backspace)));
        assert_eq!(input.text, "caf");
        input.edit(key(KeyCode::Left));
        assert!(input.edit(key(KeyCode::Char('é'))));
        assert_eq!(input.text, "caéf");
        input.edit(key(KeyCode::Home));
        assert!(!input.edit(key(KeyCode::Backspace)), "nothing before the start");
        assert!(input.edit(key(KeyCode::Delete)));
        assert_eq!(input.text, "aéf");
        assert!(input.edit(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
        assert_eq!((input.text.as_str(), input.cursor), ("", 0));
    }

    #[test]
    fn selection_steps_stay_in_range() {
        assert_eq!(step(None, 1, 0), None);
        assert_eq!(step(None, 1, 3), Some(1));
        assert_eq!(step(Some(2), 5, 3), Some(2));
        assert_eq!(step(Some(2), i64::MIN / 2, 3), Some(0));
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }
}
