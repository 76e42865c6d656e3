//! Styles: modifiers first, a few colours that read on light and dark terminals (no background
//! colours, no yellow or white text), and none at all under `NO_COLOR`.

use crate::engine::campaign::CampaignStatus;
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to something non-empty.
    pub fn from_env() -> Theme {
        Theme { color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) }
    }

    pub fn plain() -> Theme {
        Theme { color: false }
    }

    fn fg(self, color: Color) -> Style {
        if self.color { Style::new().fg(color) } else { Style::new() }
    }

    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn accent(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// Problems: stale data, failed messages, errors.
    pub fn warn(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn gauge(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn status(self, status: CampaignStatus) -> Style {
        match status {
            CampaignStatus::Running => self.ok().add_modifier(Modifier::BOLD),
            CampaignStatus::Paused => self.fg(Color::Magenta),
            CampaignStatus::Draft => Style::new(),
            CampaignStatus::Completed => self.accent(),
            CampaignStatus::Cancelled => self.dim(),
        }
    }
}
