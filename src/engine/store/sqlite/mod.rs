//! The embedded default store: one SQLite file, shared safely by several `crm` processes (the
//! CLI, worker daemons and the dashboard) through WAL mode, a busy timeout, and versioned
//! migrations applied under a write lock.
//!
//! rusqlite is synchronous; every call runs on tokio's blocking pool so async callers
//! (workers, the dashboard) never stall their runtime on disk I/O.

mod campaigns;
#[cfg(test)]
mod conformance_tests;
mod import;
mod keys;
mod leads;
mod listing;
mod migrations;
mod rows;
mod search;
mod segments;
mod write_turn;

/// The search text and term rules, shared with the MongoDB store so search means the same there.
#[cfg_attr(not(feature = "mongodb"), allow(unused_imports))]
pub(crate) use search::{normalize_term as normalize_search_term, text_of as search_text_of};
/// How imports describe conflicts and recognise rows that undid each other, shared likewise.
#[cfg_attr(not(feature = "mongodb"), allow(unused_imports))]
pub(crate) use {
    import::{content_hash, lead_list},
    rows::describe_owners,
};

pub(crate) use write_turn::{WriteTx, begin_write};

use crate::engine::error::{Error, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<tokio::sync::Mutex<Connection>>,
    /// Listings and counts of leads, reused while no lead changes (see `listing.rs`).
    listings: Arc<listing::Listings>,
    /// Read-only connections for the reads that must not queue behind `conn` (see [`Readers`]).
    readers: Arc<Readers>,
}

/// A few read-only connections to the file, opened when first needed.
///
/// `conn` serves one call at a time, so a read that queues behind it waits for whatever this
/// process does meanwhile: the dashboard's segment builder counted behind its own snapshot
/// poll. In WAL mode a reader sees the last committed state and never blocks a writer or
/// another reader, so the rule reads (counts, samples, scans) run beside `conn`'s work
/// instead. (Tried for the pipeline's log lookups too and not kept: a send worker is bound by
/// CPU, not by waiting for its connection, and the readers' own page caches cost more CPU.)
struct Readers {
    path: PathBuf,
    idle: std::sync::Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

/// How long a connection waits for another one's lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many reads run at once beside the connection's own work.
const READERS: usize = 2;

/// Opens a connection with the settings every connection to the file must share.
pub(crate) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = connect_keeping_journal(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL")?;
    Ok(conn)
}

/// [`connect`] without putting the file in WAL mode: for the bulk load of an empty store,
/// which runs with a rollback journal (see `import/bulk.rs`). Every other connection, in this
/// process or another, puts the file back in WAL mode when it opens.
pub(crate) fn connect_keeping_journal(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA page_size = 8192;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -32768;
         PRAGMA mmap_size = 1073741824;",
    )?;
    // Once per connection, not per query: segment previews run as an operator types.
    crate::engine::segment::sql::register_functions(&conn)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        let describe = format!("sqlite:{}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::store(&describe, format!("cannot create {}: {e}", dir.display())))?;
        }
        let open_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let mut conn = connect(&open_path).map_err(|e| Error::sqlite(&describe, &e))?;
            migrations::migrate(&mut conn).map_err(|e| match e {
                migrations::MigrateError::TooNew(v) => {
                    Error::Usage(format!("{describe} was written by a newer crm (schema version {v}); upgrade crm"))
                }
                migrations::MigrateError::Sqlite(e) => Error::sqlite(&describe, &e),
            })?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::store(path.display().to_string(), e))??;
        let readers = Arc::new(Readers {
            path: path.clone(),
            idle: std::sync::Mutex::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
        });
        Ok(SqliteStore { path, conn: Arc::new(tokio::sync::Mutex::new(conn)), listings: Arc::default(), readers })
    }

    /// Runs `f` with the store's connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        // Waiting for the connection is async: callers queue here, not as blocked threads on
        // the blocking pool (64 concurrent sends grew it to 120 threads, each with its own
        // allocator heap: 250 MB resident per worker).
        let mut guard = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut guard)).await.map_err(|e| Error::store(self.describe_path(), e))?
    }

    /// Runs `f` on one of the store's read-only connections (see [`Readers`]), on the blocking
    /// pool; `f` must only read.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let describe = self.describe_path();
        let permit = self.readers.permits.clone().acquire_owned().await.map_err(|e| Error::store(&describe, e))?;
        let readers = self.readers.clone();
        let run = move || {
            let _permit = permit;
            let idle = readers.idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match idle {
                Some(conn) => conn,
                None => connect(&readers.path)
                    .and_then(|conn| conn.execute_batch("PRAGMA query_only = ON").map(|()| conn))
                    .map_err(|e| Error::sqlite(&describe, &e))?,
            };
            let out = f(&mut conn);
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(conn);
            }
            out
        };
        tokio::task::spawn_blocking(run).await.map_err(|e| Error::store(self.describe_path(), e))?
    }

    fn describe_path(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}

/// Maps a rusqlite error to the engine's store error for this file.
pub(crate) fn db_err(path: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::sqlite(path, &e)
}
