//! Where a WhatsApp account's session lives, and the lock that lets one process at a time use
//! it. The session (wa-rs's keys and device identity, its own SQLite file) sits in the data
//! directory apart from the CRM store: `<data dir>/whatsapp/NAME/` (`session_dir = "…"` in the
//! account's section overrides it). `session.lock` names the pid of the process using the
//! session; a second process is told which one holds it. A lock left by a process that no
//! longer runs is taken over. `account.json` ([`SessionInfo`]) keeps the paired number and
//! when the session last connected, written by the process holding the lock and read by
//! `crm whatsapp status` from any process; a logout wipes it with the session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The session database's file name inside the session directory.
pub const SESSION_DB: &str = "session.db";
const LOCK_FILE: &str = "session.lock";

/// The default session directory of `account`.
pub fn default_session_dir(account: &str) -> PathBuf {
    let base = directories::ProjectDirs::from("", "", "crm")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("whatsapp").join(account)
}

/// Whether a session was ever stored in `dir` (a login happened and was not logged out).
pub fn has_session(dir: &Path) -> bool {
    dir.join(SESSION_DB).exists()
}

/// Removes the session's files (the lock stays with its holder).
pub fn wipe(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let path = entry.path();
        if path.is_dir() { std::fs::remove_dir_all(&path)? } else { std::fs::remove_file(&path)? }
    }
    Ok(())
}

const INFO_FILE: &str = "account.json";

/// What the session's holder learned about the account: the paired number (WhatsApp says it
/// at pairing and on some connects) and when it last connected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub phone: Option<String>,
    pub last_connected: Option<DateTime<Utc>>,
}

/// The session's info; empty when none was written (or it cannot be read).
pub fn read_info(dir: &Path) -> SessionInfo {
    std::fs::read(dir.join(INFO_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Records a connection at `at`, keeping the known number when this one names none. Written
/// to a temporary file and renamed, so a reader never sees half of it.
pub fn note_connected(dir: &Path, phone: Option<&str>, at: DateTime<Utc>) -> std::io::Result<SessionInfo> {
    let mut info = read_info(dir);
    if let Some(phone) = phone {
        info.phone = Some(phone.to_string());
    }
    info.last_connected = Some(at);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{INFO_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&info).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, dir.join(INFO_FILE))?;
    Ok(info)
}

/// The session lock, held until dropped.
#[derive(Debug)]
pub struct SessionLock {
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the WhatsApp session in {dir} is in use by process {pid}; stop it first (one process per session)")]
    Held { dir: String, pid: u32 },
    #[error("cannot use the session directory {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") { Path::new("/proc").join(pid.to_string()).exists() } else { true }
}

impl SessionLock {
    pub fn acquire(dir: &Path) -> Result<SessionLock, LockError> {
        let io = |source| LockError::Io { dir: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    writeln!(file, "{}", std::process::id()).map_err(io)?;
                    return Ok(SessionLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if alive(pid) => {
                            return Err(LockError::Held { dir: dir.display().to_string(), pid });
                        }
                        // A stale lock (its process is gone) or a torn one: take it over.
                        _ => std::fs::remove_file(&path).map_err(io)?,
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other("the lock file keeps reappearing")))
    }

    /// The pid holding the lock of `dir`, if a live process does.
    pub fn holder(dir: &Path) -> Option<u32> {
        let pid = std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_second_is_told_who() {
        let dir = tempfile::tempdir().expect("tempdir");
        let session = dir.path().join("wa");
        let held = SessionLock::acquire(&session).expect("first");
        match SessionLock::acquire(&session) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected held, got {other:?}"),
        }
        assert_eq!(SessionLock::holder(&session), Some(std::process::id()));
        drop(held);
        assert_eq!(SessionLock::holder(&session), None);
        let again = SessionLock::acquire(&session).expect("free again");
        drop(again);
    }

    #[test]
    fn the_info_keeps_the_number_across_connects_and_a_wipe_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_info(dir.path()), SessionInfo::default());
        let t1 = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z").expect("time").to_utc();
        let t2 = DateTime::parse_from_rfc3339("2026-03-02T11:00:00Z").expect("time").to_utc();
        note_connected(dir.path(), Some("+447911000001"), t1).expect("note");
        let info = note_connected(dir.path(), None, t2).expect("note");
        assert_eq!(info, SessionInfo { phone: Some("+447911000001".into()), last_connected: Some(t2) });
        assert_eq!(read_info(dir.path()), info);
        wipe(dir.path()).expect("wipe");
        assert_eq!(read_info(dir.path()), SessionInfo::default());
    }

    #[test]
    fn a_stale_lock_is_taken_over_and_wipe_keeps_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LOCK_FILE), "4294967290\n").expect("write");
        let lock = SessionLock::acquire(dir.path()).expect("stale lock taken over");
        std::fs::write(dir.path().join(SESSION_DB), "x").expect("write");
        assert!(has_session(dir.path()));
        wipe(dir.path()).expect("wipe");
        assert!(!has_session(dir.path()));
        assert_eq!(SessionLock::holder(dir.path()), Some(std::process::id()), "the lock stays with its holder");
        drop(lock);
    }
}
