use super::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use std::sync::{Arc, Mutex};

/// One request the fake Twilio received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

/// A status, a body and a Retry-After to answer with.
type Answer = Option<(u16, String, Option<String>)>;

#[derive(Clone, Default)]
pub(crate) struct Fake {
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    /// The status and body to answer with (201 + a message resource when None).
    answer: Arc<Mutex<Answer>>,
}

async fn handle(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    fake.seen.lock().expect("lock").push(Seen { method, path: uri.path().to_string(), authorization, form });
    let answer = fake.answer.lock().expect("lock").clone();
    match answer {
        None => (
            axum::http::StatusCode::CREATED,
            [("content-type", "application/json")],
            r#"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}"#.to_string(),
        )
            .into_response(),
        Some((code, body, retry_after)) => {
            let mut response =
                (axum::http::StatusCode::from_u16(code).expect("status"), [("content-type", "application/json")], body)
                    .into_response();
            if let Some(after) = retry_after {
                response.headers_mut().insert("retry-after", after.parse().expect("header"));
            }
            response
        }
    }
}

pub(crate) async fn fake_twilio() -> (Fake, String) {
    let fake = Fake::default();
    let app = axum::Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (fake, format!("http://{addr}"))
}

pub(crate) fn config(api_base: &str, from: &str) -> TwilioConfig {
    TwilioConfig {
        name: "twilio".into(),
        account_sid: "AC123".into(),
        auth_token: "secret-token".into(),
        from: from.into(),
        api_base: api_base.into(),
        status_callback: None,
    }
}

fn message() -> OutboundMessage {
    OutboundMessage {
        send_id: "1:2".into(),
        to: "+447700900123".into(),
        body: "Hi Ada & co = 100%".into(),
        callback_url: Some("http://127.0.0.1:8090/receipts/twilio".into()),
        campaign_id: None,
        timezone: None,
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_send_posts_the_form_with_basic_auth_and_records_the_sid() {
    let (fake, base) = fake_twilio().await;
    let channel = TwilioChannel::new(config(&base, "whatsapp:+14155238886")).expect("channel");
    let outcome = channel.send(&message()).await.expect("sent");
    assert_eq!(
        outcome,
        SendOutcome { provider_message_id: "SM0123456789abcdef0123456789abcdef".into(), duplicate: false }
    );
    let seen = fake.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.path, "/2010-04-01/Accounts/AC123/Messages.json");
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("AC123:secret-token"));
    assert_eq!(s.authorization.as_deref(), Some(expected.as_str()));
    assert_eq!(field(s, "To"), Some("whatsapp:+447700900123"));
    assert_eq!(field(s, "From"), Some("whatsapp:+14155238886"));
    assert_eq!(field(s, "Body"), Some("Hi Ada & co = 100%"));
    assert_eq!(field(s, "StatusCallback"), Some("http://127.0.0.1:8090/webhooks/twilio/status"));
    assert_eq!((channel.name(), channel.max_length()), ("twilio", 1_600));
}

#[tokio::test]
async fn sms_numbers_have_no_prefix_and_a_configured_callback_wins() {
    let (fake, base) = fake_twilio().await;
    let mut c = config(&format!("{base}/"), "+14155238886");
    c.status_callback = Some("https://crm.example.com/webhooks/twilio/status".into());
    let channel = TwilioChannel::new(c).expect("channel");
    channel.send(&message()).await.expect("sent");
    let no_callback = OutboundMessage { callback_url: None, ..message() };
    channel.send(&no_callback).await.expect("sent");
    let seen = fake.seen.lock().expect("lock").clone();
    assert_eq!(seen[0].path, "/2010-04-01/Accounts/AC123/Messages.json", "a trailing slash in api_base");
    assert_eq!(field(&seen[0], "To"), Some("+447700900123"));
    assert_eq!(field(&seen[0], "StatusCallback"), Some("https://crm.example.com/webhooks/twilio/status"));
    assert_eq!(field(&seen[1], "StatusCallback"), Some("https://crm.example.com/webhooks/twilio/status"));
    let plain = TwilioChannel::new(config(&base, "+14155238886")).expect("channel");
    plain.send(&no_callback).await.expect("sent");
    assert_eq!(field(&fake.seen.lock().expect("lock")[2], "StatusCallback"), None, "no callback known: none sent");
}

#[tokio::test]
async fn refusals_map_to_the_three_kinds() {
    let (fake, base) = fake_twilio().await;
    let channel = TwilioChannel::new(config(&base, "+14155238886")).expect("channel");
    let answer = |code: u16, body: &str, after: Option<&str>| {
        *fake.answer.lock().expect("lock") = Some((code, body.to_string(), after.map(str::to_string)));
    };
    answer(429, r#"{"code": 20429, "message": "Too Many Requests"}"#, Some("3"));
    assert_eq!(channel.send(&message()).await, Err(ChannelError::RateLimited { retry_after: Duration::from_secs(3) }));
    answer(429, "", None);
    assert_eq!(channel.send(&message()).await, Err(ChannelError::RateLimited { retry_after: DEFAULT_RETRY_AFTER }));
    answer(500, r#"{"code": 20500, "message": "Internal Server Error"}"#, None);
    let err = channel.send(&message()).await.expect_err("500");
    assert!(
        matches!(&err, ChannelError::Transient(m) if m == "HTTP 500: Twilio error 20500: Internal Server Error"),
        "{err}"
    );
    answer(503, "upstream down", None);
    assert!(
        matches!(channel.send(&message()).await, Err(ChannelError::Transient(m)) if m == "HTTP 503: upstream down")
    );
    answer(
        400,
        r#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "status": 400}"#,
        None,
    );
    let err = channel.send(&message()).await.expect_err("400");
    assert_eq!(
        err,
        ChannelError::Permanent(
            "HTTP 400: Twilio error 21211: The 'To' number +1555 is not a valid phone number.".into()
        )
    );
    assert!(!err.is_retryable());
    answer(401, r#"{"code": 20003, "message": "Authenticate"}"#, None);
    assert!(matches!(channel.send(&message()).await, Err(ChannelError::Permanent(m)) if m.contains("20003")));
    answer(201, "not json", None);
    assert!(
        matches!(channel.send(&message()).await, Err(ChannelError::Ambiguous(m)) if m.contains("may have been sent"))
    );
}

/// A request that reached Twilio and got no answer in time may have sent the message: its
/// outcome is unknown (UNCERTAIN), never retried into a second send.
#[tokio::test]
async fn a_request_without_an_answer_in_time_is_ambiguous() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Takes the connection and the request, and never answers.
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let channel = TwilioChannel::new(config(&format!("http://{addr}"), "+14155238886"))
        .and_then(|c| c.with_request_timeout(Duration::from_millis(300)))
        .expect("channel");
    let err = channel.send(&message()).await.expect_err("no answer");
    assert!(matches!(&err, ChannelError::Ambiguous(m) if m.contains("no answer in time")), "{err:?}");
    assert!(!err.is_retryable());
    held.abort();
}

#[tokio::test]
async fn lookup_is_permanent_and_a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let channel = TwilioChannel::new(config(&format!("http://{addr}"), "+14155238886")).expect("channel");
    assert!(matches!(channel.lookup("1:2").await, Err(ChannelError::Permanent(_))));
    assert!(
        matches!(channel.send(&message()).await, Err(ChannelError::Transient(m)) if m.starts_with("cannot connect"))
    );
}

#[test]
fn bad_configs_are_refused_and_secrets_never_debug_print() {
    let ok = config("http://127.0.0.1:1", "+1");
    assert!(TwilioChannel::new(TwilioConfig { auth_token: " ".into(), ..ok.clone() }).is_err());
    assert!(TwilioChannel::new(TwilioConfig { account_sid: String::new(), ..ok.clone() }).is_err());
    assert!(TwilioChannel::new(TwilioConfig { from: String::new(), ..ok.clone() }).is_err());
    assert!(TwilioChannel::new(TwilioConfig { api_base: "api.twilio.com".into(), ..ok.clone() }).is_err());
    let channel = TwilioChannel::new(ok).expect("channel");
    let shown = format!("{channel:?}");
    assert!(!shown.contains("secret-token") && !shown.contains("AC123"), "{shown}");
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// Twilio's published example (twilio.com/docs/usage/security, auth token 12345). Note the
/// URL is mycompany.com and the caller +14158675310: with example.com and +12349013030 the
/// same algorithm gives another signature (checked below, computed independently with
/// Python's hmac module).
const EXAMPLE_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const EXAMPLE_PARAMS: &[(&str, &str)] = &[
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
];

#[test]
fn the_signature_matches_twilios_published_example() {
    let params = pairs(EXAMPLE_PARAMS);
    assert_eq!(signature("12345", EXAMPLE_URL, &params), "GvWf1cFY/Q7PnoempGyD5oXAezc=");
    assert!(verify_signature("12345", EXAMPLE_URL, &params, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
    // The order parameters arrive in does not matter: they are sorted by name.
    let mut reversed = params.clone();
    reversed.reverse();
    assert!(verify_signature("12345", EXAMPLE_URL, &reversed, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
    let other = pairs(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]);
    let other_url = "https://example.com/myapp.php?foo=1&bar=2";
    assert_eq!(signature("12345", other_url, &other), "vNe7KK2kJwCsxc9K3OLkkKB3qqI=");
    assert!(!verify_signature("12345", other_url, &other, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
}

#[test]
fn tampered_urls_params_signatures_and_keys_are_refused() {
    let params = pairs(EXAMPLE_PARAMS);
    let good = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
    assert!(!verify_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &params, good));
    assert!(!verify_signature("12345", "http://mycompany.com/myapp.php?foo=1&bar=2", &params, good));
    let mut changed = params.clone();
    changed[2].1 = "1235".into();
    assert!(!verify_signature("12345", EXAMPLE_URL, &changed, good));
    let mut extra = params.clone();
    extra.push(("Body".into(), "STOP".into()));
    assert!(!verify_signature("12345", EXAMPLE_URL, &extra, good));
    assert!(!verify_signature("12345", EXAMPLE_URL, &params[1..], good));
    assert!(!verify_signature("54321", EXAMPLE_URL, &params, good));
    assert!(!verify_signature("12345", EXAMPLE_URL, &params, "GvWf1cFY/Q7PnoempGyD5oXAezd="));
    assert!(!verify_signature("12345", EXAMPLE_URL, &params, ""));
    assert!(!verify_signature("12345", EXAMPLE_URL, &params, "not base64!"));
    assert!(!verify_signature("12345", EXAMPLE_URL, &params, "GvWf1cFY"));
}

#[test]
fn statuses_map_onto_log_statuses() {
    assert_eq!(map_status("queued", None), None);
    assert_eq!(map_status("accepted", None), None);
    assert_eq!(map_status("sending", None), None);
    assert_eq!(map_status("sent", None), Some((SendStatus::Sent, None)));
    assert_eq!(map_status("delivered", Some("")), Some((SendStatus::Delivered, None)));
    assert_eq!(map_status("READ", None), Some((SendStatus::Read, None)));
    assert_eq!(map_status("undelivered", Some("30003")), Some((SendStatus::Failed, Some("Twilio error 30003".into()))));
    assert_eq!(map_status("failed", None), Some((SendStatus::Failed, Some("Twilio: failed".into()))));
    assert_eq!(map_status("failed", Some("0")), Some((SendStatus::Failed, Some("Twilio: failed".into()))));
    assert_eq!(bare_number("whatsapp:+447700900123"), "+447700900123");
    assert_eq!(bare_number(" +447700900123 "), "+447700900123");
}
