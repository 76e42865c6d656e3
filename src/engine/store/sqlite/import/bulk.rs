//! The first load of an empty store, with a rollback journal instead of the WAL.
//!
//! In WAL mode every page an import writes is written twice: once to the WAL (a frame header
//! and the page, two system calls), then read back and written into the database by a
//! checkpoint. On a machine where system calls are dear that was a fifth of a 1,000,000-row
//! import's wall time (2026-12-06: 182,689 `pwrite64` and 92,400 `pread64` against the 26,664
//! writes of `sqlite3 .import`). So an import into a store that holds no leads yet switches the
//! file to a rollback journal (`DELETE`) for its duration: new pages go straight into the file,
//! once, and only pages that existed before a segment began are copied to the journal first.
//! The import puts the file back in WAL mode when it finishes; one that stops early (an error,
//! a kill) leaves that to the next connection to open the file.
//!
//! Safety is SQLite's own: each segment is still one transaction, with `synchronous = FULL`
//! while the journal is a rollback one; a crash leaves a hot journal that the next connection
//! rolls back (the segments committed before stay), and that connection, like every
//! [`connect`](super::super::connect), puts the file back in WAL mode.
//!
//! Leaving WAL mode needs every other connection to the file closed, so it is tried once,
//! without waiting, on the store's own connection; when anything else has the file open the
//! import runs in WAL mode as before. A process that opens the file during the load puts it
//! back in WAL mode between two segments, and the import goes on in WAL mode (SQLite follows
//! the file's mode). Meanwhile readers in other processes see the committed segments as they
//! would in WAL mode; a commit waits for their reads to end (at most the busy timeout).

use super::super::BUSY_TIMEOUT;
use rusqlite::Connection;
use std::time::Duration;

/// On the store's own connection: switches an empty store to a rollback journal if nothing
/// else has it open; whether it did.
pub(in super::super) fn enter(conn: &Connection) -> bool {
    let empty = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM leads)", [], |r| r.get::<_, bool>(0));
    if !empty.unwrap_or(false) || conn.busy_timeout(Duration::ZERO).is_err() {
        return false;
    }
    let switched = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get::<_, String>(0));
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
    switched.is_ok_and(|mode| mode.eq_ignore_ascii_case("delete"))
}

/// Whether `conn`'s file is (still) in rollback-journal mode.
pub(super) fn in_rollback_mode(conn: &Connection) -> rusqlite::Result<bool> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    Ok(mode.eq_ignore_ascii_case("delete"))
}

/// Puts the file back in WAL mode. Not an error when it cannot (another connection reading
/// for longer than the busy timeout): the next connection to open the file does it.
pub(super) fn leave(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
        tracing::debug!(error = %e, "The store stays in rollback-journal mode until its next connection.");
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::lead::{ConflictPolicy, LeadDraft};
    use crate::engine::store::sqlite::{SqliteStore, connect};
    use crate::engine::store::{ImportPlan, LeadFilter, Store};

    fn lead(i: usize) -> LeadDraft {
        LeadDraft { emails: vec![format!("lead{i}@example.com")], ..LeadDraft::default() }
    }

    /// The file's journal mode as a connection that changes nothing sees it.
    fn mode(path: &std::path::Path) -> String {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap()
    }

    /// Imports leads `from..to` in one session; the file's journal mode while it ran.
    async fn import(store: &SqliteStore, path: &std::path::Path, from: usize, to: usize) -> String {
        let plan = ImportPlan { policy: ConflictPolicy::Merge, dry_run: false, expected_rows: None };
        let mut session = store.begin_import(plan).await.unwrap();
        let prepare = session.preparer();
        session.apply((from..to).map(|i| prepare(lead(i))).collect()).await.unwrap();
        let during = mode(path);
        session.finish().await.unwrap();
        during
    }

    #[tokio::test]
    async fn an_empty_store_is_loaded_with_a_rollback_journal_and_left_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(import(&store, &path, 0, 500).await, "delete");
        assert_eq!(mode(&path), "wal");
        assert!(!dir.path().join("crm.db-journal").exists(), "no journal left behind");
        // A store with leads is loaded in WAL mode: other processes keep reading beside it.
        assert_eq!(import(&store, &path, 500, 1000).await, "wal");
        assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 1000);
        assert_eq!(mode(&path), "wal");
    }

    #[tokio::test]
    async fn an_empty_store_another_connection_has_open_is_loaded_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let other = connect(&path).unwrap();
        let _: i64 = other.query_row("SELECT count(*) FROM leads", [], |r| r.get(0)).unwrap();
        // Tried without waiting: the busy timeout (10 s) would otherwise hold the import up.
        let started = std::time::Instant::now();
        assert_eq!(import(&store, &path, 0, 500).await, "wal");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        let count: i64 = other.query_row("SELECT count(*) FROM leads", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 500);
    }

    #[tokio::test]
    async fn a_dry_run_leaves_the_journal_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let plan = ImportPlan { policy: ConflictPolicy::Merge, dry_run: true, expected_rows: None };
        let mut session = store.begin_import(plan).await.unwrap();
        let prepare = session.preparer();
        session.apply(vec![prepare(lead(1))]).await.unwrap();
        assert_eq!(mode(&path), "wal");
        session.finish().await.unwrap();
        assert_eq!(store.count_leads(&LeadFilter::default()).await.unwrap(), 0);
    }
}
