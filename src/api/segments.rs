//! `/api/v1/segments`: create (a rule as text, `rule`, or the stored JSON tree, `rule_ast`),
//! preview, list with counts, one, update, delete.

use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::{Shared, ok};
use crate::engine::app::segments::SegmentChange;
use crate::engine::segment::Rule;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// A rule given as text or as the JSON tree; a rule that does not parse is a 422.
fn rule_of(rule: Option<String>, rule_ast: Option<Value>) -> ApiResult<Option<Rule>> {
    let invalid = |field: &str, e: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rule", e).with_details(json!({ "field": field }))
    };
    match (rule, rule_ast) {
        (Some(_), Some(_)) => Err(ApiError::validation("rule", "give rule or rule_ast, not both")),
        (Some(text), None) => Rule::parse_any(&text).map(Some).map_err(|e| invalid("rule", e.to_string())),
        (None, Some(ast)) => {
            Rule::from_json(&ast.to_string()).map(Some).map_err(|e| invalid("rule_ast", e.to_string()))
        }
        (None, None) => Ok(None),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    name: Option<String>,
    owner_user_id: Option<String>,
    rule: Option<String>,
    rule_ast: Option<Value>,
}

pub async fn create(State(s): State<Shared>, Body(input): Body<SegmentInput>) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = input.name.ok_or_else(|| ApiError::validation("name", "a segment needs a name"))?;
    let rule = rule_of(input.rule, input.rule_ast)?
        .ok_or_else(|| ApiError::validation("rule", "give the rule as rule (text) or rule_ast (JSON)"))?;
    s.app.check_rule_fields(&rule).await?;
    let segment = s.app.create_segment(&name, rule, input.owner_user_id).await?;
    Ok((StatusCode::CREATED, ok(segment)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    rule: Option<String>,
    rule_ast: Option<Value>,
    segment_id: Option<i64>,
    #[serde(default = "ten")]
    sample: usize,
}

fn ten() -> usize {
    10
}

pub async fn preview(State(s): State<Shared>, Body(input): Body<PreviewInput>) -> ApiResult<Json<Value>> {
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

pub async fn list(State(s): State<Shared>) -> ApiResult<Json<Value>> {
    Ok(ok(s.app.list_segments().await?))
}

pub async fn get(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?;
    Ok(ok(s.app.find_segment(&id.to_string()).await?))
}

pub async fn update(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Body(input): Body<SegmentInput>,
) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?;
    let rule = rule_of(input.rule, input.rule_ast)?;
    if let Some(rule) = &rule {
        s.app.check_rule_fields(rule).await?;
    }
    let change = SegmentChange { rule, name: input.name, owner: input.owner_user_id };
    let (segment, _) = s.app.update_segment(&id.to_string(), change).await?;
    Ok(ok(segment))
}

pub async fn delete(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?;
    let segment = s.app.delete_segment(&id.to_string()).await?;
    Ok(ok(json!({ "deleted": segment.id })))
}
