//! Bulk import into MongoDB: one lookup and a few bulk writes per batch.
//!
//! For each batch, every lead that owns one of the batch's emails or phones is fetched in one
//! `$in` query into a local view (leads by id, and which lead owns each key). Rows are then
//! applied to the view in order, with the SQLite store's rules (a row whose keys belong to two
//! leads is refused; a match is merged under the policy), so later rows see what earlier ones
//! did. The batch's new and changed leads go out in unordered `update` commands (upserts by
//! `_id`, a thousand statements each), and the view is dropped: the next batch reads the
//! database again, so memory stays flat. A dry run writes nothing and keeps its view instead
//! (it is the only record of what the run "wrote"): its memory grows with the leads it touches.
//!
//! New leads take ids from a block reserved from the `leads` counter at a batch's first new
//! lead; ids the batch did not use are given back if nobody reserved after us (a conditional
//! update), so a re-import full of updates does not leave gaps. A dry run only reads the counter.
//!
//! Limits: no transaction spans a batch. A lead changed by another process between a batch's
//! read and its write is overwritten by the import's version (last writer wins), and a key that
//! another process gave to a different lead meanwhile makes the rows of that lead conflicts.

use super::docs::{lead_doc, owners_filter};
use super::{DUPLICATE_KEY, MongoStore};
use crate::engine::error::Result;
use crate::engine::field_rules;
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::store::sqlite::{content_hash, describe_owners, lead_list};
use crate::engine::store::{ImportPlan, ImportSession, PreparedRow, RowOutcome};
use async_trait::async_trait;
use bson::doc;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Most leads whose pre-import state is remembered; past it, rows that undo each other are
/// still applied correctly but `updated_at` moves.
const MAX_ORIGINALS: usize = 500_000;
/// Values per `$in` lookup.
const KEYS_PER_LOOKUP: usize = 20_000;

/// The leads a batch works on, and who owns each of their keys.
#[derive(Default)]
struct View {
    leads: HashMap<LeadId, Lead>,
    owners: HashMap<String, LeadId>,
    /// Leads changed or created since the last write, in the order first changed.
    dirty: Vec<LeadId>,
    /// The rows (indexes into the batch's outcomes) that changed each dirty lead.
    rows: HashMap<LeadId, Vec<usize>>,
}

impl View {
    fn add(&mut self, lead: Lead) {
        for key in lead.identity_keys() {
            self.owners.entry(key).or_insert(lead.id);
        }
        self.leads.insert(lead.id, lead);
    }

    /// Replaces a lead, moving its keys.
    fn put(&mut self, lead: Lead, row: usize) {
        if let Some(old) = self.leads.get(&lead.id) {
            for key in old.identity_keys() {
                if self.owners.get(&key) == Some(&lead.id) {
                    self.owners.remove(&key);
                }
            }
        }
        if !self.rows.contains_key(&lead.id) {
            self.dirty.push(lead.id);
        }
        self.rows.entry(lead.id).or_default().push(row);
        self.add(lead);
    }
}

/// The state of a pre-existing lead before this import first changed it.
struct Original {
    content: u64,
    updated_at: DateTime<Utc>,
    rows: u64,
}

pub(super) struct MongoImport {
    store: MongoStore,
    plan: ImportPlan,
    view: View,
    /// The next id to hand out and the last id of the reserved block.
    next_id: LeadId,
    block_last: LeadId,
    /// Leads at or above this id were created by this import (or after it began).
    first_new_id: Option<LeadId>,
    originals: HashMap<LeadId, Original>,
    failed: bool,
}

impl MongoImport {
    pub(super) async fn begin(store: MongoStore, plan: ImportPlan) -> Result<MongoImport> {
        // A dry run numbers its leads after the counter without reserving anything.
        let next_id = if plan.dry_run { store.last_id("leads").await? + 1 } else { 0 };
        Ok(MongoImport {
            store,
            plan,
            view: View::default(),
            next_id,
            block_last: if plan.dry_run { LeadId::MAX } else { -1 },
            first_new_id: None,
            originals: HashMap::new(),
            failed: false,
        })
    }

    /// Reads the stored leads owning any key of `drafts` into the view (leads already in the
    /// view keep their view version).
    async fn load_owners(&mut self, drafts: &[&LeadDraft]) -> Result<()> {
        let mut emails: Vec<String> = drafts.iter().flat_map(|d| d.emails.iter().cloned()).collect();
        let mut phones: Vec<String> = drafts.iter().flat_map(|d| d.phones.iter().cloned()).collect();
        for list in [&mut emails, &mut phones] {
            list.sort_unstable();
            list.dedup();
        }
        let chunks = emails.len().max(phones.len()).div_ceil(KEYS_PER_LOOKUP);
        for i in 0..chunks {
            let part = |list: &[String]| {
                list.iter().skip(i * KEYS_PER_LOOKUP).take(KEYS_PER_LOOKUP).cloned().collect::<Vec<_>>()
            };
            let Some(filter) = owners_filter(&part(&emails), &part(&phones)) else { continue };
            for lead in self.store.find_leads(filter, doc! { "_id": 1 }, None).await? {
                if !self.view.leads.contains_key(&lead.id) {
                    self.view.add(lead);
                }
            }
        }
        Ok(())
    }

    async fn take_id(&mut self, rows_left: usize) -> Result<LeadId> {
        if self.next_id > self.block_last {
            self.next_id = self.store.reserve_ids("leads", rows_left as u64).await?;
            self.block_last = self.next_id + rows_left.max(1) as i64 - 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.first_new_id.get_or_insert(id);
        Ok(id)
    }

    async fn apply_row(
        &mut self,
        draft: LeadDraft,
        row: usize,
        rows_left: usize,
        now: DateTime<Utc>,
    ) -> Result<RowOutcome> {
        let mut owners: Vec<(String, LeadId)> = Vec::new();
        for key in draft.identity_keys() {
            if let Some(&id) = self.view.owners.get(&key) {
                owners.push((key, id));
            }
        }
        let first = owners.first().map(|(_, id)| *id);
        if owners.iter().any(|(_, id)| Some(*id) != first) {
            return Ok(RowOutcome::Conflict(format!(
                "matches more than one lead ({}); update or delete one of {}, or split the row",
                describe_owners(&owners),
                lead_list(&owners)
            )));
        }
        let Some(id) = first else {
            let id = self.take_id(rows_left).await?;
            self.view.put(draft.into_lead(id, now), row);
            return Ok(RowOutcome::Inserted(id));
        };
        let Some(old) = self.view.leads.get(&id).cloned() else {
            return Ok(RowOutcome::Conflict(format!("lead {id} disappeared during the import")));
        };
        let mut lead = old.clone();
        if !draft.apply_to(&mut lead, self.plan.policy, now) {
            return Ok(RowOutcome::Skipped(id));
        }
        if let Err(reason) = field_rules::check_merged(&old, &lead) {
            return Ok(RowOutcome::Conflict(format!("would leave lead {id} over a limit: it {reason}")));
        }
        self.remember_original(&old);
        self.view.put(lead, row);
        Ok(RowOutcome::Updated(id))
    }

    fn remember_original(&mut self, old: &Lead) {
        if self.first_new_id.is_some_and(|first| old.id >= first) {
            return;
        }
        if let Some(entry) = self.originals.get_mut(&old.id) {
            entry.rows += 1;
        } else if self.originals.len() < MAX_ORIGINALS {
            let original = Original { content: content_hash(old), updated_at: old.updated_at, rows: 1 };
            self.originals.insert(old.id, original);
        }
    }

    /// Writes the view's changed leads; the rows of a lead the database refused (a key another
    /// process took meanwhile) become conflicts.
    async fn write(&mut self, outcomes: &mut [RowOutcome]) -> Result<()> {
        let dirty = std::mem::take(&mut self.view.dirty);
        let statements = dirty
            .iter()
            .filter_map(|id| self.view.leads.get(id))
            .map(|lead| doc! { "q": { "_id": lead.id }, "u": lead_doc(lead), "upsert": true })
            .collect::<Vec<_>>();
        let refused = self.store.write_many("update", "leads", "updates", statements).await?;
        for (index, code) in refused {
            if code != DUPLICATE_KEY {
                return Err(self.store.fail(format!("the server refused to store an imported lead (code {code})")));
            }
            let Some(id) = dirty.get(index) else { continue };
            for &row in self.view.rows.get(id).map(Vec::as_slice).unwrap_or_default() {
                if let Some(outcome) = outcomes.get_mut(row) {
                    *outcome = RowOutcome::Conflict(format!(
                        "another process gave an email or phone of this row to a different lead during the import \
                         (lead {id} was not written)"
                    ));
                }
            }
            self.originals.remove(id);
        }
        self.view = View::default();
        Ok(())
    }

    async fn apply_batch(&mut self, rows: Vec<PreparedRow>) -> Result<Vec<RowOutcome>> {
        let drafts: Vec<LeadDraft> = rows.into_iter().map(|r| r.draft).collect();
        self.load_owners(&drafts.iter().collect::<Vec<_>>()).await?;
        let now = super::docs::now();
        let total = drafts.len();
        let mut outcomes = Vec::with_capacity(total);
        for (row, draft) in drafts.into_iter().enumerate() {
            outcomes.push(self.apply_row(draft, row, total - row, now).await?);
        }
        if self.plan.dry_run {
            self.view.dirty.clear();
            self.view.rows.clear();
        } else {
            self.write(&mut outcomes).await?;
            self.store.return_ids("leads", self.block_last, self.next_id - 1).await?;
            self.block_last = self.next_id - 1;
        }
        Ok(outcomes)
    }

    /// Leads changed more than once and now back to their pre-import content get their
    /// `updated_at` back; returns how many rows changed them.
    async fn restore_undone(&mut self) -> Result<u64> {
        let mut undone = 0;
        let candidates: Vec<(LeadId, Original)> = self.originals.drain().filter(|(_, o)| o.rows >= 2).collect();
        for (id, original) in candidates {
            let current = match self.view.leads.get(&id) {
                Some(lead) => Some(lead.clone()),
                None if self.plan.dry_run => None,
                None => self.store.load_lead(id).await?,
            };
            let Some(current) = current.filter(|lead| content_hash(lead) == original.content) else { continue };
            if !self.plan.dry_run {
                let filter = doc! { "_id": id, "updated_at": super::docs::to_date(&current.updated_at) };
                let restore = doc! { "$set": { "updated_at": super::docs::to_date(&original.updated_at) } };
                self.store.leads().update_one(filter, restore).await.map_err(self.store.err())?;
            }
            undone += original.rows;
        }
        Ok(undone)
    }
}

#[async_trait]
impl ImportSession for MongoImport {
    async fn apply(&mut self, rows: Vec<PreparedRow>) -> Result<Vec<RowOutcome>> {
        if self.failed {
            return Err(self.store.fail("the import already failed"));
        }
        let result = self.apply_batch(rows).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        if self.failed {
            return Ok(0);
        }
        self.restore_undone().await
    }
}
