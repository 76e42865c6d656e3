//! `/api/v1/leads`: list (paged, searched, filtered, sorted), one lead, create, update, delete,
//! and the bulk add with the CSV import's normalization and dedup.

use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::schema::{Deleted, Envelope, LeadPage, Pagination};
use super::{Id, Params, Shared, ok};
use crate::engine::app::lead_edit::{LeadChange, NewLeadFields};
use crate::engine::app::leads::BulkReport;
use crate::engine::lead::{ConflictPolicy, Lead};
use crate::engine::store::{LeadFilter, LeadQuery, SortKey};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// A lead as a client sends it; every field optional, lists or single values.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    name: Option<String>,
    email: Option<String>,
    #[serde(default)]
    emails: Vec<String>,
    phone: Option<String>,
    #[serde(default)]
    phones: Vec<String>,
    total_spend: Option<f64>,
    visits: Option<u64>,
    last_order_at: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl LeadInput {
    fn into_fields(self) -> NewLeadFields {
        NewLeadFields {
            name: self.name,
            emails: self.email.into_iter().chain(self.emails).collect(),
            phones: self.phone.into_iter().chain(self.phones).collect(),
            total_spend: self.total_spend.map(|v| v.to_string()),
            visits: self.visits.map(|v| v.to_string()),
            last_order_at: self.last_order_at,
            tags: self.tags,
            meta: self.metadata.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        }
    }

    /// The `field=value` changes this partial lead makes (for PUT).
    fn into_changes(self) -> Vec<LeadChange> {
        let mut changes = Vec::new();
        let mut set = |field: &str, value: String| changes.push(LeadChange { field: field.into(), value });
        if let Some(name) = self.name {
            set("name", name);
        }
        let emails: Vec<String> = self.email.into_iter().chain(self.emails).collect();
        if !emails.is_empty() {
            set("emails", emails.join(";"));
        }
        let phones: Vec<String> = self.phone.into_iter().chain(self.phones).collect();
        if !phones.is_empty() {
            set("phones", phones.join(";"));
        }
        if let Some(v) = self.total_spend {
            set("total_spend", v.to_string());
        }
        if let Some(v) = self.visits {
            set("visits", v.to_string());
        }
        if let Some(v) = self.last_order_at {
            set("last_order_at", v);
        }
        if !self.tags.is_empty() {
            set("tags", self.tags.join(";"));
        }
        for (k, v) in self.metadata {
            set(&format!("metadata.{k}"), v);
        }
        changes
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkInput {
    #[schema(max_items = 10_000)]
    leads: Vec<LeadInput>,
    /// merge (the default), skip or overwrite: what a lead matching a stored one does.
    #[serde(default)]
    on_conflict: Option<String>,
}

/// Adds or merges many leads with the CSV import's normalization and dedup; each refused
/// lead is reported with its index.
#[utoipa::path(post, path = "/leads/bulk", tag = "leads", operation_id = "bulk_add_leads", request_body = BulkInput,
    responses((status = 200, description = "counts and the refused leads", body = Envelope<BulkReport>)))]
pub async fn bulk(State(s): State<Shared>, Body(input): Body<BulkInput>) -> ApiResult<Json<Envelope<BulkReport>>> {
    let policy = match input.on_conflict.as_deref() {
        None | Some("merge") => ConflictPolicy::Merge,
        Some("skip") => ConflictPolicy::Skip,
        Some("overwrite") => ConflictPolicy::Overwrite,
        Some(other) => {
            return Err(ApiError::validation("on_conflict", format!("'{other}' is not merge, skip or overwrite")));
        }
    };
    if input.leads.len() > super::MAX_BULK {
        return Err(ApiError::validation("leads", format!("at most {} leads per request", super::MAX_BULK)));
    }
    let leads = input.leads.into_iter().map(LeadInput::into_fields).collect();
    let report = s.app.add_leads_bulk(leads, policy).await?;
    Ok(ok(report))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// From 1 (the default).
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Leads per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
    /// Text in the name, an email or a phone (ignoring case).
    search: Option<String>,
    min_spend: Option<f64>,
    max_spend: Option<f64>,
    /// name, total_spend, visits or created_at (the default).
    sort_by: Option<String>,
    /// asc or desc (the default).
    sort_order: Option<String>,
}

/// Lists leads, a page at a time, searched, filtered and sorted.
#[utoipa::path(get, path = "/leads", tag = "leads", operation_id = "list_leads", params(ListParams),
    responses((status = 200, description = "one page", body = Envelope<LeadPage>)))]
pub async fn list(State(s): State<Shared>, Params(p): Params<ListParams>) -> ApiResult<Json<Envelope<LeadPage>>> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "limit is a number from 1 to 100"));
    }
    let page = p.page.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(ApiError::validation("page", "page is a number from 1 to 1000000"));
    }
    let sort = match p.sort_by.as_deref() {
        None | Some("created_at") => SortKey::CreatedAt,
        Some("name") => SortKey::Name,
        Some("total_spend") => SortKey::TotalSpend,
        Some("visits") => SortKey::Visits,
        Some(other) => {
            return Err(ApiError::validation(
                "sort_by",
                format!("'{other}' is not name, total_spend, visits or created_at"),
            ));
        }
    };
    let desc = match p.sort_order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(ApiError::validation("sort_order", format!("'{other}' is not asc or desc"))),
    };
    for (field, value) in [("min_spend", p.min_spend), ("max_spend", p.max_spend)] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(ApiError::validation(field, "expected a finite number"));
        }
    }
    let filter = LeadFilter { search: p.search, min_spend: p.min_spend, max_spend: p.max_spend, tags: Vec::new() };
    let offset = ((page - 1) * limit) as usize;
    let query = LeadQuery { filter: filter.clone(), sort, desc, limit: Some(limit as usize), offset };
    let items = s.app.list_leads(&query).await?;
    let total = s.app.count_leads(&filter).await?;
    let pagination = Pagination { page, limit, total, pages: total.div_ceil(limit) };
    Ok(ok(LeadPage { items, pagination }))
}

/// One lead.
#[utoipa::path(get, path = "/leads/{id}", tag = "leads", operation_id = "get_lead", params(super::IdParam),
    responses((status = 200, description = "the lead", body = Envelope<Lead>)))]
pub async fn get(State(s): State<Shared>, Id(id): Id) -> ApiResult<Json<Envelope<Lead>>> {
    let lead = s.app.get_lead(id).await?.ok_or_else(|| ApiError::not_found(format!("no lead {id}")))?;
    Ok(ok(lead))
}

/// Adds one lead (refused with 409 when an email or phone is another lead's).
#[utoipa::path(post, path = "/leads", tag = "leads", operation_id = "create_lead", request_body = LeadInput,
    responses((status = 201, description = "the new lead", body = Envelope<Lead>)))]
pub async fn create(
    State(s): State<Shared>,
    Body(input): Body<LeadInput>,
) -> ApiResult<(StatusCode, Json<Envelope<Lead>>)> {
    let draft = input.into_fields().into_draft(s.app.config().region()?)?;
    let lead = s.app.add_lead(draft).await?;
    Ok((StatusCode::CREATED, ok(lead)))
}

/// Changes the fields given; lists (emails, phones, tags) are replaced, metadata keys set.
#[utoipa::path(put, path = "/leads/{id}", tag = "leads", operation_id = "update_lead", params(super::IdParam),
    request_body = LeadInput, responses((status = 200, description = "the changed lead", body = Envelope<Lead>)))]
pub async fn update(
    State(s): State<Shared>,
    Id(id): Id,
    Body(input): Body<LeadInput>,
) -> ApiResult<Json<Envelope<Lead>>> {
    let update = s.app.update_lead(&id.to_string(), &input.into_changes(), None).await?;
    Ok(ok(update.lead))
}

/// Deletes a lead.
#[utoipa::path(delete, path = "/leads/{id}", tag = "leads", operation_id = "delete_lead", params(super::IdParam),
    responses((status = 200, description = "the id deleted", body = Envelope<Deleted>)))]
pub async fn delete(State(s): State<Shared>, Id(id): Id) -> ApiResult<Json<Envelope<Deleted>>> {
    let lead = s.app.delete_lead(&id.to_string()).await?;
    Ok(ok(Deleted { deleted: lead.id }))
}
