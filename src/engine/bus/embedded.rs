//! The embedded bus: a durable queue inside the SQLite store file, so a single-machine install
//! needs no broker, and any number of `crm` processes (CLI, workers, dashboard) share it safely.
//!
//! # Tables
//!
//! The bus manages its own table in the shared file, `bus_messages`, created idempotently
//! (`CREATE … IF NOT EXISTS`, under a write lock) whenever a bus opens. It is not part of the
//! store's versioned migrations, so the store and the bus evolve independently and either may
//! open a new file first. One row per message not yet acknowledged; an acknowledged message is
//! deleted, which keeps the table (and its index) as small as the backlog.
//!
//! - `available_at` (Unix ms) is when the message may next be claimed: its publish time, its
//!   delay or retry backoff, or, while leased, the end of the lease. So "ready" is one range
//!   (`available_at <= now`) on the index `(topic, available_at)`, an expired lease needs no
//!   sweeper, and claiming in index order gives the "order in which messages became ready".
//! - `lease_group` is the consumer group holding the lease (NULL: not leased). It tells in-flight
//!   from delayed messages, and an operator reading the table who holds what.
//! - `deliveries` counts claims. It doubles as the lease token: every claim increments it under
//!   the write lock, so `(id, deliveries)` names one lease and no other, ever. That is also why
//!   `id` is `AUTOINCREMENT`: a plain rowid may be reused after the newest row is deleted, and a
//!   stale `(id, 1)` could then match a new message.
//!
//! # Processes
//!
//! Each `EmbeddedBus` has its own connection (WAL, busy timeout: see
//! [`crate::engine::store::sqlite`]). A claim selects and leases its messages inside one
//! `BEGIN IMMEDIATE` transaction, which holds SQLite's single write lock, so two processes can
//! never claim the same message. Tests stand in for two processes with two `EmbeddedBus` values
//! on one file, each with its own connection (SQLite's locking is per connection, not per
//! process, so this is the same code path).
//!
//! # Consumer groups
//!
//! The embedded bus keeps one queue per topic: every consumer of a topic competes for its
//! messages, whatever group it names. The pipeline has exactly one consumer kind per topic, which
//! is what this serves; fan-out to several groups (Kafka's semantics) is not implemented.

use super::clock::{Clock, SystemClock, duration_ms};
use super::{Bus, Delivery, Outgoing, TopicDepth};
use crate::engine::error::{Error, Result};
use crate::engine::store::sqlite::{begin_write, connect};
use async_trait::async_trait;
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS bus_messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        topic        TEXT    NOT NULL,
        key          TEXT,
        payload      BLOB    NOT NULL,
        available_at INTEGER NOT NULL,
        lease_group  TEXT,
        deliveries   INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS bus_messages_ready ON bus_messages (topic, available_at);";

const INSERT_SQL: &str =
    "INSERT INTO bus_messages (topic, key, payload, available_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Ready messages in the order they became ready. The index is `(topic, available_at)` plus
/// the implicit rowid, so this walks it without sorting (a test checks the plan).
pub(super) const CLAIM_SQL: &str = "SELECT id, key, payload, deliveries FROM bus_messages
     WHERE topic = ?1 AND available_at <= ?2 ORDER BY available_at, id LIMIT ?3";

const LEASE_SQL: &str =
    "UPDATE bus_messages SET available_at = ?2, lease_group = ?3, deliveries = deliveries + 1 WHERE id = ?1";

const ACK_SQL: &str = "DELETE FROM bus_messages WHERE id = ?1 AND deliveries = ?2 AND lease_group IS NOT NULL";

/// Ends a lease early (`lease_group` NULL: ready or delayed, not in flight).
const RETRY_SQL: &str = "UPDATE bus_messages SET available_at = ?3, lease_group = NULL
     WHERE id = ?1 AND deliveries = ?2 AND lease_group IS NOT NULL";

const EXTEND_SQL: &str =
    "UPDATE bus_messages SET available_at = ?3 WHERE id = ?1 AND deliveries = ?2 AND lease_group IS NOT NULL";

const DEPTH_SQL: &str = "SELECT
     (SELECT COUNT(*) FROM bus_messages WHERE topic = ?1 AND available_at <= ?2),
     (SELECT COUNT(*) FROM bus_messages WHERE topic = ?1 AND available_at > ?2 AND lease_group IS NOT NULL),
     (SELECT COUNT(*) FROM bus_messages WHERE topic = ?1 AND available_at > ?2 AND lease_group IS NULL)";

pub struct EmbeddedBus {
    path: PathBuf,
    conn: Arc<tokio::sync::Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

impl EmbeddedBus {
    /// Opens the bus inside the SQLite file at `path` (created if missing), on the wall clock.
    pub async fn open(path: &Path) -> Result<EmbeddedBus> {
        EmbeddedBus::open_with_clock(path, Arc::new(SystemClock)).await
    }

    /// Opens the bus with a chosen clock: tests pass a [`super::ManualClock`].
    pub async fn open_with_clock(path: &Path, clock: Arc<dyn Clock>) -> Result<EmbeddedBus> {
        let path = path.to_path_buf();
        let describe = describe(&path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::store(&describe, format!("cannot create {}: {e}", dir.display())))?;
        }
        let open_path = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<Connection> {
            let mut conn = connect(&open_path)?;
            let tx = begin_write(&mut conn)?;
            tx.execute_batch(SCHEMA)?;
            tx.commit()?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::store(&describe, e))?
        .map_err(|e| Error::sqlite(&describe, &e))?;
        Ok(EmbeddedBus { path, conn: Arc::new(tokio::sync::Mutex::new(conn)), clock })
    }

    /// Runs `f` with the bus's connection and clock on the blocking pool. Writers read the clock
    /// once they hold the write lock, which another process may keep them waiting for.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &dyn Clock) -> rusqlite::Result<T> + Send + 'static,
    {
        // Queued async (see `SqliteStore::call`): one blocking thread per connection at a time.
        let mut guard = self.conn.clone().lock_owned().await;
        let clock = self.clock.clone();
        let describe = self.describe();
        let err_describe = describe.clone();
        tokio::task::spawn_blocking(move || f(&mut guard, clock.as_ref()).map_err(|e| Error::sqlite(&describe, &e)))
            .await
            .map_err(|e| Error::store(err_describe, e))?
    }
}

fn describe(path: &Path) -> String {
    format!("embedded:{}", path.display())
}

fn check_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::Usage("a bus topic cannot be empty".into()));
    }
    Ok(())
}

/// The stored form of a lease token; `None` for a token this bus never issued.
fn stored_token(delivery: &Delivery) -> Option<i64> {
    i64::try_from(delivery.lease_token).ok().filter(|t| *t > 0)
}

fn publish_rows(conn: &mut Connection, clock: &dyn Clock, topic: &str, messages: &[Outgoing]) -> rusqlite::Result<()> {
    let tx = begin_write(conn)?;
    let now = clock.now_ms();
    {
        let mut insert = tx.prepare_cached(INSERT_SQL)?;
        for m in messages {
            let available_at = now.saturating_add(duration_ms(m.delay));
            insert.execute(params![topic, m.key, m.payload, available_at, now])?;
        }
    }
    tx.commit()
}

/// Selects and leases up to `max` ready messages in one write transaction: no other connection
/// can claim between the two steps.
fn claim_rows(
    conn: &mut Connection,
    clock: &dyn Clock,
    topic: &str,
    group: &str,
    max: usize,
    lease: i64,
) -> rusqlite::Result<Vec<Delivery>> {
    let tx = begin_write(conn)?;
    let now = clock.now_ms();
    let mut claimed = Vec::new();
    {
        let mut select = tx.prepare_cached(CLAIM_SQL)?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = select.query_map(params![topic, now, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?))
        })?;
        for row in rows {
            claimed.push(row?);
        }
        let mut lease_stmt = tx.prepare_cached(LEASE_SQL)?;
        let until = now.saturating_add(lease);
        for (id, ..) in &claimed {
            lease_stmt.execute(params![id, until, group])?;
        }
    }
    tx.commit()?;
    let deliveries = claimed.into_iter().map(|(id, key, payload, before)| {
        let token = before + 1;
        Delivery {
            id,
            topic: topic.to_string(),
            key,
            payload,
            deliveries: u32::try_from(token).unwrap_or(u32::MAX),
            lease_token: u64::try_from(token).unwrap_or(0),
        }
    });
    Ok(deliveries.collect())
}

fn ack_rows(conn: &mut Connection, leases: &[(i64, i64)]) -> rusqlite::Result<usize> {
    let tx = begin_write(conn)?;
    let mut acked = 0;
    {
        let mut delete = tx.prepare_cached(ACK_SQL)?;
        for (id, token) in leases {
            acked += delete.execute(params![id, token])?;
        }
    }
    tx.commit()?;
    Ok(acked)
}

#[async_trait]
impl Bus for EmbeddedBus {
    fn describe(&self) -> String {
        describe(&self.path)
    }

    async fn publish_batch(&self, topic: &str, messages: Vec<Outgoing>) -> Result<()> {
        check_topic(topic)?;
        if messages.is_empty() {
            return Ok(());
        }
        let topic = topic.to_string();
        self.call(move |conn, clock| publish_rows(conn, clock, &topic, &messages)).await
    }

    async fn consume(&self, topic: &str, group: &str, max: usize, lease: Duration) -> Result<Vec<Delivery>> {
        check_topic(topic)?;
        if group.is_empty() {
            return Err(Error::Usage("a bus consumer group cannot be empty".into()));
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let (topic, group, lease) = (topic.to_string(), group.to_string(), duration_ms(lease));
        self.call(move |conn, clock| claim_rows(conn, clock, &topic, &group, max, lease)).await
    }

    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<usize> {
        let leases: Vec<(i64, i64)> = deliveries.iter().filter_map(|d| Some((d.id, stored_token(d)?))).collect();
        if leases.is_empty() {
            return Ok(0);
        }
        self.call(move |conn, _| ack_rows(conn, &leases)).await
    }

    async fn retry(&self, delivery: &Delivery, after: Duration) -> Result<bool> {
        let Some(token) = stored_token(delivery) else { return Ok(false) };
        let (id, after) = (delivery.id, duration_ms(after));
        let changed = self
            .call(move |conn, clock| conn.execute(RETRY_SQL, params![id, token, clock.now_ms().saturating_add(after)]));
        Ok(changed.await? == 1)
    }

    async fn extend(&self, delivery: &Delivery, lease: Duration) -> Result<bool> {
        let Some(token) = stored_token(delivery) else { return Ok(false) };
        let (id, lease) = (delivery.id, duration_ms(lease));
        let changed = self.call(move |conn, clock| {
            conn.execute(EXTEND_SQL, params![id, token, clock.now_ms().saturating_add(lease)])
        });
        Ok(changed.await? == 1)
    }

    async fn depth(&self, topic: &str) -> Result<TopicDepth> {
        let topic = topic.to_string();
        let counts = self.call(move |conn, clock| {
            conn.prepare_cached(DEPTH_SQL)?.query_row(params![topic, clock.now_ms()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
        });
        let (ready, in_flight, delayed) = counts.await?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(TopicDepth { ready: count(ready), in_flight: count(in_flight), delayed: count(delayed) })
    }
}
