//! `crm tui` for real: the binary in a tmux pane (80×24) over a sandbox store with a running
//! campaign. The screen shows the campaign, its counters move while `crm worker all` sends
//! through `crm sim`, `?` opens the help, `q` exits 0. Skipped, with a notice, where tmux is
//! not installed — except under CI (`CI` set), where a missing tmux fails the test.
#![cfg(feature = "tui")]

mod common;

use common::processes::{start_sim_with, start_worker};
use common::{BIN, Crm};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private tmux server (its own socket), killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "crm"]).stdout).into_owned()
    }

    /// Waits until the pane shows `text`; panics with the screen after 15 s.
    fn wait_for(&self, text: &str) -> String {
        self.wait_within(text, Duration::from_secs(15)).unwrap_or_else(|screen| {
            panic!("the screen never showed {text:?}:\n{screen}");
        })
    }

    /// Polls the pane until it shows `text` (the screen), or gives up after `limit` (the last
    /// screen as the error).
    fn wait_within(&self, text: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                return Err(screen);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types text literally (no key names).
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "crm", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn keys(&self, keys: &str) {
        let out = self.run(&["send-keys", "-t", "crm", keys]);
        assert!(out.status.success(), "send-keys {keys}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn tui_without_a_terminal_is_a_usage_error() {
    let crm = Crm::new();
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    let out = crm.cmd().arg("tui").output().expect("run crm tui");
    assert_eq!(out.status.code(), Some(2), "{}", common::describe(&out));
    assert!(common::stderr(&out).contains("needs a terminal"), "{}", common::describe(&out));
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// A sandbox with two leads, segment `all` and campaign `spring-sale` running over it, and
/// `crm tui` started on it in a private tmux server; `None` (with a notice) without tmux.
fn start() -> Option<(Crm, Tmux)> {
    if !tmux_available() {
        assert!(std::env::var_os("CI").is_none(), "tmux is not installed: CI must run the dashboard's end-to-end test");
        println!("SKIPPED: tmux is not installed (apt-get install tmux) - the dashboard's end-to-end test did not run");
        return None;
    }
    let crm = Crm::new();
    let csv = crm
        .write("leads.csv", "name,email,phone\nAda,ada@example.com,+447911123456\nBo,bo@example.com,+447911123457\n");
    crm.import(&csv, &[], 0);
    crm.json(&["segments", "create", "all", "--rule", "visits >= 0"], 0);
    crm.json(&["campaigns", "create", "spring-sale", "--segment", "all", "--template", "Hi {{name}}!"], 0);
    crm.json(&["campaigns", "run", "spring-sale"], 0);

    static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmux = Tmux { socket: format!("crm-tui-test-{}-{n}", std::process::id()) };
    let dir = crm.dir().display().to_string();
    // A clean environment: the sandbox's HOME and XDG dirs (the log file lands there).
    let shell = format!(
        "cd '{dir}' && env -i PATH=/usr/bin:/bin TERM=xterm-256color NO_COLOR=1 HOME='{dir}/home' \
         XDG_DATA_HOME='{dir}/xdg/data' XDG_CONFIG_HOME='{dir}/xdg/config' '{BIN}' --store '{store}' tui; \
         echo EXIT=$?; sleep 60",
        store = crm.store().display()
    );
    let out = tmux.run(&["new-session", "-d", "-s", "crm", "-x", "80", "-y", "24", &shell]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
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
