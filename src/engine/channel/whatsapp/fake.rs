//! A scripted [`WaClient`] for tests and the demo: each `run` plays the next script of events
//! and returns (the client "stops"), or stays connected once the scripts are used up; sends
//! are recorded and answered `wa-1`, `wa-2`, … unless told to hang (no answer) or fail.

use super::{WaClient, WaEvent, WaSendError, lock};
use async_trait::async_trait;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::mpsc::UnboundedSender;

/// One run: the events it plays, and how it ends.
type Script = (Vec<WaEvent>, Result<(), String>);

#[derive(Debug, Default)]
pub struct FakeWaClient {
    /// (JID, text) of every message sent.
    pub sent: Mutex<Vec<(String, String)>>,
    /// How many times `run` was called.
    pub runs: AtomicUsize,
    /// When `run` was called, in tokio's clock.
    pub run_times: Mutex<Vec<tokio::time::Instant>>,
    scripts: Mutex<VecDeque<Script>>,
    /// Played by every run once the scripts are used up (then it stays connected).
    steady: Mutex<Vec<WaEvent>>,
    hang_sends: AtomicBool,
    fail_sends: Mutex<Option<WaSendError>>,
    not_on_whatsapp: Mutex<HashSet<String>>,
    qr: Mutex<Vec<String>>,
    pub logged_out: AtomicBool,
    checks: AtomicUsize,
}

impl FakeWaClient {
    /// A client that connects and stays connected.
    pub fn connected() -> FakeWaClient {
        let fake = FakeWaClient::default();
        *lock(&fake.steady) = vec![WaEvent::Connecting, WaEvent::Connected];
        fake
    }

    /// The next `run` plays `events` and then stops with `end`.
    pub fn script(&self, events: Vec<WaEvent>, end: Result<(), String>) {
        lock(&self.scripts).push_back((events, end));
    }

    pub fn set_qr(&self, payloads: Vec<String>) {
        *lock(&self.qr) = payloads;
    }

    /// Sends never answer (a request that left and was lost).
    pub fn hang_sends(&self, hang: bool) {
        self.hang_sends.store(hang, Ordering::SeqCst);
    }

    pub fn fail_sends(&self, error: Option<WaSendError>) {
        *lock(&self.fail_sends) = error;
    }

    pub fn not_on_whatsapp(&self, e164: &str) {
        lock(&self.not_on_whatsapp).insert(e164.to_string());
    }

    pub fn sent(&self) -> Vec<(String, String)> {
        lock(&self.sent).clone()
    }

    /// `is_on_whatsapp` questions asked.
    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl WaClient for FakeWaClient {
    async fn run(&self, events: UnboundedSender<WaEvent>) -> Result<(), String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        lock(&self.run_times).push(tokio::time::Instant::now());
        let next = lock(&self.scripts).pop_front();
        match next {
            Some((script, end)) => {
                for e in script {
                    let _ = events.send(e);
                }
                tokio::task::yield_now().await;
                end
            }
            None => {
                for e in lock(&self.steady).clone() {
                    let _ = events.send(e);
                }
                std::future::pending().await
            }
        }
    }

    fn qr_payloads(&self) -> Vec<String> {
        lock(&self.qr).clone()
    }

    async fn send_text(&self, jid: &str, text: &str) -> Result<String, WaSendError> {
        if self.hang_sends.load(Ordering::SeqCst) {
            lock(&self.sent).push((jid.to_string(), text.to_string()));
            return std::future::pending().await;
        }
        if let Some(e) = lock(&self.fail_sends).clone() {
            return Err(e);
        }
        let mut sent = lock(&self.sent);
        sent.push((jid.to_string(), text.to_string()));
        Ok(format!("wa-{}", sent.len()))
    }

    async fn is_on_whatsapp(&self, e164: &str) -> Result<bool, WaSendError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Ok(!lock(&self.not_on_whatsapp).contains(e164))
    }

    async fn logout(&self) -> Result<(), String> {
        self.logged_out.store(true, Ordering::SeqCst);
        Ok(())
    }
}
