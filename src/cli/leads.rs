//! `crm leads …`: import, browse, edit and export leads.

mod import;
mod show;

pub use show::leads_table;

use super::output::Out;
use super::{Context, say};
use crate::cli::exit;
use crate::engine::app::App;
use crate::engine::app::lead_edit::{LeadChange, NewLeadFields};
use crate::engine::app::leads::ExportTarget;
use crate::engine::error::Error;
use crate::engine::export::csv_io_error;
use crate::engine::import::headers::HeaderOverride;
use crate::engine::lead::ConflictPolicy;
use crate::engine::normalize::parse_amount;
use crate::engine::phone::Region;
use crate::engine::store::{Access, LeadFilter, LeadQuery, SortKey};
use clap::{Args, Subcommand};
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
                let code = import::import(ctx, args, &mut out).await?;
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
                let replies = app.lead_replies(lead.id, show::REPLIES_SHOWN).await?;
                if ctx.global.json {
                    let mut shown = serde_json::to_value(&lead)?;
                    shown["replies"] = serde_json::to_value(&replies)?;
                    out.json(&shown)?
                } else {
                    show::print_lead(&mut out, &lead)?;
                    show::print_replies(&mut out, &replies)?
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
                    out.line(format!("Deleted lead {} ({}).", lead.id, show::display_name(&lead)))?
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
