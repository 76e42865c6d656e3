//! `crm whatsapp status|logout` through the real binary (no network: `login` needs WhatsApp's
//! servers and is tested in-process against a fake client): the session directory from the
//! config, one process per session, and exit codes.

mod common;

use common::{Crm, describe, stderr, stdout};
use serde_json::Value;

fn with_account(crm: &Crm) -> std::path::PathBuf {
    let session = crm.path("sessions/wa");
    let config = format!("[channels.wa]\nkind = \"whatsapp\"\nsession_dir = \"{}\"\n", session.display());
    crm.write("config.toml", config);
    session
}

fn run(crm: &Crm, args: &[&str]) -> std::process::Output {
    let config = crm.path("config.toml");
    crm.cmd().arg("--config").arg(config).args(args).output().expect("run crm")
}

#[test]
fn status_without_accounts_says_how_to_add_one() {
    let crm = Crm::new();
    crm.write("config.toml", "");
    let out = run(&crm, &["whatsapp", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr(&out).contains("[channels.whatsapp]"), "{}", describe(&out));
    let out = run(&crm, &["--json", "whatsapp", "status"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).expect("json"), serde_json::json!([]));
}

#[test]
fn logout_wipes_the_session_unless_another_process_holds_it() {
    let crm = Crm::new();
    let session = with_account(&crm);
    std::fs::create_dir_all(&session).expect("mkdir");
    std::fs::write(session.join("session.db"), "keys").expect("write");
    let out = run(&crm, &["--json", "whatsapp", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((status[0]["account"].as_str(), status[0]["has_session"].as_bool()), (Some("wa"), Some(true)));

    // This test process holds the lock, as a running worker would.
    let me = std::process::id().to_string();
    std::fs::write(session.join("session.lock"), format!("{me}\n")).expect("lock");
    let out = run(&crm, &["whatsapp", "logout"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(&format!("in use by process {me}")), "{}", describe(&out));
    assert!(session.join("session.db").exists(), "nothing wiped");

    std::fs::remove_file(session.join("session.lock")).expect("unlock");
    let out = run(&crm, &["whatsapp", "logout"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains("session files removed"), "{}", describe(&out));
    assert!(!session.join("session.db").exists());
    let out = run(&crm, &["whatsapp", "status"]);
    assert!(stdout(&out).contains("no session"), "{}", describe(&out));
    let out = run(&crm, &["whatsapp", "logout", "--account", "nope"]);
    assert_eq!(out.status.code(), Some(1), "an unknown account: {}", describe(&out));
}
