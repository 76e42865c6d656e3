//! The command line: global options, one module per noun, and the mapping from outcomes to
//! exit codes. Every command parses, calls the engine's application layer ([`App`]), and
//! presents; the app is opened here, once, and only for commands that need it.

pub mod campaigns;
pub mod completions;
pub mod config;
pub mod demo;
pub mod dlq;
pub mod exit;
pub mod leads;
pub mod optout;
pub mod output;
pub mod segments;
#[cfg(feature = "api")]
pub mod serve;
pub mod sim;
#[cfg(feature = "tui")]
pub mod tui;
pub mod whatsapp;
pub mod worker;

/// Prints a line on stderr; a closed stderr is as harmless as a closed stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

use crate::engine::Error;
use crate::engine::app::App;
use crate::engine::config::{Config, FlagConfig};
use crate::engine::store::Access;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

/// crm — import customer leads, build audience segments, run personalized WhatsApp campaigns.
///
/// Everything works out of the box on an embedded SQLite file (see `crm config show` for
/// where it lives). Exit codes: 0 ok, 1 finished but some input was rejected, 2 usage or
/// configuration error, 3 a backend unreachable or failing.
#[derive(Debug, Parser)]
#[command(name = "crm", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Store URL: a file path, sqlite:PATH, or mongodb://HOST/DB [env: CRM_STORE]
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// Message bus: `embedded` (default) or kafka://HOST:PORT [env: CRM_BUS]
    #[arg(long, global = true, value_name = "URL")]
    pub bus: Option<String>,
    /// Config file (TOML) [env: CRM_CONFIG; default: the platform config dir's crm/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables and summaries
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bars or hints
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import, browse, edit and export leads (customers)
    #[command(subcommand)]
    Leads(leads::LeadsCmd),
    /// Save audience rules (segments), preview who they reach, export their leads
    #[command(subcommand)]
    Segments(segments::SegmentsCmd),
    /// Send a message to a segment: create, run, watch, pause, resume, cancel campaigns
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCmd),
    /// Run the campaign pipeline's workers (expand, send, status, or all in one process)
    #[command(subcommand)]
    Worker(worker::WorkerCmd),
    /// Messages given up on: list them, replay them
    #[command(subcommand)]
    Dlq(dlq::DlqCmd),
    /// Leads who asked not to be messaged
    #[command(subcommand)]
    Optout(optout::OptoutCmd),
    /// Link a WhatsApp account (QR code), show its state, log out
    #[command(subcommand)]
    Whatsapp(whatsapp::WhatsappCmd),
    /// Try everything on sample data: import, segment, campaign, simulated sending
    Demo(demo::DemoCmd),
    /// The live operator dashboard: campaigns, queues, workers, leads, segments (q quits)
    #[cfg(feature = "tui")]
    Tui(tui::TuiCmd),
    /// Run a pretend messaging vendor locally (for trying campaigns without a phone)
    Sim(sim::SimCmd),
    /// Show the effective configuration and where each value comes from
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Serve the HTTP API (leads, segments, campaigns, webhooks) on the same engine
    #[cfg(feature = "api")]
    Serve(serve::ServeCmd),
    /// Tokens for the HTTP API
    #[cfg(feature = "api")]
    #[command(subcommand)]
    Auth(serve::AuthCmd),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(after_help = "Examples:\n  crm completions bash > ~/.local/share/bash-completion/completions/crm\n  \
        crm completions zsh > ~/.zfunc/_crm\n  crm completions fish > ~/.config/fish/completions/crm.fish")]
    Completions(completions::CompletionsCmd),
    /// Print the manual page (roff) for `man`
    #[command(after_help = "Example: crm man > crm.1 && man ./crm.1")]
    Man,
}

/// What every command gets: parsed global flags and the loaded configuration.
pub struct Context {
    pub global: GlobalArgs,
    pub config: Config,
}

impl Context {
    /// Opens the application layer on the configured store. `Access::Existing` refuses a store
    /// that does not exist (commands that only read); a command that creates one says so.
    pub async fn app(&self, access: Access) -> Result<App, Error> {
        let app = App::open(self.config.clone(), access).await?;
        if app.created_store() && self.chatty() {
            say!("Created a new store at {}.", app.describe_store());
        }
        if let Some(notice) = app.store_notice().filter(|_| self.chatty()) {
            say!("Note: {notice}.");
        }
        Ok(app)
    }

    /// Whether to draw progress bars and hints on stderr.
    pub fn chatty(&self) -> bool {
        !self.global.quiet && !self.global.json
    }
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { exit::USAGE } else { exit::OK };
        }
    };
    init_tracing(&cli.global, log_file(&cli.command));
    if long_running(&cli.command) {
        no_transparent_huge_pages();
    }
    // SIGPIPE is ignored by Rust programs: a closed stdout surfaces as an error we turn into
    // exit 0, and a closed stderr is ignored by `say!`.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            say!("error: cannot start the async runtime: {e}");
            return exit::BACKEND;
        }
    };
    let outcome = runtime.block_on(async {
        let outcome = run(cli).await;
        #[cfg(feature = "mongodb")]
        crate::engine::store::mongo::shutdown_clients().await;
        outcome
    });
    match outcome {
        Ok(code) => code,
        Err(err) => report_error(&err),
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut flags = FlagConfig {
        store: cli.global.store.clone(),
        bus: cli.global.bus.clone(),
        config_file: cli.global.config.clone(),
        ..FlagConfig::default()
    };
    if let Command::Worker(cmd) = &cli.command {
        flags.worker = cmd.flags();
    }
    #[cfg(feature = "api")]
    if let Command::Serve(cmd) = &cli.command {
        flags.api_listen = cmd.listen.clone();
    }
    match &cli.command {
        Command::Completions(cmd) => return cmd.run(),
        Command::Man => return completions::man(),
        _ => {}
    }
    let config = Config::load(&flags, &|k| std::env::var(k).ok())?;
    let ctx = Context { global: cli.global, config };
    match cli.command {
        Command::Leads(cmd) => cmd.run(&ctx).await,
        Command::Segments(cmd) => cmd.run(&ctx).await,
        Command::Campaigns(cmd) => cmd.run(&ctx).await,
        Command::Worker(cmd) => cmd.run(&ctx).await,
        Command::Dlq(cmd) => cmd.run(&ctx).await,
        Command::Optout(cmd) => cmd.run(&ctx).await,
        Command::Whatsapp(cmd) => cmd.run(&ctx).await,
        Command::Demo(cmd) => cmd.run(&ctx).await,
        Command::Sim(cmd) => cmd.run(&ctx).await,
        #[cfg(feature = "tui")]
        Command::Tui(cmd) => cmd.run(&ctx).await,
        Command::Config(cmd) => cmd.run(&ctx).await,
        #[cfg(feature = "api")]
        Command::Serve(cmd) => cmd.run(&ctx).await,
        #[cfg(feature = "api")]
        Command::Auth(cmd) => cmd.run(&ctx),
        Command::Completions(_) | Command::Man => Ok(exit::OK),
    }
}

/// The commands that run until stopped, churning through short-lived allocations: workers,
/// the simulator, the API server, the dashboard and the demo (which runs a worker).
fn long_running(command: &Command) -> bool {
    match command {
        Command::Worker(_) | Command::Sim(_) | Command::Demo(_) => true,
        #[cfg(feature = "tui")]
        Command::Tui(_) => true,
        #[cfg(feature = "api")]
        Command::Serve(_) => true,
        _ => false,
    }
}

/// Turns transparent huge pages off for this process, as Redis and MongoDB advise for theirs.
/// The allocator asks for huge pages on its arenas (`madvise`), so every 2 MB region it touches
/// again after returning memory costs the kernel a 2 MB zeroing: in a 100,000-lead campaign
/// the worker spent ~5% of its CPU in `clear_page_erms` under huge-page faults, and with THP
/// off its system time was lower in every one of six alternating pairs (README, "Huge pages
/// off for the long-running commands"). Best effort: a kernel without the call changes nothing.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
}

/// Where logs go instead of stderr: the dashboard owns the terminal while it runs.
fn log_file(command: &Command) -> Option<PathBuf> {
    match command {
        #[cfg(feature = "tui")]
        Command::Tui(cmd) => Some(cmd.log_path()),
        _ => None,
    }
}

fn init_tracing(global: &GlobalArgs, log_file: Option<PathBuf>) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CRM_LOG").unwrap_or_else(|_| {
        // wa-rs logs through the `log` crate, which tracing-subscriber bridges (tracing-log);
        // it is chatty, so it stays at warnings below -vv.
        let wa = if global.verbose >= 2 { level } else { "warn" };
        let wa = if global.quiet { "error" } else { wa };
        tracing_subscriber::EnvFilter::new(format!("crm={level},wa_rs={wa},wa_rs_core={wa}"))
    });
    if let Some(path) = log_file {
        let opened = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path));
        match opened {
            Ok(file) => {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(filter)
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .with_target(false)
                    .log_internal_errors(false)
                    .try_init();
            }
            // No log file, no logs: stderr would draw over the dashboard.
            Err(e) => say!("warning: no log file ({}: {e}); the dashboard runs without logs", path.display()),
        }
        return;
    }
    // Colour only on a terminal, and never with NO_COLOR.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        // A failed write would be reported on stderr, which is where it failed: a closed
        // stderr must not end the command.
        .log_internal_errors(false)
        .try_init();
}

/// Prints an error and picks its exit code. A closed stdout is not an error.
fn report_error(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return exit::OK;
            }
        }
        if let Some(Error::Output { source, .. }) = cause.downcast_ref::<Error>() {
            if source.kind() == std::io::ErrorKind::BrokenPipe {
                return exit::OK;
            }
        }
    }
    match err.chain().find_map(|c| c.downcast_ref::<Error>()).and_then(hint) {
        Some(hint) => say!("error: {err:#} ({hint})"),
        None => say!("error: {err:#}"),
    }
    err.chain().find_map(|c| c.downcast_ref::<Error>().map(exit::code_of)).unwrap_or(exit::BACKEND)
}

/// What to try next, in this front end's own syntax (the engine's messages carry none).
fn hint(err: &Error) -> Option<&'static str> {
    let text = err.to_string();
    match err {
        Error::NotFound(_) if text.starts_with("no segment has") => Some("see `crm segments list`"),
        Error::NotFound(_) if text.starts_with("no campaign has") => Some("see `crm campaigns list`"),
        Error::Conflict(_) if text.contains("only a draft can be run") => {
            Some("use `crm campaigns resume` for a paused one")
        }
        Error::Conflict(_) if text.starts_with("a lead with these details exists") => {
            Some("use `crm leads update` to change it")
        }
        Error::Store { message, .. } if message.starts_with("no store exists") => {
            Some("`crm config show` says which store is used and why")
        }
        _ => None,
    }
}

/// A duration option's value (`30`, `90s`, `30m`, `24h`, `7d`) in seconds, 1 s to 366 days.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().map_err(|_| format!("'{text}' is not a duration like 30m, 24h or 7d"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': use s, m, h or d (e.g. 24h)")),
    };
    match n.checked_mul(scale) {
        Some(secs) if secs > 0 && secs <= 366 * 86_400 => Ok(secs),
        _ => Err(format!("'{text}' must be between 1 second and 366 days")),
    }
}
