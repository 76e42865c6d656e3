//! `crm tui` for real: the binary in a tmux pane (80×24) over a sandbox store with a running
//! campaign. The screen shows the campaign, its counters move while `crm worker all` sends
//! through `crm sim`, `?` opens the help, `q` exits 0. Skipped, with a notice, where tmux is
//! not installed — except under CI (`CI` set), where a missing tmux fails the test.
#![cfg(feature = "tui")]

mod common;

use common::Crm;
use common::processes::{start_sim_with, start_worker};
use common::tmux::{Tmux, start_tui, tmux_ready};
use std::time::Duration;

#[test]
fn tui_without_a_terminal_is_a_usage_error() {
    let crm = Crm::new();
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let out = crm.cmd().arg("tui").output().expect("run crm tui");
    assert_eq!(out.status.code(), Some(2), "{}", common::describe(&out));
    assert!(common::stderr(&out).contains("needs a terminal"), "{}", common::describe(&out));
}

/// A sandbox with two leads, segment `all` and campaign `spring-sale` running over it, and
/// `crm tui` started on it at 80×24; `None` (with a notice) without tmux.
fn start() -> Option<(Crm, Tmux)> {
    if !tmux_ready() {
        return None;
    }
    let crm = Crm::new();
    let csv = crm
        .write("leads.csv", "name,email,phone\nAda,ada@example.com,+447911123456\nBo,bo@example.com,+447911123457\n");
    crm.import(&csv, &[], 0);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    crm.json(&["campaigns", "create", "spring-sale", "--segment", "all", "--template", "Hi {{name}}!"], 0);
    crm.json(&["campaigns", "run", "spring-sale"], 0);
    let tmux = start_tui(&crm, 80, 24)?;
    Some((crm, tmux))
}

#[test]
fn tui_in_tmux_shows_the_campaign_opens_help_and_quits_with_0() {
    let Some((crm, tmux)) = start() else { return };

    let screen = tmux.wait_for("#1 spring-sale  RUNNING");
    assert!(screen.contains("1 Dashboard"), "{screen}");
    assert!(screen.contains("WhatsApp: not configured"), "{screen}");
    tmux.wait_for("0/2");

    tmux.keys("2");
    tmux.wait_for("Campaigns (1)");
    tmux.keys("?");
    let help = tmux.wait_for("Keys (Esc closes)");
    assert!(help.contains("cancel (asks first)"), "{help}");
    tmux.keys("q");
    let end = tmux.wait_for("EXIT=");
    assert!(end.contains("EXIT=0"), "{end}");
    // The terminal was given back: the dashboard's frame is gone from the normal screen.
    assert!(!end.contains("Keys (Esc closes)"), "{end}");
    // Logs went to the file, not over the screen.
    assert!(crm.path("xdg/data/crm/tui.log").exists(), "no log file");
}

#[test]
fn tui_in_tmux_cancels_after_asking_and_saves_a_segment_through_the_app() {
    let Some((crm, tmux)) = start() else { return };
    tmux.wait_for("#1 spring-sale  RUNNING");
    tmux.keys("2");
    tmux.wait_for("Campaigns (1)");
    tmux.keys("c");
    tmux.wait_for("will never be sent");
    tmux.keys("y");
    tmux.wait_for("RUNNING → CANCELLED");
    let status = crm.json(&["campaigns", "status", "spring-sale"], 0);
    assert_eq!(status["status"], "CANCELLED", "{status}");

    tmux.keys("4");
    tmux.wait_for("Segments (1)");
    tmux.keys("n");
    tmux.type_text("visits >");
    tmux.wait_for("column 9");
    tmux.type_text(" 0 or name contains \"a\"");
    // Bo has neither visits nor an "a"; Ada has an "a".
    let preview = tmux.wait_for("audience 1");
    assert!(preview.contains("Ada ada@example.com"), "{preview}");
    tmux.keys("Enter");
    tmux.wait_for("Save as:");
    tmux.type_text("from the dashboard");
    tmux.keys("Enter");
    tmux.wait_for("Saved segment #2 from the dashboard.");
    tmux.wait_for("Segments (2)");
    let segments = crm.json(&["segments", "list"], 0);
    assert!(segments.to_string().contains("from the dashboard"), "{segments}");
    tmux.keys("q");
    assert!(tmux.wait_for("EXIT=").contains("EXIT=0"));
}

#[test]
fn tui_in_tmux_counters_move_while_the_worker_sends() {
    let Some((crm, tmux)) = start() else { return };
    tmux.wait_for("#1 spring-sale  RUNNING");
    // Selected on the campaigns screen, the campaign stays on the dashboard once completed.
    tmux.keys("2");
    tmux.wait_for("Campaigns (1)");
    tmux.keys("1");
    let before = tmux.wait_for(" 0/2");
    assert!(before.contains("sent 0"), "{before}");

    let (_sim, sim_url) = start_sim_with(&crm, 20, 40, &[]);
    let _worker = start_worker(
        &crm,
        &["all", "--sim-url", &sim_url, "--rate-per-minute", "0", "--webhook-listen", "127.0.0.1:0"],
        "worker.log",
    );
    let log = || std::fs::read_to_string(crm.path("worker.log")).unwrap_or_default();
    let after = tmux
        .wait_within(" 2/2", Duration::from_secs(60))
        .unwrap_or_else(|screen| panic!("the counters never reached 2/2:\n{screen}\nworker log:\n{}", log()));
    assert!(!after.contains("sent 0 "), "{after}");
    // Receipts arrive too: the simulator delivers after 20 ms.
    tmux.wait_within("delivered 2", Duration::from_secs(60))
        .unwrap_or_else(|screen| panic!("no delivery receipts shown:\n{screen}\nworker log:\n{}", log()));
    // The worker shows among the workers, not stale.
    let screen = tmux.screen();
    assert!(screen.contains("Workers (") && !screen.contains("stale)"), "{screen}");
    tmux.keys("q");
    assert!(tmux.wait_for("EXIT=").contains("EXIT=0"));
}
