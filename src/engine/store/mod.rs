//! The `Store` trait: everything the engine persists, behind one async interface so the
//! embedded SQLite store and a MongoDB store are interchangeable. Backends are chosen once,
//! at start-up, from a URL ([`OpenedStore::open`]), which gives both this trait and
//! [`campaigns::CampaignStore`] over one backend. Every backend passes the same conformance
//! suite (`conformance/`), written once against the traits.
//!
//! Bulk imports go through an [`ImportSession`] rather than per-lead calls: the backend keeps
//! its own dedup state across batches (an in-memory filter and one transaction per batch for
//! SQLite; `$in` lookups and bulk writes for MongoDB), which is what makes a million-row import
//! take seconds rather than minutes.

pub mod campaigns;
#[cfg(test)]
pub mod conformance;
#[cfg(feature = "mongodb")]
pub mod mongo;
mod open;
pub mod sqlite;

pub use open::{Access, OpenedStore};

use crate::engine::error::{Error, Result};
use crate::engine::lead::{ConflictPolicy, Lead, LeadDraft, LeadId};
use crate::engine::segment::{NewSegment, Rule, Segment, SegmentId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;

/// How a lead listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Id,
    Name,
    TotalSpend,
    Visits,
    CreatedAt,
    LastOrderAt,
}

/// Which leads a listing or count covers.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    /// Case-insensitive substring of the name, an email or a phone.
    pub search: Option<String>,
    pub min_spend: Option<f64>,
    pub max_spend: Option<f64>,
    /// The lead must carry every one of these tags (case-insensitive).
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LeadQuery {
    pub filter: LeadFilter,
    pub sort: SortKey,
    pub desc: bool,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// What happened to one imported row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    Inserted(LeadId),
    Updated(LeadId),
    /// Matched a stored lead and left it as it was (policy `skip`, or nothing new).
    Skipped(LeadId),
    /// Rejected: its emails/phones belong to different leads.
    Conflict(String),
}

/// Hints that let a backend size its dedup state.
#[derive(Debug, Clone, Copy)]
pub struct ImportPlan {
    pub policy: ConflictPolicy,
    pub dry_run: bool,
    pub expected_rows: Option<u64>,
}

/// A draft plus whatever per-row work its backend wanted done before the writer sees it
/// (serialization, hashing), computed on the import's worker threads.
pub struct PreparedRow {
    pub draft: LeadDraft,
    pub extra: Option<Box<dyn std::any::Any + Send>>,
}

/// Readies rows for a backend; called on many threads at once.
pub type RowPreparer = Arc<dyn Fn(LeadDraft) -> PreparedRow + Send + Sync>;

/// A preparer that does nothing, for backends with no per-row work.
pub fn plain_preparer() -> RowPreparer {
    Arc::new(|draft| PreparedRow { draft, extra: None })
}

#[async_trait]
pub trait ImportSession: Send {
    /// The per-row work to run on all cores before [`ImportSession::apply`].
    fn preparer(&self) -> RowPreparer {
        plain_preparer()
    }
    /// Applies one batch, in order: later rows see earlier ones (in-file dedup).
    async fn apply(&mut self, rows: Vec<PreparedRow>) -> Result<Vec<RowOutcome>>;
    /// Makes everything durable, or discards it all for a dry run. Returns how many rows
    /// reported as `Updated` left their lead exactly as it was before the import (a file that
    /// holds one customer twice, imported again: the rows undo each other), which the report
    /// then counts as skipped.
    async fn finish(self: Box<Self>) -> Result<u64>;
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Where this store lives, for messages (`sqlite:/home/me/.local/share/crm/crm.db`).
    fn describe(&self) -> String;

    async fn begin_import(&self, plan: ImportPlan) -> Result<Box<dyn ImportSession>>;
    /// Inserts a new lead; `Error::Conflict` when an email or phone already belongs to one.
    async fn add_lead(&self, draft: LeadDraft) -> Result<Lead>;
    async fn get_lead(&self, id: LeadId) -> Result<Option<Lead>>;
    /// The lead owning an identity key (`e:ada@example.com`, `p:+447700900123`).
    async fn find_lead_by_key(&self, key: &str) -> Result<Option<Lead>>;
    /// Replaces a stored lead; `Error::Conflict` when a new email/phone belongs to another lead.
    async fn save_lead(&self, lead: &Lead) -> Result<()>;
    async fn delete_lead(&self, id: LeadId) -> Result<bool>;
    async fn list_leads(&self, query: &LeadQuery) -> Result<Vec<Lead>>;
    async fn count_leads(&self, filter: &LeadFilter) -> Result<u64>;
    /// Leads with id > `after`, by id, at most `limit`: a stable cursor for exports.
    async fn scan_leads(&self, after: LeadId, limit: usize) -> Result<Vec<Lead>>;
    /// Every metadata key in use, sorted.
    async fn metadata_keys(&self) -> Result<Vec<String>>;

    // Segments: saved rules. Names are unique ignoring case. Rules reach a store validated and
    // are validated again when read back; `now` pins relative dates ("30 days ago") for a call.

    /// Saves a new segment; `Error::Conflict` when another one has the name (ignoring case).
    async fn create_segment(&self, segment: NewSegment) -> Result<Segment>;
    async fn get_segment(&self, id: SegmentId) -> Result<Option<Segment>>;
    /// The segment with this name, ignoring case.
    async fn get_segment_by_name(&self, name: &str) -> Result<Option<Segment>>;
    /// Every segment, by id.
    async fn list_segments(&self) -> Result<Vec<Segment>>;
    /// Replaces a stored segment's name, owner, rule and `updated_at`; `Error::NotFound` when
    /// it is gone, `Error::Conflict` when the new name is taken.
    async fn update_segment(&self, segment: &Segment) -> Result<()>;
    /// Deletes a segment (false when there was none); `Error::Conflict` while
    /// [`Store::campaigns_using_segment`] names any campaign.
    async fn delete_segment(&self, id: SegmentId) -> Result<bool>;
    /// The RUNNING or PAUSED campaigns whose audience is this segment, described for an
    /// operator ("campaign 7 'Spring sale' (RUNNING)"); such a segment must not be deleted.
    /// Campaigns are not stored yet: until they are, the SQLite store consults a `campaigns`
    /// table only if one exists (and creates none), so this is empty on today's stores.
    async fn campaigns_using_segment(&self, id: SegmentId) -> Result<Vec<String>>;
    /// How many leads match `rule`.
    async fn count_matching(&self, rule: &Rule, now: DateTime<Utc>) -> Result<u64>;
    /// How many leads match each rule, in one pass over the leads (for `segments list`).
    async fn count_matching_each(&self, rules: &[Rule], now: DateTime<Utc>) -> Result<Vec<u64>>;
    /// The first `limit` matching leads, by id.
    async fn sample_matching(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<Lead>>;
    /// Matching leads with id > `after`, by id, at most `limit`: a stable cursor for exports
    /// (keep `now` the same for every page).
    async fn scan_matching(&self, rule: &Rule, now: DateTime<Utc>, after: LeadId, limit: usize) -> Result<Vec<Lead>>;
    /// The backend's queries for `count_matching` and `sample_matching` and how it runs them.
    async fn explain_matching(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<QueryPlan>>;
}

/// One backend query and the backend's plan for it, for `segments preview --explain`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryPlan {
    /// What the query is for (`count`, `sample`).
    pub purpose: String,
    pub query: String,
    /// The bound parameters in order (`?1` first), as SQL literals.
    pub params: Vec<String>,
    /// The plan, one step a line, indented under its parent step.
    pub plan: Vec<String>,
}

/// Where a store URL points.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    MongoDb(String),
}

/// Parses `sqlite:PATH`, `sqlite://PATH`, a bare path, or `mongodb://…`.
pub fn parse_store_url(url: &str) -> Result<StoreLocation> {
    let url = url.trim();
    if url.is_empty() {
        return Err(Error::Usage("the store URL is empty; give a path or sqlite:PATH".into()));
    }
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        return Ok(StoreLocation::MongoDb(url.to_string()));
    }
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err(Error::Usage("sqlite: needs a file path, e.g. sqlite:./crm.db".into()));
        }
        return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(Error::Usage(format!(
            "unknown store scheme '{scheme}://'; expected a path, sqlite:PATH or mongodb://HOST"
        )));
    }
    Ok(StoreLocation::Sqlite(PathBuf::from(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(parse_store_url("crm.db").ok(), Some(StoreLocation::Sqlite("crm.db".into())));
        assert_eq!(parse_store_url("sqlite:/tmp/a.db").ok(), Some(StoreLocation::Sqlite("/tmp/a.db".into())));
        assert_eq!(parse_store_url("sqlite:///tmp/a.db").ok(), Some(StoreLocation::Sqlite("/tmp/a.db".into())));
        assert!(matches!(parse_store_url("mongodb://h:27017/crm"), Ok(StoreLocation::MongoDb(_))));
        assert!(parse_store_url("postgres://x").is_err());
        assert!(parse_store_url("sqlite:").is_err());
    }
}
