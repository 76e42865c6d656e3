//! Versioned schema migrations, tracked in `PRAGMA user_version`. Each step runs once, in a
//! write transaction, so two processes opening a new file at the same time cannot both apply it.

use rusqlite::Connection;

pub enum MigrateError {
    TooNew(i64),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

/// Schema steps; index + 1 is the version each one produces. Append, never edit.
const STEPS: &[&str] = &[
    // 1: leads, their identity keys (every normalized email and phone; see keys.rs), and search groups
    //    (see store/sqlite/search.rs).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     INSERT INTO meta (key, value) VALUES ('leads_version', 0);
     CREATE TABLE leads (
         id            INTEGER PRIMARY KEY AUTOINCREMENT,
         name          TEXT    NOT NULL DEFAULT '',
         emails        TEXT    NOT NULL DEFAULT '[]',
         phones        TEXT    NOT NULL DEFAULT '[]',
         total_spend   REAL    NOT NULL DEFAULT 0,
         visits        INTEGER NOT NULL DEFAULT 0,
         last_order_at INTEGER,
         tags          TEXT    NOT NULL DEFAULT '[]',
         metadata      TEXT    NOT NULL DEFAULT '{}',
         created_at    INTEGER NOT NULL,
         updated_at    INTEGER NOT NULL
     );
     CREATE TABLE lead_keys (
         h       INTEGER PRIMARY KEY,
         lead_id INTEGER NOT NULL
     );
     CREATE TABLE lead_key_overflow (
         key     TEXT PRIMARY KEY,
         lead_id INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE lead_search (
         grp  INTEGER PRIMARY KEY,
         body BLOB NOT NULL
     );",
    // 2: segments (see store/sqlite/segments.rs). `name_key` is the name lower-cased by Rust
    //    (Unicode, like rules; COLLATE NOCASE folds ASCII only) and keeps names unique ignoring
    //    case. The index is a narrow copy of the numeric lead columns in id order: rules on
    //    spend, visits and dates are counted from it (a sixth of the table's size) instead of
    //    from the table, and because it is ordered by id an import only ever appends to it.
    "CREATE TABLE segments (
         id            INTEGER PRIMARY KEY,
         name          TEXT    NOT NULL,
         name_key      TEXT    NOT NULL UNIQUE,
         owner_user_id TEXT,
         rule_ast      TEXT    NOT NULL,
         created_at    INTEGER NOT NULL,
         updated_at    INTEGER NOT NULL
     );
     CREATE INDEX leads_numbers ON leads (id, total_spend, visits, last_order_at);",
];

pub const CURRENT_VERSION: i64 = STEPS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT_VERSION {
        return Err(MigrateError::TooNew(version));
    }
    if version == CURRENT_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, step) in STEPS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(step)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
    }
    tx.commit()?;
    Ok(())
}
