//! `crm tui`: opens the app on an existing store and hands it to the dashboard (`src/tui`).

use super::{Context, exit};
use crate::engine::store::Access;
use anyhow::bail;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(after_help = "Keys: 1-4 or Tab switch screens, ? lists every key, q quits.\n\
    Logs go to the --log file (default: the platform data dir's crm/tui.log), not the screen.")]
pub struct TuiCmd {
    /// Write logs here while the dashboard runs [default: the platform data dir's crm/tui.log]
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

impl TuiCmd {
    pub fn log_path(&self) -> PathBuf {
        self.log.clone().unwrap_or_else(|| {
            directories::ProjectDirs::from("", "", "crm")
                .map(|d| d.data_dir().join("tui.log"))
                .unwrap_or_else(|| PathBuf::from("crm-tui.log"))
        })
    }

    pub async fn run(&self, ctx: &Context) -> anyhow::Result<u8> {
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            bail!(crate::engine::Error::Usage("`crm tui` needs a terminal (stdin and stdout)".into()));
        }
        let app = ctx.app(Access::Existing).await?;
        // A second handle for the snapshot poller: its own store connection (see `tui::run`).
        let poll_app = ctx.app(Access::Existing).await?;
        crate::tui::run(Arc::new(app), Arc::new(poll_app)).await?;
        Ok(exit::OK)
    }
}
