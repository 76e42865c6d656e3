//! `crm whatsapp …`: link a WhatsApp account (QR code or pairing code), show the accounts'
//! state, log out. The send worker uses the linked session; one process at a time.

use super::output::{Column, Out, Table};
use super::worker::stop_on_signals;
use super::{Context, say};
use crate::cli::exit;
use crate::engine::app::shutdown_signal;
use crate::engine::app::whatsapp::{LoginProgress, render_qr};
use crate::engine::lead::format_time;
use crate::engine::store::Access;
use clap::Subcommand;
use std::io::Write as _;

#[derive(Debug, Subcommand)]
pub enum WhatsappCmd {
    /// Link this crm to a phone's WhatsApp (Linked devices → Link a device): shows QR codes
    /// until the phone scans one
    #[command(
        after_help = "Examples:\n  crm whatsapp login\n  crm whatsapp login --account sales --phone +447911123456"
    )]
    Login {
        /// The WhatsApp account (a [channels.NAME] section); needed when several are configured
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// Link with an 8-character pairing code for this number (E.164) as well as by QR
        #[arg(long, value_name = "NUMBER")]
        phone: Option<String>,
    },
    /// Show each WhatsApp account's number, connection state and when it last connected
    Status,
    /// Log out: wipe the account's session files (log in again to send)
    Logout {
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
}

impl WhatsappCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let app = ctx.app(Access::CreateIfMissing).await?;
        let mut out = Out::new();
        match self {
            WhatsappCmd::Status => {
                let all = app.whatsapp_status().await?;
                if ctx.global.json {
                    out.json(&all)?;
                } else if all.is_empty() {
                    say!("No WhatsApp account is configured (add a [channels.whatsapp] section to the config file).");
                } else {
                    let col = |header, flexible, right| Column { header, flexible, right };
                    let mut table = Table::new(vec![
                        col("ACCOUNT", false, false),
                        col("NUMBER", false, false),
                        col("STATE", true, false),
                        col("IN USE BY", false, true),
                        col("LAST CONNECTED", false, false),
                        col("UPDATED", false, false),
                    ]);
                    for s in &all {
                        table.push(vec![
                            s.account.clone(),
                            s.phone.clone().unwrap_or_default(),
                            s.describe(),
                            s.held_by.map(|p| format!("pid {p}")).unwrap_or_default(),
                            s.last_connected.as_ref().map(format_time).unwrap_or_else(|| "never".into()),
                            s.updated_at.as_ref().map(format_time).unwrap_or_default(),
                        ]);
                    }
                    out.table(&table)?;
                }
            }
            WhatsappCmd::Logout { account } => {
                let (name, had) = app.whatsapp_logout(account.as_deref()).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "account": name, "had_session": had }))?;
                } else if had {
                    out.line(format!(
                        "Logged out of WhatsApp account '{name}': session files removed. (The phone may still list \
                         the linked device: remove it under Linked devices.)"
                    ))?;
                } else {
                    out.line(format!("WhatsApp account '{name}' had no session."))?;
                }
            }
            WhatsappCmd::Login { account, phone } => {
                let (trigger, shutdown) = shutdown_signal();
                stop_on_signals(trigger);
                let json = ctx.global.json;
                let show = |p: LoginProgress| {
                    let mut err = std::io::stderr();
                    match p {
                        LoginProgress::Qr(payload) if json => {
                            let _ = writeln!(std::io::stdout(), "{}", serde_json::json!({ "qr": payload }));
                        }
                        LoginProgress::Qr(payload) => {
                            let size = terminal_size::terminal_size().map(|(w, h)| (w.0 as usize, h.0 as usize));
                            // Clear the screen so a rotated code replaces the last one.
                            let _ = write!(err, "\x1b[2J\x1b[H");
                            match render_qr(&payload, size) {
                                Ok(code) => {
                                    let _ = write!(err, "{code}");
                                }
                                Err(e) => say!("{e}"),
                            }
                            say!("Scan with WhatsApp on the phone: Settings → Linked devices → Link a device.");
                            say!("(The code changes every 20 seconds or so; Ctrl-C to stop.)");
                        }
                        LoginProgress::PairCode(code) if json => {
                            let _ = writeln!(std::io::stdout(), "{}", serde_json::json!({ "pair_code": code }));
                        }
                        LoginProgress::PairCode(code) => {
                            say!("Or on the phone: Linked devices → Link with phone number instead, and enter: {code}");
                        }
                        LoginProgress::Retry(why) => say!("Pairing failed ({why}); a new code follows."),
                        LoginProgress::StartingOver => {
                            say!("The codes expired unscanned; starting over with new ones.")
                        }
                    }
                };
                let outcome = app.whatsapp_login(account.as_deref(), phone.as_deref(), show, shutdown).await?;
                if json {
                    out.json(&outcome)?;
                } else {
                    let who = outcome.phone.as_deref().unwrap_or("the phone");
                    if outcome.already_linked {
                        out.line(format!("WhatsApp account '{}' is already linked and connected.", outcome.account))?;
                    } else {
                        out.line(format!("Linked WhatsApp account '{}' to {who}.", outcome.account))?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(exit::OK)
    }
}
