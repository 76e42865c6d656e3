//! `crm completions SHELL` and `crm man`: generated from the same clap definitions as the
//! commands, so they never drift from `--help`.

use super::Cli;
use crate::cli::exit;
use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct CompletionsCmd {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsCmd {
    pub fn run(&self) -> anyhow::Result<u8> {
        let mut cmd = Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(self.shell, &mut cmd, "crm", &mut out);
        write_stdout(&out)
    }
}

/// Prints the roff manual page of `crm` (its commands are listed in it; `crm COMMAND --help`
/// has each one in full).
pub fn man() -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<u8> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(exit::OK)
}
