//! Leads in MongoDB and the `Store` implementation (segment bodies are in `segments.rs`).
//!
//! An email or phone belongs to one lead: a write first looks up who owns the lead's keys
//! (one `$in` query) and refuses a key owned by another lead; the unique `emails` and `phones`
//! indexes refuse whatever a concurrent writer slipped in between, also as a conflict.

use super::docs::{self, key_filter, lead_doc, lead_from_doc, owners_filter, owners_in};
use super::{MongoStore, collect, is_duplicate};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadDraft, LeadId};
use crate::engine::segment::{NewSegment, Rule, Segment, SegmentId};
use crate::engine::store::sqlite::describe_owners;
use crate::engine::store::sqlite::normalize_search_term;
use crate::engine::store::{ImportPlan, ImportSession, LeadFilter, LeadQuery, QueryPlan, SortKey, Store};
use async_trait::async_trait;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};

/// A `$regex` matching `text` exactly, ignoring case.
pub(super) fn exact_ignoring_case(text: &str) -> Bson {
    Bson::RegularExpression(bson::Regex { pattern: format!("\\A{}\\z", regex::escape(text)), options: "i".into() })
}

/// The filter for a listing's filter (search, spend bounds, tags).
fn lead_filter(filter: &LeadFilter) -> Document {
    let mut all = Vec::new();
    if let Some(term) = filter.search.as_deref().map(normalize_search_term).filter(|t| !t.is_empty()) {
        let pattern = bson::Regex { pattern: regex::escape(&term), options: String::new() };
        all.push(doc! { "search": Bson::RegularExpression(pattern) });
    }
    let mut spend = Document::new();
    if let Some(min) = filter.min_spend {
        spend.insert("$gte", min);
    }
    if let Some(max) = filter.max_spend {
        spend.insert("$lte", max);
    }
    if !spend.is_empty() {
        all.push(doc! { "total_spend": spend });
    }
    for tag in &filter.tags {
        all.push(doc! { "tags": exact_ignoring_case(tag) });
    }
    if all.is_empty() {
        Document::new()
    } else {
        doc! { "$and": all }
    }
}

fn sort_field(sort: SortKey) -> &'static str {
    match sort {
        SortKey::Id => "_id",
        SortKey::Name => "name_key",
        SortKey::TotalSpend => "total_spend",
        SortKey::Visits => "visits",
        SortKey::CreatedAt => "created_at",
        SortKey::LastOrderAt => "last_order_at",
    }
}

impl MongoStore {
    pub(super) fn leads(&self) -> mongodb::Collection<Document> {
        self.coll("leads")
    }

    /// Leads from documents, refusing one crm cannot read.
    pub(super) fn to_leads(&self, found: Vec<Document>) -> Result<Vec<Lead>> {
        found
            .iter()
            .map(|d| lead_from_doc(d).map_err(|e| self.fail(format!("a stored lead cannot be read: {e}"))))
            .collect()
    }

    pub(super) async fn find_leads(&self, filter: Document, sort: Document, limit: Option<usize>) -> Result<Vec<Lead>> {
        if limit == Some(0) {
            return Ok(Vec::new()); // MongoDB reads a limit of 0 as "no limit".
        }
        let leads = self.leads();
        let mut find = leads.find(filter).sort(sort);
        if let Some(limit) = limit {
            find = find.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let cursor = find.await.map_err(self.err())?;
        self.to_leads(collect(cursor).await.map_err(self.err())?)
    }

    /// Who owns `keys` among stored leads (other than `except`), in the order of `keys`.
    async fn owners(
        &self,
        emails: &[String],
        phones: &[String],
        except: Option<LeadId>,
    ) -> Result<Vec<(String, LeadId)>> {
        let Some(filter) = owners_filter(emails, phones) else { return Ok(Vec::new()) };
        let found = self.find_leads(filter, doc! { "_id": 1 }, None).await?;
        let keys =
            crate::engine::lead::LeadDraft { emails: emails.to_vec(), phones: phones.to_vec(), ..LeadDraft::default() }
                .identity_keys();
        Ok(owners_in(&keys, &found, except))
    }

    pub(super) async fn load_lead(&self, id: LeadId) -> Result<Option<Lead>> {
        let found = self.leads().find_one(doc! { "_id": id }).await.map_err(self.err())?;
        found.map(|d| self.to_leads(vec![d]).map(|mut l| l.remove(0))).transpose()
    }

    /// Lists by a sort key that may be missing (`last_order_at`): missing values go last in
    /// both directions, as on SQLite, which a plain `sort` cannot do.
    async fn list_missing_last(&self, filter: Document, query: &LeadQuery, limit: Option<i64>) -> Result<Vec<Lead>> {
        let field = sort_field(query.sort);
        let dir = if query.desc { -1 } else { 1 };
        let mut pipeline = vec![
            doc! { "$match": filter },
            doc! { "$addFields": { "_missing": { "$eq": [{ "$ifNull": [format!("${field}"), Bson::Null] }, Bson::Null] } } },
            doc! { "$sort": { "_missing": 1, field: dir, "_id": dir } },
            doc! { "$skip": i64::try_from(query.offset).unwrap_or(i64::MAX) },
        ];
        if let Some(limit) = limit {
            pipeline.push(doc! { "$limit": limit });
        }
        pipeline.push(doc! { "$project": { "_missing": 0 } });
        let cursor = self.leads().aggregate(pipeline).await.map_err(self.err())?;
        self.to_leads(collect(cursor).await.map_err(self.err())?)
    }
}

#[async_trait]
impl Store for MongoStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn begin_import(&self, plan: ImportPlan) -> Result<Box<dyn ImportSession>> {
        Ok(Box::new(super::import::MongoImport::begin(self.clone(), plan).await?))
    }

    async fn add_lead(&self, draft: LeadDraft) -> Result<Lead> {
        let owners = self.owners(&draft.emails, &draft.phones, None).await?;
        if !owners.is_empty() {
            return Err(Error::Conflict(format!("a lead with these details exists: {}", describe_owners(&owners))));
        }
        let mut lead = draft.into_lead(0, docs::now());
        lead.id = self.reserve_ids("leads", 1).await?;
        match self.leads().insert_one(lead_doc(&lead)).await {
            Ok(_) => Ok(lead),
            Err(e) if is_duplicate(&e) => {
                Err(Error::Conflict("another process just gave one of these emails or phones to a lead".into()))
            }
            Err(e) => Err(self.err()(e)),
        }
    }

    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>> {
        self.load_lead(id).await
    }

    async fn find_lead_by_key(&self, key: &str) -> Result<Option<Lead>> {
        let Some(filter) = key_filter(key) else { return Ok(None) };
        let found = self.leads().find_one(filter).await.map_err(self.err())?;
        found.map(|d| self.to_leads(vec![d]).map(|mut l| l.remove(0))).transpose()
    }

    async fn save_lead(&self, lead: &Lead) -> Result<()> {
        if self.load_lead(lead.id).await?.is_none() {
            return Err(Error::NotFound(format!("no lead with id {}", lead.id)));
        }
        let owners = self.owners(&lead.emails, &lead.phones, Some(lead.id)).await?;
        if !owners.is_empty() {
            return Err(Error::Conflict(format!("cannot update lead {}: {}", lead.id, describe_owners(&owners))));
        }
        match self.leads().replace_one(doc! { "_id": lead.id }, lead_doc(lead)).await {
            Ok(r) if r.matched_count == 0 => Err(Error::NotFound(format!("no lead with id {}", lead.id))),
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Err(Error::Conflict(format!(
                "cannot update lead {}: another process just gave one of its emails or phones to a lead",
                lead.id
            ))),
            Err(e) => Err(self.err()(e)),
        }
    }

    async fn delete_lead(&self, id: LeadId) -> Result<bool> {
        let result = self.leads().delete_one(doc! { "_id": id }).await.map_err(self.err())?;
        Ok(result.deleted_count > 0)
    }

    async fn list_leads(&self, query: &LeadQuery) -> Result<Vec<Lead>> {
        if query.limit == Some(0) {
            return Ok(Vec::new());
        }
        let filter = lead_filter(&query.filter);
        let limit = query.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        if query.sort == SortKey::LastOrderAt {
            return self.list_missing_last(filter, query, limit).await;
        }
        let dir = if query.desc { -1 } else { 1 };
        let field = sort_field(query.sort);
        let sort = if field == "_id" {
            doc! { "_id": dir }
        } else {
            doc! { field: dir, "_id": dir }
        };
        let leads = self.leads();
        let mut find = leads.find(filter).sort(sort).skip(u64::try_from(query.offset).unwrap_or(u64::MAX));
        if let Some(limit) = limit {
            find = find.limit(limit);
        }
        let cursor = find.await.map_err(self.err())?;
        self.to_leads(collect(cursor).await.map_err(self.err())?)
    }

    async fn count_leads(&self, filter: &LeadFilter) -> Result<u64> {
        self.leads().count_documents(lead_filter(filter)).await.map_err(self.err())
    }

    async fn scan_leads(&self, after: LeadId, limit: usize) -> Result<Vec<Lead>> {
        self.find_leads(doc! { "_id": { "$gt": after } }, doc! { "_id": 1 }, Some(limit)).await
    }

    async fn metadata_keys(&self) -> Result<Vec<String>> {
        let pipeline = [
            doc! { "$project": { "k": { "$objectToArray": { "$ifNull": ["$metadata", {}] } } } },
            doc! { "$unwind": "$k" },
            doc! { "$group": { "_id": "$k.k" } },
        ];
        let cursor = self.leads().aggregate(pipeline).await.map_err(self.err())?;
        let found = collect(cursor).await.map_err(self.err())?;
        let mut keys: Vec<String> = found.iter().filter_map(|d| d.get_str("_id").ok()).map(docs::decode_key).collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    // Segments: the bodies are in segments.rs.

    async fn create_segment(&self, segment: NewSegment) -> Result<Segment> {
        self.insert_segment(segment).await
    }

    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>> {
        self.load_segment(doc! { "_id": id }).await
    }

    async fn get_segment_by_name(&self, name: &str) -> Result<Option<Segment>> {
        self.load_segment(doc! { "name_key": crate::engine::segment::name_key(name) }).await
    }

    async fn list_segments(&self) -> Result<Vec<Segment>> {
        self.load_segments().await
    }

    async fn update_segment(&self, segment: &Segment) -> Result<()> {
        self.rewrite_segment(segment).await
    }

    async fn delete_segment(&self, id: SegmentId) -> Result<bool> {
        self.remove_segment(id).await
    }

    async fn campaigns_using_segment(&self, id: SegmentId) -> Result<Vec<String>> {
        self.active_campaigns(id).await
    }

    async fn count_matching(&self, rule: &Rule, now: DateTime<Utc>) -> Result<u64> {
        self.count_rule(rule, now).await
    }

    async fn count_matching_each(&self, rules: &[Rule], now: DateTime<Utc>) -> Result<Vec<u64>> {
        let mut counts = Vec::with_capacity(rules.len());
        for rule in rules {
            counts.push(self.count_rule(rule, now).await?);
        }
        Ok(counts)
    }

    async fn sample_matching(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<Lead>> {
        self.scan_rule(rule, now, None, limit).await
    }

    async fn scan_matching(&self, rule: &Rule, now: DateTime<Utc>, after: LeadId, limit: usize) -> Result<Vec<Lead>> {
        self.scan_rule(rule, now, Some(after), limit).await
    }

    async fn explain_matching(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<QueryPlan>> {
        self.explain_rule(rule, now, limit).await
    }
}
