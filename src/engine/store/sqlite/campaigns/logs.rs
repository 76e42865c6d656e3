//! Communication logs: inserting a chunk's logs once, claiming one for a sender, moving one
//! forward, listing the latest, and an operator's decision on uncertain ones.

use super::super::rows::from_ms;
use super::rows::{now_ms, write_tx};
use crate::engine::campaign::{CampaignId, CommunicationLog, NewLog, SendStatus};
use crate::engine::store::campaigns::{Claim, LogQuery, LogUpdate, Resolution};
use rusqlite::{CachedStatement, Connection, OptionalExtension, params};
use std::time::Duration;

/// The key a vendor message id is found by (`communication_logs.provider_key`, indexed): 8
/// bytes instead of the id (vendors' ids are random, so a batch of outcomes writes into pages
/// all over the index: the smaller the index, the fewer). Lookups compare the id too.
pub(crate) fn provider_key(provider_message_id: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(provider_message_id.as_bytes()) as i64
}

/// A log as an update finds it: its row, status and vendor id.
type Found = (i64, String, Option<String>);

/// The statements an update runs, prepared once per batch: a batch of 1,024 outcomes ran
/// `prepare_cached` (a hash of the SQL and a move in the cache) twice per log.
struct Updates<'c> {
    conn: &'c Connection,
    find: CachedStatement<'c>,
    /// With a new vendor id (and its key).
    write_pid: Option<CachedStatement<'c>>,
    write: Option<CachedStatement<'c>>,
}

const FIND: &str = "SELECT id, status, provider_message_id FROM communication_logs WHERE send_id = ?1";

fn found_with(stmt: &mut CachedStatement<'_>, send_id: &str) -> rusqlite::Result<Option<Found>> {
    stmt.query_row([send_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()
}

/// Each item read with one statement, `sql`, prepared once, in one read transaction (no write
/// lock).
fn read_each<I, R>(
    conn: &mut Connection,
    sql: &str,
    items: &[I],
    read: impl Fn(&mut CachedStatement<'_>, &I) -> rusqlite::Result<R>,
) -> rusqlite::Result<Vec<R>> {
    let tx = conn.transaction()?;
    let out = {
        let mut stmt = tx.prepare_cached(sql)?;
        items.iter().map(|item| read(&mut stmt, item)).collect::<rusqlite::Result<Vec<R>>>()?
    };
    tx.finish()?;
    Ok(out)
}

impl<'c> Updates<'c> {
    fn new(conn: &'c Connection) -> rusqlite::Result<Updates<'c>> {
        Ok(Updates { conn, find: conn.prepare_cached(FIND)?, write_pid: None, write: None })
    }

    fn find(&mut self, send_id: &str) -> rusqlite::Result<Option<Found>> {
        found_with(&mut self.find, send_id)
    }

    /// Writes `u` to the log at row `found.0` if it still holds `found`'s status and vendor id;
    /// true when it did.
    fn write_if_unchanged(
        &mut self,
        found: &Found,
        u: &LogUpdate,
        pid: Option<&str>,
        now: i64,
    ) -> rusqlite::Result<bool> {
        let (id, status, stored_pid) = found;
        let n = if let Some(pid) = pid {
            let stmt = match &mut self.write_pid {
                Some(stmt) => stmt,
                slot => slot.insert(self.conn.prepare_cached(
                    "UPDATE communication_logs SET status = ?2, lease_until = NULL, provider_message_id = ?3,
                         provider_key = ?8, error_message = coalesce(?4, error_message), updated_at = ?5
                     WHERE id = ?1 AND status = ?6 AND provider_message_id IS ?7",
                )?),
            };
            let key = u.find_by_provider_id.then(|| provider_key(pid));
            stmt.execute(params![id, u.status.as_str(), pid, u.error, now, status, stored_pid, key])?
        } else {
            let stmt = match &mut self.write {
                Some(stmt) => stmt,
                slot => slot.insert(self.conn.prepare_cached(
                    "UPDATE communication_logs SET status = ?2, lease_until = NULL,
                         error_message = coalesce(?3, error_message), updated_at = ?4
                     WHERE id = ?1 AND status = ?5 AND provider_message_id IS ?6",
                )?),
            };
            stmt.execute(params![id, u.status.as_str(), u.error, now, status, stored_pid])?
        };
        Ok(n == 1)
    }

    /// Applies one forward-only update; true when the log changed.
    fn apply(&mut self, u: &LogUpdate, now: i64) -> rusqlite::Result<bool> {
        let Some(found) = self.find(&u.send_id)? else { return Ok(false) };
        let Some(pid) = change(&found, u) else { return Ok(false) };
        self.write_if_unchanged(&found, u, pid, now)
    }
}

/// What `u` would write to the log as `found`: `None` when it changes nothing (unknown log, or
/// not a step forward); else the vendor id to write, when it is new — receipts repeat the id,
/// and writing it again would rewrite its (random) index entry.
fn change<'a>(found: &Found, u: &'a LogUpdate) -> Option<Option<&'a str>> {
    let current = SendStatus::parse(&found.1)?;
    if !current.can_become(u.status) {
        return None;
    }
    Some(u.provider_message_id.as_deref().filter(|p| found.2.as_deref() != Some(*p)))
}

/// Applies one forward-only update; true when the log changed.
pub(super) fn apply_update(conn: &Connection, u: &LogUpdate, now: i64) -> rusqlite::Result<bool> {
    Updates::new(conn)?.apply(u, now)
}

/// Applies forward-only updates in one write transaction; returns how many logs changed.
///
/// The logs are looked up first, in a read transaction, without the write lock (which every
/// writer of the file shares): an update that changes nothing — a repeated receipt, the status
/// worker meeting an update the sender already recorded — then costs no write at all, and one
/// that does is written by row id under the lock, if its log did not move meanwhile (else
/// looked up again there).
pub(super) fn apply_updates(conn: &mut Connection, updates: &[LogUpdate]) -> rusqlite::Result<usize> {
    let found = read_each(conn, FIND, updates, |stmt, u| found_with(stmt, &u.send_id))?;
    let todo: Vec<(&LogUpdate, Found, Option<&str>)> = updates
        .iter()
        .zip(found)
        .filter_map(|(u, found)| {
            let found = found?;
            let pid = change(&found, u)?;
            Some((u, found, pid))
        })
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let tx = write_tx(conn)?;
    let now = now_ms();
    let mut changed = 0;
    {
        let mut write = Updates::new(&tx)?;
        for (u, found, pid) in todo {
            let done = write.write_if_unchanged(&found, u, pid, now)? || write.apply(u, now)?;
            changed += usize::from(done);
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// A log as a claim finds it: row, status, attempt, lease, lead and channel.
type ClaimRow = (i64, String, i64, Option<i64>, i64, String);

const FIND_FOR_CLAIM: &str =
    "SELECT id, status, attempt, lease_until, lead_id, channel FROM communication_logs WHERE send_id = ?1";

fn find_with(stmt: &mut CachedStatement<'_>, send_id: &str) -> rusqlite::Result<Option<ClaimRow>> {
    stmt.query_row([send_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).optional()
}

fn find_for_claim(conn: &Connection, send_id: &str) -> rusqlite::Result<Option<ClaimRow>> {
    find_with(&mut conn.prepare_cached(FIND_FOR_CLAIM)?, send_id)
}

/// Claims the log `row` describes, as it was read (under the write lock, or before it: then
/// `row` must still be current, which the caller checks).
fn claim_found(conn: &Connection, row: ClaimRow, now: i64, lease_ms: i64) -> rusqlite::Result<Claim> {
    let (id, status, attempt, lease_until, lead_id, channel) = row;
    let status = SendStatus::parse(&status).unwrap_or(SendStatus::Failed);
    let recovered = match status {
        SendStatus::Pending => false,
        SendStatus::Sending => match lease_until {
            Some(until) if until > now => {
                return Ok(Claim::Busy { retry_in: Duration::from_millis((until - now) as u64 + 1) });
            }
            _ => true,
        },
        settled => return Ok(Claim::Settled(settled)),
    };
    let opted_out: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM lead_opt_outs WHERE lead_id = ?1)")?
        .query_row([lead_id], |r| r.get(0))?;
    if opted_out && !recovered {
        conn.prepare_cached(
            "UPDATE communication_logs SET status = 'skipped', error_message = 'opted out', updated_at = ?2
             WHERE id = ?1",
        )?
        .execute(params![id, now])?;
        return Ok(Claim::OptedOut);
    }
    // A recovered claim keeps its attempt: the same try is being finished, not a new one.
    let attempt = if recovered { attempt.max(1) } else { attempt + 1 };
    conn.prepare_cached(
        "UPDATE communication_logs SET status = 'sending', attempt = ?2, lease_until = ?3, updated_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![id, attempt, now + lease_ms, now])?;
    Ok(Claim::Claimed { attempt: attempt as u32, recovered, channel })
}

/// Claims each log for a send, in one write transaction.
///
/// The logs are looked up first, in a read transaction, without the write lock every writer of
/// the file shares. Under it, a log read as pending is claimed by one conditional update (still
/// as it was read, lead not opted out); any other is checked to be as it was read (status,
/// attempt and lease unchanged: one read of its row by id) and looked up again only if it moved.
pub(super) fn claim(conn: &mut Connection, send_ids: &[String], lease_ms: i64) -> rusqlite::Result<Vec<Claim>> {
    let found = read_each(conn, FIND_FOR_CLAIM, send_ids, |stmt, id| find_with(stmt, id))?;
    let tx = write_tx(conn)?;
    let now = now_ms();
    let mut claims = Vec::with_capacity(send_ids.len());
    let mut pending = tx.prepare_cached(CLAIM_PENDING)?;
    for (send_id, row) in send_ids.iter().zip(found) {
        if let Some(row) = &row
            && let Some(claimed) = claim_pending(&mut pending, row, now, lease_ms)?
        {
            claims.push(claimed);
            continue;
        }
        let current = match row {
            Some(row) if still(&tx, &row)? => Some(row),
            _ => find_for_claim(&tx, send_id)?,
        };
        claims.push(match current {
            Some(row) => claim_found(&tx, row, now, lease_ms)?,
            None => Claim::Missing,
        });
    }
    drop(pending);
    tx.commit()?;
    Ok(claims)
}

const CLAIM_PENDING: &str =
    "UPDATE communication_logs SET status = 'sending', attempt = ?2 + 1, lease_until = ?5, updated_at = ?6
     WHERE id = ?1 AND status = 'pending' AND attempt = ?2 AND lease_until IS ?3
       AND NOT EXISTS (SELECT 1 FROM lead_opt_outs WHERE lead_id = ?4)";

/// The common claim in one statement (`CLAIM_PENDING`, prepared once per batch): a log read as
/// pending, still as it was read, whose lead has not opted out. None when it is not that (moved
/// since, or opted out): the caller then takes the long way, [`claim_found`] on the log as it
/// is now.
fn claim_pending(
    stmt: &mut CachedStatement<'_>,
    row: &ClaimRow,
    now: i64,
    lease_ms: i64,
) -> rusqlite::Result<Option<Claim>> {
    let (id, status, attempt, lease_until, lead_id, channel) = row;
    if status != SendStatus::Pending.as_str() {
        return Ok(None);
    }
    let claimed = stmt.execute(params![id, attempt, lease_until, lead_id, now + lease_ms, now])?;
    Ok((claimed == 1).then(|| Claim::Claimed {
        attempt: (attempt + 1) as u32,
        recovered: false,
        channel: channel.clone(),
    }))
}

/// Whether the log `row` was read from still has its status, attempt and lease.
fn still(conn: &Connection, row: &ClaimRow) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM communication_logs
                        WHERE id = ?1 AND status = ?2 AND attempt = ?3 AND lease_until IS ?4)",
    )?
    .query_row(params![row.0, row.1, row.2, row.3], |r| r.get(0))
}

/// Inserts the logs that do not exist yet and returns the send ids of those now pending.
pub(super) fn insert(
    conn: &mut Connection,
    campaign: CampaignId,
    channel: &str,
    logs: &[NewLog],
) -> rusqlite::Result<Vec<String>> {
    let tx = write_tx(conn)?;
    let now = now_ms();
    let mut pending = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO communication_logs (send_id, campaign_id, lead_id, status, attempt, channel,
                 error_message, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?7) ON CONFLICT (send_id) DO NOTHING",
        )?;
        let mut status = tx.prepare_cached("SELECT status FROM communication_logs WHERE send_id = ?1")?;
        for log in logs {
            let initial = if log.skip_reason.is_some() { "skipped" } else { "pending" };
            let inserted =
                insert.execute(params![log.send_id, campaign, log.lead_id, initial, channel, log.skip_reason, now])?;
            // A new log is what was inserted; one expanded before may have moved on since.
            let now_pending = if inserted == 1 {
                initial == "pending"
            } else {
                status.query_row([&log.send_id], |r| r.get::<_, String>(0))? == "pending"
            };
            if now_pending {
                pending.push(log.send_id.clone());
            }
        }
    }
    tx.commit()?;
    Ok(pending)
}

/// A lead's newest logs (`lead`, `campaign` or NULL, `status` or NULL, `limit`).
const BY_LEAD: &str = "FROM communication_logs
     WHERE lead_id = ?1 AND (?2 IS NULL OR campaign_id = ?2) AND (?3 IS NULL OR status = ?3)
     ORDER BY updated_at DESC, send_id LIMIT ?4";
/// A campaign's newest logs in one status (`campaign`, `status`, `limit`).
const BY_STATUS: &str = "FROM communication_logs WHERE campaign_id = ?1 AND status = ?2
     ORDER BY updated_at DESC, send_id LIMIT ?3";

/// The latest logs `q` selects, newest change first (ties by send id), in one read transaction.
///
/// There is no index on the change time alone (every status change would move an entry in
/// it): a lead's logs come through its own index; otherwise each (campaign, status) pair's
/// newest `limit` come in order through `communication_logs_status` (campaign, status,
/// updated_at) and are merged: at most 8 short index reads per campaign.
pub(super) fn list(conn: &mut Connection, q: &LogQuery) -> rusqlite::Result<Vec<CommunicationLog>> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let status = q.status.map(SendStatus::as_str);
    let tx = conn.transaction()?;
    let mut logs = if let Some(lead) = q.lead {
        let mut stmt = tx.prepare_cached(&format!("SELECT {LOG_COLUMNS} {BY_LEAD}"))?;
        stmt.query_map(params![lead, q.campaign, status, limit], log_from_row)?.collect::<rusqlite::Result<_>>()?
    } else {
        let campaigns: Vec<CampaignId> = match q.campaign {
            Some(c) => vec![c],
            None => tx
                .prepare_cached("SELECT id FROM campaigns")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
        };
        let statuses: Vec<&str> = match status {
            Some(s) => vec![s],
            None => SendStatus::ALL.iter().map(|s| s.as_str()).collect(),
        };
        let mut stmt = tx.prepare_cached(&format!("SELECT {LOG_COLUMNS} {BY_STATUS}"))?;
        let mut logs = Vec::new();
        for campaign in campaigns {
            for status in &statuses {
                for log in stmt.query_map(params![campaign, status, limit], log_from_row)? {
                    logs.push(log?);
                }
            }
        }
        logs
    };
    tx.finish()?;
    logs.sort_by(|a: &CommunicationLog, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.send_id.cmp(&b.send_id)));
    logs.truncate(q.limit);
    Ok(logs)
}

const LOG_COLUMNS: &str = "send_id, campaign_id, lead_id, status, attempt, channel, provider_message_id,
    error_message, created_at, updated_at";

fn log_from_row(r: &rusqlite::Row) -> rusqlite::Result<CommunicationLog> {
    Ok(CommunicationLog {
        send_id: r.get(0)?,
        campaign_id: r.get(1)?,
        lead_id: r.get(2)?,
        status: SendStatus::parse(&r.get::<_, String>(3)?).unwrap_or(SendStatus::Failed),
        attempt: r.get::<_, i64>(4)? as u32,
        channel: r.get(5)?,
        provider_message_id: r.get(6)?,
        error_message: r.get(7)?,
        created_at: from_ms(r.get(8)?),
        updated_at: from_ms(r.get(9)?),
    })
}

/// The log with this vendor message id (through the `communication_logs_provider_key` index).
pub(super) fn by_provider_id(
    conn: &Connection,
    provider_message_id: &str,
) -> rusqlite::Result<Option<CommunicationLog>> {
    conn.prepare_cached(&format!(
        "SELECT {LOG_COLUMNS} FROM communication_logs WHERE provider_key = ?1 AND provider_message_id = ?2
         ORDER BY send_id LIMIT 1"
    ))?
    .query_row(params![provider_key(provider_message_id), provider_message_id], log_from_row)
    .optional()
}

/// Resolves the campaign's logs that are uncertain now (those among `send_ids`, or all); see
/// `CampaignStore::resolve_uncertain`.
pub(super) fn resolve_uncertain(
    conn: &mut Connection,
    campaign: CampaignId,
    send_ids: Option<&[String]>,
    resolution: Resolution,
) -> rusqlite::Result<Vec<CommunicationLog>> {
    let tx = write_tx(conn)?;
    let now = now_ms();
    let uncertain: Vec<String> = {
        let mut all = tx.prepare_cached(
            "SELECT send_id FROM communication_logs WHERE campaign_id = ?1 AND status = 'uncertain' ORDER BY send_id",
        )?;
        let all: Vec<String> = all.query_map([campaign], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        match send_ids {
            None => all,
            Some(wanted) => {
                let wanted: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
                all.into_iter().filter(|id| wanted.contains(id.as_str())).collect()
            }
        }
    };
    {
        // Resending is the operator's explicit "try again": the one move back out of uncertain.
        let sql = match resolution {
            Resolution::MarkSent => {
                "UPDATE communication_logs SET status = 'sent', lease_until = NULL,
                     error_message = 'marked sent by an operator', updated_at = ?2
                 WHERE send_id = ?1 AND status = 'uncertain'"
            }
            Resolution::Resend => {
                "UPDATE communication_logs SET status = 'pending', attempt = 0, lease_until = NULL,
                     error_message = NULL, updated_at = ?2
                 WHERE send_id = ?1 AND status = 'uncertain'"
            }
        };
        let mut update = tx.prepare_cached(sql)?;
        for id in &uncertain {
            update.execute(params![id, now])?;
        }
    }
    if resolution == Resolution::Resend && !uncertain.is_empty() {
        tx.execute(
            "UPDATE campaigns SET status = 'RUNNING', updated_at = ?2 WHERE id = ?1 AND status = 'COMPLETED'",
            params![campaign, now],
        )?;
    }
    let changed = {
        let mut one = tx.prepare_cached(&format!("SELECT {LOG_COLUMNS} FROM communication_logs WHERE send_id = ?1"))?;
        uncertain.iter().map(|id| one.query_row([id], log_from_row)).collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.commit()?;
    Ok(changed)
}

#[cfg(test)]
mod plan_tests {
    use super::super::super::migrations::migrate;
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).expect("plan");
        rows.collect::<rusqlite::Result<Vec<_>>>().expect("rows").join("; ")
    }

    /// The listings read through an index, in its order: no scan of every log, no sort of a
    /// whole campaign (only of ties in change time).
    #[test]
    fn newest_logs_are_read_through_indexes() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).ok().expect("migrate");
        let by_status = plan(
            &conn,
            &format!("SELECT send_id {BY_STATUS}").replace("?1", "1").replace("?2", "'sent'").replace("?3", "20"),
        );
        assert!(
            by_status.contains("USING INDEX communication_logs_status (campaign_id=? AND status=?)"),
            "{by_status}"
        );
        assert!(
            !by_status.contains("SCAN communication_logs") && !by_status.contains("TEMP B-TREE FOR ORDER BY"),
            "{by_status}"
        );
        let by_lead = plan(
            &conn,
            &format!("SELECT send_id {BY_LEAD}")
                .replace("?1", "7")
                .replace("?2", "NULL")
                .replace("?3", "NULL")
                .replace("?4", "20"),
        );
        assert!(by_lead.contains("USING INDEX communication_logs_lead (lead_id=?)"), "{by_lead}");
        let sent = plan(&conn, &super::super::inbound::SENT_SINCE.replace("?1", "'sim'").replace("?2", "0"));
        assert!(
            sent.contains("USING INDEX communication_logs_status (campaign_id=? AND status=? AND updated_at>?)"),
            "{sent}"
        );
    }
}
