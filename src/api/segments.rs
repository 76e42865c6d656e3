//! `/api/v1/segments`: create (a rule as text, `rule`, or the stored JSON tree, `rule_ast`),
//! preview, list with counts, one, update, delete.

use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::schema::{Deleted, Envelope};
use super::{Id, Shared, ok};
use crate::engine::app::segments::{CountedSegment, SegmentChange};
use crate::engine::audience::Preview;
use crate::engine::segment::Rule;
use crate::engine::segment::Segment;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// A rule given as text or as the JSON tree. A value where a scalar belongs (an operator
/// object such as `{"$gt":""}`) is a 400 naming its path; any other rule that does not parse
/// is a 422.
fn rule_of(rule: Option<String>, rule_ast: Option<Value>) -> ApiResult<Option<Rule>> {
    let invalid = |field: &str, e: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rule", e).with_details(json!({ "field": field }))
    };
    match (rule, rule_ast) {
        (Some(_), Some(_)) => Err(ApiError::validation("rule", "give rule or rule_ast, not both")),
        (Some(text), None) => Rule::parse_any(&text).map(Some).map_err(|e| invalid("rule", e.to_string())),
        (None, Some(ast)) => {
            check_scalars(&ast, "rule_ast")?;
            Rule::from_json(&ast.to_string()).map(Some).map_err(|e| invalid("rule_ast", e.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// Refuses an object or a list where a rule node holds a scalar (`op`, `type`, `field`,
/// `operator`, `value` or an item of a `value` list), walking `children`. serde_json bounds
/// the nesting of a parsed body, so the walk is bounded too.
fn check_scalars(node: &Value, path: &str) -> ApiResult<()> {
    let Some(object) = node.as_object() else { return Ok(()) };
    let not_scalar = |v: &Value| v.is_object() || v.is_array();
    for key in ["op", "type", "field", "operator"] {
        if object.get(key).is_some_and(not_scalar) {
            return Err(ApiError::validation(&format!("{path}.{key}"), format!("{key} must be a string")));
        }
    }
    match object.get("value") {
        Some(Value::Object(_)) => {
            return Err(ApiError::validation(&format!("{path}.value"), "value must be a string, a number or a list"));
        }
        Some(Value::Array(items)) => {
            if let Some(i) = items.iter().position(not_scalar) {
                return Err(ApiError::validation(&format!("{path}.value[{i}]"), "a list holds strings or numbers"));
            }
        }
        _ => {}
    }
    if let Some(Value::Array(children)) = object.get("children") {
        for (i, child) in children.iter().enumerate() {
            check_scalars(child, &format!("{path}.children[{i}]"))?;
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    /// Unique among segments, ignoring case (needed to create one).
    name: Option<String>,
    owner_user_id: Option<String>,
    /// A rule as text, e.g. `total_spend > 500 AND tags contains "vip"`.
    rule: Option<String>,
    /// The rule as its JSON tree (give this or `rule`).
    #[schema(value_type = Option<Rule>)]
    rule_ast: Option<Value>,
}

/// Saves a segment.
#[utoipa::path(post, path = "/segments", tag = "segments", operation_id = "create_segment",
    request_body = SegmentInput, responses((status = 201, description = "the new segment", body = Envelope<Segment>)))]
pub async fn create(
    State(s): State<Shared>,
    Body(input): Body<SegmentInput>,
) -> ApiResult<(StatusCode, Json<Envelope<Segment>>)> {
    let name = input.name.ok_or_else(|| ApiError::validation("name", "a segment needs a name"))?;
    let rule = rule_of(input.rule, input.rule_ast)?
        .ok_or_else(|| ApiError::validation("rule", "give the rule as rule (text) or rule_ast (JSON)"))?;
    s.app.check_rule_fields(&rule).await?;
    let segment = s.app.create_segment(&name, rule, input.owner_user_id).await?;
    Ok((StatusCode::CREATED, ok(segment)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// A rule as text; or give `rule_ast` or `segment_id`.
    rule: Option<String>,
    #[schema(value_type = Option<Rule>)]
    rule_ast: Option<Value>,
    segment_id: Option<i64>,
    /// How many matching leads to return (0 to 100, default 10).
    #[serde(default = "ten")]
    #[schema(maximum = 100)]
    sample: usize,
}

fn ten() -> usize {
    10
}

/// Counts a rule's leads and returns the first of them.
#[utoipa::path(post, path = "/segments/preview", tag = "segments", operation_id = "preview_segment",
    request_body = PreviewInput, responses((status = 200, description = "count and sample", body = Envelope<Preview>)))]
pub async fn preview(State(s): State<Shared>, Body(input): Body<PreviewInput>) -> ApiResult<Json<Envelope<Preview>>> {
    if input.sample > 100 {
        return Err(ApiError::validation("sample", "sample is at most 100"));
    }
    let rule = match (rule_of(input.rule, input.rule_ast)?, input.segment_id) {
        (Some(rule), None) => rule,
        (None, Some(id)) => s.app.find_segment(&id.to_string()).await?.rule_ast,
        _ => return Err(ApiError::validation("rule", "give one of rule, rule_ast or segment_id")),
    };
    let found = s.app.preview_rule(&rule, input.sample, false).await?;
    Ok(ok(found.preview))
}

/// Every segment with its audience size now.
#[utoipa::path(get, path = "/segments", tag = "segments", operation_id = "list_segments",
    responses((status = 200, description = "the segments", body = Envelope<Vec<CountedSegment>>)))]
pub async fn list(State(s): State<Shared>) -> ApiResult<Json<Envelope<Vec<CountedSegment>>>> {
    Ok(ok(s.app.list_segments().await?))
}

/// One segment.
#[utoipa::path(get, path = "/segments/{id}", tag = "segments", operation_id = "get_segment", params(super::IdParam),
    responses((status = 200, description = "the segment", body = Envelope<Segment>)))]
pub async fn get(State(s): State<Shared>, Id(id): Id) -> ApiResult<Json<Envelope<Segment>>> {
    Ok(ok(s.app.find_segment(&id.to_string()).await?))
}

/// Renames a segment, changes its owner or its rule.
#[utoipa::path(put, path = "/segments/{id}", tag = "segments", operation_id = "update_segment",
    params(super::IdParam), request_body = SegmentInput,
    responses((status = 200, description = "the changed segment", body = Envelope<Segment>)))]
pub async fn update(
    State(s): State<Shared>,
    Id(id): Id,
    Body(input): Body<SegmentInput>,
) -> ApiResult<Json<Envelope<Segment>>> {
    let rule = rule_of(input.rule, input.rule_ast)?;
    if let Some(rule) = &rule {
        s.app.check_rule_fields(rule).await?;
    }
    let change = SegmentChange { rule, name: input.name, owner: input.owner_user_id };
    let (segment, _) = s.app.update_segment(&id.to_string(), change).await?;
    Ok(ok(segment))
}

/// Deletes a segment (refused with 409 while a campaign uses it).
#[utoipa::path(delete, path = "/segments/{id}", tag = "segments", operation_id = "delete_segment",
    params(super::IdParam), responses((status = 200, description = "the id deleted", body = Envelope<Deleted>)))]
pub async fn delete(State(s): State<Shared>, Id(id): Id) -> ApiResult<Json<Envelope<Deleted>>> {
    let segment = s.app.delete_segment(&id.to_string()).await?;
    Ok(ok(Deleted { deleted: segment.id }))
}
