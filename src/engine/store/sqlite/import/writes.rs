//! How the import's writer writes: new leads in multi-row INSERTs, staged keys in hash order,
//! search groups, rewrites of stored leads, and the undo bookkeeping that lets rows which
//! cancel each other out leave `updated_at` alone.

use super::sql::{ROWS_PER_INSERT, insert_keys_sql, power_of_two_chunks};
use super::*;

impl State {
    pub(super) fn insert_new(
        &mut self,
        d: &mut LeadDraft,
        ready: &Ready,
        now: chrono::DateTime<Utc>,
    ) -> rusqlite::Result<LeadId> {
        let id = self.next_id;
        self.next_id += 1;
        self.put_search(id, ready.column(TEXT))?;
        let mut json = [Span::default(); 4];
        for (column, span) in [EMAILS, PHONES, TAGS, METADATA].into_iter().zip(&mut json) {
            *span = Span::written(&mut self.pending_json, |b| b.push_str(ready.column(column)));
        }
        self.pending.push(NewRow {
            id,
            name: d.name.take().unwrap_or_default(),
            json,
            total_spend: d.total_spend.unwrap_or(0.0),
            visits: d.visits.unwrap_or(0),
            last_order_at: d.last_order_at.as_ref().map(to_ms),
            created_at: to_ms(&d.created_at.unwrap_or(now)),
            updated_at: to_ms(&now),
        });
        if self.pending.len() >= ROWS_PER_INSERT {
            self.flush_pending()?;
        }
        Ok(id)
    }

    /// Writes buffered new leads. Must run before anything reads `leads`.
    pub(super) fn flush_pending(&mut self) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        for chunk in power_of_two_chunks(&rows, ROWS_PER_INSERT) {
            self.inserts.insert(chunk, &self.pending_json)?;
        }
        self.pending = Vec::with_capacity(ROWS_PER_INSERT);
        self.pending_json.clear();
        self.trash.rows.push(rows);
        Ok(())
    }

    pub(super) fn write_keys(&self, keys: &[(i64, LeadId)]) -> rusqlite::Result<()> {
        for chunk in power_of_two_chunks(keys, ROWS_PER_INSERT * 4) {
            let mut stmt = self.conn.prepare_cached(&insert_keys_sql(chunk.len()))?;
            for (i, (hash, id)) in chunk.iter().enumerate() {
                stmt.raw_bind_parameter(2 * i + 1, hash)?;
                stmt.raw_bind_parameter(2 * i + 2, id)?;
            }
            stmt.raw_execute()?;
        }
        Ok(())
    }

    /// Writes a lead's search record through the open group.
    pub(super) fn put_search(&mut self, id: LeadId, text: &str) -> rusqlite::Result<()> {
        let grp = search::group_of(id);
        if self.group.grp != Some(grp) {
            if self.group.grp.is_some_and(|open| grp < open) {
                // An update to an older lead: edit its group in place, keep appending here.
                return search::set_record(&self.conn, id, Some(text));
            }
            self.close_group()?;
            let body = search::load_group(&self.conn, grp)?;
            self.group = OpenGroup { grp: Some(grp), last_id: search::last_id(&body).unwrap_or(0), body };
        }
        if id > self.group.last_id {
            search::push_record(&mut self.group.body, id, text);
            self.group.last_id = id;
        } else {
            self.group.body = search::with_record(&self.group.body, id, Some(text));
        }
        Ok(())
    }

    pub(super) fn close_group(&mut self) -> rusqlite::Result<()> {
        let group = std::mem::take(&mut self.group);
        match group.grp {
            Some(grp) => search::store_group(&self.conn, grp, &group.body),
            None => Ok(()),
        }
    }

    pub(super) fn rewrite(&mut self, old: &Lead, lead: &Lead) -> rusqlite::Result<()> {
        update_lead_columns(&self.conn, lead)?;
        self.put_search(lead.id, &search::search_text(lead))?;
        let (old_keys, new_keys) = (old.identity_keys(), lead.identity_keys());
        for key in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            self.remove_key(key, lead.id)?;
        }
        for key in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            self.add_key(key, key_hash(key), lead.id)?;
        }
        Ok(())
    }

    /// Notes the state of a pre-existing lead before this import first updates it.
    pub(super) fn remember_original(&mut self, old: &Lead) {
        if self.first_new_id.is_some_and(|first| old.id >= first) {
            return;
        }
        if let Some(entry) = self.originals.get_mut(&old.id) {
            entry.2 += 1;
        } else if self.originals.len() < MAX_ORIGINALS {
            self.originals.insert(old.id, (content_hash(old), to_ms(&old.updated_at), 1));
        }
    }

    /// Leads updated more than once and now back to their pre-import content get their
    /// `updated_at` back: the import changed nothing about them.
    pub(super) fn restore_undone(&mut self) -> rusqlite::Result<()> {
        let candidates: Vec<(LeadId, u64, i64, u32)> =
            self.originals.iter().filter(|(_, v)| v.2 >= 2).map(|(id, v)| (*id, v.0, v.1, v.2)).collect();
        for (id, hash, updated_at, rows) in candidates {
            let Some(lead) = load_lead(&self.conn, id)? else { continue };
            if content_hash(&lead) == hash {
                self.conn
                    .prepare_cached("UPDATE leads SET updated_at = ?2 WHERE id = ?1")?
                    .execute(params![id, updated_at])?;
                self.net_unchanged += u64::from(rows);
                self.originals.remove(&id);
            }
        }
        Ok(())
    }
}
