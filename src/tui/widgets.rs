//! Pieces the screens share: campaign progress and counters, rates and ETAs from a ring buffer
//! of snapshots, sparklines with gaps for failed polls, and short durations.

use super::theme::Theme;
use crate::engine::app::snapshot::Snapshot;
use crate::engine::campaign::{Campaign, CampaignId, CampaignStats, CampaignStatus};
use chrono::{DateTime, Utc};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Sparkline, Widget};
use std::collections::VecDeque;

/// How much of a campaign is settled (sent, failed, uncertain, skipped or cancelled), and the
/// fraction in 0..=1 (0 for an empty audience, never NaN).
pub fn progress(stats: &CampaignStats) -> (u64, u64, f64) {
    let total = stats.audience;
    let done = total.saturating_sub(stats.pending);
    let ratio = if total == 0 { 0.0 } else { (done as f64 / total as f64).clamp(0.0, 1.0) };
    (done, total, ratio)
}

/// "3s", "4m05s", "2h10m", "3d".
pub fn short_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d", secs / 86400),
    }
}

/// What one poll left in the history; `None` for a poll that failed (a gap).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub data: Option<SampleData>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SampleData {
    /// Each topic's total depth.
    pub queues: Vec<(&'static str, u64)>,
    /// Each campaign's settled messages.
    pub done: Vec<(CampaignId, u64)>,
}

/// The last minutes of polls (a ring buffer).
#[derive(Debug, Clone)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
}

/// The window rates are measured over.
const RATE_WINDOW_SECS: i64 = 30;

impl History {
    pub fn new(capacity: usize) -> History {
        History { samples: VecDeque::with_capacity(capacity), capacity: capacity.max(1) }
    }

    fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn record(&mut self, snapshot: &Snapshot) {
        let data = SampleData {
            queues: snapshot.queues.iter().map(|q| (q.topic, q.depth.total())).collect(),
            done: snapshot.campaigns.iter().map(|c| (c.id, progress(&c.stats).0)).collect(),
        };
        self.push(Sample { at: snapshot.taken_at, data: Some(data) });
    }

    pub fn record_gap(&mut self, at: DateTime<Utc>) {
        self.push(Sample { at, data: None });
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// A topic's depth over the kept polls, oldest first; gaps are `None`.
    pub fn topic_series(&self, topic: &str) -> Vec<Option<u64>> {
        self.samples
            .iter()
            .map(|s| s.data.as_ref().and_then(|d| d.queues.iter().find(|(t, _)| *t == topic).map(|(_, n)| *n)))
            .collect()
    }

    /// Messages settled per second over the last half minute of polls.
    pub fn rate(&self, campaign: CampaignId) -> Option<f64> {
        let done_at = |s: &Sample| {
            s.data.as_ref().and_then(|d| d.done.iter().find(|(id, _)| *id == campaign)).map(|(_, n)| (s.at, *n))
        };
        let (last_at, last) = self.samples.iter().rev().find_map(done_at)?;
        let (first_at, first) = self
            .samples
            .iter()
            .filter_map(done_at)
            .find(|(at, _)| (last_at - *at).num_seconds() <= RATE_WINDOW_SECS)?;
        let secs = (last_at - first_at).num_milliseconds() as f64 / 1000.0;
        (secs > 0.0).then(|| last.saturating_sub(first) as f64 / secs)
    }
}

/// Seconds until `pending` messages are settled at `rate` per second.
pub fn eta(pending: u64, rate: Option<f64>) -> Option<i64> {
    match rate {
        _ if pending == 0 => Some(0),
        Some(rate) if rate > 0.0 => Some((pending as f64 / rate).ceil().min(1e9) as i64),
        _ => None,
    }
}

/// When a running campaign's next send happens and why it waits, from the wait its account's
/// sender last recorded (rate limit, quiet hours, daily cap, breaker…): `next send in 7h 12m:
/// quiet hours …`. None when the campaign is not running or its account is not waiting (a wait
/// under two seconds is the ordinary pace, not worth a word).
pub fn next_send(snapshot: &Snapshot, campaign: &Campaign) -> Option<String> {
    if campaign.status != CampaignStatus::Running {
        return None;
    }
    let account = snapshot.channels.iter().find(|a| a.name == campaign.channel)?;
    let wait = account.wait.as_ref()?;
    let secs = (wait.next_at - snapshot.taken_at).num_seconds();
    (secs >= 2).then(|| format!("next send in {}: {}", short_duration(secs), wait.detail))
}

/// A campaign's live counters: a title line, a progress gauge, the counts, rate and ETA.
/// Needs 5 lines; fewer show what fits.
pub struct Counters<'a> {
    pub campaign: &'a Campaign,
    pub rate: Option<f64>,
    /// When the next send happens and why sending waits, if it does (see [`next_send`]).
    pub waiting: Option<String>,
    pub theme: Theme,
}

impl Counters<'_> {
    pub const HEIGHT: u16 = 5;
}

impl Widget for Counters<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        let (c, t) = (self.campaign, self.theme);
        let s = &c.stats;
        let (done, total, ratio) = progress(s);
        let title = Line::from(vec![
            Span::styled(format!("#{} {}", c.id, c.name), t.title()),
            Span::raw("  "),
            Span::styled(c.status.as_str(), t.status(c.status)),
            Span::styled(format!("  via {}", c.channel), t.dim()),
        ]);
        let mut lines = vec![title];
        let num = |label: &'static str, n: u64, style: Style| {
            vec![Span::styled(format!("{label} "), t.dim()), Span::styled(n.to_string(), style), Span::raw("  ")]
        };
        let warn_if = |n: u64| if n > 0 { t.warn() } else { Style::new() };
        lines.push(Line::from(
            [
                num("audience", s.audience, Style::new()),
                num("pending", s.pending, Style::new()),
                num("sent", s.sent, t.ok()),
                num("delivered", s.delivered, t.ok()),
            ]
            .concat(),
        ));
        lines.push(Line::from(
            [
                num("read", s.read, t.ok()),
                num("failed", s.failed, warn_if(s.failed)),
                num("uncertain", s.uncertain, warn_if(s.uncertain)),
                num("skipped", s.skipped, Style::new()),
            ]
            .concat(),
        ));
        let rate = match self.rate {
            Some(r) => format!("{r:.1}/s"),
            None => "–".into(),
        };
        let eta = match eta(s.pending, self.rate) {
            Some(0) => "done".to_string(),
            Some(secs) => short_duration(secs),
            None => "–".into(),
        };
        let mut last = vec![
            Span::styled("rate ", t.dim()),
            Span::raw(rate),
            Span::styled("  ETA ", t.dim()),
            Span::raw(eta),
            Span::raw("  "),
        ];
        if s.cancelled > 0 {
            last.extend(num("cancelled", s.cancelled, t.dim()));
        }
        if let Some(waiting) = self.waiting {
            last.push(Span::styled(waiting, t.warn()));
        }
        lines.push(Line::from(last));
        // Title, gauge, then the rest.
        let mut y = area.y;
        let bottom = area.y + area.height;
        let mut lines = lines.into_iter();
        if let Some(first) = lines.next() {
            Paragraph::new(first).render(Rect { y, height: 1, ..area }, buf);
            y += 1;
        }
        if y < bottom {
            // The bar, then the numbers beside it (a label inside would hide part of the bar).
            let label = format!(" {:>3.0}%  {done}/{total}", ratio * 100.0);
            let label_width = (label.chars().count() as u16).min(area.width);
            let bar = Rect { y, height: 1, width: area.width - label_width, ..area };
            Gauge::default().gauge_style(t.gauge()).use_unicode(true).ratio(ratio).label("").render(bar, buf);
            let text = Rect { x: bar.x + bar.width, y, width: label_width, height: 1 };
            Paragraph::new(label).render(text, buf);
            y += 1;
        }
        for line in lines {
            if y >= bottom {
                break;
            }
            Paragraph::new(line).render(Rect { y, height: 1, ..area }, buf);
            y += 1;
        }
    }
}

/// Fits a series into `width` bars: consecutive samples share a bar (its highest value) so the
/// whole history shows; a bar is a gap only when every poll in it failed.
pub fn buckets(series: &[Option<u64>], width: u16) -> Vec<Option<u64>> {
    let width = usize::from(width.max(1));
    if series.len() <= width {
        return series.to_vec();
    }
    let size = series.len().div_ceil(width);
    series.chunks(size).map(|chunk| chunk.iter().flatten().max().copied()).collect()
}

/// A depth sparkline over the kept history; failed polls show as `·` gaps.
pub fn sparkline(series: &[Option<u64>], width: u16, theme: Theme) -> Sparkline<'static> {
    let data = buckets(series, width);
    Sparkline::default().data(&data).style(theme.accent()).absent_value_symbol("·").absent_value_style(theme.dim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_needs_a_rate_unless_nothing_is_pending() {
        assert_eq!(eta(0, None), Some(0));
        assert_eq!(eta(10, None), None);
        assert_eq!(eta(10, Some(0.0)), None);
        assert_eq!(eta(10, Some(4.0)), Some(3));
    }

    #[test]
    fn long_histories_share_bars_and_keep_gaps_only_where_every_poll_failed() {
        let series = [Some(1), None, None, None, Some(5), Some(2), None];
        assert_eq!(buckets(&series, 7), series.to_vec());
        assert_eq!(buckets(&series, 3), vec![Some(1), Some(5), None]);
        assert_eq!(buckets(&series, 4), vec![Some(1), None, Some(5), None]);
        assert_eq!(buckets(&[], 4), Vec::<Option<u64>>::new());
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(-5), "0s");
        assert_eq!(short_duration(59), "59s");
        assert_eq!(short_duration(65), "1m05s");
        assert_eq!(short_duration(7260), "2h01m");
        assert_eq!(short_duration(3 * 86400), "3d");
    }
}
