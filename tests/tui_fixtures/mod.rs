//! Fixtures the dashboard's screen tests share: hand-built snapshots (a running campaign, one
//! draft, a worker per role), a `Ui` fed with them, synthetic keys, and screens as text.

// Each test binary uses its own subset.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm::engine::app::snapshot::{QueueDepth, RecentEvent, Snapshot};
use crm::engine::app::workers::WorkerInfo;
use crm::engine::bus::{TopicDepth, topic};
use crm::engine::campaign::{
    Campaign, CampaignStats, CampaignStatus, CommunicationLog, Heartbeat, SendIds, SendStatus,
};
use crm::engine::channel::registry::AccountInfo;
use crm::tui::queue::Reply;
use crm::tui::theme::Theme;
use crm::tui::ui::Ui;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use std::time::Instant;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).single().expect("a valid time")
}

pub fn stats(audience: u64, sent: u64, delivered: u64, read: u64, failed: u64) -> CampaignStats {
    CampaignStats {
        audience,
        sent,
        delivered,
        read,
        failed,
        pending: audience - sent - failed,
        ..CampaignStats::default()
    }
}

pub fn campaign(id: i64, name: &str, status: CampaignStatus, stats: CampaignStats) -> Campaign {
    Campaign {
        id,
        name: name.into(),
        segment_id: 1,
        message_template: "Hi {{name}}".into(),
        channel: "sim".into(),
        created_by: None,
        status,
        stats,
        created_at: t0() - Duration::hours(1),
        updated_at: t0(),
        send_ids: SendIds::Hashed,
    }
}

pub fn worker(kind: &str, pid: u32, seen_ago: i64, rate: f64, stale: bool) -> WorkerInfo {
    WorkerInfo {
        heartbeat: Heartbeat {
            id: format!("{kind}-{pid}"),
            kind: kind.into(),
            pid,
            started: t0() - Duration::minutes(10),
            last_seen: t0() - Duration::seconds(seen_ago),
            processed: 100,
            rate,
        },
        stale,
    }
}

pub fn event(lead: i64, status: SendStatus, secs: i64, error: Option<&str>) -> CommunicationLog {
    CommunicationLog {
        send_id: format!("1:{lead}"),
        campaign_id: 1,
        lead_id: lead,
        status,
        attempt: 1,
        channel: "sim".into(),
        provider_message_id: None,
        error_message: error.map(String::from),
        created_at: t0() - Duration::seconds(secs),
        updated_at: t0() - Duration::seconds(secs),
    }
}

/// The newest messages of the running campaign.
pub fn messages() -> Vec<CommunicationLog> {
    vec![
        event(17, SendStatus::Delivered, 1, None),
        event(18, SendStatus::Failed, 2, Some("number not on WhatsApp")),
        event(19, SendStatus::Sent, 3, None),
    ]
}

/// A store with one running campaign (400 of 1000 sent), one draft, a worker per role.
pub fn snapshot(at: DateTime<Utc>, sent: u64) -> Snapshot {
    Snapshot {
        taken_at: at,
        store: "sqlite:/data/crm.db".into(),
        bus: "embedded:/data/crm.db".into(),
        campaigns: vec![
            campaign(1, "spring-sale", CampaignStatus::Running, stats(1000, sent, sent / 2, sent / 4, 3)),
            campaign(2, "winback", CampaignStatus::Draft, stats(0, 0, 0, 0, 0)),
        ],
        queues: vec![
            QueueDepth { topic: topic::JOBS, depth: TopicDepth { ready: 0, in_flight: 1, delayed: 0 } },
            QueueDepth { topic: topic::SEND_JOBS, depth: TopicDepth { ready: 590, in_flight: 4, delayed: 3 } },
            QueueDepth { topic: topic::STATUS_UPDATES, depth: TopicDepth { ready: 12, in_flight: 0, delayed: 0 } },
            QueueDepth { topic: topic::DLQ, depth: TopicDepth::default() },
        ],
        workers: vec![worker("sender", 4242, 1, 25.0, false), worker("aggregator", 4243, 2, 30.5, false)],
        channels: vec![AccountInfo {
            name: "sim".into(),
            kind: "sim",
            state: "ready".into(),
            max_length: None,
            connection: None,
            connection_updated_at: None,
            wait: None,
        }],
        events: messages().into_iter().map(RecentEvent::Message).collect(),
        dead_letters: 2,
    }
}

pub fn ui_with(snapshots: Vec<Snapshot>, now: DateTime<Utc>) -> Ui {
    let mut ui = Ui::new(Theme::plain(), now);
    for s in snapshots {
        ui.apply(Reply::Snapshot { at: s.taken_at, result: Ok(s) });
    }
    ui.tick(now, Instant::now());
    ui
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn press(ui: &mut Ui, keys: &str) {
    for c in keys.chars() {
        ui.on_key(key(KeyCode::Char(c)));
    }
}

/// The screen as text, one line per row, trailing spaces cut.
pub fn screen(ui: &mut Ui, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|f| ui.draw(f)).expect("draw");
    buffer_text(terminal.backend().buffer())
}

pub fn buffer_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A running campaign seen twice, 10 s apart: 100 more messages settled, so 10/s.
pub fn running() -> Ui {
    ui_with(vec![snapshot(t0() - Duration::seconds(10), 300), snapshot(t0(), 400)], t0())
}

pub fn type_text(ui: &mut Ui, text: &str) {
    for c in text.chars() {
        ui.on_key(key(KeyCode::Char(c)));
    }
}

pub fn lead(id: i64, name: &str) -> crm::engine::lead::Lead {
    crm::engine::lead::Lead {
        id,
        name: name.into(),
        emails: vec![format!("{}@example.com", name.to_lowercase())],
        phones: vec!["+447911123456".into()],
        total_spend: 120.5,
        visits: 3,
        last_order_at: None,
        tags: vec!["vip".into()],
        metadata: [("city".to_string(), "Leeds".to_string())].into_iter().collect(),
        created_at: t0(),
        updated_at: t0(),
    }
}
