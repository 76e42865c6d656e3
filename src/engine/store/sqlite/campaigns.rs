//! [`CampaignStore`] on the embedded SQLite store. Every pipeline call is one `BEGIN IMMEDIATE`
//! transaction over a batch (claims, outcomes, receipts), because several worker processes share
//! the file and a write transaction, not a row, is what SQLite charges for. Stats are counted
//! from the logs when read (an index on `(campaign_id, status)` keeps that cheap), so they can
//! never drift from the logs they describe.

use super::rows::{LEAD_COLUMNS, lead_from_row};
use super::{SqliteStore, db_err};
use crate::engine::campaign::{
    Campaign, CampaignId, CampaignStatus, CommunicationLog, DeadLetter, DeadLetterRecord, Heartbeat, NewCampaign,
    NewLog, SendJob, SendStatus,
};
use crate::engine::error::{Error, Result};
use crate::engine::lead::LeadId;
use crate::engine::segment::Rule;
use crate::engine::segment::sql::to_sql_from;
use crate::engine::store::campaigns::{
    AccountWait, AudienceLead, CampaignStore, ChannelStateRecord, Claim, LogQuery, LogUpdate, OptOutRecord, Reply,
    Resolution,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter, types::Value};
use std::collections::HashMap;
use std::time::Duration;

mod dead_letters;
mod inbound;
mod logs;
pub(super) use logs::provider_key;
mod processes;
mod recent;
mod rows;

use rows::{CAMPAIGN_COLUMNS, campaign_from_row, load_campaign, now_ms, status_of, with_stats, write_tx};

#[async_trait]
impl CampaignStore for SqliteStore {
    fn describe(&self) -> String {
        self.describe_path()
    }

    async fn create_campaign(&self, c: NewCampaign) -> Result<Campaign> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = write_tx(conn).map_err(db_err(&store))?;
            let key = c.name.to_lowercase();
            let taken: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM campaigns WHERE name_key = ?1)", [&key], |r| r.get(0))
                .map_err(db_err(&store))?;
            if taken {
                return Err(Error::Conflict(format!("a campaign named '{}' already exists", c.name)));
            }
            let now = now_ms();
            tx.execute(
                "INSERT INTO campaigns (name, name_key, segment_id, message_template, channel, created_by, status,
                     audience, created_at, updated_at, send_id_salt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'DRAFT', 0, ?7, ?7, ?8)",
                params![c.name, key, c.segment_id, c.message_template, c.channel, c.created_by, now, c.send_ids.salt()],
            )
            .map_err(db_err(&store))?;
            let id = tx.last_insert_rowid();
            let campaign = load_campaign(&tx, "id = ?1", &id).map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            campaign.ok_or_else(|| Error::store(&store, "the new campaign vanished"))
        })
        .await
    }

    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>> {
        let store = self.describe_path();
        self.call(move |conn| load_campaign(conn, "id = ?1", &id).map_err(db_err(&store))).await
    }

    async fn get_campaign_by_name(&self, name: &str) -> Result<Option<Campaign>> {
        let (store, key) = (self.describe_path(), name.to_lowercase());
        self.call(move |conn| load_campaign(conn, "name_key = ?1", &key).map_err(db_err(&store))).await
    }

    async fn list_campaigns(&self) -> Result<Vec<Campaign>> {
        let store = self.describe_path();
        self.call(move |conn| {
            let run = || -> rusqlite::Result<Vec<Campaign>> {
                let mut stmt = conn.prepare(&format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id"))?;
                let all = stmt.query_map([], campaign_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
                all.into_iter().map(|c| with_stats(conn, c)).collect()
            };
            run().map_err(db_err(&store))
        })
        .await
    }

    async fn campaign_status(&self, id: CampaignId) -> Result<Option<CampaignStatus>> {
        let store = self.describe_path();
        self.call(move |conn| status_of(conn, id).map_err(db_err(&store))).await
    }

    async fn delete_campaign(&self, id: CampaignId) -> Result<bool> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = write_tx(conn).map_err(db_err(&store))?;
            match status_of(&tx, id).map_err(db_err(&store))? {
                None => return Ok(false),
                Some(CampaignStatus::Draft) => {}
                Some(other) => {
                    return Err(Error::Conflict(format!(
                        "campaign {id} is {other}; only drafts can be deleted (cancel it instead)"
                    )));
                }
            }
            tx.execute("DELETE FROM communication_logs WHERE campaign_id = ?1", [id]).map_err(db_err(&store))?;
            tx.execute("DELETE FROM campaigns WHERE id = ?1", [id]).map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            Ok(true)
        })
        .await
    }

    async fn set_campaign_status(&self, id: CampaignId, to: CampaignStatus) -> Result<CampaignStatus> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = write_tx(conn).map_err(db_err(&store))?;
            let from = status_of(&tx, id)
                .map_err(db_err(&store))?
                .ok_or_else(|| Error::NotFound(format!("no campaign has the id {id}")))?;
            if from == to {
                return Ok(from);
            }
            if !from.can_become(to) {
                return Err(Error::Conflict(format!("campaign {id} is {from}; it cannot become {to}")));
            }
            tx.execute(
                "UPDATE campaigns SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, to.as_str(), now_ms()],
            )
            .map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))?;
            Ok(from)
        })
        .await
    }

    async fn start_campaign(&self, id: CampaignId, audience: u64) -> Result<()> {
        let store = self.describe_path();
        self.call(move |conn| {
            let tx = write_tx(conn).map_err(db_err(&store))?;
            let from = status_of(&tx, id)
                .map_err(db_err(&store))?
                .ok_or_else(|| Error::NotFound(format!("no campaign has the id {id}")))?;
            if from != CampaignStatus::Draft {
                return Err(Error::Conflict(format!("campaign {id} is {from}; only a draft can be run")));
            }
            tx.execute(
                "UPDATE campaigns SET status = 'RUNNING', audience = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, audience as i64, now_ms()],
            )
            .map_err(db_err(&store))?;
            tx.commit().map_err(db_err(&store))
        })
        .await
    }

    async fn audience_ids(&self, rule: &Rule, now: DateTime<Utc>, after: LeadId, limit: usize) -> Result<Vec<LeadId>> {
        let (store, rule) = (self.describe_path(), rule.clone());
        self.call(move |conn| {
            let fragment = to_sql_from(&rule, now, 3);
            let sql = format!("SELECT l.id FROM leads l WHERE l.id > ?1 AND ({}) ORDER BY l.id LIMIT ?2", fragment.sql);
            let params: Vec<Value> =
                [Value::Integer(after), Value::Integer(limit as i64)].into_iter().chain(fragment.params).collect();
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err(&store))?;
            let ids = stmt
                .query_map(params_from_iter(&params), |r| r.get(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<LeadId>>>())
                .map_err(db_err(&store))?;
            Ok(ids)
        })
        .await
    }

    async fn audience_leads(&self, ids: &[LeadId]) -> Result<Vec<AudienceLead>> {
        let (store, ids) = (self.describe_path(), ids.to_vec());
        self.call(move |conn| {
            let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
            let run = || -> rusqlite::Result<Vec<AudienceLead>> {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {LEAD_COLUMNS}, EXISTS (SELECT 1 FROM lead_opt_outs o WHERE o.lead_id = l.id)
                     FROM leads l WHERE l.id IN (SELECT value FROM json_each(?1))"
                ))?;
                let mut found: HashMap<LeadId, AudienceLead> = HashMap::with_capacity(ids.len());
                let rows = stmt.query_map([&json], |r| {
                    let lead = lead_from_row(r)?;
                    let opted_out: bool = r.get(11)?;
                    Ok(AudienceLead { id: lead.id, lead: Some(lead), opted_out })
                })?;
                for row in rows {
                    let row = row?;
                    found.insert(row.id, row);
                }
                Ok(ids
                    .iter()
                    .map(|id| found.remove(id).unwrap_or(AudienceLead { id: *id, lead: None, opted_out: false }))
                    .collect())
            };
            run().map_err(db_err(&store))
        })
        .await
    }

    async fn insert_logs(&self, campaign: CampaignId, channel: &str, logs: &[NewLog]) -> Result<Vec<String>> {
        let (store, channel, logs) = (self.describe_path(), channel.to_string(), logs.to_vec());
        self.call(move |conn| logs::insert(conn, campaign, &channel, &logs).map_err(db_err(&store))).await
    }

    async fn claim_logs(&self, send_ids: &[String], lease: Duration) -> Result<Vec<Claim>> {
        let (store, send_ids) = (self.describe_path(), send_ids.to_vec());
        let lease_ms = lease.as_millis() as i64;
        self.call(move |conn| logs::claim(conn, &send_ids, lease_ms).map_err(db_err(&store))).await
    }

    async fn release_logs(&self, send_ids: &[String], undo_attempt: bool) -> Result<()> {
        let (store, send_ids) = (self.describe_path(), send_ids.to_vec());
        self.call(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<()> {
                let tx = write_tx(conn)?;
                let now = now_ms();
                {
                    let mut stmt = tx.prepare_cached(
                        "UPDATE communication_logs SET status = 'pending', lease_until = NULL, updated_at = ?2,
                             attempt = max(0, attempt - ?3)
                         WHERE send_id = ?1 AND status = 'sending'",
                    )?;
                    for id in &send_ids {
                        stmt.execute(params![id, now, i64::from(undo_attempt)])?;
                    }
                }
                tx.commit()
            };
            run(conn).map_err(db_err(&store))
        })
        .await
    }

    async fn apply_log_updates(&self, updates: &[LogUpdate]) -> Result<usize> {
        let (store, updates) = (self.describe_path(), updates.to_vec());
        self.call(move |conn| logs::apply_updates(conn, &updates).map_err(db_err(&store))).await
    }

    async fn log_status(&self, send_id: &str) -> Result<Option<SendStatus>> {
        let (store, send_id) = (self.describe_path(), send_id.to_string());
        self.call(move |conn| {
            let s: Option<String> = conn
                .prepare_cached("SELECT status FROM communication_logs WHERE send_id = ?1")
                .and_then(|mut st| st.query_row([&send_id], |r| r.get(0)).optional())
                .map_err(db_err(&store))?;
            Ok(s.as_deref().and_then(SendStatus::parse))
        })
        .await
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<Vec<CommunicationLog>> {
        let (store, q) = (self.describe_path(), query.clone());
        self.call(move |conn| logs::list(conn, &q).map_err(db_err(&store))).await
    }

    async fn complete_finished_campaigns(&self) -> Result<Vec<CampaignId>> {
        let store = self.describe_path();
        self.call(move |conn| {
            let run = |conn: &mut Connection| -> rusqlite::Result<Vec<CampaignId>> {
                // Checked often (the aggregator asks 4 times a second): a read, and the cheap
                // test first (one unsettled log ends it); the write lock only when one finished.
                let finished = |conn: &Connection| -> rusqlite::Result<Vec<CampaignId>> {
                    let mut stmt = conn.prepare_cached(
                        "SELECT c.id FROM campaigns c WHERE c.status = 'RUNNING'
                           AND NOT EXISTS (SELECT 1 FROM communication_logs g WHERE g.campaign_id = c.id
                                           AND g.status IN ('pending', 'sending'))
                           AND (SELECT count(*) FROM communication_logs g WHERE g.campaign_id = c.id) >= c.audience",
                    )?;
                    stmt.query_map([], |r| r.get(0))?.collect()
                };
                if finished(conn)?.is_empty() {
                    return Ok(Vec::new());
                }
                let tx = write_tx(conn)?;
                let ids = finished(&tx)?;
                for id in &ids {
                    tx.execute(
                        "UPDATE campaigns SET status = 'COMPLETED', updated_at = ?2 WHERE id = ?1",
                        params![id, now_ms()],
                    )?;
                }
                tx.commit()?;
                Ok(ids)
            };
            run(conn).map_err(db_err(&store))
        })
        .await
    }

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let (store, letter) = (self.describe_path(), letter.clone());
        self.call(move |conn| dead_letters::add(conn, &letter).map_err(db_err(&store))).await
    }

    async fn list_dead_letters(
        &self,
        campaign: Option<CampaignId>,
        include_replayed: bool,
    ) -> Result<Vec<DeadLetterRecord>> {
        let store = self.describe_path();
        self.call(move |conn| dead_letters::list(conn, campaign, include_replayed).map_err(db_err(&store))).await
    }

    async fn count_dead_letters(&self, include_replayed: bool) -> Result<u64> {
        let store = self.describe_path();
        self.call(move |conn| recent::count_dead_letters(conn, include_replayed).map_err(db_err(&store))).await
    }

    async fn recent_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterRecord>> {
        let store = self.describe_path();
        self.call(move |conn| recent::dead_letters(conn, limit).map_err(db_err(&store))).await
    }

    async fn prepare_replay(&self, campaign: Option<CampaignId>) -> Result<Vec<(i64, SendJob)>> {
        let store = self.describe_path();
        self.call(move |conn| dead_letters::prepare_replay(conn, campaign).map_err(db_err(&store))).await
    }

    async fn mark_replayed(&self, ids: &[i64]) -> Result<()> {
        let (store, ids) = (self.describe_path(), ids.to_vec());
        self.call(move |conn| dead_letters::mark_replayed(conn, &ids).map_err(db_err(&store))).await
    }

    async fn beat(&self, h: &Heartbeat) -> Result<()> {
        let (store, h) = (self.describe_path(), h.clone());
        self.call(move |conn| processes::beat(conn, &h).map_err(db_err(&store))).await
    }

    async fn list_heartbeats(&self) -> Result<Vec<Heartbeat>> {
        let store = self.describe_path();
        self.call(move |conn| processes::heartbeats(conn).map_err(db_err(&store))).await
    }

    async fn opt_out(&self, lead: LeadId) -> Result<bool> {
        let store = self.describe_path();
        self.call(move |conn| inbound::opt_out(conn, lead, None).map_err(db_err(&store))).await
    }

    async fn opt_in(&self, lead: LeadId) -> Result<bool> {
        let store = self.describe_path();
        self.call(move |conn| {
            let n = conn.execute("DELETE FROM lead_opt_outs WHERE lead_id = ?1", [lead]).map_err(db_err(&store))?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_opt_outs(&self) -> Result<Vec<(LeadId, DateTime<Utc>)>> {
        let records = self.list_opt_out_records().await?;
        Ok(records.into_iter().map(|r| (r.lead_id, r.at)).collect())
    }

    async fn log_by_provider_id(&self, provider_message_id: &str) -> Result<Option<CommunicationLog>> {
        let (store, id) = (self.describe_path(), provider_message_id.to_string());
        self.call(move |conn| logs::by_provider_id(conn, &id).map_err(db_err(&store))).await
    }

    async fn set_log_channel(&self, send_id: &str, channel: &str) -> Result<bool> {
        let (store, send_id, channel) = (self.describe_path(), send_id.to_string(), channel.to_string());
        self.call(move |conn| inbound::set_channel(conn, &send_id, &channel).map_err(db_err(&store))).await
    }

    async fn opt_out_via(&self, lead: LeadId, source: &str) -> Result<bool> {
        let (store, source) = (self.describe_path(), source.to_string());
        self.call(move |conn| inbound::opt_out(conn, lead, Some(&source)).map_err(db_err(&store))).await
    }

    async fn list_opt_out_records(&self) -> Result<Vec<OptOutRecord>> {
        let store = self.describe_path();
        self.call(move |conn| inbound::opt_out_records(conn).map_err(db_err(&store))).await
    }

    async fn recent_opt_outs(&self, limit: usize) -> Result<Vec<OptOutRecord>> {
        let store = self.describe_path();
        self.call(move |conn| recent::opt_outs(conn, limit).map_err(db_err(&store))).await
    }

    async fn add_reply(&self, reply: &Reply) -> Result<bool> {
        let (store, reply) = (self.describe_path(), reply.clone());
        self.call(move |conn| inbound::add_reply(conn, &reply).map_err(db_err(&store))).await
    }

    async fn list_replies(&self, lead: LeadId, limit: usize) -> Result<Vec<Reply>> {
        let store = self.describe_path();
        self.call(move |conn| inbound::replies(conn, lead, limit).map_err(db_err(&store))).await
    }

    async fn sent_by_channel(&self, campaign: CampaignId) -> Result<Vec<(String, u64)>> {
        let store = self.describe_path();
        self.call(move |conn| inbound::sent_by_channel(conn, campaign).map_err(db_err(&store))).await
    }

    async fn sent_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64> {
        let (store, account) = (self.describe_path(), account.to_string());
        self.call(move |conn| inbound::sent_since(conn, &account, since).map_err(db_err(&store))).await
    }

    async fn set_channel_state(
        &self,
        account: &str,
        state: &serde_json::Value,
        updated_at: DateTime<Utc>,
    ) -> Result<()> {
        let (store, account, state) = (self.describe_path(), account.to_string(), state.to_string());
        let at = updated_at.timestamp_millis();
        self.call(move |conn| processes::set_channel_state(conn, &account, &state, at).map_err(db_err(&store))).await
    }

    async fn channel_states(&self) -> Result<Vec<ChannelStateRecord>> {
        let store = self.describe_path();
        self.call(move |conn| processes::channel_states(conn).map_err(db_err(&store))).await
    }

    async fn set_account_wait(&self, wait: &AccountWait) -> Result<()> {
        let (store, wait) = (self.describe_path(), wait.clone());
        self.call(move |conn| processes::set_account_wait(conn, &wait).map_err(db_err(&store))).await
    }

    async fn account_waits(&self) -> Result<Vec<AccountWait>> {
        let store = self.describe_path();
        self.call(move |conn| processes::account_waits(conn).map_err(db_err(&store))).await
    }

    async fn resolve_uncertain(
        &self,
        campaign: CampaignId,
        send_ids: Option<&[String]>,
        resolution: Resolution,
    ) -> Result<Vec<CommunicationLog>> {
        let (store, ids) = (self.describe_path(), send_ids.map(<[String]>::to_vec));
        self.call(move |conn| {
            logs::resolve_uncertain(conn, campaign, ids.as_deref(), resolution).map_err(db_err(&store))
        })
        .await
    }
}

#[cfg(test)]
mod tests;
