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
    //    case. The index is a narrow copy of spend, visits and last order in id order: rules on
    //    those are counted from it (a sixth of the table's size) instead of from the table, and
    //    because it is ordered by id an import only appends to it (~0.3-0.6 s per million rows).
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
    // 3: campaigns and their pipeline (see store/sqlite/campaigns.rs). Times in Unix ms.
    //    `communication_logs.status` is the lower-case SendStatus; `lease_until` is set while a
    //    sender holds the log in `sending`. Opt-outs are a table of their own rather than a
    //    column on leads, so opting out never rewrites (or races) a lead row.
    "CREATE TABLE campaigns (
         id               INTEGER PRIMARY KEY,
         name             TEXT    NOT NULL,
         name_key         TEXT    NOT NULL UNIQUE,
         segment_id       INTEGER NOT NULL,
         message_template TEXT    NOT NULL,
         channel          TEXT    NOT NULL,
         created_by       TEXT,
         status           TEXT    NOT NULL,
         audience         INTEGER NOT NULL DEFAULT 0,
         created_at       INTEGER NOT NULL,
         updated_at       INTEGER NOT NULL
     );
     CREATE INDEX campaigns_segment ON campaigns (segment_id);
     CREATE TABLE communication_logs (
         send_id             TEXT    PRIMARY KEY,
         campaign_id         INTEGER NOT NULL,
         lead_id             INTEGER NOT NULL,
         status              TEXT    NOT NULL,
         attempt             INTEGER NOT NULL DEFAULT 0,
         channel             TEXT    NOT NULL,
         lease_until         INTEGER,
         provider_message_id TEXT,
         error_message       TEXT,
         created_at          INTEGER NOT NULL,
         updated_at          INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX communication_logs_status ON communication_logs (campaign_id, status);
     CREATE TABLE dead_letters (
         id          INTEGER PRIMARY KEY,
         send_id     TEXT    NOT NULL,
         campaign_id INTEGER NOT NULL,
         reason      TEXT    NOT NULL,
         payload     TEXT    NOT NULL,
         created_at  INTEGER NOT NULL,
         replayed_at INTEGER
     );
     CREATE INDEX dead_letters_campaign ON dead_letters (campaign_id, replayed_at);
     CREATE TABLE worker_heartbeats (
         id        TEXT PRIMARY KEY,
         kind      TEXT    NOT NULL,
         pid       INTEGER NOT NULL,
         started   INTEGER NOT NULL,
         last_seen INTEGER NOT NULL,
         processed INTEGER NOT NULL,
         rate      REAL    NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE lead_opt_outs (
         lead_id INTEGER PRIMARY KEY,
         at      INTEGER NOT NULL
     );",
    // 4: Twilio and inbound messages. Status callbacks name a log by the vendor's message id
    //    (an index for it); an opt-out records where it came from (`source`: NULL for opt-outs
    //    recorded before there was one); replies a lead sent back are its history, unique per
    //    vendor message id so a vendor's retried webhook is stored once.
    "CREATE INDEX communication_logs_provider ON communication_logs (provider_message_id);
     ALTER TABLE lead_opt_outs ADD COLUMN source TEXT;
     CREATE TABLE lead_replies (
         id                  INTEGER PRIMARY KEY,
         lead_id             INTEGER NOT NULL,
         channel             TEXT    NOT NULL,
         body                TEXT    NOT NULL,
         received_at         INTEGER NOT NULL,
         provider_message_id TEXT    UNIQUE
     );
     CREATE INDEX lead_replies_lead ON lead_replies (lead_id, received_at);",
    // 5: channel accounts' connection states (a WhatsApp session: pairing, connected, banned…).
    "CREATE TABLE channel_states (
         account    TEXT PRIMARY KEY,
         state      TEXT    NOT NULL,
         updated_at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 6: why each channel account's next send waits (rate limit, quiet hours, daily cap, breaker),
    // so `campaigns status` in any process can say when the next send happens.
    "CREATE TABLE account_waits (
         account    TEXT PRIMARY KEY,
         next_at    INTEGER NOT NULL,
         reason     TEXT    NOT NULL,
         detail     TEXT    NOT NULL,
         updated_at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 7: the newest opt-outs first, for the dashboard's event tail (a bounded query each poll).
    "CREATE INDEX lead_opt_outs_at ON lead_opt_outs (at);",
    // 8: leads newest first (the API's and dashboard's default order) without sorting the
    //    table: the index is (created_at, rowid), the listing's order. Imports stamp rows with
    //    the time, so they append to its end. And the newest message changes of all campaigns
    //    (the dashboard's event tail, every second) without scanning every log.
    "CREATE INDEX leads_created ON leads (created_at);
     CREATE INDEX communication_logs_updated ON communication_logs (updated_at);",
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
