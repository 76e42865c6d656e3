//! `crm serve` over real HTTP: the real binary on a free port over a sandbox store, driven with
//! reqwest. Each endpoint's happy path and its refusals: authentication, validation with field
//! paths, injection-shaped values, unknown ids, body limits and media types.

mod common;

use common::api::{Api, error_code, three_leads};
use common::describe;
use serde_json::{Value, json};

#[tokio::test]
async fn every_api_route_needs_a_valid_token() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let url = format!("{}/api/v1/leads", api.base);
    let bare = api.client.get(&url).send().await.expect("request");
    assert_eq!(bare.status().as_u16(), 401);
    let body: Value = bare.json().await.expect("json");
    assert_eq!((body["success"].clone(), error_code(&body)), (json!(false), "unauthorized"));
    for bad in ["nonsense", "a.b.c", &format!("{}x", api.token)] {
        let res = api.client.get(&url).bearer_auth(bad).send().await.expect("request");
        assert_eq!(res.status().as_u16(), 401, "{bad}");
    }
    // A token signed with another secret, and an expired one, are refused too.
    let other =
        crm.bare().env("CRM_JWT_SECRET", "another-secret-0123456").args(["auth", "token", "--user", "x"]).output();
    let other = String::from_utf8_lossy(&other.expect("run").stdout).trim().to_string();
    let res = api.client.get(&url).bearer_auth(&other).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 401);
    let (ok, body) = api.get("/api/v1/leads").await;
    assert_eq!(ok, 200, "{body}");
    // /health needs no token.
    let health: Value =
        api.client.get(format!("{}/health", api.base)).send().await.expect("req").json().await.expect("json");
    assert_eq!(health["services"]["database"], "connected");
}

#[test]
fn serve_refuses_to_start_without_a_secret() {
    let crm = three_leads();
    let out = crm.cmd().args(["serve", "--listen", "127.0.0.1:0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CRM_JWT_SECRET"), "{}", describe(&out));
}

#[tokio::test]
async fn leads_list_pages_searches_sorts_and_validates() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let (code, body) = api.get("/api/v1/leads?limit=2&page=1&sort_by=total_spend&sort_order=desc").await;
    assert_eq!(code, 200, "{body}");
    let names: Vec<&str> =
        body["data"]["items"].as_array().expect("items").iter().map(|l| l["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["Grace Hopper", "Ada Lovelace"]);
    assert_eq!(body["data"]["pagination"], json!({ "page": 1, "limit": 2, "total": 3, "pages": 2 }));
    let (_, body) = api.get("/api/v1/leads?search=lovelace").await;
    assert_eq!(body["data"]["pagination"]["total"], 1);
    let (_, body) = api.get("/api/v1/leads?min_spend=100&max_spend=1000").await;
    assert_eq!(body["data"]["items"][0]["name"], "Ada Lovelace");
    for (query, field) in
        [("limit=0", "limit"), ("limit=101", "limit"), ("sort_by=email", "sort_by"), ("sort_order=up", "sort_order")]
    {
        let (code, body) = api.get(&format!("/api/v1/leads?{query}")).await;
        assert_eq!((code, error_code(&body)), (400, "validation_error"), "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}");
    }
    let (code, body) = api.get("/api/v1/leads?limit=abc").await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn one_lead_is_read_changed_and_deleted() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let (code, body) = api.get("/api/v1/leads/1").await;
    assert_eq!((code, body["data"]["name"].as_str()), (200, Some("Ada Lovelace")));
    let (code, body) =
        api.put("/api/v1/leads/1", json!({ "total_spend": 750.5, "metadata": { "city": "London" } })).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["data"]["total_spend"].clone(), body["data"]["metadata"]["city"].clone()),
        (json!(750.5), json!("London"))
    );
    let (code, body) = api.put("/api/v1/leads/1", json!({ "emails": ["grace@navy.example"] })).await;
    assert_eq!((code, error_code(&body)), (409, "conflict"), "another lead's email: {body}");
    let (code, body) = api.call(reqwest::Method::DELETE, "/api/v1/leads/3", None).await;
    assert_eq!((code, body["data"]["deleted"].clone()), (200, json!(3)));
    for path in ["/api/v1/leads/3", "/api/v1/leads/99"] {
        let (code, body) = api.get(path).await;
        assert_eq!((code, error_code(&body)), (404, "not_found"), "{path}");
    }
    let (code, body) = api.get("/api/v1/leads/abc").await;
    assert_eq!((code, body["error"]["details"]["field"].clone()), (400, json!("id")));
    let (code, body) = api.post("/api/v1/leads", json!({ "name": "Kay", "email": "kay@example.com" })).await;
    assert_eq!((code, body["data"]["id"].clone()), (201, json!(4)), "{body}");
}

#[tokio::test]
async fn bulk_add_applies_the_import_rules_and_reports_each_refusal() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let leads = json!({ "leads": [
        { "name": "Ada L.", "email": "ADA@example.com", "tags": ["speaker"] },
        { "name": "Bad", "email": "not-an-email" },
        { "name": "Kay", "emails": ["kay@example.com"], "phones": ["+447911000111"] },
        { "name": "Kay again", "email": "kay@example.com" },
        { "name": "Nobody" },
    ]});
    let (code, body) = api.post("/api/v1/leads/bulk", leads).await;
    assert_eq!(code, 200, "{body}");
    let d = &body["data"];
    assert_eq!(
        (d["accepted"].clone(), d["inserted"].clone(), d["matched"].clone(), d["rejected"].clone()),
        (json!(3), json!(1), json!(2), json!(2)),
        "{body}"
    );
    let bad: Vec<(u64, &str)> = d["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["index"].as_u64().unwrap_or(99), e["field"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(bad, [(1, "email"), (4, "")]);
    assert_eq!(crm.count(), 4, "Ada merged, Kay inserted once");
    assert_eq!(crm.show("ada@example.com")["tags"], json!(["vip", "speaker"]));
}

#[tokio::test]
async fn values_shaped_like_operators_are_refused_not_passed_on() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let (code, body) = api.post("/api/v1/leads/bulk", json!({ "leads": [{ "email": { "$gt": "" } }] })).await;
    assert_eq!((code, body["error"]["details"]["field"].clone()), (400, json!("leads[0].email")), "{body}");
    let (code, body) = api.post("/api/v1/leads", json!({ "name": "x", "email": "x@example.com", "$where": "1" })).await;
    assert_eq!((code, error_code(&body)), (400, "validation_error"), "{body}");
    let (code, _) = api.put("/api/v1/leads/1", json!({ "total_spend": { "$inc": 1 } })).await;
    assert_eq!(code, 400);
    let (code, body) = api.get("/api/v1/leads?search[$ne]=x").await;
    assert_eq!(code, 400, "{body}");
    // Inside a rule's JSON tree too: an object where a scalar belongs is a 400 with its path.
    let operator = json!({ "field": "total_spend", "op": ">", "value": { "$gt": "" } });
    let (code, body) = api.post("/api/v1/segments/preview", json!({ "rule_ast": operator })).await;
    assert_eq!((code, body["error"]["details"]["field"].clone()), (400, json!("rule_ast.value")), "{body}");
    let nested = json!({ "op": "AND", "children": [
        { "type": "condition", "field": "visits", "operator": ">", "value": 1 },
        { "type": "condition", "field": "tags", "operator": "IN", "value": ["vip", { "$ne": "" }] },
    ]});
    let (code, body) = api.post("/api/v1/segments", json!({ "name": "x", "rule_ast": nested })).await;
    assert_eq!((code, body["error"]["details"]["field"].clone()), (400, json!("rule_ast.children[1].value[1]")));
    let (code, body) =
        api.put("/api/v1/segments/1", json!({ "rule_ast": { "type": "condition", "field": { "$where": "1" } } })).await;
    assert_eq!((code, body["error"]["details"]["field"].clone()), (400, json!("rule_ast.field")), "{body}");
    let (_, body) = api.get("/api/v1/segments").await;
    assert_eq!(body["data"], json!([]), "nothing was saved");
    assert_eq!(crm.show("1")["total_spend"], json!(500.0), "nothing changed");
}

#[tokio::test]
async fn bodies_must_be_json_and_fit_the_limit() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let url = format!("{}/api/v1/leads", api.base);
    let res = api.client.post(&url).bearer_auth(&api.token).body("name=x").send().await.expect("request");
    assert_eq!(res.status().as_u16(), 415);
    let res = api
        .client
        .post(&url)
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("json");
    assert_eq!((status, error_code(&body)), (400, "malformed_json"));
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(17 << 20));
    let res = api
        .client
        .post(&url)
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 413);
}

#[tokio::test]
async fn segments_are_created_previewed_listed_changed_and_deleted() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let (code, body) = api
        .post("/api/v1/segments", json!({ "name": "vips", "owner_user_id": "u1", "rule": "tags contains \"vip\"" }))
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(body["data"]["rule_ast"].is_object(), "{body}");
    let ast = json!({ "op": "AND", "children": [{ "type": "condition", "field": "total_spend", "operator": ">", "value": 100 }] });
    let (code, body) = api.post("/api/v1/segments", json!({ "name": "spenders", "rule_ast": ast })).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = api.post("/api/v1/segments/preview", json!({ "rule": "total_spend > 100", "sample": 1 })).await;
    assert_eq!(
        (code, body["data"]["count"].clone(), body["data"]["sample"].as_array().map(Vec::len)),
        (200, json!(2), Some(1))
    );
    let (code, body) = api.post("/api/v1/segments/preview", json!({ "rule": "total_spend >" })).await;
    assert_eq!((code, error_code(&body)), (422, "invalid_rule"), "{body}");
    let (_, body) = api.get("/api/v1/segments").await;
    let counts: Vec<(String, u64)> = body["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| (s["name"].as_str().unwrap_or("").to_string(), s["count"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(counts, [("vips".to_string(), 2), ("spenders".to_string(), 2)]);
    let (code, body) = api.put("/api/v1/segments/1", json!({ "name": "top" })).await;
    assert_eq!((code, body["data"]["name"].clone()), (200, json!("top")));
    let (code, body) = api.post("/api/v1/segments", json!({ "name": "TOP", "rule": "visits > 1" })).await;
    assert_eq!((code, error_code(&body)), (409, "conflict"), "{body}");
    let (code, _) = api.call(reqwest::Method::DELETE, "/api/v1/segments/2", None).await;
    assert_eq!(code, 200);
    let (code, _) = api.get("/api/v1/segments/2").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_campaign_runs_through_the_api_to_completion() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let (_, seg) = api.post("/api/v1/segments", json!({ "name": "all", "rule": "visits >= 0" })).await;
    let segment_id = seg["data"]["id"].clone();
    let (code, body) = api
        .post("/api/v1/campaigns", json!({ "name": "promo", "segment_id": segment_id, "message_template": "" }))
        .await;
    assert_eq!((code, error_code(&body)), (400, "validation_error"), "an empty template: {body}");
    let (code, body) = api
        .post(
            "/api/v1/campaigns",
            json!({ "name": "promo", "segment_id": segment_id, "message_template": "Hi {{first_name|there}}" }),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let id = body["data"]["id"].as_i64().expect("id");
    let (code, body) = api.put(&format!("/api/v1/campaigns/{id}/status"), json!({ "status": "explode" })).await;
    assert_eq!((code, body["error"]["details"]["field"].clone()), (400, json!("status")));
    let (_sim, sim_url) = common::processes::start_sim_with(&crm, 20, 40, &[]);
    let _worker = common::processes::start_worker(
        &crm,
        &["all", "--sim-url", &sim_url, "--rate-per-minute", "0", "--webhook-listen", "127.0.0.1:0"],
        "worker.log",
    );
    let (code, body) = api.post(&format!("/api/v1/campaigns/{id}/run"), json!({})).await;
    assert_eq!((code, body["totalLeads"].clone(), body["success"].clone()), (200, json!(3), json!(true)), "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, body) = api.get(&format!("/api/v1/campaigns/{id}")).await;
        if body["data"]["status"] == "COMPLETED" {
            assert_eq!(body["data"]["stats"]["sent"], 3, "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the campaign did not complete: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (code, body) = api.get(&format!("/api/v1/campaigns/{id}/logs?limit=10")).await;
    assert_eq!((code, body["data"].as_array().map(Vec::len)), (200, Some(3)));
    let (code, body) = api.post(&format!("/api/v1/campaigns/{id}/run"), json!({})).await;
    assert_eq!((code, error_code(&body)), (409, "conflict"), "a completed campaign cannot run again: {body}");
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let doc: Value =
        api.client.get(format!("{}/openapi.json", api.base)).send().await.expect("request").json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 12, "{}", paths.len());
    for webhook in ["/receipts/{account}", "/webhooks/twilio/status", "/webhooks/twilio/inbound"] {
        assert!(paths.contains_key(webhook), "{webhook} is documented");
    }
    // Success answers are described field by field, not as any object.
    let page = &doc["paths"]["/api/v1/leads"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let text = page.to_string();
    assert!(text.contains("pagination") || text.contains("LeadPage"), "{page}");
    assert!(doc["components"]["schemas"]["Lead"]["properties"]["total_spend"].is_object(), "{}", doc["components"]);
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            let concrete = path.replace("{id}", "1");
            let method: reqwest::Method = method.to_uppercase().parse().expect("method");
            let body = matches!(method, reqwest::Method::POST | reqwest::Method::PUT).then(|| json!({}));
            let (code, body) = api.call(method.clone(), &concrete, body).await;
            let fallback = body["error"]["message"] == "no such route";
            assert!(!fallback && code != 405 && code < 500, "{method} {concrete}: {code} {body}");
        }
    }
    let res = api.client.get(format!("{}/health", api.base)).header("x-request-id", "abc-123").send().await;
    assert_eq!(res.expect("request").headers()["x-request-id"], "abc-123", "request ids are echoed");
    let (code, body) = api.get("/api/v1/nowhere").await;
    assert_eq!((code, body["error"]["message"].clone()), (404, json!("no such route")));
}
