//! WhatsApp accounts: log in (pair this crm as a linked device, by QR code or pairing code),
//! show their state, log out (wipe the session files). The session lives in the account's
//! session directory, used by one process at a time (`session.lock`); the state each process
//! sees comes from the store, where the send worker's supervisor and `login` record it.

use super::App;
use crate::engine::channel::whatsapp::account::{WaAccountConfig, account_config};
use crate::engine::channel::whatsapp::session::{self, LockError, SessionLock};
use crate::engine::channel::whatsapp::{ChannelState, WaClient, WaEvent, phone_of_jid};
use crate::engine::config::ChannelKind;
use crate::engine::error::{Error, Result};
use crate::engine::pipeline::worker::Shutdown;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One WhatsApp account as `crm whatsapp status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatsAppStatus {
    pub account: String,
    pub session_dir: PathBuf,
    /// A session is stored (a login happened and was not logged out).
    pub has_session: bool,
    /// The process using the session right now (a worker, a login), if any.
    pub held_by: Option<u32>,
    /// The state last recorded in the store, and when.
    pub state: Option<ChannelState>,
    pub updated_at: Option<DateTime<Utc>>,
    /// The paired number and when the session last connected (from the session directory).
    pub phone: Option<String>,
    pub last_connected: Option<DateTime<Utc>>,
}

impl WhatsAppStatus {
    /// One line for a table.
    pub fn describe(&self) -> String {
        match (&self.state, self.has_session) {
            (_, false) => "no session (log in first)".into(),
            (Some(state), true) => state.describe(),
            (None, true) => "session stored; no state recorded yet (start a send worker)".into(),
        }
    }
}

/// What a login reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginProgress {
    /// Show this QR payload (it replaces the previous one).
    Qr(String),
    /// Enter this code on the phone (linking by phone number).
    PairCode(String),
    /// The phone refused a pairing attempt; a new code follows.
    Retry(String),
    /// Every QR code expired unscanned: a new session starts, with new codes.
    StartingOver,
}

/// How a login ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginOutcome {
    pub account: String,
    /// The linked phone's number, when WhatsApp said.
    pub phone: Option<String>,
    /// The session already existed and connected: nothing was paired.
    pub already_linked: bool,
}

/// How long a login waits for WhatsApp's first answer before calling it unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a login waits, once paired, for the session to come up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The QR code of `payload` for a terminal of `size` (columns, rows), or a readable fallback.
#[cfg(feature = "whatsapp")]
pub fn render_qr(payload: &str, size: Option<(usize, usize)>) -> Result<String> {
    crate::engine::channel::whatsapp::qr::for_terminal(payload, size).map_err(Error::Usage)
}

#[cfg(not(feature = "whatsapp"))]
pub fn render_qr(_payload: &str, _size: Option<(usize, usize)>) -> Result<String> {
    Err(not_in_build())
}

#[cfg(not(feature = "whatsapp"))]
fn not_in_build() -> Error {
    Error::Usage("WhatsApp is not available in this build (it was built without the `whatsapp` feature)".into())
}

fn unreachable(account: &str, why: impl std::fmt::Display) -> Error {
    Error::Store { store: format!("WhatsApp (account {account})"), message: format!("cannot reach WhatsApp: {why}") }
}

fn lock_error(e: LockError) -> Error {
    match e {
        held @ LockError::Held { .. } => Error::Conflict(held.to_string()),
        io @ LockError::Io { .. } => Error::Usage(io.to_string()),
    }
}

impl App {
    /// The configured WhatsApp accounts' names.
    pub fn whatsapp_accounts(&self) -> Vec<String> {
        self.config()
            .channels
            .iter()
            .filter(|(_, s)| s.kind() == ChannelKind::Whatsapp)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The account `name` names, or the only WhatsApp account when `None`.
    pub fn whatsapp_account(&self, name: Option<&str>) -> Result<(String, WaAccountConfig)> {
        let accounts = self.whatsapp_accounts();
        let name = match (name, accounts.as_slice()) {
            (Some(n), _) => n.to_string(),
            (None, [only]) => only.clone(),
            (None, []) => {
                return Err(Error::Usage(
                    "no WhatsApp account is configured; add a [channels.whatsapp] section to the config file".into(),
                ));
            }
            (None, many) => {
                return Err(Error::Usage(format!(
                    "several WhatsApp accounts are configured; name one: {}",
                    many.join(", ")
                )));
            }
        };
        let section =
            self.config().channels.get(&name).filter(|s| s.kind() == ChannelKind::Whatsapp).ok_or_else(|| {
                Error::NotFound(format!("there is no WhatsApp account '{name}'; configured: {}", accounts.join(", ")))
            })?;
        Ok((name.clone(), account_config(self.config(), &name, section)?))
    }

    /// Every WhatsApp account's session and recorded state.
    pub async fn whatsapp_status(&self) -> Result<Vec<WhatsAppStatus>> {
        let stored = self.campaign_store().channel_states().await?;
        let mut out = Vec::new();
        for name in self.whatsapp_accounts() {
            let (_, wa) = self.whatsapp_account(Some(&name))?;
            let record = stored.iter().find(|r| r.account == name);
            let info = session::read_info(&wa.session_dir);
            out.push(WhatsAppStatus {
                phone: info.phone,
                last_connected: info.last_connected,
                account: name.clone(),
                has_session: session::has_session(&wa.session_dir),
                held_by: SessionLock::holder(&wa.session_dir),
                state: record.and_then(|r| serde_json::from_value(r.state.clone()).ok()),
                updated_at: record.map(|r| r.updated_at),
                session_dir: wa.session_dir,
            });
        }
        Ok(out)
    }

    async fn record_whatsapp_state(&self, account: &str, state: &ChannelState) {
        let json = serde_json::to_value(state).unwrap_or_default();
        if let Err(e) = self.campaign_store().set_channel_state(account, &json, Utc::now()).await {
            tracing::warn!(account, error = %e, "Could not record the WhatsApp state.");
        }
    }

    /// Links the account as a device of the phone: shows QR codes (or a pairing code with
    /// `phone`) until the phone pairs, then waits for the session to come up. WhatsApp
    /// unreachable: `Error::Store` (the CLI's exit 3).
    pub async fn whatsapp_login(
        &self,
        account: Option<&str>,
        phone: Option<&str>,
        progress: impl FnMut(LoginProgress),
        shutdown: Shutdown,
    ) -> Result<LoginOutcome> {
        let (name, wa) = self.whatsapp_account(account)?;
        let _lock = SessionLock::acquire(&wa.session_dir).map_err(lock_error)?;
        #[cfg(feature = "whatsapp")]
        {
            let phone = match phone {
                Some(p) => Some(crate::engine::channel::whatsapp::jid_for(p).map_err(|e| Error::invalid("phone", e))?),
                None => None,
            };
            let client = crate::engine::channel::whatsapp::real::RealWaClient::new(wa.session_dir.clone(), phone);
            let had_session = session::has_session(&wa.session_dir);
            let outcome = self.whatsapp_login_with(&name, Arc::new(client), had_session, progress, shutdown).await;
            if let Ok(done) = &outcome
                && let Err(e) = session::note_connected(&wa.session_dir, done.phone.as_deref(), Utc::now())
            {
                tracing::warn!(account = %name, error = %e, "Could not note the WhatsApp connection.");
            }
            if outcome.is_err() && !had_session {
                // wa-rs created its session file before pairing: an unpaired one is no session.
                let _ = session::wipe(&wa.session_dir);
            }
            outcome
        }
        #[cfg(not(feature = "whatsapp"))]
        {
            let _ = (name, phone, progress, shutdown);
            Err(not_in_build())
        }
    }

    /// The login over any client (tests use a fake); the caller holds the session lock.
    pub async fn whatsapp_login_with(
        &self,
        account: &str,
        client: Arc<dyn WaClient>,
        had_session: bool,
        mut progress: impl FnMut(LoginProgress),
        mut shutdown: Shutdown,
    ) -> Result<LoginOutcome> {
        // Each pass is one client run; a run whose QR codes all expired unscanned starts over.
        'attempt: loop {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut heard = false;
            let mut showed_qr = false;
            let mut paired: Option<Option<String>> = None;
            let first_answer = tokio::time::sleep(CONNECT_TIMEOUT);
            tokio::pin!(first_answer);
            let settle = tokio::time::sleep(Duration::MAX / 4);
            tokio::pin!(settle);
            let mut ended: Option<std::result::Result<(), String>> = None;
            let result = {
                let run = client.run(tx);
                tokio::pin!(run);
                loop {
                    let live = ended.is_none();
                    tokio::select! {
                        // Events first: those sent just before the client stopped still count.
                        biased;
                        Some(event) = rx.recv() => {
                            if !matches!(event, WaEvent::Connecting) {
                                heard = true;
                            }
                            match event {
                                WaEvent::Qr { payload, .. } => {
                                    showed_qr = true;
                                    let state = ChannelState::PairingNeeded { qr: Some(payload.clone()) };
                                    self.record_whatsapp_state(account, &state).await;
                                    progress(LoginProgress::Qr(payload));
                                }
                                WaEvent::PairCode { code } => progress(LoginProgress::PairCode(code)),
                                WaEvent::PairError(why) => progress(LoginProgress::Retry(why)),
                                WaEvent::PairSuccess { jid } => {
                                    let phone = phone_of_jid(&jid);
                                    self.record_whatsapp_state(account, &ChannelState::Connected { phone: phone.clone() }).await;
                                    paired = Some(phone);
                                    settle.as_mut().reset(tokio::time::Instant::now() + SETTLE_TIMEOUT);
                                }
                                WaEvent::Connected => {
                                    let phone = paired.clone().flatten();
                                    self.record_whatsapp_state(account, &ChannelState::Connected { phone: phone.clone() }).await;
                                    let already_linked = paired.is_none() && had_session;
                                    break Ok(LoginOutcome { account: account.into(), phone, already_linked });
                                }
                                WaEvent::LoggedOut | WaEvent::StreamReplaced => {
                                    let state = ChannelState::LoggedOut { reason: "the phone refused the session".into() };
                                    self.record_whatsapp_state(account, &state).await;
                                    break Err(Error::Conflict(format!(
                                        "WhatsApp ended the session of account '{account}'; log out to wipe it, then log in again"
                                    )));
                                }
                                event @ WaEvent::TemporaryBan { .. } => {
                                    if let Some(state) = crate::engine::channel::whatsapp::state_after(&event, Utc::now()) {
                                        self.record_whatsapp_state(account, &state).await;
                                        break Err(unreachable(account, state.describe()));
                                    }
                                }
                                WaEvent::ConnectFailure(why) if paired.is_none() => break Err(unreachable(account, why)),
                                WaEvent::Disconnected if paired.is_none() && !had_session => {
                                    break Err(unreachable(account, "the connection closed"));
                                }
                                _ => {}
                            }
                        }
                        done = &mut run, if live => ended = Some(done),
                        _ = &mut first_answer, if live && !heard => {
                            break Err(unreachable(account, format!("no answer within {CONNECT_TIMEOUT:?}")));
                        }
                        _ = &mut settle, if live && paired.is_some() => {
                            break Ok(LoginOutcome { account: account.into(), phone: paired.clone().flatten(), already_linked: false });
                        }
                        _ = shutdown.wait(), if live => break Err(Error::Usage("login interrupted".into())),
                        // The client stopped and its events are all read.
                        else => {
                            break match (paired.clone(), ended.take()) {
                                (Some(phone), _) => Ok(LoginOutcome { account: account.into(), phone, already_linked: false }),
                                (None, Some(Err(why))) => Err(unreachable(account, why)),
                                // wa-rs ends `run()` once its QR codes expire: new codes, same login.
                                (None, Some(Ok(()))) if showed_qr => {
                                    progress(LoginProgress::StartingOver);
                                    continue 'attempt;
                                }
                                (None, _) => Err(unreachable(account, "the client stopped")),
                            };
                        }
                    }
                }
            };
            client.disconnect().await;
            return result;
        }
    }

    /// Ends the account's session: asks the client to log out when one can be started, and
    /// wipes the session files. Returns whether there was a session. The session must not be
    /// in use (a running worker holds its lock).
    pub async fn whatsapp_logout(&self, account: Option<&str>) -> Result<(String, bool)> {
        let (name, wa) = self.whatsapp_account(account)?;
        let _lock = SessionLock::acquire(&wa.session_dir).map_err(lock_error)?;
        let had = session::has_session(&wa.session_dir);
        session::wipe(&wa.session_dir).map_err(|e| {
            Error::Usage(format!("cannot remove the session files in {}: {e}", wa.session_dir.display()))
        })?;
        self.record_whatsapp_state(&name, &ChannelState::PairingNeeded { qr: None }).await;
        Ok((name, had))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::channel::whatsapp::fake::FakeWaClient;
    use crate::engine::config::{Config, FlagConfig};
    use crate::engine::pipeline::worker::shutdown_signal;
    use crate::engine::store::Access;

    async fn app(dir: &std::path::Path) -> App {
        let path = dir.join("c.toml");
        let session = dir.join("session");
        std::fs::write(
            &path,
            format!(
                "store = \"{}\"\n[channels.wa]\nkind = \"whatsapp\"\nsession_dir = \"{}\"\n",
                dir.join("crm.db").display(),
                session.display()
            ),
        )
        .expect("write");
        let config =
            Config::load(&FlagConfig { config_file: Some(path), ..Default::default() }, &|_| None).expect("config");
        App::open(config, Access::CreateIfMissing).await.expect("app")
    }

    #[tokio::test(start_paused = true)]
    async fn login_shows_each_qr_and_reports_the_paired_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path()).await;
        let fake = Arc::new(FakeWaClient::default());
        let qr = |p: &str| WaEvent::Qr { payload: p.into(), valid_for: Duration::from_secs(20) };
        fake.script(
            vec![
                WaEvent::Connecting,
                qr("2@one"),
                qr("2@two"),
                WaEvent::PairSuccess { jid: "447911123456:4@s.whatsapp.net".into() },
                WaEvent::Connected,
            ],
            Ok(()),
        );
        let mut seen = Vec::new();
        let (_t, shutdown) = shutdown_signal();
        let outcome =
            app.whatsapp_login_with("wa", fake.clone(), false, |p| seen.push(p), shutdown).await.expect("logged in");
        assert_eq!(seen, [LoginProgress::Qr("2@one".into()), LoginProgress::Qr("2@two".into())]);
        assert_eq!(outcome.phone.as_deref(), Some("+447911123456"));
        assert!(!outcome.already_linked);
        let status = app.whatsapp_status().await.expect("status");
        assert_eq!(status[0].state, Some(ChannelState::Connected { phone: Some("+447911123456".into()) }));
        assert!(!status[0].has_session, "the fake stores no session files");
        // The dashboard's snapshot carries the recorded state.
        let snapshot = app.snapshot().await.expect("snapshot");
        let wa = snapshot.channels.iter().find(|a| a.name == "wa").expect("the wa account");
        assert_eq!(wa.kind, "whatsapp");
        assert_eq!(wa.connection.as_ref().map(|c| c["state"].clone()), Some(serde_json::json!("connected")));
        assert!(wa.connection_updated_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn login_starts_over_when_the_qr_codes_run_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path()).await;
        let fake = Arc::new(FakeWaClient::default());
        let qr = |p: &str| WaEvent::Qr { payload: p.into(), valid_for: Duration::from_secs(20) };
        // wa-rs ends the run once its codes expire unscanned; the next run has new ones.
        fake.script(vec![WaEvent::Connecting, qr("2@one"), qr("2@two")], Ok(()));
        fake.script(vec![WaEvent::Connecting, qr("2@three")], Ok(()));
        let paired = vec![qr("2@four"), WaEvent::PairSuccess { jid: "447911123456@s.whatsapp.net".into() }];
        fake.script([paired, vec![WaEvent::Connected]].concat(), Ok(()));
        let mut seen = Vec::new();
        let (_t, shutdown) = shutdown_signal();
        let outcome =
            app.whatsapp_login_with("wa", fake.clone(), false, |p| seen.push(p), shutdown).await.expect("logged in");
        let q = |p: &str| LoginProgress::Qr(p.into());
        let expected = [
            q("2@one"),
            q("2@two"),
            LoginProgress::StartingOver,
            q("2@three"),
            LoginProgress::StartingOver,
            q("2@four"),
        ];
        assert_eq!(seen, expected);
        assert_eq!(fake.runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(outcome.phone.as_deref(), Some("+447911123456"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_whatsapp_is_a_backend_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path()).await;
        let (_t, shutdown) = shutdown_signal();
        let fake = Arc::new(FakeWaClient::default());
        fake.script(vec![WaEvent::Connecting, WaEvent::ConnectFailure("dns lookup failed".into())], Err("x".into()));
        let err = app.whatsapp_login_with("wa", fake, false, |_| {}, shutdown.clone()).await.expect_err("offline");
        assert!(matches!(&err, Error::Store { message, .. } if message.contains("dns")), "{err:?}");
        // Silence: no answer at all within the timeout.
        let silent = Arc::new(FakeWaClient::default());
        let err = app.whatsapp_login_with("wa", silent, false, |_| {}, shutdown).await.expect_err("silent");
        assert!(matches!(&err, Error::Store { message, .. } if message.contains("no answer")), "{err:?}");
    }

    #[tokio::test]
    async fn logout_wipes_the_session_and_a_held_session_names_its_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = app(dir.path()).await;
        let session_dir = dir.path().join("session");
        std::fs::create_dir_all(&session_dir).expect("mkdir");
        std::fs::write(session_dir.join(session::SESSION_DB), "keys").expect("write");
        let held = SessionLock::acquire(&session_dir).expect("lock");
        let err = app.whatsapp_logout(None).await.expect_err("held");
        assert!(matches!(&err, Error::Conflict(m) if m.contains(&std::process::id().to_string())), "{err:?}");
        drop(held);
        assert_eq!(app.whatsapp_logout(None).await.expect("logged out"), ("wa".to_string(), true));
        let status = app.whatsapp_status().await.expect("status");
        assert!(!status[0].has_session);
        assert_eq!(status[0].state, Some(ChannelState::PairingNeeded { qr: None }));
        assert_eq!(status[0].describe(), "no session (log in first)");
        assert!(app.whatsapp_account(Some("nope")).is_err());
    }
}
