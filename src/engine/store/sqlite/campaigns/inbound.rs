//! What arrives from leads and vendors besides receipts: replies kept in a lead's history,
//! opt-outs with their source, and the channel a failed-over message really left through.

use super::super::rows::{from_ms, to_ms};
use super::rows::now_ms;
use crate::engine::campaign::CampaignId;
use crate::engine::lead::LeadId;
use crate::engine::store::campaigns::{OptOutRecord, Reply};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

pub(super) fn set_channel(conn: &Connection, send_id: &str, channel: &str) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE communication_logs SET channel = ?2, updated_at = ?3 WHERE send_id = ?1 AND status = 'sending'",
        )?
        .execute(params![send_id, channel, now_ms()])?;
    Ok(n > 0)
}

pub(super) fn opt_out(conn: &Connection, lead: LeadId, source: Option<&str>) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("INSERT INTO lead_opt_outs (lead_id, at, source) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
        .execute(params![lead, now_ms(), source])?;
    Ok(n > 0)
}

pub(super) fn opt_out_records(conn: &Connection) -> rusqlite::Result<Vec<OptOutRecord>> {
    let mut stmt = conn.prepare_cached("SELECT lead_id, at, source FROM lead_opt_outs ORDER BY lead_id")?;
    stmt.query_map([], |r| Ok(OptOutRecord { lead_id: r.get(0)?, at: from_ms(r.get(1)?), source: r.get(2)? }))?
        .collect()
}

pub(super) fn add_reply(conn: &Connection, reply: &Reply) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO lead_replies (lead_id, channel, body, received_at, provider_message_id)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            reply.lead_id,
            reply.channel,
            reply.body,
            to_ms(&reply.received_at),
            reply.provider_message_id
        ])?;
    Ok(n > 0)
}

pub(super) fn replies(conn: &Connection, lead: LeadId, limit: usize) -> rusqlite::Result<Vec<Reply>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT lead_id, channel, body, received_at, provider_message_id FROM lead_replies
         WHERE lead_id = ?1 ORDER BY received_at DESC, id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![lead, limit], |r| {
        Ok(Reply {
            lead_id: r.get(0)?,
            channel: r.get(1)?,
            body: r.get(2)?,
            received_at: from_ms(r.get(3)?),
            provider_message_id: r.get(4)?,
        })
    })?
    .collect()
}

pub(super) const SENT_SINCE: &str = "SELECT count(*) FROM communication_logs
     WHERE campaign_id IN (SELECT id FROM campaigns) AND status IN ('sent', 'delivered', 'read', 'uncertain')
       AND updated_at >= ?2 AND channel = ?1";

/// Messages sent through `account` since `since` (a daily cap's use so far), through
/// `communication_logs_status`: every campaign's sent statuses, from `since` on.
pub(super) fn sent_since(conn: &Connection, account: &str, since: DateTime<Utc>) -> rusqlite::Result<u64> {
    conn.prepare_cached(SENT_SINCE)?
        .query_row(params![account, to_ms(&since)], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

pub(super) fn sent_by_channel(conn: &Connection, campaign: CampaignId) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel, count(*) FROM communication_logs
         WHERE campaign_id = ?1 AND status IN ('sent', 'delivered', 'read') GROUP BY channel ORDER BY channel",
    )?;
    stmt.query_map([campaign], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?.collect()
}
