//! `crm leads import`: the file is checked as a whole first (no store is created for a file
//! that cannot be imported), then streamed through the engine with a progress bar on a
//! terminal; the summary goes to stdout, the first rejected rows to stderr.

use super::super::output::Out;
use super::super::{Context, say};
use super::ImportArgs;
use crate::cli::exit;
use crate::engine::app::leads::open_import;
use crate::engine::error::Error;
use crate::engine::import::{ImportOptions, ImportReport, ImportSource, Progress};
use crate::engine::store::Access;
use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

/// The CSV to import: a file, or stdin for `-`.
fn open_source(path: &std::path::Path) -> Result<ImportSource, Error> {
    if path.as_os_str() == "-" {
        return Ok(ImportSource { name: "stdin".into(), reader: Box::new(std::io::stdin()), size: None });
    }
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::Input { path: name.clone(), source: e })?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok(ImportSource { name, reader: Box::new(file), size })
}

pub(super) async fn import(ctx: &Context, args: ImportArgs, out: &mut Out) -> anyhow::Result<u8> {
    let source = open_source(&args.file)?;
    let name = source.name.clone();
    let size = source.size;
    let options = ImportOptions {
        policy: args.on_conflict.into(),
        dry_run: args.dry_run,
        region: args.default_region.or(ctx.config.region()?),
        overrides: args.map,
        errors_file: args.errors.clone(),
        delimiter: args.delimiter,
    };
    // The file is checked as a whole before the store is opened: a mistyped name or a file
    // that is not a leads CSV creates no store.
    let input = (args.file.as_os_str() != "-").then_some(args.file.as_path());
    let opened = open_import(&ctx.config, source, input, &options).with_context(|| format!("importing {name}"))?;
    let app = ctx.app(Access::CreateIfMissing).await?;
    let bar = ImportBar::new(ctx.chatty() && std::io::stderr().is_terminal(), size);
    let report = app.import_leads(opened, &options, &bar).await.with_context(|| format!("importing {name}"))?;
    bar.finish();
    if ctx.global.json {
        out.json(&report)?;
    } else {
        out.line(summary(&name, &report))?;
        out.flush()?;
        print_rejections(ctx, &report, args.errors.as_ref());
    }
    Ok(if report.rejected > 0 { exit::REJECTED } else { exit::OK })
}

fn summary(name: &str, r: &ImportReport) -> String {
    let verb = if r.dry_run { "Checked (dry run, nothing written)" } else { "Imported" };
    format!(
        "{verb} {name} in {:.2} s: accepted {}, inserted {}, updated {}, skipped {}, rejected {}.",
        r.elapsed_seconds, r.accepted, r.inserted, r.updated, r.skipped, r.rejected
    )
}

fn print_rejections(ctx: &Context, report: &ImportReport, errors_file: Option<&PathBuf>) {
    if report.rejected == 0 || ctx.global.quiet {
        return;
    }
    const SHOWN: usize = 5;
    for e in report.errors.iter().take(SHOWN) {
        let column = if e.column.is_empty() { String::new() } else { format!(", column {}", e.column) };
        say!("line {}{column}: {}", e.line, e.reason);
    }
    let more = (report.errors.len() as u64 + report.errors_omitted).saturating_sub(SHOWN as u64);
    match errors_file {
        Some(path) => say!(
            "{}all {} rejected rows are in {} (fix them there and import that file).",
            if more > 0 { format!("… {more} more problems; ") } else { String::new() },
            report.rejected,
            path.display()
        ),
        None if more > 0 => say!("… {more} more problems; add --errors FILE to get every rejected row as a CSV."),
        None => say!("Add --errors FILE to get the rejected rows as a CSV you can fix and re-import."),
    }
}

/// The import progress bar: bytes when the size is known, rows otherwise; hidden when off.
struct ImportBar(Option<ProgressBar>);

impl ImportBar {
    fn new(visible: bool, size: Option<u64>) -> ImportBar {
        if !visible {
            return ImportBar(None);
        }
        let bar = match size {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{spinner} [{bar:40}] {bytes}/{total_bytes} {msg} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        ImportBar(Some(bar))
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ImportBar {
    fn update(&self, bytes_read: u64, rows: u64) {
        if let Some(bar) = &self.0 {
            if bar.length().is_some() {
                bar.set_position(bytes_read);
            }
            bar.set_message(format!("{rows} rows"));
        }
    }
}
