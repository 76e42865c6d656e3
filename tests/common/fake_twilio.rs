//! A fake Twilio Messages API on 127.0.0.1 (no network), on its own thread and runtime: it
//! checks the path and Basic auth, keeps each accepted form, and can be told to hang (accept the
//! request and never answer), which is how a test leaves a send's outcome unknown.

use super::Crm;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const SID: &str = "ACtest0001";
pub const TOKEN: &str = "test-auth-token";

/// One message the fake Twilio accepted: its form fields and the sid it answered with.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub sid: String,
    pub form: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    accepted: Mutex<Vec<Accepted>>,
    refused: Mutex<Vec<String>>,
    hang: AtomicBool,
    hung: AtomicUsize,
}

pub struct FakeTwilio {
    pub url: String,
    state: Arc<State>,
}

impl FakeTwilio {
    pub fn start() -> FakeTwilio {
        let state: Arc<State> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let handler = move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let s = shared.clone();
                    async move {
                        let expected = format!("/2010-04-01/Accounts/{SID}/Messages.json");
                        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                        let basic = format!("Basic {}", base64_of(&format!("{SID}:{TOKEN}")));
                        if uri.path() != expected || auth != basic {
                            s.refused.lock().expect("lock").push(format!("{} {auth}", uri.path()));
                            return (
                                axum::http::StatusCode::UNAUTHORIZED,
                                r#"{"code": 20003, "message": "Authenticate"}"#.to_string(),
                            );
                        }
                        if s.hang.load(Ordering::SeqCst) {
                            s.hung.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<()>().await;
                        }
                        let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
                        let mut all = s.accepted.lock().expect("lock");
                        let sid = format!("SM{:032}", all.len() + 1);
                        all.push(Accepted { sid: sid.clone(), form });
                        (axum::http::StatusCode::CREATED, format!(r#"{{"sid": "{sid}", "status": "queued"}}"#))
                    }
                };
                let app = axum::Router::new().route("/{*path}", axum::routing::post(handler));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let _ = axum::serve(listener, app).await;
            });
        });
        let addr = rx.recv().expect("the fake Twilio started");
        FakeTwilio { url: format!("http://{addr}"), state }
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.state.accepted.lock().expect("lock").clone()
    }

    /// Requests refused for a wrong path or credentials.
    pub fn refused(&self) -> Vec<String> {
        self.state.refused.lock().expect("lock").clone()
    }

    /// From now on, take requests and never answer them (false: answer again).
    pub fn hang(&self, on: bool) {
        self.state.hang.store(on, Ordering::SeqCst);
    }

    /// How many requests were taken and never answered.
    pub fn hung(&self) -> usize {
        self.state.hung.load(Ordering::SeqCst)
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Writes the sandbox's default config file (every `crm` command of the test reads it).
pub fn write_config(crm: &Crm, twilio: &FakeTwilio, extra: &str) {
    let config = format!(
        "[channels.twilio]\naccount_sid = \"{SID}\"\nauth_token = \"{TOKEN}\"\nfrom = \"whatsapp:+14155238886\"\n\
         api_base = \"{}\"\n{extra}",
        twilio.url
    );
    crm.write("xdg/config/crm/config.toml", config);
}
