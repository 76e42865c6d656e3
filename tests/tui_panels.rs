//! The dashboard's WhatsApp panel (connection states in words, the QR code while pairing) and
//! the screens added beside the first ones (uncertain messages, a lead's replies), at 80×24 and
//! 120×40 over hand-built snapshots.
#![cfg(feature = "tui")]

mod tui_fixtures;

use chrono::Duration;
use crm::engine::app::snapshot::Snapshot;
use crm::engine::channel::registry::AccountInfo;
use crm::engine::channel::whatsapp::ChannelState;
use tui_fixtures::*;

#[cfg(feature = "whatsapp")]
/// A payload as long as WhatsApp's (a ref and three base64 keys), about 60 modules wide.
const PAYLOAD: &str = "2@X3Xm5gBqQ0HcK8Yk1nZr7sVtW2aP9eLdFjU4oMiNyRbGhCxSvTqEwAzKpL6uJ3mD8fH1gY5rE0cB7nV2kQ9xZ4sW6tA,\
    dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleXRlc3RrZXk=,aWRlbnRpdHlpZGVudGl0eWlkZW50aXR5aWRlbnRpdHk=,\
    YWR2U2VjcmV0YWR2U2VjcmV0YWR2U2VjcmV0YWR2U2VjcmV0";

fn whatsapp(name: &str, state: Option<ChannelState>, ago: i64) -> AccountInfo {
    AccountInfo {
        name: name.into(),
        kind: "whatsapp",
        state: "ready".into(),
        max_length: Some(4096),
        connection: state.map(|s| serde_json::to_value(s).expect("a state as JSON")),
        connection_updated_at: Some(t0() - Duration::seconds(ago)),
        wait: None,
    }
}

fn with_accounts(accounts: Vec<AccountInfo>) -> Snapshot {
    let mut s = snapshot(t0(), 400);
    s.channels.extend(accounts);
    s
}

#[cfg(feature = "whatsapp")]
fn pairing() -> Snapshot {
    with_accounts(vec![whatsapp("wa-main", Some(ChannelState::PairingNeeded { qr: Some(PAYLOAD.into()) }), 3)])
}

#[cfg(feature = "whatsapp")]
#[test]
fn dashboard_with_a_qr_code() {
    let mut ui = ui_with(vec![pairing()], t0());
    let wide = screen(&mut ui, 120, 40);
    assert!(wide.contains("wa-main: not linked"), "{wide}");
    assert!(wide.contains("scan the code: WhatsApp → Settings → Linked devices (3s ago)"), "{wide}");
    assert!(wide.contains('▀') && wide.contains('▄'), "the code is drawn:\n{wide}");
    // The campaign is still watched beside it.
    assert!(wide.contains("#1 spring-sale  RUNNING"), "{wide}");
    insta::assert_snapshot!("dashboard_qr_120x40", wide);

    // Too small for the code: how big it must be, and the pairing-code alternative.
    let narrow = screen(&mut ui, 80, 24);
    assert!(!narrow.contains('▀'), "{narrow}");
    assert!(narrow.contains("QR code needs"), "{narrow}");
    assert!(narrow.contains("--phone"), "{narrow}");
    assert!(narrow.contains("#1 spring-sale  RUNNING"), "{narrow}");
    insta::assert_snapshot!("dashboard_qr_80x24", narrow);
}

/// The QR code read back from the screen (the encoder is the `whatsapp` feature's).
#[cfg(feature = "whatsapp")]
mod qr {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    fn draw(ui: &mut crm::tui::ui::Ui, width: u16, height: u16) -> Buffer {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
        terminal.draw(|f| ui.draw(f)).expect("draw");
        terminal.backend().buffer().clone()
    }

    /// Reads the code back from the screen: the black-on-white cells, two modules per cell.
    fn modules_on_screen(buffer: &Buffer) -> Vec<Vec<bool>> {
        use ratatui::style::Color;
        let area = buffer.area;
        let qr = |x, y| buffer[(x, y)].bg == Color::White;
        let cells: Vec<(u16, u16)> =
            (0..area.height).flat_map(|y| (0..area.width).map(move |x| (x, y))).filter(|&(x, y)| qr(x, y)).collect();
        assert!(!cells.is_empty(), "no QR code on screen");
        let (x0, y0) = (cells.iter().map(|c| c.0).min().unwrap_or(0), cells.iter().map(|c| c.1).min().unwrap_or(0));
        let (x1, y1) = (cells.iter().map(|c| c.0).max().unwrap_or(0), cells.iter().map(|c| c.1).max().unwrap_or(0));
        assert_eq!(cells.len(), usize::from((x1 - x0 + 1) * (y1 - y0 + 1)), "the code is one rectangle");
        let mut grid = Vec::new();
        for y in y0..=y1 {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for x in x0..=x1 {
                let s = buffer[(x, y)].symbol();
                top.push(matches!(s, "█" | "▀"));
                bottom.push(matches!(s, "█" | "▄"));
            }
            grid.push(top);
            grid.push(bottom);
        }
        grid
    }

    /// Decodes a module grid as a camera would see it: scaled up to pixels, light around.
    fn decode(grid: &[Vec<bool>]) -> String {
        const SCALE: usize = 6;
        const MARGIN: usize = 4 * SCALE;
        let size = grid.len() * SCALE + 2 * MARGIN;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| {
            let (gx, gy) = (x.wrapping_sub(MARGIN) / SCALE, y.wrapping_sub(MARGIN) / SCALE);
            let dark = grid.get(gy).and_then(|row| row.get(gx)).copied().unwrap_or(false);
            if dark { 0 } else { 255 }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one code found");
        grids[0].decode().expect("the code decodes").1
    }

    #[test]
    fn the_qr_panel_decodes_back_to_the_payload_and_is_encoded_once_per_payload() {
        let mut ui = ui_with(vec![pairing()], t0());
        let buffer = draw(&mut ui, 120, 40);
        assert_eq!(decode(&modules_on_screen(&buffer)), PAYLOAD);
        // Black on white even without colours: a phone needs dark modules on light.
        assert!(buffer.content().iter().any(|c| c.fg == ratatui::style::Color::Black));
        // Polls bringing the same code back do not encode it again; a new code does.
        for i in 1..4 {
            let mut s = pairing();
            s.taken_at = t0() + Duration::seconds(i);
            ui.apply(crm::tui::queue::Reply::Snapshot { at: s.taken_at, result: Ok(s) });
            draw(&mut ui, 120, 40);
        }
        assert_eq!(ui.dashboard.qr.encodings(), 1);
        let next = with_accounts(vec![whatsapp(
            "wa-main",
            Some(ChannelState::PairingNeeded { qr: Some(format!("{PAYLOAD}2")) }),
            0,
        )]);
        ui.apply(crm::tui::queue::Reply::Snapshot { at: t0(), result: Ok(next) });
        let buffer = draw(&mut ui, 120, 40);
        assert_eq!(ui.dashboard.qr.encodings(), 2);
        assert_eq!(decode(&modules_on_screen(&buffer)), format!("{PAYLOAD}2"));
    }
}

#[test]
fn the_whatsapp_panel_says_each_state_in_plain_words() {
    let until = t0() + Duration::hours(2);
    let cases = [
        (
            Some(ChannelState::Connected { phone: Some("+447911123456".into()) }),
            "wa: connected as +447911123456",
            "(1m00s ago)",
        ),
        (
            Some(ChannelState::TemporarilyBanned { until }),
            "wa: ⚠ banned until May 01 14:00 UTC",
            "banned this number for",
        ),
        (
            Some(ChannelState::LoggedOut { reason: "the phone unlinked this device".into() }),
            "wa: ⚠ logged out: crm whatsapp login",
            "the phone unlinked this device",
        ),
        (Some(ChannelState::PairingNeeded { qr: None }), "wa: not linked", "run crm whatsapp login"),
        (None, "wa: no state yet", "start crm worker all"),
    ];
    for (state, words, hint) in cases {
        let mut account = whatsapp("wa", state, 60);
        if account.connection.is_none() {
            account.connection_updated_at = None;
        }
        let mut ui = ui_with(vec![with_accounts(vec![account])], t0());
        let text = screen(&mut ui, 120, 40);
        assert!(text.contains(words), "{words}:\n{text}");
        assert!(text.contains(hint), "{hint}:\n{text}");
        assert!(!text.contains("not configured"), "{text}");
    }
    let mut s = snapshot(t0(), 400);
    s.channels.retain(|a| a.kind != "whatsapp");
    assert!(screen(&mut ui_with(vec![s], t0()), 80, 24).contains("WhatsApp: not configured"));
}

#[test]
fn campaigns_show_a_campaigns_uncertain_messages_on_u() {
    use crm::engine::campaign::SendStatus;
    use crm::tui::queue::{Reply, Request};
    let mut ui = running();
    press(&mut ui, "2");
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: None }]);
    ui.apply(Reply::CampaignLogs { id: 1, status: None, result: Ok(messages()) });
    press(&mut ui, "U");
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: Some(SendStatus::Uncertain) }]);
    // A late answer to the unfiltered request is not shown as the uncertain ones.
    ui.apply(Reply::CampaignLogs { id: 1, status: None, result: Ok(messages()) });
    assert!(!screen(&mut ui, 80, 24).contains("lead 17"));
    let uncertain = vec![
        event(21, SendStatus::Uncertain, 4, Some("timed out after the request left")),
        event(22, SendStatus::Uncertain, 9, None),
    ];
    ui.apply(Reply::CampaignLogs { id: 1, status: Some(SendStatus::Uncertain), result: Ok(uncertain) });
    let text = screen(&mut ui, 80, 24);
    for needle in ["Uncertain messages (U: all", "lead 21", "uncertain", "timed out after the request"] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    assert!(!text.contains("lead 17"), "{text}");
    insta::assert_snapshot!("campaigns_uncertain_80x24", text);
    insta::assert_snapshot!("campaigns_uncertain_120x40", screen(&mut ui, 120, 40));
    // Each poll refreshes the filtered list; U again shows every message.
    ui.apply(Reply::Snapshot { at: t0(), result: Ok(snapshot(t0(), 410)) });
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: Some(SendStatus::Uncertain) }]);
    press(&mut ui, "U");
    assert_eq!(ui.take_requests(), vec![Request::CampaignLogs { id: 1, status: None }]);
    press(&mut ui, "?");
    assert!(screen(&mut ui, 120, 40).contains("uncertain messages only"));
}

#[test]
fn a_lead_shows_its_replies_beside_its_messages() {
    use crm::engine::campaign::SendStatus;
    use crm::engine::store::campaigns::Reply as LeadReply;
    use crm::tui::queue::{LeadHistory, Reply, Request};
    use crossterm::event::KeyCode;
    let mut ui = running();
    press(&mut ui, "3");
    let requests = ui.take_requests();
    let Some(Request::Leads { seq, .. }) = requests.first() else { panic!("{requests:?}") };
    ui.apply(Reply::Leads { seq: *seq, offset: 0, result: Ok((vec![lead(17, "Ada")], Some(1))) });
    ui.on_key(key(KeyCode::Enter));
    assert_eq!(ui.take_requests(), vec![Request::LeadHistory { id: 17 }]);
    let reply = |body: &str, mins| LeadReply {
        lead_id: 17,
        channel: "twilio".into(),
        body: body.into(),
        received_at: t0() - Duration::minutes(mins),
        provider_message_id: None,
    };
    ui.apply(Reply::LeadHistory {
        id: 17,
        result: Ok(LeadHistory {
            logs: vec![event(17, SendStatus::Delivered, 600, None)],
            // A control sequence in a reply is shown as text, never sent to the terminal.
            replies: vec![reply("Yes please, \u{1b}[2Jcall me", 2), reply("What is the offer?", 9)],
        }),
    });
    let text = screen(&mut ui, 80, 24);
    for needle in ["Replies", "via twilio  Yes please,  [2Jcall me", "What is the offer?", "delivered"] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    assert!(!text.contains('\u{1b}'));
    insta::assert_snapshot!("lead_detail_with_replies_80x24", text);
    insta::assert_snapshot!("lead_detail_with_replies_120x40", screen(&mut ui, 120, 40));
}

#[test]
fn the_event_tail_shows_opt_outs_dead_letters_and_channel_states_among_messages() {
    use crm::engine::app::snapshot::RecentEvent;
    use crm::engine::campaign::{DeadLetterRecord, SendJob};
    use crm::engine::store::campaigns::{ChannelStateRecord, OptOutRecord};
    let mut s = snapshot(t0(), 400);
    let job = SendJob {
        send_id: "1:30".into(),
        campaign_id: 1,
        lead_id: 30,
        to: "+447700900123".into(),
        message: "Hi".into(),
        attempt: 5,
        timezone: None,
    };
    s.events.insert(
        0,
        RecentEvent::ChannelState(ChannelStateRecord {
            account: "wa-main".into(),
            state: serde_json::to_value(ChannelState::Connected { phone: Some("+447911123456".into()) }).expect("JSON"),
            updated_at: t0(),
        }),
    );
    s.events.insert(
        2,
        RecentEvent::OptOut(OptOutRecord {
            lead_id: 12,
            at: t0() - Duration::milliseconds(1500),
            source: Some("reply via twilio".into()),
        }),
    );
    s.events.push(RecentEvent::DeadLetter(DeadLetterRecord {
        id: 3,
        send_id: "1:30".into(),
        campaign_id: 1,
        reason: "retries exhausted".into(),
        payload: job,
        created_at: t0() - Duration::seconds(4),
        replayed_at: None,
    }));
    let mut ui = ui_with(vec![s], t0());
    let text = screen(&mut ui, 120, 40);
    for needle in [
        "12:00:00 channel wa-main: connected as +447911123456",
        "11:59:58 lead 12 opted out (reply via twilio)",
        "11:59:56 campaign #1 lead 30 dead letter  retries exhausted",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
    insta::assert_snapshot!("dashboard_event_kinds_120x40", text);
}
