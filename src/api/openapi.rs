//! `GET /openapi.json`: OpenAPI 3.1, generated from the code. The router is built from the
//! handlers' `#[utoipa::path]` annotations (utoipa-axum's `OpenApiRouter`), so a route and its
//! documented operation are one declaration; request and response schemas are derived from the
//! Rust types the handlers take and return (see [`super::schema`]). What applies to a whole
//! router is added here, from the router that applies it: every `/api/v1` operation needs the
//! bearer token and may answer with the error envelope. The webhooks are documented on their
//! handlers in `pipeline::webhook`.

use super::schema::ErrorBody;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, ResponseBuilder, Tag,
};

/// The statuses any authenticated operation may refuse with, with the error envelope.
const REFUSALS: &[(&str, &str)] = &[
    ("400", "invalid: the field is named in details"),
    ("401", "no valid bearer token"),
    ("404", "no such record"),
    ("409", "conflicts with stored data"),
    ("413", "the body is too large"),
    ("415", "the body is not JSON"),
    ("422", "the rule does not parse"),
    ("503", "the store is unavailable"),
];

/// The document before any route: info, the bearer scheme and the error envelope.
pub fn base() -> OpenApi {
    let bearer = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build());
    let tags = [
        ("service", "health and status"),
        ("leads", "customer records"),
        ("segments", "saved rules"),
        ("campaigns", "messages to a segment"),
        ("webhooks", "vendors' callbacks, checked by their own signatures"),
    ]
    .map(|(name, about)| {
        let mut tag = Tag::new(name);
        tag.description = Some(about.into());
        tag
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("crm")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("The REST API of the Mini CRM, served by `crm serve` on crm's application layer.")),
        )
        .tags(Some(tags))
        .components(Some(ComponentsBuilder::new().schema_from::<ErrorBody>().security_scheme("bearer", bearer).build()))
        .build()
}

/// Marks every operation of `doc` (the authenticated router's) as needing the bearer token
/// and answering refusals with the error envelope.
pub fn guarded(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            guard(op);
        }
    }
}

fn guard(op: &mut Operation) {
    op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    for (code, why) in REFUSALS {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build();
        let response = ResponseBuilder::new().description(*why).content("application/json", content).build();
        op.responses.responses.entry((*code).to_string()).or_insert(response.into());
    }
}

/// Adds the webhooks (documented on their handlers, mounted from the status worker's router).
pub fn add_webhooks(doc: &mut OpenApi) {
    use utoipa::OpenApi as _;
    doc.merge(crate::engine::pipeline::webhook::WebhooksDoc::openapi());
}
