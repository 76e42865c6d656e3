//! The dashboard's screens on ratatui's `TestBackend`, driven by synthetic keys over hand-built
//! snapshots (the `Ui` does no I/O: tests feed it the replies the poller and runtime would send,
//! and read back the requests it makes).
#![cfg(feature = "tui")]

mod tui_fixtures;

use chrono::Duration;
use crm::engine::bus::topic;
use crm::engine::campaign::{CampaignStats, CampaignStatus, SendStatus};
use crm::engine::channel::registry::AccountInfo;
use crm::engine::store::campaigns::AccountWait;
use crm::tui::queue::{CampaignAction, LeadHistory, Reply, Request};
use crm::tui::theme::Theme;
use crm::tui::ui::{Tab, Ui};
use crm::tui::widgets::{Counters, History, progress, sparkline};
use crossterm::event::{KeyCode, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use std::time::Instant;
use tui_fixtures::*;

#[test]
fn dashboard_with_a_running_campaign_80x24() {
    let mut ui = running();
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("#1 spring-sale  RUNNING"), "{text}");
    assert!(text.contains(" 40%  403/1000"), "{text}");
    assert!(text.contains("rate 10.0/s  ETA 1m00s"), "{text}");
    assert!(text.contains("WhatsApp: not configured"), "{text}");
    insta::assert_snapshot!("dashboard_running_80x24", text);
}

#[test]
fn dashboard_with_a_running_campaign_120x40() {
    let mut ui = running();
    insta::assert_snapshot!("dashboard_running_120x40", screen(&mut ui, 120, 40));
}

#[test]
fn dashboard_marks_a_stale_worker() {
    let mut s = snapshot(t0(), 400);
    s.workers.push(worker("expander", 99, 120, 0.0, true));
    let mut ui = ui_with(vec![s.clone()], t0());
    let wide = screen(&mut ui, 120, 40);
    assert!(wide.contains("Workers (3, 1 stale)"), "{wide}");
    assert!(wide.contains("STALE"), "{wide}");
    assert!(wide.contains("2m00s"), "{wide}");
    insta::assert_snapshot!("dashboard_stale_worker_120x40", wide);
    let narrow = screen(&mut ui, 80, 24);
    assert!(narrow.contains("!expand…"), "{narrow}");
    insta::assert_snapshot!("dashboard_stale_worker_80x24", narrow);
}

#[test]
fn dashboard_with_an_unreachable_backend_keeps_the_data_and_warns_with_its_age() {
    let mut ui = ui_with(vec![snapshot(t0(), 400)], t0());
    ui.apply(Reply::Snapshot { at: t0() + Duration::seconds(1), result: Err("database is locked".into()) });
    ui.tick(t0() + Duration::seconds(12), Instant::now());
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("⚠ STALE, data from 12s ago: database is locked"), "{text}");
    // The last data stays on screen.
    assert!(text.contains("#1 spring-sale"), "{text}");
    insta::assert_snapshot!("dashboard_unreachable_80x24", text);
    let wide = screen(&mut ui, 120, 40);
    assert!(wide.contains("⚠ STALE, data from 12s ago: database is locked"), "{wide}");
    insta::assert_snapshot!("dashboard_unreachable_120x40", wide);

    // Recovery clears the warning.
    ui.apply(Reply::Snapshot {
        at: t0() + Duration::seconds(13),
        result: Ok(snapshot(t0() + Duration::seconds(13), 450)),
    });
    ui.tick(t0() + Duration::seconds(13), Instant::now());
    let text = screen(&mut ui, 80, 24);
    assert!(!text.contains("STALE"), "{text}");
}

#[test]
fn dashboard_before_any_snapshot_says_the_backend_is_unreachable() {
    let mut ui = Ui::new(Theme::plain(), t0());
    ui.apply(Reply::Snapshot { at: t0(), result: Err("no answer in 3s".into()) });
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("No data yet: no answer in 3s"), "{text}");
    assert!(text.contains("⚠ backend unreachable: no answer in 3s"), "{text}");
}

#[test]
fn a_snapshot_with_no_age_update_for_long_is_stale() {
    let mut ui = ui_with(vec![snapshot(t0(), 400)], t0());
    ui.tick(t0() + Duration::seconds(30), Instant::now());
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("⚠ STALE, data from 30s ago"), "{text}");
}

/// On Kafka the queues panel shows each topic's consumer lag (one figure) instead of the
/// embedded bus's ready / in flight / delayed.
#[test]
fn on_kafka_the_queues_show_consumer_lag() {
    let mut kafka = snapshot(t0(), 400);
    kafka.bus = "kafka://127.0.0.1:9092".into();
    let mut ui = ui_with(vec![kafka], t0());
    let text = screen(&mut ui, 120, 40);
    assert!(text.contains("consumer lag"), "{text}");
    assert!(!text.contains("flight"), "{text}");
    let send_jobs = text.lines().find(|l| l.contains("send_jobs")).expect("the send_jobs row");
    assert!(send_jobs.contains(" 597"), "590 + 4 + 3: {send_jobs}");
}

/// On a store whose snapshots are slow the poller looks less often and says so; a snapshot is
/// stale only after two of those intervals.
#[test]
fn a_stretched_poll_interval_is_shown_and_moves_the_stale_mark() {
    let mut ui = ui_with(vec![snapshot(t0(), 400)], t0());
    ui.apply(Reply::PollEvery(std::time::Duration::from_secs(10)));
    ui.tick(t0() + Duration::seconds(12), Instant::now());
    let text = screen(&mut ui, 120, 40);
    assert!(text.contains("updated 12s ago, every 10s"), "{text}");
    assert!(!text.contains("STALE"), "{text}");
    ui.tick(t0() + Duration::seconds(21), Instant::now());
    assert!(screen(&mut ui, 120, 40).contains("⚠ STALE, data from 21s ago"));
    ui.apply(Reply::PollEvery(std::time::Duration::from_secs(1)));
    ui.tick(t0() + Duration::seconds(22), Instant::now());
    assert!(screen(&mut ui, 120, 40).contains("STALE"), "back to the 5 s rule");
}

#[test]
fn campaigns_cancel_asks_first_then_sends_the_request() {
    let mut ui = running();
    press(&mut ui, "2");
    assert_eq!(ui.tab, Tab::Campaigns);
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: None }]);
    ui.apply(Reply::CampaignLogs { id: 1, status: None, result: Ok(messages()) });
    press(&mut ui, "c");
    assert!(ui.confirm.is_some());
    assert!(ui.take_requests().is_empty(), "nothing is sent before the answer");
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("Cancel campaign"), "{text}");
    assert!(text.contains("403 of 1000"), "{text}");
    insta::assert_snapshot!("campaigns_cancel_confirmation_80x24", text);
    let wide = screen(&mut ui, 120, 40);
    assert!(wide.contains("403 of 1000"), "{wide}");
    insta::assert_snapshot!("campaigns_cancel_confirmation_120x40", wide);

    // No: nothing happens.
    press(&mut ui, "n");
    assert!(ui.confirm.is_none());
    assert!(ui.take_requests().is_empty());
    // Yes: the cancel goes out.
    press(&mut ui, "cy");
    assert_eq!(ui.take_requests(), vec![Request::Campaign { id: 1, action: CampaignAction::Cancel }]);
    ui.apply(Reply::Campaign {
        id: 1,
        action: CampaignAction::Cancel,
        result: Ok("Campaign #1 spring-sale: RUNNING → CANCELLED.".into()),
    });
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("RUNNING → CANCELLED"), "{text}");
}

#[test]
fn campaigns_refuse_actions_the_status_does_not_allow() {
    let mut ui = running();
    press(&mut ui, "2");
    ui.take_requests();
    // A running campaign cannot be run or resumed.
    press(&mut ui, "r");
    assert!(ui.take_requests().is_empty());
    assert!(screen(&mut ui, 80, 24).contains("cannot run"));
    // The draft below it can be run; pause applies to the running one.
    ui.on_key(key(KeyCode::Down));
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 2, status: None }]);
    press(&mut ui, "r");
    assert_eq!(ui.take_requests(), vec![Request::Campaign { id: 2, action: CampaignAction::Run }]);
    ui.on_key(key(KeyCode::Up));
    ui.take_requests();
    press(&mut ui, "p");
    assert_eq!(ui.take_requests(), vec![Request::Campaign { id: 1, action: CampaignAction::Pause }]);
}

#[test]
fn campaigns_screen_120x40() {
    let mut ui = running();
    press(&mut ui, "2");
    ui.apply(Reply::CampaignLogs { id: 1, status: None, result: Ok(messages()) });
    insta::assert_snapshot!("campaigns_120x40", screen(&mut ui, 120, 40));
}

#[test]
fn segment_builder_shows_a_parse_error_with_a_caret_under_the_column() {
    let mut ui = running();
    press(&mut ui, "4");
    assert_eq!(ui.take_requests(), vec![Request::Segments]);
    press(&mut ui, "n");
    // Typed keys go to the builder: `q` and digits are text here.
    type_text(&mut ui, "total_spend >> 10");
    assert!(!ui.should_quit());
    let text = screen(&mut ui, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    let rule_row = lines.iter().position(|l| l.contains("total_spend >> 10")).expect("the rule is shown");
    // Columns in characters (the border is one character of three bytes).
    let col = |line: &str, what: &str| line.find(what).map(|b| line[..b].chars().count());
    let rule_col = col(lines[rule_row], "total_spend").expect("the rule's column");
    let caret_row = lines.iter().position(|l| l.trim() == "^").expect("a caret line");
    let caret_col = col(lines[caret_row], "^").expect("a caret");
    let message = lines.iter().find(|l| l.contains("line 1, column")).expect("the error");
    let column: usize = message
        .split("column ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("a column number");
    assert_eq!(caret_col - rule_col, column - 1, "the caret sits under column {column}:\n{text}");
    assert!(ui.take_requests().is_empty(), "a rule that does not parse is not previewed");
    insta::assert_snapshot!("segment_builder_parse_error_80x24", text);
    insta::assert_snapshot!("segment_builder_parse_error_120x40", screen(&mut ui, 120, 40));
}

#[test]
fn segment_builder_previews_once_typing_pauses_and_saves_under_a_name() {
    let mut ui = running();
    press(&mut ui, "4n");
    ui.take_requests();
    type_text(&mut ui, "total_spend > 100");
    // Right after the keystroke: nothing yet (debounced).
    ui.tick(t0(), Instant::now());
    assert!(ui.take_requests().is_empty());
    ui.tick(t0(), Instant::now() + std::time::Duration::from_millis(400));
    let requests = ui.take_requests();
    let Some(Request::Preview { seq, .. }) = requests.first() else { panic!("a preview request: {requests:?}") };
    let seq = *seq;
    ui.apply(Reply::Preview { seq, result: Ok(crm::engine::audience::Preview { count: 42, sample: Vec::new() }) });
    let text = screen(&mut ui, 80, 24);
    assert!(text.contains("✓ total_spend > 100"), "{text}");
    assert!(text.contains("audience 42"), "{text}");
    // An older preview arriving late is ignored.
    ui.apply(Reply::Preview {
        seq: seq - 1,
        result: Ok(crm::engine::audience::Preview { count: 1, sample: Vec::new() }),
    });
    assert!(screen(&mut ui, 80, 24).contains("audience 42"));

    ui.on_key(key(KeyCode::Enter));
    type_text(&mut ui, "big spenders");
    ui.on_key(key(KeyCode::Enter));
    let requests = ui.take_requests();
    assert!(
        matches!(requests.as_slice(), [Request::SaveSegment { name, .. }] if name == "big spenders"),
        "{requests:?}"
    );
}

#[test]
fn segment_builder_keeps_one_preview_in_flight_and_sends_the_newest_text_after_it() {
    let mut ui = running();
    press(&mut ui, "4n");
    ui.take_requests();
    let later = |ms| Instant::now() + std::time::Duration::from_millis(ms);
    type_text(&mut ui, "visits > 1");
    ui.tick(t0(), later(100));
    let requests = ui.take_requests();
    let Some(Request::Preview { seq: first, .. }) = requests.first() else { panic!("a preview: {requests:?}") };
    let first = *first;
    // More typing while that count runs: nothing more goes out, however long it takes…
    type_text(&mut ui, "0");
    ui.tick(t0(), later(200));
    ui.tick(t0(), later(900));
    assert!(ui.take_requests().is_empty(), "one count at a time");
    assert_eq!(ui.next_due(), None, "no wake-ups while waiting");
    // …until it answers: then the newest text, once.
    let draw_now = ui.apply(Reply::Preview {
        seq: first,
        result: Ok(crm::engine::audience::Preview { count: 7, sample: Vec::new() }),
    });
    assert!(draw_now, "an answer to the operator is drawn at once, not at the next tick");
    assert!(screen(&mut ui, 80, 24).contains("(updating…)"));
    ui.tick(t0(), later(1000));
    let requests = ui.take_requests();
    assert!(
        matches!(requests.as_slice(), [Request::Preview { seq, rule }] if *seq > first && rule.to_text() == "visits > 10"),
        "{requests:?}"
    );
}

#[test]
fn leads_page_through_the_store_instead_of_loading_it() {
    let mut ui = running();
    press(&mut ui, "3");
    let requests = ui.take_requests();
    assert!(
        matches!(requests.as_slice(), [Request::Leads { offset: 0, limit: 100, search: None, count: true, .. }]),
        "{requests:?}"
    );
    let Request::Leads { seq, .. } = requests[0] else { unreachable!() };
    ui.apply(Reply::Leads { seq, offset: 0, result: Ok((Vec::new(), Some(250))) });
    // The last lead is on the third page: only that page is asked for.
    press(&mut ui, "G");
    let requests = ui.take_requests();
    // Pages do not count the store again: only a new search does.
    assert!(
        matches!(requests.as_slice(), [Request::Leads { offset: 200, limit: 100, count: false, .. }]),
        "{requests:?}"
    );
    // `/` searches: typed text is not a command.
    press(&mut ui, "/");
    type_text(&mut ui, "q1");
    ui.on_key(key(KeyCode::Enter));
    assert!(!ui.should_quit());
    let requests = ui.take_requests();
    assert!(
        matches!(requests.as_slice(), [Request::Leads { offset: 0, search: Some(s), count: true, .. }] if s == "q1"),
        "{requests:?}"
    );
}

#[test]
fn help_lists_the_keys_and_q_quits() {
    let mut ui = running();
    press(&mut ui, "?");
    let text = screen(&mut ui, 80, 24);
    for needle in ["Keys (Esc closes)", "switch screens", "cancel (asks first)", "search, Enter applies", "new rule"] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("help_80x24", text);
    insta::assert_snapshot!("help_120x40", screen(&mut ui, 120, 40));
    ui.on_key(key(KeyCode::Esc));
    assert!(!ui.help);
    ui.on_key(key(KeyCode::Tab));
    assert_eq!(ui.tab, Tab::Campaigns);
    press(&mut ui, "q");
    assert!(ui.should_quit());
}

#[test]
fn every_screen_draws_at_tiny_sizes_without_panicking() {
    for (w, h) in [(80, 24), (120, 40), (40, 10), (20, 5), (1, 1)] {
        let mut ui = running();
        for tab in ["1", "2", "3", "4"] {
            press(&mut ui, tab);
            screen(&mut ui, w, h);
        }
        press(&mut ui, "n");
        type_text(&mut ui, "visits >");
        screen(&mut ui, w, h);
        ui.on_key(key(KeyCode::Esc));
        press(&mut ui, "?");
        screen(&mut ui, w, h);
    }
}

#[test]
fn counters_with_an_empty_audience_show_zero_percent() {
    let c = campaign(5, "empty", CampaignStatus::Running, CampaignStats::default());
    assert_eq!(progress(&c.stats), (0, 0, 0.0));
    let area = Rect::new(0, 0, 60, Counters::HEIGHT);
    let mut buf = Buffer::empty(area);
    Counters { campaign: &c, rate: None, waiting: None, theme: Theme::plain() }.render(area, &mut buf);
    let text = buffer_text(&buf);
    assert!(text.contains("  0%  0/0"), "{text}");
    assert!(text.contains("ETA done"), "{text}");
    // Counts larger than the audience (a race between counts) stay within 100%.
    let odd = CampaignStats { audience: 10, sent: 12, ..CampaignStats::default() };
    assert_eq!(progress(&odd).2, 1.0);
}

#[test]
fn sparkline_shows_failed_polls_as_gaps() {
    let mut history = History::new(10);
    history.record(&snapshot(t0(), 400));
    history.record_gap(t0() + Duration::seconds(1));
    history.record(&snapshot(t0() + Duration::seconds(2), 450));
    let series = history.topic_series(topic::SEND_JOBS);
    assert_eq!(series, vec![Some(597), None, Some(597)]);
    let area = Rect::new(0, 0, 3, 1);
    let mut buf = Buffer::empty(area);
    sparkline(&series, 3, Theme::plain()).render(area, &mut buf);
    assert_eq!(buf[(1, 0)].symbol(), "·");
    assert_ne!(buf[(0, 0)].symbol(), "·");
    // The rate skips the gap: 50 more in 2 s.
    assert_eq!(history.rate(1), Some(25.0));
    // Only the newest samples that fit are drawn; the ring buffer keeps its capacity.
    for i in 0..20 {
        history.record(&snapshot(t0() + Duration::seconds(3 + i), 450));
    }
    assert_eq!(history.len(), 10);
}

#[test]
fn mouse_wheel_scrolls_the_campaign_list() {
    use crossterm::event::{Event, MouseEvent, MouseEventKind};
    let mut ui = running();
    press(&mut ui, "2");
    ui.take_requests();
    let wheel = |kind| Event::Mouse(MouseEvent { kind, column: 5, row: 5, modifiers: KeyModifiers::NONE });
    assert!(ui.on_event(wheel(MouseEventKind::ScrollDown)));
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 2, status: None }]);
    assert!(ui.on_event(wheel(MouseEventKind::ScrollUp)));
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: None }]);
    // A resize redraws; a plain mouse move does not.
    assert!(ui.on_event(Event::Resize(100, 30)));
    assert!(!ui.on_event(wheel(MouseEventKind::Moved)));
}

#[test]
fn a_whatsapp_account_replaces_not_configured() {
    let mut s = snapshot(t0(), 400);
    s.channels.push(AccountInfo {
        name: "wa-main".into(),
        kind: "whatsapp",
        state: "not available in this build".into(),
        max_length: Some(4096),
        connection: None,
        connection_updated_at: None,
        wait: None,
    });
    let mut ui = ui_with(vec![s], t0());
    let text = screen(&mut ui, 120, 40);
    assert!(!text.contains("not configured"), "{text}");
    assert!(text.contains("wa-main: not available in this build"), "{text}");
}

#[test]
fn no_color_draws_without_colours() {
    use ratatui::style::Color;
    let mut ui = running();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
    terminal.draw(|f| ui.draw(f)).expect("draw");
    let buffer = terminal.backend().buffer();
    assert!(buffer.content().iter().all(|c| c.fg == Color::Reset && c.bg == Color::Reset));

    let mut coloured = Ui::new(Theme { color: true }, t0());
    coloured.apply(Reply::Snapshot { at: t0(), result: Ok(snapshot(t0(), 400)) });
    terminal.draw(|f| coloured.draw(f)).expect("draw");
    let buffer = terminal.backend().buffer();
    assert!(buffer.content().iter().any(|c| c.fg != Color::Reset));
    // No background colours, so light and dark terminals both read.
    assert!(buffer.content().iter().all(|c| c.bg == Color::Reset));
}

#[test]
fn a_lead_opens_with_its_message_history() {
    let mut ui = running();
    press(&mut ui, "3");
    let requests = ui.take_requests();
    let Some(Request::Leads { seq, .. }) = requests.first() else { panic!("{requests:?}") };
    ui.apply(Reply::Leads { seq: *seq, offset: 0, result: Ok((vec![lead(17, "Ada"), lead(18, "Bo")], Some(2))) });
    let list = screen(&mut ui, 80, 24);
    assert!(list.contains("Leads 1/2"), "{list}");
    ui.on_key(key(KeyCode::Down));
    ui.on_key(key(KeyCode::Enter));
    assert_eq!(ui.take_requests(), vec![Request::LeadHistory { id: 18 }]);
    assert!(screen(&mut ui, 80, 24).contains("loading…"));
    ui.apply(Reply::LeadHistory {
        id: 18,
        result: Ok(LeadHistory {
            logs: vec![event(18, SendStatus::Failed, 2, Some("number not on WhatsApp"))],
            replies: Vec::new(),
        }),
    });
    let detail = screen(&mut ui, 80, 24);
    for needle in ["Lead #18", "bo@example.com", "city", "Leeds", "campaign #1", "failed", "number not on WhatsApp"] {
        assert!(detail.contains(needle), "{needle}:\n{detail}");
    }
    ui.on_key(key(KeyCode::Esc));
    assert!(screen(&mut ui, 80, 24).contains("Leads 2/2"));
}

#[test]
fn each_poll_refreshes_the_visible_campaigns_messages_only() {
    let mut ui = running();
    let draw_now = ui.apply(Reply::Snapshot { at: t0(), result: Ok(snapshot(t0(), 410)) });
    assert!(!draw_now, "snapshots wait for the render tick");
    assert!(ui.take_requests().is_empty(), "the dashboard asks for nothing besides the snapshot");
    press(&mut ui, "2");
    ui.take_requests();
    ui.apply(Reply::Snapshot { at: t0(), result: Ok(snapshot(t0(), 420)) });
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: None }]);
    // A failed poll asks for nothing more.
    ui.apply(Reply::Snapshot { at: t0(), result: Err("down".into()) });
    assert!(ui.take_requests().is_empty());
}

#[test]
fn a_running_campaign_says_when_its_next_send_happens_and_why_it_waits() {
    let mut s = snapshot(t0(), 400);
    let detail = "quiet hours at the recipient's until 08:00 (UTC+01:00)";
    s.channels[0].wait = Some(AccountWait {
        account: "sim".into(),
        next_at: t0() + Duration::minutes(95),
        reason: "quiet_hours".into(),
        detail: detail.into(),
        updated_at: t0(),
    });
    let mut ui = ui_with(vec![s.clone()], t0());
    let text = screen(&mut ui, 120, 40);
    assert!(text.contains("next send in 1h35m: quiet hours"), "{text}");

    // A wait that has passed, or the ordinary pace between two sends, says nothing.
    if let Some(w) = s.channels[0].wait.as_mut() {
        w.next_at = t0() + Duration::seconds(1);
    }
    let mut ui = ui_with(vec![s], t0());
    let text = screen(&mut ui, 120, 40);
    assert!(!text.contains("next send in"), "{text}");
}
