//! `crm leads …`: import, browse, edit and export leads.

use super::Context;
use super::output::{Column, Out, Table};
use crate::engine::error::{Error, exit};
use crate::engine::export::{csv_io_error, export_csv};
use crate::engine::import::headers::HeaderOverride;
use crate::engine::import::{ImportOptions, ImportReport, ImportSource, Progress, import_csv};
use crate::engine::lead::{ConflictPolicy, Lead, LeadDraft, email_key, format_time, phone_key};
use crate::engine::normalize::{
    metadata_key, normalize_email, parse_amount, parse_count, parse_date, parse_tags, split_multi,
};
use crate::engine::phone::{Region, normalize_phone};
use crate::engine::store::{LeadFilter, LeadQuery, SortKey, Store};
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
    #[arg(long, value_enum, default_value_t = ConflictPolicy::Merge)]
    pub on_conflict: ConflictPolicy,
    /// Write every rejected row, with an `error` column, to this CSV (fix it and import it again)
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
    /// Validate and count without writing anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args, Clone)]
pub struct FilterArgs {
    /// Case-insensitive text found in the name, an email or a phone
    #[arg(long, short = 's', value_name = "TEXT")]
    pub search: Option<String>,
    /// Only leads who spent at least this much
    #[arg(long, value_name = "AMOUNT")]
    pub min_spend: Option<f64>,
    /// Only leads who spent at most this much
    #[arg(long, value_name = "AMOUNT")]
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
    #[arg(long, value_enum, default_value_t = SortKey::Id)]
    pub sort: SortKey,
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

impl From<FilterArgs> for LeadFilter {
    fn from(f: FilterArgs) -> Self {
        LeadFilter { search: f.search, min_spend: f.min_spend, max_spend: f.max_spend, tags: f.tags }
    }
}

impl LeadsCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        let store = ctx.store().await?;
        let mut out = Out::new();
        let code = match self {
            LeadsCmd::Import(args) => import(ctx, store.as_ref(), args, &mut out).await?,
            LeadsCmd::List(args) => list(ctx, store.as_ref(), args, &mut out).await?,
            LeadsCmd::Count(filter) => {
                let n = store.count_leads(&filter.into()).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "count": n }))?
                } else {
                    out.line(n.to_string())?
                }
                exit::OK
            }
            LeadsCmd::Show { lead } => {
                let lead = resolve(ctx, store.as_ref(), &lead).await?;
                if ctx.global.json {
                    out.json(&lead)?
                } else {
                    print_lead(&mut out, &lead)?
                }
                exit::OK
            }
            LeadsCmd::Add(args) => {
                let region = args.default_region.or(ctx.config.region()?);
                let draft = draft_from_add(args, region)?;
                let lead = store.add_lead(draft).await?;
                if ctx.global.json {
                    out.json(&lead)?
                } else {
                    out.line(format!("Added lead {}.", lead.id))?
                }
                exit::OK
            }
            LeadsCmd::Update { lead, set, default_region } => {
                let region = default_region.or(ctx.config.region()?);
                let mut lead = resolve(ctx, store.as_ref(), &lead).await?;
                let before = lead.clone();
                for assignment in &set {
                    apply_set(&mut lead, assignment, region)?;
                }
                if lead.emails.is_empty() && lead.phones.is_empty() {
                    return Err(Error::Usage("a lead needs at least one email or phone".into()).into());
                }
                if lead != before {
                    lead.updated_at = chrono::Utc::now();
                    store.save_lead(&lead).await?;
                }
                if ctx.global.json {
                    out.json(&lead)?
                } else if lead == before {
                    out.line(format!("Lead {} already had those values; nothing changed.", lead.id))?
                } else {
                    out.line(format!("Updated lead {}.", lead.id))?
                }
                exit::OK
            }
            LeadsCmd::Delete { lead } => {
                let lead = resolve(ctx, store.as_ref(), &lead).await?;
                store.delete_lead(lead.id).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "deleted": lead.id }))?
                } else {
                    out.line(format!("Deleted lead {} ({}).", lead.id, display_name(&lead)))?
                }
                exit::OK
            }
            LeadsCmd::OptOut { lead } => super::optout::OptoutCmd::Add { lead }.run(ctx).await?,
            LeadsCmd::OptIn { lead } => super::optout::OptoutCmd::Remove { lead }.run(ctx).await?,
            LeadsCmd::Export { file } => {
                export(store.as_ref(), file, &mut out).await?;
                exit::OK
            }
        };
        out.flush()?;
        Ok(code)
    }
}

async fn import(ctx: &Context, store: &dyn Store, args: ImportArgs, out: &mut Out) -> anyhow::Result<u8> {
    let source = if args.file.as_os_str() == "-" {
        ImportSource { name: "stdin".into(), reader: Box::new(std::io::stdin()), size: None }
    } else {
        let name = args.file.display().to_string();
        let file = std::fs::File::open(&args.file).map_err(|e| Error::Input { path: name.clone(), source: e })?;
        let size = file.metadata().ok().map(|m| m.len());
        ImportSource { name, reader: Box::new(file), size }
    };
    let name = source.name.clone();
    let options = ImportOptions {
        policy: args.on_conflict,
        dry_run: args.dry_run,
        region: args.default_region.or(ctx.config.region()?),
        overrides: args.map,
        errors_file: args.errors.clone(),
    };
    let bar = ImportBar::new(ctx.chatty() && std::io::stderr().is_terminal(), source.size);
    let report = import_csv(store, source, &options, &bar).await.with_context(|| format!("importing {name}"))?;
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
        eprintln!("line {}{column}: {}", e.line, e.reason);
    }
    let more = (report.errors.len() as u64 + report.errors_omitted).saturating_sub(SHOWN as u64);
    match errors_file {
        Some(path) => eprintln!(
            "{}all {} rejected rows are in {} (fix them there and import that file).",
            if more > 0 { format!("… {more} more problems; ") } else { String::new() },
            report.rejected,
            path.display()
        ),
        None if more > 0 => eprintln!("… {more} more problems; add --errors FILE to get every rejected row as a CSV."),
        None => eprintln!("Add --errors FILE to get the rejected rows as a CSV you can fix and re-import."),
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

async fn list(ctx: &Context, store: &dyn Store, args: ListArgs, out: &mut Out) -> anyhow::Result<u8> {
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
        sort: args.sort,
        desc: args.desc,
        limit: Some(limit),
        offset: offset as usize,
    };
    let leads = store.list_leads(&query).await?;
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
            eprintln!("No leads match.");
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

/// Finds a lead by id, email or phone number.
async fn resolve(ctx: &Context, store: &dyn Store, reference: &str) -> anyhow::Result<Lead> {
    let reference = reference.trim();
    // Only bare digits are an id: `+447911123456` parses as an i64 too, but it is a phone.
    let id = reference.bytes().all(|b| b.is_ascii_digit()).then(|| reference.parse::<i64>().ok()).flatten();
    let found = if let Some(id) = id {
        match store.get_lead(id).await? {
            Some(lead) => Some(lead),
            // Not one of our ids: perhaps a national phone written without spaces.
            None => match normalize_phone(reference, ctx.config.region()?) {
                Ok(phone) => store.find_lead_by_key(&phone_key(&phone)).await?,
                Err(_) => None,
            },
        }
    } else if reference.contains('@') {
        let email = normalize_email(reference).map_err(|e| Error::Usage(format!("'{reference}' {e}")))?;
        store.find_lead_by_key(&email_key(&email)).await?
    } else {
        let phone = normalize_phone(reference, ctx.config.region()?)
            .map_err(|e| Error::Usage(format!("'{reference}' is not a lead id, email or phone: the phone {e}")))?;
        store.find_lead_by_key(&phone_key(&phone)).await?
    };
    found.ok_or_else(|| Error::NotFound(format!("no lead matches '{reference}'")).into())
}

fn usage(field: &str, reason: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{field}: {reason}"))
}

fn draft_from_add(args: AddArgs, region: Option<Region>) -> Result<LeadDraft, Error> {
    let mut draft =
        LeadDraft { name: args.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()), ..Default::default() };
    for e in args.emails.iter().flat_map(|e| split_multi(e)) {
        let email = normalize_email(e).map_err(|r| usage("--email", format!("'{e}' {r}")))?;
        crate::engine::lead::union_into(&mut draft.emails, &[email]);
    }
    for p in args.phones.iter().flat_map(|p| split_multi(p)) {
        let phone = normalize_phone(p, region).map_err(|r| usage("--phone", format!("'{p}' {r}")))?;
        crate::engine::lead::union_into(&mut draft.phones, &[phone]);
    }
    if draft.emails.is_empty() && draft.phones.is_empty() {
        return Err(Error::Usage("give at least one --email or --phone to identify the lead".into()));
    }
    draft.total_spend =
        args.total_spend.map(|v| parse_amount(&v)).transpose().map_err(|r| usage("--total-spend", r))?;
    draft.visits = args.visits.map(|v| parse_count(&v)).transpose().map_err(|r| usage("--visits", r))?;
    draft.last_order_at =
        args.last_order_at.map(|v| parse_date(&v)).transpose().map_err(|r| usage("--last-order-at", r))?;
    for tag in args.tags.iter().flat_map(|t| parse_tags(t)) {
        crate::engine::lead::union_into(&mut draft.tags, &[tag]);
    }
    for kv in &args.meta {
        let (k, v) = kv.split_once('=').ok_or_else(|| usage("--meta", format!("'{kv}' should look like KEY=VALUE")))?;
        let key = metadata_key(k);
        if key.is_empty() {
            return Err(usage("--meta", format!("'{kv}' has an empty key")));
        }
        draft.metadata.insert(key, v.trim().to_string());
    }
    Ok(draft)
}

/// Applies one `--set field=value` to a lead.
fn apply_set(lead: &mut Lead, assignment: &str, region: Option<Region>) -> Result<(), Error> {
    let (field, value) = assignment
        .split_once('=')
        .ok_or_else(|| usage("--set", format!("'{assignment}' should look like field=value")))?;
    let (field, value) = (field.trim(), value.trim());
    let bad = |r: String| usage(&format!("--set {field}"), r);
    match field {
        "name" => lead.name = value.to_string(),
        "emails" | "email" => {
            lead.emails = split_multi(value)
                .map(|e| normalize_email(e).map_err(|r| bad(format!("'{e}' {r}"))))
                .collect::<Result<_, _>>()?;
            lead.emails.dedup();
        }
        "phones" | "phone" => {
            lead.phones = split_multi(value)
                .map(|p| normalize_phone(p, region).map_err(|r| bad(format!("'{p}' {r}"))))
                .collect::<Result<_, _>>()?;
            lead.phones.dedup();
        }
        "tags" => lead.tags = parse_tags(value),
        "total_spend" => lead.total_spend = parse_amount(value).map_err(bad)?,
        "visits" => lead.visits = parse_count(value).map_err(bad)?,
        "last_order_at" => {
            lead.last_order_at = if value.is_empty() { None } else { Some(parse_date(value).map_err(bad)?) }
        }
        f if f.starts_with("metadata.") => {
            let key = metadata_key(&f["metadata.".len()..]);
            if key.is_empty() {
                return Err(bad("needs a key, as in metadata.city=Lagos".into()));
            }
            if value.is_empty() {
                lead.metadata.remove(&key);
            } else {
                lead.metadata.insert(key, value.to_string());
            }
        }
        other => {
            return Err(usage(
                "--set",
                format!(
                    "unknown field '{other}'; expected name, emails, phones, tags, total_spend, visits, last_order_at or metadata.KEY"
                ),
            ));
        }
    }
    Ok(())
}

async fn export(store: &dyn Store, file: Option<PathBuf>, out: &mut Out) -> anyhow::Result<()> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let name = path.display().to_string();
            let f = std::fs::File::create(&path).map_err(|e| Error::Output { path: name.clone(), source: e })?;
            let mut w = std::io::BufWriter::new(f);
            let n = export_csv(store, &mut w, &name).await?;
            eprintln!("Exported {n} leads to {name}.");
        }
        None => {
            export_csv(store, out.writer(), "stdout").await?;
        }
    }
    Ok(())
}
