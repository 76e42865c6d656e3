//! `GET /openapi.json`: the API described as OpenAPI 3.0, built here from the same route table
//! the tests walk (every documented operation is requested and must not fall through to the
//! router's fallback). Schemas describe the envelope and the request bodies precisely and the
//! records loosely (objects), which is what a generic client needs to call the API.

use serde_json::{Value, json};

/// One documented operation: method, path (OpenAPI syntax), summary, query parameters,
/// request body schema, and the success status.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub query: &'static [(&'static str, &'static str)],
    pub body: Option<fn() -> Value>,
    pub success: u16,
}

const ID: &[(&str, &str)] = &[];

fn lead_body() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "name": { "type": "string" }, "email": { "type": "string" },
            "emails": { "type": "array", "items": { "type": "string" } },
            "phone": { "type": "string" }, "phones": { "type": "array", "items": { "type": "string" } },
            "total_spend": { "type": "number" }, "visits": { "type": "integer", "minimum": 0 },
            "last_order_at": { "type": "string" }, "tags": { "type": "array", "items": { "type": "string" } },
            "metadata": { "type": "object", "additionalProperties": { "type": "string" } },
        }
    })
}

fn bulk_body() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["leads"],
        "properties": {
            "leads": { "type": "array", "items": lead_body(), "maxItems": super::MAX_BULK },
            "on_conflict": { "type": "string", "enum": ["merge", "skip", "overwrite"] },
        }
    })
}

fn segment_body() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "name": { "type": "string" }, "owner_user_id": { "type": "string" },
            "rule": { "type": "string", "description": "a text rule, e.g. total_spend > 500" },
            "rule_ast": { "type": "object", "description": "the stored JSON tree (see docs/segments.md)" },
        }
    })
}

fn preview_body() -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "rule": { "type": "string" }, "rule_ast": { "type": "object" },
            "segment_id": { "type": "integer" }, "sample": { "type": "integer", "minimum": 0, "maximum": 100 },
        }
    })
}

fn campaign_body() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["name", "segment_id", "message_template"],
        "properties": {
            "name": { "type": "string" }, "segment_id": { "type": "integer" },
            "message_template": { "type": "string" }, "channel": { "type": "string" },
            "created_by": { "type": "string" },
        }
    })
}

fn status_body() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["status"],
        "properties": { "status": { "type": "string", "enum": ["pause", "resume", "cancel"] } }
    })
}

const LIST_QUERY: &[(&str, &str)] = &[
    ("page", "integer"),
    ("limit", "integer"),
    ("search", "string"),
    ("min_spend", "number"),
    ("max_spend", "number"),
    ("sort_by", "string"),
    ("sort_order", "string"),
];

/// Every operation of `/api/v1`, in the router's order.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/api/v1/status",
        summary: "Service, version and features",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "get",
        path: "/api/v1/leads",
        summary: "List leads (paged)",
        query: LIST_QUERY,
        body: None,
        success: 200,
    },
    Operation {
        method: "post",
        path: "/api/v1/leads",
        summary: "Add a lead",
        query: ID,
        body: Some(lead_body),
        success: 201,
    },
    Operation {
        method: "post",
        path: "/api/v1/leads/bulk",
        summary: "Add or merge many leads",
        query: ID,
        body: Some(bulk_body),
        success: 200,
    },
    Operation { method: "get", path: "/api/v1/leads/{id}", summary: "One lead", query: ID, body: None, success: 200 },
    Operation {
        method: "put",
        path: "/api/v1/leads/{id}",
        summary: "Change a lead",
        query: ID,
        body: Some(lead_body),
        success: 200,
    },
    Operation {
        method: "delete",
        path: "/api/v1/leads/{id}",
        summary: "Delete a lead",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "get",
        path: "/api/v1/segments",
        summary: "Segments with their audience size",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "post",
        path: "/api/v1/segments",
        summary: "Save a segment",
        query: ID,
        body: Some(segment_body),
        success: 201,
    },
    Operation {
        method: "post",
        path: "/api/v1/segments/preview",
        summary: "Count and sample a rule's leads",
        query: ID,
        body: Some(preview_body),
        success: 200,
    },
    Operation {
        method: "get",
        path: "/api/v1/segments/{id}",
        summary: "One segment",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "put",
        path: "/api/v1/segments/{id}",
        summary: "Change a segment",
        query: ID,
        body: Some(segment_body),
        success: 200,
    },
    Operation {
        method: "delete",
        path: "/api/v1/segments/{id}",
        summary: "Delete a segment",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "get",
        path: "/api/v1/campaigns",
        summary: "Campaigns with stats",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "post",
        path: "/api/v1/campaigns",
        summary: "Save a DRAFT campaign",
        query: ID,
        body: Some(campaign_body),
        success: 201,
    },
    Operation {
        method: "get",
        path: "/api/v1/campaigns/{id}",
        summary: "One campaign with live stats",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "post",
        path: "/api/v1/campaigns/{id}/run",
        summary: "Queue a DRAFT campaign's audience",
        query: ID,
        body: None,
        success: 200,
    },
    Operation {
        method: "put",
        path: "/api/v1/campaigns/{id}/status",
        summary: "Pause, resume or cancel",
        query: ID,
        body: Some(status_body),
        success: 200,
    },
    Operation {
        method: "get",
        path: "/api/v1/campaigns/{id}/logs",
        summary: "A campaign's latest messages",
        query: &[("status", "string"), ("limit", "integer")],
        body: None,
        success: 200,
    },
];

fn envelope_error() -> Value {
    json!({
        "description": "refused or failed",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn operation(op: &Operation) -> Value {
    let mut parameters: Vec<Value> = op
        .query
        .iter()
        .map(|(name, kind)| json!({ "name": name, "in": "query", "required": false, "schema": { "type": kind } }))
        .collect();
    if op.path.contains("{id}") {
        parameters.push(
            json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } }),
        );
    }
    let mut responses = serde_json::Map::new();
    responses.insert(
        op.success.to_string(),
        json!({ "description": "done", "content": { "application/json": { "schema": { "type": "object" } } } }),
    );
    for code in ["400", "401", "404", "409", "413", "415", "422", "503"] {
        responses.insert(code.into(), envelope_error());
    }
    let mut value = json!({
        "summary": op.summary,
        "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}'], "_")),
        "parameters": parameters,
        "responses": responses,
        "security": [{ "bearer": [] }],
    });
    if let Some(body) = op.body {
        value["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body() } } });
    }
    value
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPERATIONS {
        let entry = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    paths.insert(
        "/health".into(),
        json!({ "get": {
            "summary": "Store, bus and workers", "operationId": "health", "security": [],
            "responses": {
                "200": { "description": "healthy", "content": { "application/json": { "schema": { "type": "object" } } } },
                "503": { "description": "a part is down", "content": { "application/json": { "schema": { "type": "object" } } } },
            }
        }}),
    );
    json!({
        "openapi": "3.0.3",
        "info": { "title": "crm", "version": env!("CARGO_PKG_VERSION"),
                  "description": "The REST API of the Mini CRM, served by `crm serve` on crm's application layer." },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": { "Error": {
                "type": "object", "required": ["success", "error"],
                "properties": {
                    "success": { "type": "boolean", "enum": [false] },
                    "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": { "type": "string" }, "message": { "type": "string" }, "details": {} } },
                }
            }}
        }
    })
}
