//! The shapes the API answers with, as Rust types: the handlers return them and the OpenAPI
//! document describes them from the same definitions (`utoipa::ToSchema`), so a response and
//! its documented schema cannot part. The records themselves (`Lead`, `Segment`, `Campaign`,
//! …) are the engine's types, which derive the schema when the `api` feature is on.

use crate::engine::lead::Lead;
use crate::engine::segment::Rule;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// `{"success":true,"data":…}`: every successful answer of `/api/v1` but a campaign's run.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always true here; errors carry false (see `Error`).
    pub success: bool,
    pub data: T,
}

/// The error envelope (see `api::error`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    #[schema(inline)]
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: validation_error, malformed_json, invalid_rule, unauthorized,
    /// not_found, conflict, payload_too_large, unsupported_media_type, backend_unavailable.
    pub code: String,
    pub message: String,
    /// `{"field": PATH}` for a validation error; null otherwise.
    #[schema(value_type = Option<Object>)]
    pub details: serde_json::Value,
}

/// One page of leads.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadPage {
    pub items: Vec<Lead>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    pub page: u64,
    pub limit: u64,
    /// Leads matching the filters, on every page.
    pub total: u64,
    pub pages: u64,
}

/// What a delete removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: i64,
}

/// A campaign's status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChange {
    pub id: i64,
    pub from: crate::engine::campaign::CampaignStatus,
    pub status: crate::engine::campaign::CampaignStatus,
}

/// `POST /api/v1/campaigns/{id}/run`, in the old system's shape (no `data`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    pub success: bool,
    pub message: String,
    /// The audience queued.
    #[serde(rename = "totalLeads")]
    pub total_leads: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceStatus {
    pub service: String,
    pub version: String,
    pub status: String,
    /// The Cargo features this build has.
    pub features: Vec<String>,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok, or degraded when a part is unavailable (then the status is 503).
    pub status: String,
    /// RFC 3339.
    pub timestamp: String,
    pub services: Services,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Services {
    /// connected or unavailable.
    pub database: String,
    /// connected or unavailable.
    pub bus: String,
    /// Live workers by role.
    pub workers: BTreeMap<String, u64>,
}

/// A rule's JSON tree, as stored (`rule_ast`); its serialization is written by hand
/// (`segment/json.rs`), so is its schema: a group (`op` AND, OR or NOT with `children`) or a
/// condition (`type` "condition", `field`, `operator`, `value`).
impl PartialSchema for Rule {
    fn schema() -> RefOr<Schema> {
        let myself = || RefOr::Ref(Ref::from_schema_name("RuleAst"));
        let group = ObjectBuilder::new()
            .property("op", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["AND", "OR", "NOT"])))
            .property("children", ArrayBuilder::new().items(myself()))
            .required("op")
            .required("children");
        let scalar = || {
            OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::String))
                .item(ObjectBuilder::new().schema_type(Type::Number))
        };
        let value = OneOfBuilder::new().item(scalar()).item(ArrayBuilder::new().items(scalar()));
        let condition = ObjectBuilder::new()
            .property("type", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["condition"])))
            .property("field", ObjectBuilder::new().schema_type(Type::String))
            .property("operator", ObjectBuilder::new().schema_type(Type::String))
            .property("value", value)
            .required("field")
            .required("operator")
            .required("value");
        OneOfBuilder::new().item(group).item(condition).description(Some("a segment rule (docs/segments.md)")).into()
    }
}

impl ToSchema for Rule {
    fn name() -> std::borrow::Cow<'static, str> {
        "RuleAst".into()
    }
}
