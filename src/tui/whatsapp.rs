//! The dashboard's WhatsApp panel: each WhatsApp account's connection in plain words (read from
//! the state the send worker records in the store), the paired number, ban and logout warnings,
//! and while an account waits for a scan the QR code itself, large enough to scan.
//!
//! The code is drawn with half blocks (two modules per cell), always black on white — also under
//! `NO_COLOR` and on dark themes — because a phone needs dark modules on a light quiet zone; it is
//! the one place the dashboard sets a background. Its module matrix is cached by payload, so a
//! poll that brings the same code back costs nothing, and ratatui's diff sends the terminal
//! nothing for cells that did not change: the code is redrawn only when WhatsApp rotates it.
//! Without the `whatsapp` feature the panel still shows states, but says it cannot draw a code.

use super::component::Shared;
use super::widgets::short_duration;
use crate::engine::channel::registry::AccountInfo;
use crate::engine::channel::whatsapp::ChannelState;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

/// A QR code's modules, row by row, `true` for dark, with its light quiet zone.
pub type Grid = Vec<Vec<bool>>;

/// Modules of quiet zone kept when the full four do not fit (phones scan with two).
const COMPACT_QUIET_ZONE: usize = 2;

/// The connection an account last recorded, if any and if this build understands it.
pub fn connection(account: &AccountInfo) -> Option<ChannelState> {
    serde_json::from_value(account.connection.clone()?).ok()
}

/// The QR payload of the first WhatsApp account waiting for a scan.
pub fn pending_qr(accounts: &[AccountInfo]) -> Option<(String, String)> {
    accounts.iter().filter(|a| a.kind == "whatsapp").find_map(|a| match connection(a) {
        Some(ChannelState::PairingNeeded { qr: Some(payload) }) => Some((a.name.clone(), payload)),
        _ => None,
    })
}

/// The module matrix of a payload (needs the `whatsapp` feature's QR encoder).
#[cfg(feature = "whatsapp")]
fn encode(payload: &str) -> Result<Grid, String> {
    crate::engine::channel::whatsapp::qr::modules(payload)
}

#[cfg(not(feature = "whatsapp"))]
fn encode(_payload: &str) -> Result<Grid, String> {
    Err("this build cannot draw QR codes (built without WhatsApp)".into())
}

/// The newest code's matrix, kept until the payload changes.
#[derive(Debug, Default)]
pub struct QrCache {
    payload: String,
    grid: Option<Result<Grid, String>>,
    encodings: usize,
}

impl QrCache {
    /// The matrix for `payload`, encoding it only when it differs from the cached one.
    pub fn grid(&mut self, payload: &str) -> &Result<Grid, String> {
        if self.grid.is_none() || self.payload != payload {
            self.payload = payload.to_string();
            self.grid = Some(encode(payload));
            self.encodings += 1;
        }
        self.grid.get_or_insert_with(|| Err(String::new()))
    }

    /// How many times a payload was encoded (tests check the cache holds).
    pub fn encodings(&self) -> usize {
        self.encodings
    }
}

/// `grid` with its quiet zone cut from the standard four modules to `keep`.
fn trim_quiet_zone(grid: &[Vec<bool>], keep: usize) -> Grid {
    #[cfg(feature = "whatsapp")]
    let cut = crate::engine::channel::whatsapp::qr::QUIET_ZONE.saturating_sub(keep);
    #[cfg(not(feature = "whatsapp"))]
    let cut = 4usize.saturating_sub(keep);
    let n = grid.len();
    if n <= 2 * cut {
        return grid.to_vec();
    }
    grid[cut..n - cut].iter().map(|row| row[cut..row.len() - cut].to_vec()).collect()
}

/// Columns and rows a grid takes drawn with half blocks.
pub fn cells(grid: &[Vec<bool>]) -> (u16, u16) {
    let n = grid.len();
    (u16::try_from(n).unwrap_or(u16::MAX), u16::try_from(n.div_ceil(2)).unwrap_or(u16::MAX))
}

/// The largest quiet zone with which `grid` fits in `width`×`height` cells, as the grid to draw.
pub fn fitting(grid: &[Vec<bool>], width: u16, height: u16) -> Option<Grid> {
    let fits = |g: &[Vec<bool>]| {
        let (w, h) = cells(g);
        w <= width && h <= height
    };
    if fits(grid) {
        return Some(grid.to_vec());
    }
    let compact = trim_quiet_zone(grid, COMPACT_QUIET_ZONE);
    fits(&compact).then_some(compact)
}

/// The cells the code needs at its most compact (for layouts to reserve).
pub fn compact_cells(grid: &[Vec<bool>]) -> (u16, u16) {
    cells(&trim_quiet_zone(grid, COMPACT_QUIET_ZONE))
}

/// Draws `grid` at the top-left of `area` with half blocks, black on white.
pub fn draw_qr(grid: &[Vec<bool>], area: Rect, buf: &mut Buffer) {
    let style = Style::new().fg(Color::Black).bg(Color::White);
    for (row, pair) in grid.chunks(2).enumerate() {
        let y = area.y + row as u16;
        if y >= area.bottom() {
            break;
        }
        for (col, &top) in pair[0].iter().enumerate() {
            let x = area.x + col as u16;
            if x >= area.right() {
                break;
            }
            let bottom = pair.get(1).is_some_and(|r| r[col]);
            let symbol = match (top, bottom) {
                (true, true) => "█",
                (true, false) => "▀",
                (false, true) => "▄",
                (false, false) => " ",
            };
            buf[(x, y)].set_symbol(symbol).set_style(style);
        }
    }
}

/// What an account's connection means for an operator, in plain words: one line, and with
/// `wide` a second with the detail (how long ago, what to do, why).
pub fn account_lines(account: &AccountInfo, shared: &Shared, wide: bool) -> Vec<Line<'static>> {
    let t = shared.theme;
    let name = format!("{}: ", account.name);
    if account.state != "ready" {
        return vec![Line::from(vec![Span::raw(name), Span::styled(account.state.clone(), t.warn())])];
    }
    let (words, style, hint): (String, Style, Option<String>) = match connection(account) {
        None if account.connection.is_some() => ("state not understood by this build".into(), t.warn(), None),
        None => ("no state yet".into(), t.dim(), Some("start crm worker all".into())),
        Some(ChannelState::PairingNeeded { qr: Some(_) }) => {
            ("not linked".into(), t.warn(), Some("scan the code: WhatsApp → Settings → Linked devices".into()))
        }
        Some(ChannelState::PairingNeeded { qr: None }) => {
            ("not linked".into(), t.warn(), Some("run crm whatsapp login".into()))
        }
        Some(ChannelState::Connecting) => ("connecting…".into(), t.dim(), None),
        Some(ChannelState::Connected { phone: Some(phone) }) => (format!("connected as {phone}"), t.ok(), None),
        Some(ChannelState::Connected { phone: None }) => ("connected".into(), t.ok(), None),
        Some(ChannelState::LoggedOut { reason }) => {
            ("⚠ logged out: crm whatsapp login".into(), t.warn(), Some(format!("{reason}; sends wait")))
        }
        Some(ChannelState::TemporarilyBanned { until }) => {
            let left = short_duration((until - shared.now).num_seconds());
            (
                format!("⚠ banned until {} UTC", until.format("%b %d %H:%M")),
                t.warn(),
                Some(format!("WhatsApp banned this number for {left} more; sends wait")),
            )
        }
        Some(ChannelState::Disconnected { reason }) => ("disconnected, reconnecting".into(), t.warn(), Some(reason)),
    };
    let mut lines = vec![Line::from(vec![Span::raw(name), Span::styled(words, style)])];
    if wide {
        let since = account
            .connection_updated_at
            .map(|at| format!(" ({} ago)", short_duration((shared.now - at).num_seconds())))
            .unwrap_or_default();
        let detail = format!("  {}{since}", hint.unwrap_or_default());
        if detail.trim() != "" {
            lines.push(Line::styled(detail, t.dim()));
        }
    }
    lines
}

/// Why the code is not drawn and what to do: the terminal size it needs, or a pairing code.
pub fn too_small(terminal: (u16, u16)) -> String {
    format!(
        "The QR code needs a {}×{} terminal; or link with a code: crm whatsapp login --phone +NUMBER",
        terminal.0, terminal.1
    )
}
