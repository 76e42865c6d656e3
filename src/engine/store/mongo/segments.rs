//! Segments in MongoDB, and counting, sampling and scanning the leads a rule matches.
//!
//! A rule runs on the server as the filter `segment::mongo::to_filter` renders. A segment's
//! `rule_ast` is stored as the rule's JSON shape (a native document, readable in any MongoDB
//! tool) and validated again when read back. Names are unique ignoring case through the
//! unique `name_key` index.

use super::docs::{date, int, opt_bson, opt_text, text, to_date};
use super::{MongoStore, collect, docs, is_duplicate};
use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadId};
use crate::engine::segment::mongo::to_filter;
use crate::engine::segment::{NewSegment, Rule, Segment, SegmentId, name_key};
use crate::engine::store::QueryPlan;
use bson::{Bson, Document, doc};
use chrono::{DateTime, Utc};

/// The rule's JSON shape as a BSON document.
fn rule_doc(rule: &Rule) -> Result<Bson, String> {
    let value: serde_json::Value = serde_json::from_str(&rule.to_json()).map_err(|e| e.to_string())?;
    bson::to_bson(&value).map_err(|e| e.to_string())
}

fn rule_from_bson(value: &Bson) -> Result<Rule, String> {
    let json = value.clone().into_relaxed_extjson().to_string();
    Rule::from_json(&json).map_err(|e| e.to_string())
}

fn segment_from_doc(d: &Document) -> Result<Segment, String> {
    let id = int(d, "_id");
    let rule_ast = rule_from_bson(d.get("rule_ast").unwrap_or(&Bson::Null))
        .map_err(|e| format!("the rule of segment {id} is not valid: {e}"))?;
    let created_at = date(d, "created_at").ok_or_else(|| format!("segment {id} has no created_at date"))?;
    Ok(Segment {
        id,
        name: text(d, "name"),
        owner_user_id: opt_text(d, "owner_user_id"),
        rule_ast,
        created_at,
        updated_at: date(d, "updated_at").unwrap_or(created_at),
    })
}

fn name_taken(id: SegmentId, taken: &str) -> Error {
    Error::Conflict(format!("segment {id} is already named '{taken}' (names ignore case); pick another name"))
}

impl MongoStore {
    fn segments(&self) -> mongodb::Collection<Document> {
        self.coll("segments")
    }

    fn to_segment(&self, d: &Document) -> Result<Segment> {
        segment_from_doc(d).map_err(|e| self.fail(format!("a stored segment cannot be read: {e}")))
    }

    /// `Error::Conflict` when a segment other than `except` has `name` (ignoring case).
    async fn refuse_taken_name(&self, name: &str, except: Option<SegmentId>) -> Result<()> {
        let owner = self.segments().find_one(doc! { "name_key": name_key(name) }).await.map_err(self.err())?;
        match owner {
            Some(d) if Some(int(&d, "_id")) != except => Err(name_taken(int(&d, "_id"), &text(&d, "name"))),
            _ => Ok(()),
        }
    }

    pub(super) async fn insert_segment(&self, new: NewSegment) -> Result<Segment> {
        self.refuse_taken_name(&new.name, None).await?;
        let rule = rule_doc(&new.rule).map_err(|e| self.fail(format!("the rule cannot be stored: {e}")))?;
        let now = docs::now();
        let id = self.reserve_ids("segments", 1).await?;
        let d = doc! {
            "_id": id,
            "name": &new.name,
            "name_key": name_key(&new.name),
            "owner_user_id": opt_bson(new.owner_user_id.as_deref()),
            "rule_ast": rule,
            "created_at": to_date(&now),
            "updated_at": to_date(&now),
        };
        match self.segments().insert_one(d).await {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => {
                return Err(Error::Conflict(format!(
                    "a segment named '{}' was just created; pick another name",
                    new.name
                )));
            }
            Err(e) => return Err(self.err()(e)),
        }
        let NewSegment { name, owner_user_id, rule } = new;
        Ok(Segment { id, name, owner_user_id, rule_ast: rule, created_at: now, updated_at: now })
    }

    pub(super) async fn load_segment(&self, filter: Document) -> Result<Option<Segment>> {
        let found = self.segments().find_one(filter).await.map_err(self.err())?;
        found.map(|d| self.to_segment(&d)).transpose()
    }

    pub(super) async fn load_segments(&self) -> Result<Vec<Segment>> {
        let cursor = self.segments().find(doc! {}).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        let found = collect(cursor).await.map_err(self.err())?;
        found.iter().map(|d| self.to_segment(d)).collect()
    }

    pub(super) async fn rewrite_segment(&self, segment: &Segment) -> Result<()> {
        let missing = || Error::NotFound(format!("no segment with id {}", segment.id));
        if self.segments().find_one(doc! { "_id": segment.id }).await.map_err(self.err())?.is_none() {
            return Err(missing());
        }
        self.refuse_taken_name(&segment.name, Some(segment.id)).await?;
        let rule = rule_doc(&segment.rule_ast).map_err(|e| self.fail(format!("the rule cannot be stored: {e}")))?;
        let change = doc! { "$set": {
            "name": &segment.name,
            "name_key": name_key(&segment.name),
            "owner_user_id": opt_bson(segment.owner_user_id.as_deref()),
            "rule_ast": rule,
            "updated_at": to_date(&segment.updated_at),
        } };
        match self.segments().update_one(doc! { "_id": segment.id }, change).await {
            Ok(r) if r.matched_count == 0 => Err(missing()),
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => {
                Err(Error::Conflict(format!("a segment named '{}' was just created; pick another name", segment.name)))
            }
            Err(e) => Err(self.err()(e)),
        }
    }

    pub(super) async fn remove_segment(&self, id: SegmentId) -> Result<bool> {
        let users = self.active_campaigns(id).await?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "segment {id} is the audience of {}; delete it once the campaign has finished or been cancelled",
                users.join(", ")
            )));
        }
        let result = self.segments().delete_one(doc! { "_id": id }).await.map_err(self.err())?;
        Ok(result.deleted_count > 0)
    }

    /// Campaigns RUNNING or PAUSED on segment `id`, described for an operator.
    pub(super) async fn active_campaigns(&self, id: SegmentId) -> Result<Vec<String>> {
        let filter = doc! { "segment_id": id, "status": { "$in": ["RUNNING", "PAUSED"] } };
        let cursor = self.coll("campaigns").find(filter).sort(doc! { "_id": 1 }).await.map_err(self.err())?;
        let found = collect(cursor).await.map_err(self.err())?;
        Ok(found
            .iter()
            .map(|d| format!("campaign {} '{}' ({})", int(d, "_id"), text(d, "name"), text(d, "status")))
            .collect())
    }

    pub(super) async fn count_rule(&self, rule: &Rule, now: DateTime<Utc>) -> Result<u64> {
        self.leads().count_documents(to_filter(rule, now)).await.map_err(self.err())
    }

    /// Matching leads by id, after `after` when given, at most `limit`.
    pub(super) async fn scan_rule(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        after: Option<LeadId>,
        limit: usize,
    ) -> Result<Vec<Lead>> {
        self.find_leads(rule_after(rule, now, after), doc! { "_id": 1 }, Some(limit)).await
    }

    /// Ids only, for the campaign expander.
    pub(super) async fn scan_rule_ids(
        &self,
        rule: &Rule,
        now: DateTime<Utc>,
        after: LeadId,
        limit: usize,
    ) -> Result<Vec<LeadId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cursor = self
            .leads()
            .find(rule_after(rule, now, Some(after)))
            .sort(doc! { "_id": 1 })
            .projection(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(self.err())?;
        Ok(collect(cursor).await.map_err(self.err())?.iter().map(|d| int(d, "_id")).collect())
    }

    pub(super) async fn explain_rule(&self, rule: &Rule, now: DateTime<Utc>, limit: usize) -> Result<Vec<QueryPlan>> {
        let filter = to_filter(rule, now);
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let queries = [
            ("count", doc! { "count": "leads", "query": filter.clone() }),
            ("sample", doc! { "find": "leads", "filter": filter, "sort": { "_id": 1 }, "limit": limit }),
        ];
        let mut plans = Vec::new();
        for (purpose, command) in queries {
            let explain = doc! { "explain": command.clone(), "verbosity": "queryPlanner" };
            let reply = self.db.run_command(explain).await.map_err(self.err())?;
            let mut plan = Vec::new();
            if let Ok(winning) = reply.get_document("queryPlanner").and_then(|p| p.get_document("winningPlan")) {
                describe_stage(winning, 0, &mut plan);
            }
            if plan.is_empty() {
                plan.push("(the server described no plan)".into());
            }
            let query = Bson::Document(command).into_relaxed_extjson().to_string();
            plans.push(QueryPlan { purpose: purpose.into(), query, params: Vec::new(), plan });
        }
        Ok(plans)
    }
}

/// The rule's filter, for ids after `after` when given.
fn rule_after(rule: &Rule, now: DateTime<Utc>, after: Option<LeadId>) -> Document {
    let filter = to_filter(rule, now);
    match after {
        Some(after) => doc! { "$and": [{ "_id": { "$gt": after } }, filter] },
        None => filter,
    }
}

/// One line per plan stage (`IXSCAN total_spend_1`), children indented under their parent.
fn describe_stage(stage: &Document, depth: usize, out: &mut Vec<String>) {
    // A plan may be nested one level down (`queryPlan` in newer servers' slot-based plans).
    let stage = stage.get_document("queryPlan").unwrap_or(stage);
    let mut line = format!("{}{}", "  ".repeat(depth), stage.get_str("stage").unwrap_or("?"));
    if let Ok(index) = stage.get_str("indexName") {
        line.push(' ');
        line.push_str(index);
    }
    out.push(line);
    if let Ok(child) = stage.get_document("inputStage") {
        describe_stage(child, depth + 1, out);
    }
    if let Ok(children) = stage.get_array("inputStages") {
        for child in children.iter().filter_map(Bson::as_document) {
            describe_stage(child, depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_bson() {
        for text in [
            "total_spend > 500",
            r#"total_spend > 1000 or (visits >= 10 and last_order_at > "7 days ago")"#,
            r#"city in ["Lyon", "Paris"] and not tags contains "churn""#,
            "visits in [2, 3] and total_spend <= 19.99",
        ] {
            let rule = Rule::parse_text(text).expect("parses");
            let stored = rule_doc(&rule).expect("stores");
            assert_eq!(rule_from_bson(&stored).expect("loads"), rule, "{text}");
        }
    }

    #[test]
    fn plans_are_indented_by_stage() {
        let plan = doc! { "stage": "FETCH", "inputStage": { "stage": "IXSCAN", "indexName": "total_spend" } };
        let mut lines = Vec::new();
        describe_stage(&plan, 0, &mut lines);
        assert_eq!(lines, ["FETCH", "  IXSCAN total_spend"]);
    }
}
