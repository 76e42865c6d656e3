//! Campaign and dead-letter rows: mapping, loading, stats counted from the logs, statuses, and
//! the write transaction every pipeline call uses.

use super::super::rows::from_ms;
use crate::engine::campaign::{
    Campaign, CampaignId, CampaignStats, CampaignStatus, DeadLetterRecord, SendIds, SendJob, SendStatus,
};
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Row};

pub(super) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(super) const CAMPAIGN_COLUMNS: &str =
    "id, name, segment_id, message_template, channel, created_by, status, audience, created_at, updated_at,
     send_id_salt";

pub(super) fn campaign_from_row(row: &Row) -> rusqlite::Result<Campaign> {
    let status: String = row.get(6)?;
    Ok(Campaign {
        id: row.get(0)?,
        name: row.get(1)?,
        segment_id: row.get(2)?,
        message_template: row.get(3)?,
        channel: row.get(4)?,
        created_by: row.get(5)?,
        status: status.parse().unwrap_or(CampaignStatus::Draft),
        stats: CampaignStats { audience: row.get::<_, i64>(7)? as u64, ..CampaignStats::default() },
        created_at: from_ms(row.get(8)?),
        updated_at: from_ms(row.get(9)?),
        send_ids: SendIds::from_salt(row.get(10)?),
    })
}

/// Fills in the stats of `c` by counting its logs per status.
pub(super) fn with_stats(conn: &Connection, mut c: Campaign) -> rusqlite::Result<Campaign> {
    let mut stmt =
        conn.prepare_cached("SELECT status, count(*) FROM communication_logs WHERE campaign_id = ?1 GROUP BY status")?;
    let counts = stmt
        .query_map([c.id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let counts: Vec<(SendStatus, u64)> =
        counts.into_iter().filter_map(|(s, n)| SendStatus::parse(&s).map(|s| (s, n as u64))).collect();
    c.stats = CampaignStats::from_counts(c.stats.audience, &counts).for_status(c.status);
    Ok(c)
}

pub(super) fn load_campaign(
    conn: &Connection,
    clause: &str,
    param: &dyn rusqlite::ToSql,
) -> rusqlite::Result<Option<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE {clause}");
    let found = conn.prepare_cached(&sql)?.query_row([param], campaign_from_row).optional()?;
    found.map(|c| with_stats(conn, c)).transpose()
}

pub(super) fn status_of(conn: &Connection, id: CampaignId) -> rusqlite::Result<Option<CampaignStatus>> {
    let s: Option<String> =
        conn.prepare_cached("SELECT status FROM campaigns WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    Ok(s.and_then(|s| s.parse().ok()))
}

pub(super) fn write_tx(conn: &mut Connection) -> rusqlite::Result<crate::engine::store::sqlite::WriteTx<'_>> {
    crate::engine::store::sqlite::begin_write(conn)
}

pub(super) fn dead_letter_from_row(row: &Row) -> rusqlite::Result<DeadLetterRecord> {
    let payload: String = row.get(4)?;
    let payload: SendJob = serde_json::from_str(&payload)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(DeadLetterRecord {
        id: row.get(0)?,
        send_id: row.get(1)?,
        campaign_id: row.get(2)?,
        reason: row.get(3)?,
        payload,
        created_at: from_ms(row.get(5)?),
        replayed_at: row.get::<_, Option<i64>>(6)?.map(from_ms),
    })
}
