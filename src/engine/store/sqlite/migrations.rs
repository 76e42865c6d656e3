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
    // 9: the logs clustered in the order they were written (a rowid table; campaigns write
    //    their logs in lead order) instead of by `send_id`, a hash. Every status change of a
    //    batch of messages then rewrites a few neighbouring pages instead of one random page per
    //    message: a 100,000-lead campaign wrote ~3 GB of WAL frames before (benches/campaign.sh
    //    22.6 s → 13.8 s). `send_id` stays unique and is found through its index.
    "CREATE TABLE communication_logs_v9 (
         id                  INTEGER PRIMARY KEY,
         send_id             TEXT    NOT NULL UNIQUE,
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
     );
     INSERT INTO communication_logs_v9 (send_id, campaign_id, lead_id, status, attempt, channel, lease_until,
             provider_message_id, error_message, created_at, updated_at)
         SELECT send_id, campaign_id, lead_id, status, attempt, channel, lease_until,
             provider_message_id, error_message, created_at, updated_at
         FROM communication_logs ORDER BY campaign_id, lead_id;
     DROP TABLE communication_logs;
     ALTER TABLE communication_logs_v9 RENAME TO communication_logs;
     CREATE INDEX communication_logs_status ON communication_logs (campaign_id, status);
     CREATE INDEX communication_logs_provider ON communication_logs (provider_message_id);
     CREATE INDEX communication_logs_updated ON communication_logs (updated_at);",
    // 10: how each campaign names its messages (`SendIds`): the salt of its sequential send ids;
    //     NULL for the campaigns from before, whose ids stay the xxh3 hash they were expanded with.
    "ALTER TABLE campaigns ADD COLUMN send_id_salt INTEGER;",
    // 11: vendor message ids found through an 8-byte key (`provider_key`, see
    //     `campaigns/logs.rs`) instead of the whole id: vendors' ids are random, so each send's
    //     outcome wrote a random page of the old text index, and a batch of 1,024 outcomes
    //     rewrote a large share of its pages (without that index at all, a 100,000-lead
    //     campaign wrote 0.80–0.85 GB instead of 1.08 GB). The key's index skips logs without a
    //     vendor id and is ~0.6× the size (98,101 sim ids: 219 pages against 346, 8 KB each).
    "ALTER TABLE communication_logs ADD COLUMN provider_key INTEGER;
     UPDATE communication_logs SET provider_key = crm_provider_key(provider_message_id)
         WHERE provider_message_id IS NOT NULL;
     DROP INDEX communication_logs_provider;
     CREATE INDEX communication_logs_provider_key ON communication_logs (provider_key)
         WHERE provider_key IS NOT NULL;",
    // 12: one index for a log's status and its change time, (campaign, status, updated_at),
    //     instead of (campaign, status) and (updated_at): every status change moved an entry
    //     in both, and most of a campaign's writes are status changes (claimed, sent,
    //     delivered, read). The newest changes are read per (campaign, status) through it and
    //     merged (`logs::list`); a lead's messages get an index of their own, written once per
    //     log, where they were a scan.
    "DROP INDEX communication_logs_updated;
     DROP INDEX communication_logs_status;
     CREATE INDEX communication_logs_status ON communication_logs (campaign_id, status, updated_at);
     CREATE INDEX communication_logs_lead ON communication_logs (lead_id);",
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
    register_step_functions(conn)?;
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

/// The functions steps call (step 11 keys the vendor ids it finds).
fn register_step_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "crm_provider_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|id| super::campaigns::provider_key(&id))),
    )
}

/// Brings a new database to schema `version` only (tests of what a later step does to rows
/// written before it).
#[cfg(test)]
pub(crate) fn at_version(conn: &Connection, version: usize) {
    register_step_functions(conn).expect("functions");
    for (i, step) in STEPS.iter().enumerate().take(version) {
        conn.execute_batch(step).expect("step");
        conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).expect("version");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Step 9 rebuilds `communication_logs`: every row, column and index survives, in
    /// (campaign, lead) order, and `send_id` stays unique.
    #[test]
    fn logs_keep_every_row_and_index_when_clustered() {
        let mut conn = Connection::open_in_memory().expect("open");
        at_version(&conn, 8);
        conn.execute_batch(
            "INSERT INTO communication_logs (send_id, campaign_id, lead_id, status, attempt, channel, lease_until,
                 provider_message_id, error_message, created_at, updated_at) VALUES
               ('ff', 2, 1, 'sent', 1, 'sim', NULL, 'sim-1', NULL, 10, 20),
               ('aa', 1, 7, 'sending', 2, 'twilio', 99, NULL, 'timeout', 11, 21),
               ('cc', 1, 3, 'pending', 0, 'sim', NULL, NULL, NULL, 12, 22);",
        )
        .expect("logs");
        let before: Vec<String> = dump(&conn);
        migrate(&mut conn).ok().expect("migrate");
        assert_eq!(dump(&conn), before);
        let order: Vec<String> = conn
            .prepare("SELECT send_id FROM communication_logs ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(order, ["cc", "aa", "ff"], "clustered by campaign, then lead");
        let dup = conn.execute(
            "INSERT INTO communication_logs (send_id, campaign_id, lead_id, status, channel, created_at, updated_at)
             VALUES ('aa', 3, 3, 'pending', 'sim', 1, 1)",
            [],
        );
        assert!(dup.is_err(), "send_id is still unique");
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'communication_logs' ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for wanted in ["communication_logs_lead", "communication_logs_provider_key", "communication_logs_status"] {
            assert!(indexes.iter().any(|i| i == wanted), "{wanted} in {indexes:?}");
        }
    }

    /// Step 11 keys the vendor ids logs already have, so a receipt for a message sent before
    /// the upgrade still finds its log, through the new index.
    #[test]
    fn vendor_ids_from_before_the_key_are_keyed() {
        let mut conn = Connection::open_in_memory().expect("open");
        at_version(&conn, 10);
        conn.execute_batch(
            "INSERT INTO communication_logs (send_id, campaign_id, lead_id, status, channel, provider_message_id,
                 created_at, updated_at) VALUES
               ('a1', 1, 1, 'sent', 'twilio', 'SM0123', 1, 1),
               ('a2', 1, 2, 'pending', 'twilio', NULL, 1, 1);",
        )
        .expect("logs");
        migrate(&mut conn).ok().expect("migrate");
        let keys: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT send_id, provider_key FROM communication_logs ORDER BY send_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let key = crate::engine::store::sqlite::campaigns::provider_key("SM0123");
        assert_eq!(keys, [("a1".to_string(), Some(key)), ("a2".to_string(), None)]);
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT send_id FROM communication_logs
                 WHERE provider_key = ?1 AND provider_message_id = ?2",
            )
            .unwrap()
            .query_map(rusqlite::params![key, "SM0123"], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("communication_logs_provider_key")), "{plan:?}");
    }

    fn dump(conn: &Connection) -> Vec<String> {
        conn.prepare(
            "SELECT send_id, campaign_id, lead_id, status, attempt, channel, lease_until, provider_message_id,
                 error_message, created_at, updated_at FROM communication_logs ORDER BY send_id",
        )
        .unwrap()
        .query_map([], |r| Ok((0..11).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|")))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }
}
