//! Dead letters: a message given up on is recorded with its reason (and its log failed) in one
//! transaction; a replay puts the failed logs back to pending (the one move back out of failed,
//! the operator's explicit "try again") and reopens a COMPLETED campaign.

use super::logs::apply_update;
use super::rows::{dead_letter_from_row, now_ms, write_tx};
use crate::engine::campaign::{CampaignId, DeadLetter, DeadLetterRecord, SendJob, SendStatus};
use crate::engine::store::campaigns::LogUpdate;
use rusqlite::{Connection, params};

pub(super) fn add(conn: &mut Connection, letter: &DeadLetter) -> rusqlite::Result<()> {
    let tx = write_tx(conn)?;
    let now = now_ms();
    let payload = serde_json::to_string(&letter.payload).unwrap_or_default();
    tx.execute(
        "INSERT INTO dead_letters (send_id, campaign_id, reason, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![letter.payload.send_id, letter.payload.campaign_id, letter.reason, payload, now],
    )?;
    let update = LogUpdate {
        find_by_provider_id: true,
        send_id: letter.payload.send_id.clone(),
        status: SendStatus::Failed,
        provider_message_id: None,
        error: Some(letter.reason.clone()),
    };
    apply_update(&tx, &update, now)?;
    tx.commit()
}

/// Dead letters of one campaign (or all), oldest first; replayed ones only when asked.
pub(super) fn list(
    conn: &Connection,
    campaign: Option<CampaignId>,
    include_replayed: bool,
) -> rusqlite::Result<Vec<DeadLetterRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, send_id, campaign_id, reason, payload, created_at, replayed_at FROM dead_letters
         WHERE (?1 IS NULL OR campaign_id = ?1) AND (?2 OR replayed_at IS NULL) ORDER BY id",
    )?;
    stmt.query_map(params![campaign, include_replayed], dead_letter_from_row)?.collect()
}

pub(super) fn prepare_replay(
    conn: &mut Connection,
    campaign: Option<CampaignId>,
) -> rusqlite::Result<Vec<(i64, SendJob)>> {
    let tx = write_tx(conn)?;
    let letters = list(&tx, campaign, false)?;
    let now = now_ms();
    for l in &letters {
        tx.execute(
            "UPDATE communication_logs SET status = 'pending', attempt = 0, lease_until = NULL,
                 error_message = NULL, updated_at = ?2 WHERE send_id = ?1 AND status = 'failed'",
            params![l.send_id, now],
        )?;
        tx.execute(
            "UPDATE campaigns SET status = 'RUNNING', updated_at = ?2 WHERE id = ?1 AND status = 'COMPLETED'",
            params![l.campaign_id, now],
        )?;
    }
    tx.commit()?;
    Ok(letters.into_iter().map(|l| (l.id, SendJob { attempt: 1, ..l.payload })).collect())
}

pub(super) fn mark_replayed(conn: &mut Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let tx = write_tx(conn)?;
    let now = now_ms();
    for id in ids {
        tx.execute("UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1", params![id, now])?;
    }
    tx.commit()
}
