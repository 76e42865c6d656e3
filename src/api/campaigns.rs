//! `/api/v1/campaigns`: list, create, one with live stats, run, status changes, logs.

use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::{Params, Shared, ok};
use crate::engine::campaign::SendStatus;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

pub async fn list(State(s): State<Shared>) -> ApiResult<Json<Value>> {
    Ok(ok(s.app.list_campaigns().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    name: String,
    segment_id: i64,
    message_template: String,
    #[serde(default = "sim")]
    channel: String,
    created_by: Option<String>,
}

fn sim() -> String {
    "sim".into()
}

pub async fn create(State(s): State<Shared>, Body(c): Body<CampaignInput>) -> ApiResult<(StatusCode, Json<Value>)> {
    let created = s
        .app
        .create_campaign(&c.name, &c.segment_id.to_string(), c.message_template, &c.channel, c.created_by, None)
        .await?;
    Ok((StatusCode::CREATED, ok(created.campaign)))
}

pub async fn get(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?;
    Ok(ok(s.app.find_campaign(&id.to_string()).await?))
}

pub async fn run(State(s): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?;
    let (campaign, audience) = s.app.run_campaign(&id.to_string()).await?;
    Ok(Json(json!({
        "success": true,
        "message": format!("campaign {} is running: {audience} leads queued", campaign.id),
        "totalLeads": audience,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    status: String,
}

pub async fn set_status(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Body(input): Body<StatusInput>,
) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?.to_string();
    let t = match input.status.to_ascii_lowercase().as_str() {
        "pause" | "paused" => s.app.pause_campaign(&id).await?,
        "resume" | "running" => s.app.resume_campaign(&id).await?,
        "cancel" | "cancelled" => s.app.cancel_campaign(&id).await?,
        other => {
            return Err(ApiError::validation("status", format!("'{other}' is not pause, resume or cancel")));
        }
    };
    Ok(ok(json!({ "id": t.campaign.id, "from": t.from, "status": t.to })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    status: Option<String>,
    limit: Option<usize>,
}

pub async fn logs(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Params(p): Params<LogParams>,
) -> ApiResult<Json<Value>> {
    let id = super::id_of(&id)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "limit is a number from 1 to 1000"));
    }
    let status = match p.status.as_deref() {
        None => None,
        Some(text) => Some(SendStatus::parse(text).ok_or_else(|| ApiError::validation("status", "not a log status"))?),
    };
    let (_, logs) = s.app.campaign_logs(&id.to_string(), status, limit).await?;
    Ok(ok(logs))
}
