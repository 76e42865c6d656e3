//! `crm leads …`: import, browse, edit and export leads.

use super::output::{Column, Out, Table};
use super::{Context, say};
use crate::engine::app::App;
use crate::engine::app::lead_edit::{LeadChange, NewLeadFields};
use crate::engine::app::leads::{ExportTarget, open_import};
use crate::engine::error::{Error, exit};
use crate::engine::export::csv_io_error;
use crate::engine::import::headers::HeaderOverride;
use crate::engine::import::{ImportOptions, ImportReport, ImportSource, Progress};
use crate::engine::lead::{ConflictPolicy, Lead, format_time};
use crate::engine::normalize::parse_amount;
use crate::engine::phone::Region;
use crate::engine::store::{Access, LeadFilter, LeadQuery, SortKey};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum LeadsCmd {
    /// Import leads from a CSV file (or - for stdin), merging duplicates by email or phone
    ///
    /// Headers from common exports are recognised (Email Address, E-mail, Phone Number, Mobile,
    /// First Name + Last Name, Total Spent, …); other columns are kept as metadata. Several
    /// emails or phones in one cell are separated by ; or |. Bad rows are reported with their
    /// line, column and reason and never stop the import. Exits 1 if any row was rejected.
    #[command(after_help = "Examples:\n  crm leads import customers.csv --default-region GB\n  \
        crm leads import export.csv --map 'Cell=phones' --map 'Spend (GBP)=total_spend' --errors bad.csv\n  \
        cat leads.csv | crm leads import - --dry-run")]
    Import(ImportArgs),
    /// List leads as a table (or --json / --csv), with search, filters and sorting
    #[command(after_help = "Examples:\n  crm leads list --search lovelace\n  \
        crm leads list --search '7911 123' --json\n  \
        crm leads list --min-spend 500 --tag vip --sort total_spend --desc --limit 20 --page 2\n  \
        crm leads list --csv > some-leads.csv")]
    List(ListArgs),
    /// Count leads, with the same filters as `list`
    Count(FilterArgs),
    /// Show one lead, by id, email or phone
    Show {
        /// Lead id, or one of its emails or phone numbers
        lead: String,
    },
    /// Add one lead by hand
    Add(AddArgs),
    /// Change fields of a lead: --set field=value (repeatable)
    #[command(after_help = "Fields: name, emails, phones, tags (lists separated by ;), total_spend, visits,\n\
        last_order_at (empty clears it), metadata.KEY (empty removes it).\n\
        Example: crm leads update 42 --set total_spend=120.50 --set 'tags=vip;newsletter'")]
    Update {
        /// Lead id, or one of its emails or phone numbers
        lead: String,
        /// field=value; see below for the fields
        #[arg(long = "set", value_name = "FIELD=VALUE", required = true)]
        set: Vec<String>,
        /// Region for phone numbers without a country code (e.g. GB)
        #[arg(long, value_name = "CC")]
        default_region: Option<Region>,
    },
    /// Delete a lead
    Delete {
        /// Lead id, or one of its emails or phone numbers
        lead: String,
    },
    /// Opt a lead out of every campaign (by id or phone); campaigns count them as skipped
    #[command(name = "opt-out")]
    OptOut {
        /// Lead id or phone number
        lead: String,
    },
    /// Opt a lead back in to campaigns
    #[command(name = "opt-in")]
    OptIn {
        /// Lead id or phone number
        lead: String,
    },
    /// Write all leads as CSV (to FILE, or stdout); `crm leads import` reads it back
    Export {
        /// Output file; stdout when absent or -
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV file to import; - reads stdin
    pub file: PathBuf,
    /// Map a column to a field: 'CSV header=field' (repeatable). Fields: name, first_name,
    /// last_name, emails, phones, total_spend, visits, last_order_at, tags, created_at,
    /// metadata.KEY, ignore
    #[arg(long = "map", value_name = "HEADER=FIELD")]
    pub map: Vec<HeaderOverride>,
    /// Region for phone numbers written without a country code, e.g. GB, US, NG
    #[arg(long, value_name = "CC")]
    pub default_region: Option<Region>,
    /// What to do with a row matching a stored lead by email or phone
    #[arg(long, value_enum, default_value_t = Policy::Merge)]
    pub on_conflict: Policy,
    /// Write every rejected row, with an `error` column, to this CSV (fix it and import it again)
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
    /// Validate and count without writing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Field separator: , ; | or tab (default: sniffed from the header line)
    #[arg(long, value_name = "CHAR", value_parser = crate::engine::import::parse_delimiter)]
    pub delimiter: Option<u8>,
}

#[derive(Debug, Args, Clone)]
pub struct FilterArgs {
    /// Case-insensitive text found in the name, an email or a phone
    #[arg(long, short = 's', value_name = "TEXT")]
    pub search: Option<String>,
    /// Only leads who spent at least this much
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount, allow_negative_numbers = true)]
    pub min_spend: Option<f64>,
    /// Only leads who spent at most this much
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount, allow_negative_numbers = true)]
    pub max_spend: Option<f64>,
    /// Only leads with this tag (repeat to require several)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Sort by this field
    #[arg(long, value_enum, default_value_t = Sort::Id)]
    pub sort: Sort,
    /// Largest first
    #[arg(long)]
    pub desc: bool,
    /// Leads per page
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub limit: u64,
    /// Page number, from 1
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub page: u64,
    /// Print CSV (the export format) instead of a table
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Full name
    #[arg(long)]
    pub name: Option<String>,
    /// Email address (repeatable)
    #[arg(long = "email", value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// Phone number, ideally with +country code (repeatable)
    #[arg(long = "phone", value_name = "PHONE")]
    pub phones: Vec<String>,
    /// Total amount spent
    #[arg(long, value_name = "AMOUNT")]
    pub total_spend: Option<String>,
    /// Number of visits
    #[arg(long, value_name = "N")]
    pub visits: Option<String>,
    /// Date of the last order (YYYY-MM-DD or ISO 8601)
    #[arg(long, value_name = "DATE")]
    pub last_order_at: Option<String>,
    /// Tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Extra field KEY=VALUE kept in metadata (repeatable)
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Region for phone numbers without a country code (e.g. GB)
    #[arg(long, value_name = "CC")]
    pub default_region: Option<Region>,
}

/// `--on-conflict`: the engine's [`ConflictPolicy`] as clap spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Union of emails, phones and tags; the row's non-empty values replace stored ones
    Merge,
    /// Keep the stored lead untouched
    Skip,
    /// Replace the stored lead's fields (its id and created_at are kept)
    Overwrite,
}

impl From<Policy> for ConflictPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Merge => ConflictPolicy::Merge,
            Policy::Skip => ConflictPolicy::Skip,
            Policy::Overwrite => ConflictPolicy::Overwrite,
        }
    }
}

/// `--sort`: the engine's [`SortKey`], with the field names written as everywhere else
/// (`total_spend`, as in JSON, CSV and `--set`); clap's `total-spend` is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sort {
    Id,
    Name,
    #[value(name = "total_spend", alias = "total-spend")]
    TotalSpend,
    Visits,
    #[value(name = "created_at", alias = "created-at")]
    CreatedAt,
    #[value(name = "last_order_at", alias = "last-order-at")]
    LastOrderAt,
}

impl From<Sort> for SortKey {
    fn from(s: Sort) -> Self {
        match s {
            Sort::Id => SortKey::Id,
            Sort::Name => SortKey::Name,
            Sort::TotalSpend => SortKey::TotalSpend,
            Sort::Visits => SortKey::Visits,
            Sort::CreatedAt => SortKey::CreatedAt,
            Sort::LastOrderAt => SortKey::LastOrderAt,
        }
    }
}

/// An engine error about a named field, in this command line's words: `--total-spend: …` for
/// `leads add`, `--set total_spend: …` for `leads update`.
fn flag_error(err: Error, flag: impl Fn(&str) -> String) -> Error {
    match err {
        Error::Invalid { field, reason } => Error::Usage(format!("{}: {reason}", flag(&field))),
        other => other,
    }
}

impl From<FilterArgs> for LeadFilter {
    fn from(f: FilterArgs) -> Self {
        LeadFilter { search: f.search, min_spend: f.min_spend, max_spend: f.max_spend, tags: f.tags }
    }
}

impl LeadsCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let mut out = Out::new();
        // The commands that may create the store check their input first, so bad input never
        // creates one.
        let cmd = match self {
            LeadsCmd::Import(args) => {
                let code = import(ctx, args, &mut out).await?;
                out.flush()?;
                return Ok(code);
            }
            LeadsCmd::Add(args) => {
                add(ctx, args, &mut out).await?;
                out.flush()?;
                return Ok(exit::OK);
            }
            other => other,
        };
        let app = ctx.app(Access::Existing).await?;
        let code = match cmd {
            LeadsCmd::Import(_) | LeadsCmd::Add(_) => exit::OK, // handled above
            LeadsCmd::List(args) => list(ctx, &app, args, &mut out).await?,
            LeadsCmd::Count(filter) => {
                let n = app.count_leads(&filter.into()).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "count": n }))?
                } else {
                    out.line(n.to_string())?
                }
                exit::OK
            }
            LeadsCmd::Show { lead } => {
                let lead = app.resolve_lead(&lead).await?;
                if ctx.global.json {
                    out.json(&lead)?
                } else {
                    print_lead(&mut out, &lead)?
                }
                exit::OK
            }
            LeadsCmd::Update { lead, set, default_region } => {
                let set_flag = |f: &str| if f.is_empty() { "--set".to_string() } else { format!("--set {f}") };
                let changes: Vec<LeadChange> = set
                    .iter()
                    .map(|a| LeadChange::parse(a))
                    .collect::<Result<_, _>>()
                    .map_err(|e| flag_error(e, set_flag))?;
                let update =
                    app.update_lead(&lead, &changes, default_region).await.map_err(|e| flag_error(e, set_flag))?;
                if ctx.global.json {
                    out.json(&update.lead)?
                } else if !update.changed {
                    out.line(format!("Lead {} already had those values; nothing changed.", update.lead.id))?
                } else {
                    out.line(format!("Updated lead {}.", update.lead.id))?
                }
                exit::OK
            }
            LeadsCmd::Delete { lead } => {
                let lead = app.delete_lead(&lead).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "deleted": lead.id }))?
                } else {
                    out.line(format!("Deleted lead {} ({}).", lead.id, display_name(&lead)))?
                }
                exit::OK
            }
            LeadsCmd::OptOut { lead } => super::optout::change(ctx, &app, &lead, true, &mut out).await?,
            LeadsCmd::OptIn { lead } => super::optout::change(ctx, &app, &lead, false, &mut out).await?,
            LeadsCmd::Export { file } => {
                export(&app, file, &mut out).await?;
                exit::OK
            }
        };
        out.flush()?;
        Ok(code)
    }
}

impl AddArgs {
    fn into_fields(self) -> NewLeadFields {
        NewLeadFields {
            name: self.name,
            emails: self.emails,
            phones: self.phones,
            total_spend: self.total_spend,
            visits: self.visits,
            last_order_at: self.last_order_at,
            tags: self.tags,
            meta: self.meta,
        }
    }
}

async fn add(ctx: &Context, args: AddArgs, out: &mut Out) -> anyhow::Result<()> {
    if args.emails.is_empty() && args.phones.is_empty() {
        return Err(Error::Usage("give at least one --email or --phone to identify the lead".into()).into());
    }
    let region = args.default_region.or(ctx.config.region()?);
    let draft =
        args.into_fields().into_draft(region).map_err(|e| flag_error(e, |f| format!("--{}", f.replace('_', "-"))))?;
    let app = ctx.app(Access::CreateIfMissing).await?;
    let lead = app.add_lead(draft).await?;
    if ctx.global.json {
        out.json(&lead)?
    } else {
        out.line(format!("Added lead {}.", lead.id))?
    }
    Ok(())
}

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

async fn import(ctx: &Context, args: ImportArgs, out: &mut Out) -> anyhow::Result<u8> {
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

async fn list(ctx: &Context, app: &App, args: ListArgs, out: &mut Out) -> anyhow::Result<u8> {
    if args.csv && ctx.global.json {
        // clap's `conflicts_with` misses a global `--json` given before the subcommand.
        return Err(Error::Usage("--csv and --json cannot be used together; pick one".into()).into());
    }
    let limit = args.limit as usize;
    // (page - 1) × limit must neither overflow nor reach SQLite as an absurd OFFSET.
    let max = crate::engine::limits::MAX_LIST_OFFSET;
    let offset = (args.page - 1).checked_mul(args.limit).filter(|o| *o <= max).ok_or_else(|| {
        Error::Usage(format!(
            "--page {} is past the last page crm lists: with --limit {} the highest page is {} \
             ((page - 1) × limit is at most {max})",
            args.page,
            args.limit,
            max / args.limit + 1
        ))
    })?;
    let query = LeadQuery {
        filter: args.filter.into(),
        sort: args.sort.into(),
        desc: args.desc,
        // One more than asked for: whether another page exists is worth saying.
        limit: Some(limit + 1),
        offset: offset as usize,
    };
    let mut leads = app.list_leads(&query).await?;
    let more = leads.len() > limit;
    leads.truncate(limit);
    if more && !ctx.global.quiet {
        say!(
            "note: {} leads shown (page {}); more match: --page {} or a larger --limit (up to 1000000) shows them",
            leads.len(),
            args.page,
            args.page + 1
        );
    }
    if ctx.global.json {
        out.json(&leads)?;
    } else if args.csv {
        let keys: Vec<String> = {
            let mut k: Vec<String> = leads.iter().flat_map(|l| l.metadata.keys().cloned()).collect();
            k.sort();
            k.dedup();
            k
        };
        let mut w = csv::Writer::from_writer(out.writer());
        w.write_record(crate::engine::export::header(&keys)).map_err(csv_io_error)?;
        for lead in &leads {
            w.write_record(crate::engine::export::record(lead, &keys)).map_err(csv_io_error)?;
        }
        w.flush()?;
    } else {
        out.table(&leads_table(&leads))?;
        if leads.is_empty() && !ctx.global.quiet {
            say!("No leads match.");
        }
    }
    Ok(exit::OK)
}

/// The table `leads list` prints (`segments preview` shows its sample the same way).
pub fn leads_table(leads: &[Lead]) -> Table {
    let mut table = Table::new(vec![
        Column { header: "ID", flexible: false, right: true },
        Column { header: "NAME", flexible: true, right: false },
        Column { header: "EMAIL", flexible: true, right: false },
        Column { header: "PHONE", flexible: true, right: false },
        Column { header: "SPEND", flexible: false, right: true },
        Column { header: "VISITS", flexible: false, right: true },
        Column { header: "LAST ORDER", flexible: false, right: false },
        Column { header: "TAGS", flexible: true, right: false },
    ]);
    for lead in leads {
        table.push(vec![
            lead.id.to_string(),
            lead.name.clone(),
            more(&lead.emails),
            more(&lead.phones),
            format!("{:.2}", lead.total_spend),
            lead.visits.to_string(),
            lead.last_order_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default(),
            lead.tags.join(", "),
        ]);
    }
    table
}

/// The first value, with "+N" when there are more.
fn more(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
    }
}

fn display_name(lead: &Lead) -> String {
    if lead.name.is_empty() {
        lead.emails.first().or(lead.phones.first()).cloned().unwrap_or_default()
    } else {
        lead.name.clone()
    }
}

fn print_lead(out: &mut Out, lead: &Lead) -> std::io::Result<()> {
    let esc = super::output::escape_controls;
    out.line(format!("id             {}", lead.id))?;
    out.line(format!("name           {}", esc(&lead.name)))?;
    out.line(format!("emails         {}", esc(&lead.emails.join(", "))))?;
    out.line(format!("phones         {}", lead.phones.join(", ")))?;
    out.line(format!("total_spend    {:.2}", lead.total_spend))?;
    out.line(format!("visits         {}", lead.visits))?;
    out.line(format!("last_order_at  {}", lead.last_order_at.as_ref().map(format_time).unwrap_or_default()))?;
    out.line(format!("tags           {}", esc(&lead.tags.join(", "))))?;
    for (k, v) in &lead.metadata {
        out.line(format!("{:<14} {}", format!("metadata.{k}"), esc(v)))?;
    }
    out.line(format!("created_at     {}", format_time(&lead.created_at)))?;
    out.line(format!("updated_at     {}", format_time(&lead.updated_at)))
}

async fn export(app: &App, file: Option<PathBuf>, out: &mut Out) -> anyhow::Result<()> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let n = app.export_leads(ExportTarget::File(&path)).await?;
            say!("Exported {n} leads to {}.", path.display());
        }
        None => {
            app.export_leads(ExportTarget::Stream(out.writer(), "stdout")).await?;
        }
    }
    Ok(())
}
