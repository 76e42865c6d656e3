//! What running processes leave in the store: worker heartbeats, channel accounts' connection
//! states and why their next send waits (one row each, so any process can show them).

use super::super::rows::{from_ms, to_ms};
use crate::engine::campaign::Heartbeat;
use crate::engine::store::campaigns::{AccountWait, ChannelStateRecord};
use rusqlite::{Connection, params};

pub(super) fn beat(conn: &Connection, h: &Heartbeat) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO worker_heartbeats (id, kind, pid, started, last_seen, processed, rate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET last_seen = ?5, processed = ?6, rate = ?7",
    )?
    .execute(params![h.id, h.kind, h.pid, to_ms(&h.started), to_ms(&h.last_seen), h.processed as i64, h.rate])?;
    Ok(())
}

/// Every heartbeat, most recent first.
pub(super) fn heartbeats(conn: &Connection) -> rusqlite::Result<Vec<Heartbeat>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, pid, started, last_seen, processed, rate FROM worker_heartbeats ORDER BY last_seen DESC",
    )?;
    stmt.query_map([], |r| {
        Ok(Heartbeat {
            id: r.get(0)?,
            kind: r.get(1)?,
            pid: r.get(2)?,
            started: from_ms(r.get(3)?),
            last_seen: from_ms(r.get(4)?),
            processed: r.get::<_, i64>(5)? as u64,
            rate: r.get(6)?,
        })
    })?
    .collect()
}

/// Records an account's state unless a newer one is already stored (a late write from a
/// stopped process must not overwrite it).
pub(super) fn set_channel_state(conn: &Connection, account: &str, state: &str, at: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO channel_states (account, state, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (account) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
         WHERE excluded.updated_at >= channel_states.updated_at",
    )?
    .execute(params![account, state, at])?;
    Ok(())
}

/// Every account's last state, by account name.
pub(super) fn channel_states(conn: &Connection) -> rusqlite::Result<Vec<ChannelStateRecord>> {
    let mut stmt = conn.prepare("SELECT account, state, updated_at FROM channel_states ORDER BY account")?;
    stmt.query_map([], |r| {
        let text: String = r.get(1)?;
        Ok(ChannelStateRecord {
            account: r.get(0)?,
            state: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            updated_at: from_ms(r.get(2)?),
        })
    })?
    .collect()
}

/// Records an account's wait unless a newer one is already stored.
pub(super) fn set_account_wait(conn: &Connection, w: &AccountWait) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO account_waits (account, next_at, reason, detail, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account) DO UPDATE SET next_at = excluded.next_at, reason = excluded.reason,
             detail = excluded.detail, updated_at = excluded.updated_at
         WHERE excluded.updated_at >= account_waits.updated_at",
    )?
    .execute(params![w.account, to_ms(&w.next_at), w.reason, w.detail, to_ms(&w.updated_at)])?;
    Ok(())
}

/// Every account's last wait, by account name.
pub(super) fn account_waits(conn: &Connection) -> rusqlite::Result<Vec<AccountWait>> {
    let mut stmt =
        conn.prepare_cached("SELECT account, next_at, reason, detail, updated_at FROM account_waits ORDER BY account")?;
    stmt.query_map([], |r| {
        Ok(AccountWait {
            account: r.get(0)?,
            next_at: from_ms(r.get(1)?),
            reason: r.get(2)?,
            detail: r.get(3)?,
            updated_at: from_ms(r.get(4)?),
        })
    })?
    .collect()
}
