//! `crm tui` for real, in a private tmux server: start it over a sandbox's backends, read the
//! screen, type keys.

use super::{BIN, Crm};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A private tmux server (its own socket), killed when the test ends.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux")
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "crm"]).stdout).into_owned()
    }

    /// Waits until the pane shows `text`; panics with the screen after 15 s.
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_within(text, Duration::from_secs(15)).unwrap_or_else(|screen| {
            panic!("the screen never showed {text:?}:\n{screen}");
        })
    }

    /// Polls the pane until it shows `text` (the screen), or gives up after `limit` (the last
    /// screen as the error).
    pub fn wait_within(&self, text: &str, limit: Duration) -> Result<String, String> {
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
    pub fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "crm", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn keys(&self, keys: &str) {
        let out = self.run(&["send-keys", "-t", "crm", keys]);
        assert!(out.status.success(), "send-keys {keys}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether tmux is here to run the dashboard's end-to-end tests; without it a notice (they are
/// skipped), except under CI (`CI` set), where a missing tmux fails the test.
pub fn tmux_ready() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "tmux is not installed: CI must run the dashboard's end-to-end test");
    println!("SKIPPED: tmux is not installed (apt-get install tmux) - the dashboard's end-to-end test did not run");
    false
}

/// `crm tui` over `crm`'s store and bus in a private tmux server, `width`×`height`, in a clean
/// environment (the sandbox's HOME and XDG dirs: the log file lands there); after it exits the
/// pane shows `EXIT=<code>`. `None` without tmux (see [`tmux_ready`]).
pub fn start_tui(crm: &Crm, width: u16, height: u16) -> Option<Tmux> {
    if !tmux_ready() {
        return None;
    }
    static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmux = Tmux { socket: format!("crm-tui-test-{}-{n}", std::process::id()) };
    let dir = crm.dir().display().to_string();
    // The sandbox's own variables (CRM_BUS), quoted for the shell.
    let env: String = crm.env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let shell = format!(
        "cd '{dir}' && env -i PATH=/usr/bin:/bin TERM=xterm-256color NO_COLOR=1 HOME='{dir}/home' \
         XDG_DATA_HOME='{dir}/xdg/data' XDG_CONFIG_HOME='{dir}/xdg/config' {env}'{BIN}' --store '{store}' tui; \
         echo EXIT=$?; sleep 60",
        store = crm.store().display()
    );
    let (w, h) = (width.to_string(), height.to_string());
    let out = tmux.run(&["new-session", "-d", "-s", "crm", "-x", &w, "-y", &h, &shell]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    Some(tmux)
}
