//! Segment operations: create, update, delete, find, preview, list with counts, export. Relative
//! dates in rules ("30 days ago") are resolved when each operation runs.

use super::App;
use super::leads::ExportTarget;
use crate::engine::audience::{self, Preview};
use crate::engine::error::{Error, Result};
use crate::engine::segment::{NewSegment, Rule, Segment, check_name};
use crate::engine::store::QueryPlan;
use chrono::Utc;
use tracing::info;

/// What `update_segment` changes (`None`: leave as it is).
#[derive(Debug, Clone, Default)]
pub struct SegmentChange {
    pub rule: Option<Rule>,
    pub name: Option<String>,
    /// `Some("")` clears the owner.
    pub owner: Option<String>,
}

/// A segment with how many leads it matches now.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct CountedSegment {
    #[serde(flatten)]
    pub segment: Segment,
    pub count: u64,
}

/// A preview and, when asked for, the backend's queries behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedPreview {
    pub preview: Preview,
    pub plans: Vec<QueryPlan>,
}

fn owner(owner: Option<String>) -> Option<String> {
    owner.map(|o| o.trim().to_string()).filter(|o| !o.is_empty())
}

impl App {
    /// Saves a rule under a name (unique ignoring case; not all digits, which would read as an id).
    pub async fn create_segment(&self, name: &str, rule: Rule, owner_user_id: Option<String>) -> Result<Segment> {
        let name = check_name(name).map_err(Error::Usage)?;
        let new = NewSegment { name, owner_user_id: owner(owner_user_id), rule };
        let segment = self.leads_store().create_segment(new).await?;
        info!(segment = segment.id, name = %segment.name, "Segment saved.");
        Ok(segment)
    }

    /// The segment a person named: an id (digits only) or a name, ignoring case.
    pub async fn find_segment(&self, reference: &str) -> Result<Segment> {
        audience::find_segment(self.leads_store(), reference).await
    }

    /// Changes a segment; returns it and whether anything changed.
    pub async fn update_segment(&self, reference: &str, change: SegmentChange) -> Result<(Segment, bool)> {
        let name = change.name.as_deref().map(check_name).transpose().map_err(Error::Usage)?;
        let mut segment = self.find_segment(reference).await?;
        let before = segment.clone();
        if let Some(rule) = change.rule {
            segment.rule_ast = rule;
        }
        if let Some(name) = name {
            segment.name = name;
        }
        if change.owner.is_some() {
            segment.owner_user_id = owner(change.owner);
        }
        let changed = segment != before;
        if changed {
            segment.updated_at = Utc::now();
            self.leads_store().update_segment(&segment).await?;
        }
        info!(segment = segment.id, changed, "Segment updated.");
        Ok((segment, changed))
    }

    /// Deletes a segment (refused while a running or paused campaign uses it); returns it.
    pub async fn delete_segment(&self, reference: &str) -> Result<Segment> {
        let segment = self.find_segment(reference).await?;
        self.leads_store().delete_segment(segment.id).await?;
        info!(segment = segment.id, "Segment deleted.");
        Ok(segment)
    }

    /// Checks a rule's fields against the data: a likely typo of a field or metadata key is
    /// refused with "did you mean …" (as a usage error); the warnings returned name metadata
    /// keys no lead has, for the front end to show.
    pub async fn check_rule_fields(&self, rule: &Rule) -> Result<Vec<String>> {
        let advice = audience::check_fields(self.leads_store(), rule, Utc::now()).await?;
        let refused: Vec<&str> = advice.iter().filter(|a| a.refuse).map(|a| a.message.as_str()).collect();
        if !refused.is_empty() {
            return Err(Error::Usage(format!("the rule: {}", refused.join("; "))));
        }
        Ok(advice.into_iter().map(|a| a.message).collect())
    }

    /// How many leads `rule` matches now.
    pub async fn count_matching(&self, rule: &Rule) -> Result<u64> {
        self.leads_store().count_matching(rule, Utc::now()).await
    }

    /// How many leads `rule` matches and the first `sample` of them by id; with `explain`, the
    /// backend's queries and plans too.
    pub async fn preview_rule(&self, rule: &Rule, sample: usize, explain: bool) -> Result<ExplainedPreview> {
        let store = self.leads_store();
        let now = Utc::now();
        let preview = audience::preview(store, rule, now, sample).await?;
        info!(matches = preview.count, sample, "Rule previewed.");
        let mut plans = if explain { store.explain_matching(rule, now, sample).await? } else { Vec::new() };
        // No sample, no sample query to explain.
        plans.retain(|plan| sample > 0 || plan.purpose != "sample");
        Ok(ExplainedPreview { preview, plans })
    }

    /// Every segment, by id, with its audience size now (one pass over the leads).
    pub async fn list_segments(&self) -> Result<Vec<CountedSegment>> {
        let store = self.leads_store();
        let segments = store.list_segments().await?;
        let rules: Vec<Rule> = segments.iter().map(|s| s.rule_ast.clone()).collect();
        let counts = store.count_matching_each(&rules, Utc::now()).await?;
        Ok(segments.into_iter().zip(counts).map(|(segment, count)| CountedSegment { segment, count }).collect())
    }

    /// Writes a segment's leads as CSV (the lead export format); returns the segment and how
    /// many leads were written.
    pub async fn export_segment(&self, reference: &str, target: ExportTarget<'_>) -> Result<(Segment, u64)> {
        let segment = self.find_segment(reference).await?;
        let (store, rule, now) = (self.leads_store(), &segment.rule_ast, Utc::now());
        let n = self
            .write_export(target, async |out: &mut dyn std::io::Write, name: &str| {
                audience::export_csv(store, rule, now, out, name).await
            })
            .await?;
        Ok((segment, n))
    }
}
