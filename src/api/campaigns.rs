//! `/api/v1/campaigns`: list, create, one with live stats, run, status changes, logs.

use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::schema::{Envelope, RunStarted, StatusChange};
use super::{Id, Params, Shared, ok};
use crate::engine::campaign::{Campaign, CommunicationLog, SendStatus};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Every campaign with its stats.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", operation_id = "list_campaigns",
    responses((status = 200, description = "the campaigns", body = Envelope<Vec<Campaign>>)))]
pub async fn list(State(s): State<Shared>) -> ApiResult<Json<Envelope<Vec<Campaign>>>> {
    Ok(ok(s.app.list_campaigns().await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    name: String,
    segment_id: i64,
    /// `{{field|default}}` placeholders, e.g. `Hi {{first_name|there}}`.
    message_template: String,
    /// The channel account to send through (default: sim).
    #[serde(default = "sim")]
    channel: String,
    created_by: Option<String>,
}

fn sim() -> String {
    "sim".into()
}

/// Saves a DRAFT campaign for a segment.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns", operation_id = "create_campaign",
    request_body = CampaignInput, responses((status = 201, description = "the new campaign", body = Envelope<Campaign>)))]
pub async fn create(
    State(s): State<Shared>,
    Body(c): Body<CampaignInput>,
) -> ApiResult<(StatusCode, Json<Envelope<Campaign>>)> {
    let created = s
        .app
        .create_campaign(&c.name, &c.segment_id.to_string(), c.message_template, &c.channel, c.created_by, None)
        .await?;
    Ok((StatusCode::CREATED, ok(created.campaign)))
}

/// One campaign with live stats.
#[utoipa::path(get, path = "/campaigns/{id}", tag = "campaigns", operation_id = "get_campaign", params(super::IdParam),
    responses((status = 200, description = "the campaign", body = Envelope<Campaign>)))]
pub async fn get(State(s): State<Shared>, Id(id): Id) -> ApiResult<Json<Envelope<Campaign>>> {
    Ok(ok(s.app.find_campaign(&id.to_string()).await?))
}

/// Queues a DRAFT campaign's audience for the workers.
#[utoipa::path(post, path = "/campaigns/{id}/run", tag = "campaigns", operation_id = "run_campaign",
    params(super::IdParam), responses((status = 200, description = "running", body = RunStarted)))]
pub async fn run(State(s): State<Shared>, Id(id): Id) -> ApiResult<Json<RunStarted>> {
    let (campaign, audience) = s.app.run_campaign(&id.to_string()).await?;
    Ok(Json(RunStarted {
        success: true,
        message: format!("campaign {} is running: {audience} leads queued", campaign.id),
        total_leads: audience,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// pause, resume or cancel (ignoring case).
    #[schema(example = "pause")]
    status: String,
}

/// Pauses, resumes or cancels a campaign; a change its status does not allow is a 409.
#[utoipa::path(put, path = "/campaigns/{id}/status", tag = "campaigns", operation_id = "set_campaign_status",
    params(super::IdParam), request_body = StatusInput,
    responses((status = 200, description = "the change made", body = Envelope<StatusChange>)))]
pub async fn set_status(
    State(s): State<Shared>,
    Id(id): Id,
    Body(input): Body<StatusInput>,
) -> ApiResult<Json<Envelope<StatusChange>>> {
    let id = id.to_string();
    let t = match input.status.to_ascii_lowercase().as_str() {
        "pause" | "paused" => s.app.pause_campaign(&id).await?,
        "resume" | "running" => s.app.resume_campaign(&id).await?,
        "cancel" | "cancelled" => s.app.cancel_campaign(&id).await?,
        other => {
            return Err(ApiError::validation("status", format!("'{other}' is not pause, resume or cancel")));
        }
    };
    Ok(ok(StatusChange { id: t.campaign.id, from: t.from, status: t.to }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only messages in this status (pending, sending, uncertain, sent, delivered, read,
    /// failed, skipped).
    status: Option<String>,
    /// At most this many (1 to 1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// A campaign's latest messages.
#[utoipa::path(get, path = "/campaigns/{id}/logs", tag = "campaigns", operation_id = "campaign_logs",
    params(super::IdParam, LogParams),
    responses((status = 200, description = "newest first", body = Envelope<Vec<CommunicationLog>>)))]
pub async fn logs(
    State(s): State<Shared>,
    Id(id): Id,
    Params(p): Params<LogParams>,
) -> ApiResult<Json<Envelope<Vec<CommunicationLog>>>> {
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
