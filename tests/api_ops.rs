//! `crm serve` as operators run it: `/health` turning 503 and naming the part that failed,
//! CORS for the configured origins only, a graceful stop on SIGTERM that lets a request in
//! progress finish, campaign status changes, and expired tokens.

mod common;

use common::Crm;
use common::api::{Api, error_code, three_leads};
use common::processes::API_SECRET;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[tokio::test]
async fn health_turns_503_and_names_the_store_when_its_file_is_gone() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let health = |api: &Api| {
        let req = api.client.get(format!("{}/health", api.base)).send();
        async move {
            let res = req.await.expect("request");
            let code = res.status().as_u16();
            (code, res.json::<Value>().await.expect("json"))
        }
    };
    let (code, body) = health(&api).await;
    assert_eq!((code, body["status"].clone()), (200, json!("ok")), "{body}");
    assert_eq!(body["services"]["database"], "connected");
    // Removed under the running server: its open connection still answers, but whatever it
    // wrote now would be lost with the unlinked file.
    std::fs::remove_file(crm.store()).expect("remove the store file");
    let (code, body) = health(&api).await;
    assert_eq!((code, body["status"].clone()), (503, json!("degraded")), "{body}");
    assert_eq!(body["services"]["database"], "unavailable", "{body}");
    assert_eq!(body["services"]["bus"], "connected", "only the failing part is named: {body}");
}

#[tokio::test]
async fn cors_answers_the_configured_origins_only() {
    let crm = three_leads();
    crm.write("xdg/config/crm/config.toml", "[api]\ncors_origins = [\"https://app.example.com\"]\n");
    let api = Api::start(&crm);
    let preflight = |origin: &str| {
        api.client
            .request(reqwest::Method::OPTIONS, format!("{}/api/v1/leads", api.base))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let res = preflight("https://app.example.com").await.expect("preflight");
    let headers = res.headers();
    assert_eq!(headers.get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"https://app.example.com"[..]));
    let methods = headers.get("access-control-allow-methods").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(methods.contains("GET") && methods.contains("PUT"), "{methods}");
    let allowed = headers.get("access-control-allow-headers").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(allowed.to_ascii_lowercase().contains("authorization"), "{allowed}");

    let res = preflight("https://evil.example").await.expect("preflight");
    assert!(res.headers().get("access-control-allow-origin").is_none(), "{:?}", res.headers());
    let res = api
        .client
        .get(format!("{}/api/v1/leads", api.base))
        .bearer_auth(&api.token)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
}

/// Waits up to `limit` for the server to exit; its exit code.
fn wait_exit(api: &mut Api, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = api.server.0.try_wait().expect("try_wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn sigterm_lets_the_request_in_progress_finish_then_exits_0() {
    let crm = three_leads();
    let mut api = Api::start(&crm);
    // A request whose body arrives in two parts, with SIGTERM in between: the handler is
    // reading it when the signal comes.
    let body = json!({ "name": "Kay", "email": "kay@example.com" }).to_string();
    let (first, rest) = body.split_at(10);
    let addr = api.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let head = format!(
        "POST /api/v1/leads HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        api.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the first part");
    std::thread::sleep(Duration::from_millis(300));
    let pid = api.server.pid().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(api.server.0.try_wait().expect("try_wait"), None, "still serving the request in progress");
    stream.write_all(rest.as_bytes()).expect("send the rest");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("kay@example.com"), "{answer}");
    assert_eq!(wait_exit(&mut api, Duration::from_secs(3)), Some(0), "exits 0 promptly");
    assert_eq!(crm.show("kay@example.com")["name"], "Kay", "the lead was stored");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "no longer listening");
}

#[tokio::test]
async fn a_campaign_is_paused_resumed_and_cancelled_and_illegal_changes_are_409() {
    let crm = three_leads();
    let api = Api::start(&crm);
    let (_, seg) = api.post("/api/v1/segments", json!({ "name": "all", "rule": "visits >= 0" })).await;
    let body = json!({ "name": "promo", "segment_id": seg["data"]["id"], "message_template": "Hi" });
    let (_, created) = api.post("/api/v1/campaigns", body).await;
    let id = created["data"]["id"].as_i64().expect("id");
    let status = format!("/api/v1/campaigns/{id}/status");
    let (code, body) = api.put(&status, json!({ "status": "pause" })).await;
    assert_eq!((code, error_code(&body)), (409, "conflict"), "a draft cannot be paused: {body}");
    let (code, body) = api.post(&format!("/api/v1/campaigns/{id}/run"), json!({})).await;
    assert_eq!(code, 200, "{body}");
    let mut seen = Vec::new();
    for change in ["pause", "resume", "PAUSE", "cancel"] {
        let (code, body) = api.put(&status, json!({ "status": change })).await;
        assert_eq!(code, 200, "{change}: {body}");
        assert_eq!(body["data"]["id"], id);
        seen.push(format!(
            "{}->{}",
            body["data"]["from"].as_str().unwrap_or(""),
            body["data"]["status"].as_str().unwrap_or("")
        ));
    }
    assert_eq!(seen, ["RUNNING->PAUSED", "PAUSED->RUNNING", "RUNNING->PAUSED", "PAUSED->CANCELLED"]);
    let (_, shown) = api.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["data"]["status"], "CANCELLED", "{shown}");
    for change in ["resume", "pause"] {
        let (code, body) = api.put(&status, json!({ "status": change })).await;
        assert_eq!((code, error_code(&body)), (409, "conflict"), "{change} after cancel: {body}");
    }
    let (code, _) = api.put("/api/v1/campaigns/99/status", json!({ "status": "pause" })).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn an_expired_token_is_refused_with_401() {
    let crm = Crm::new();
    let api = Api::start(&crm);
    let now = chrono::Utc::now().timestamp();
    let sign = |exp: i64| {
        let claims = crm::api::auth::Claims { sub: "tester".into(), iat: now - 7200, exp };
        crm::api::auth::mint(API_SECRET.as_bytes(), &claims)
    };
    let url = format!("{}/api/v1/leads", api.base);
    let res = api.client.get(&url).bearer_auth(sign(now - 60)).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.expect("json");
    assert_eq!(error_code(&body), "unauthorized");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("expired"), "{body}");
    // The same token, still valid, passes: only `exp` made the difference.
    let res = api.client.get(&url).bearer_auth(sign(now + 60)).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 200);
}
