//! Bounded reads for dashboards that poll every second: how many dead letters wait (counted,
//! not read), and the newest dead letters and opt-outs (by their keys and the `at` index).

use super::super::rows::from_ms;
use super::rows::dead_letter_from_row;
use crate::engine::campaign::DeadLetterRecord;
use crate::engine::store::campaigns::OptOutRecord;
use rusqlite::{Connection, params};

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn count_dead_letters(conn: &Connection, include_replayed: bool) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT count(*) FROM dead_letters WHERE ?1 OR replayed_at IS NULL")?
        .query_row([include_replayed], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

pub(super) fn dead_letters(conn: &Connection, n: usize) -> rusqlite::Result<Vec<DeadLetterRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, send_id, campaign_id, reason, payload, created_at, replayed_at FROM dead_letters
         ORDER BY id DESC LIMIT ?1",
    )?;
    stmt.query_map([limit(n)], dead_letter_from_row)?.collect()
}

pub(super) fn opt_outs(conn: &Connection, n: usize) -> rusqlite::Result<Vec<OptOutRecord>> {
    let mut stmt =
        conn.prepare_cached("SELECT lead_id, at, source FROM lead_opt_outs ORDER BY at DESC, lead_id DESC LIMIT ?1")?;
    stmt.query_map(params![limit(n)], |r| {
        Ok(OptOutRecord { lead_id: r.get(0)?, at: from_ms(r.get(1)?), source: r.get(2)? })
    })?
    .collect()
}
