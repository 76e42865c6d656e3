//! `crm segments …`: save audience rules under a name, preview who they reach, export them.
//!
//! Rules arrive as text (`--rule`) or as the stored JSON tree (`--ast FILE`, `-` for stdin);
//! a rule that does not parse is a usage error (exit 2) whose message points at the column or
//! the JSON path. Counts are computed when asked, with relative dates resolved at that moment.

use super::leads::leads_table;
use super::output::{Column, Out, Table};
use super::{Context, say};
use crate::cli::exit;
use crate::engine::app::App;
use crate::engine::app::leads::ExportTarget;
use crate::engine::app::segments::SegmentChange;
use crate::engine::audience::Preview;
use crate::engine::error::Error;
use crate::engine::lead::format_time;
use crate::engine::segment::{Rule, Segment};
use crate::engine::store::{Access, QueryPlan};
use clap::{ArgGroup, Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;

const CREATE_HELP: &str = "Examples:
  crm segments create big-spenders --rule 'total_spend > 500'
  crm segments create lapsed-vips --rule 'tags contains \"vip\" and not last_order_at > \"90 days ago\"'
  crm segments create from-node --ast rule.json --owner alice

Rules: FIELD OPERATOR VALUE, joined with and / or / not and parentheses.
  Fields: name, emails, phones, tags, total_spend, visits, last_order_at, created_at,
  updated_at, metadata.KEY (or just KEY, e.g. city).
  Operators: = != > < >= <= in, not in, contains, not contains.
  Text compares ignoring case; a list field matches when any element does.
  Dates: 2024-05-31, an ISO time, or \"today\", \"yesterday\", \"30 days ago\", \"3 months ago\",
  resolved each time the segment is used. Full reference: docs/segments.md";

#[derive(Debug, Subcommand)]
pub enum SegmentsCmd {
    /// Save a rule under a name, as an audience for campaigns
    ///
    /// The rule is given as text (--rule) or as a JSON file in the stored shape (--ast, which
    /// also reads rules saved by the old system). It is checked before it is saved: a mistake
    /// is shown with its position and nothing is saved (exit 2).
    #[command(after_help = CREATE_HELP)]
    Create(CreateArgs),
    /// Count the leads a rule (or a saved segment) matches and show the first few
    ///
    /// Nothing is saved: try a rule here, then `create` it. Counts are exact and use the rule's
    /// relative dates as of now.
    #[command(after_help = "Examples:\n  crm segments preview --rule 'total_spend > 500 and visits >= 10'\n  \
        crm segments preview big-spenders --sample 20\n  \
        crm segments preview --rule 'city in [\"Lagos\", \"Berlin\"]' --explain\n  \
        crm --json segments preview 3 --sample 0")]
    Preview(PreviewArgs),
    /// List saved segments with how many leads each matches now
    List,
    /// Show one segment: its rule as text and as the stored JSON tree
    Show {
        /// Segment id or name
        segment: String,
    },
    /// Change a segment's rule, name or owner
    #[command(after_help = "Examples:\n  crm segments update big-spenders --rule 'total_spend > 1000'\n  \
        crm segments update 3 --name top-spenders\n  \
        cat rule.json | crm segments update 3 --ast -")]
    Update(UpdateArgs),
    /// Delete a segment (refused while a running or paused campaign uses it)
    Delete {
        /// Segment id or name
        segment: String,
    },
    /// Write a segment's leads as CSV (to FILE, or stdout), in the `leads export` format
    #[command(after_help = "Example: crm segments export big-spenders big-spenders.csv")]
    Export {
        /// Segment id or name
        segment: String,
        /// Output file; stdout when absent or -
        file: Option<PathBuf>,
    },
}

/// Where a rule comes from: typed text or a JSON file.
#[derive(Debug, Args)]
pub struct RuleSource {
    /// The rule as text, e.g. 'total_spend > 500 and tags contains "vip"'
    #[arg(long, value_name = "TEXT")]
    pub rule: Option<String>,
    /// The rule as a JSON file in the stored shape ({"op":"AND","children":[…]}); - reads stdin
    #[arg(long, value_name = "FILE.json")]
    pub ast: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["rule", "ast"])))]
pub struct CreateArgs {
    /// A name to pick the segment by (unique, ignoring case)
    pub name: String,
    #[command(flatten)]
    pub source: RuleSource,
    /// Who owns the segment (a user id, kept as the old system's owner_user_id)
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["segment", "rule", "ast"])))]
pub struct PreviewArgs {
    /// A saved segment's id or name (or give --rule / --ast)
    pub segment: Option<String>,
    #[command(flatten)]
    pub source: RuleSource,
    /// How many matching leads to show (the first ones by id); 0 shows only the count
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub sample: u64,
    /// Also show the SQL the rule becomes, its parameters, and SQLite's query plan
    #[arg(long)]
    pub explain: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").args(["rule", "ast"])))]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["rule", "ast", "name", "owner"])))]
pub struct UpdateArgs {
    /// Segment id or name
    pub segment: String,
    #[command(flatten)]
    pub source: RuleSource,
    /// A new name
    #[arg(long)]
    pub name: Option<String>,
    /// A new owner (an empty value clears it)
    #[arg(long, value_name = "USER")]
    pub owner: Option<String>,
}

impl SegmentsCmd {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<u8> {
        // Check the rule before opening the store: a typo creates no store file.
        let rule = match &self {
            SegmentsCmd::Create(args) => read_rule(&args.source)?,
            SegmentsCmd::Preview(args) => read_rule(&args.source)?,
            SegmentsCmd::Update(args) => read_rule(&args.source)?,
            _ => None,
        };
        let access = if matches!(self, SegmentsCmd::Create(_)) { Access::CreateIfMissing } else { Access::Existing };
        let app = ctx.app(access).await?;
        if let Some(rule) = &rule {
            // A likely typo is refused ("did you mean …"); other unknown keys are warned about.
            for warning in app.check_rule_fields(rule).await? {
                if !ctx.global.quiet {
                    say!("warning: {warning}");
                }
            }
        }
        let mut out = Out::new();
        match self {
            SegmentsCmd::Create(args) => create(ctx, &app, args, rule, &mut out).await?,
            SegmentsCmd::Preview(args) => run_preview(ctx, &app, args, rule, &mut out).await?,
            SegmentsCmd::List => list(ctx, &app, &mut out).await?,
            SegmentsCmd::Show { segment } => {
                let segment = app.find_segment(&segment).await?;
                if ctx.global.json {
                    out.json(&segment)?;
                } else {
                    print_segment(&mut out, &segment)?;
                }
            }
            SegmentsCmd::Update(args) => update(ctx, &app, args, rule, &mut out).await?,
            SegmentsCmd::Delete { segment } => {
                let segment = app.delete_segment(&segment).await?;
                if ctx.global.json {
                    out.json(&serde_json::json!({ "deleted": segment.id }))?;
                } else {
                    out.line(format!("Deleted segment {} ({}).", segment.id, segment.name))?;
                }
            }
            SegmentsCmd::Export { segment, file } => export(&app, &segment, file, &mut out).await?,
        }
        out.flush()?;
        Ok(exit::OK)
    }
}

/// The rule `source` gives, if any; a rule that does not parse, or is over the size limits
/// (checked before parsing; a file is never read past its limit), is a usage error.
fn read_rule(source: &RuleSource) -> Result<Option<Rule>, Error> {
    use crate::engine::limits::{MAX_RULE_FILE_BYTES, MAX_RULE_TEXT_BYTES};
    if let Some(text) = &source.rule {
        if text.len() > MAX_RULE_TEXT_BYTES {
            return Err(Error::Usage(format!(
                "--rule: the rule is {} bytes; at most {MAX_RULE_TEXT_BYTES} are accepted",
                text.len()
            )));
        }
        return Rule::parse_any(text).map(Some).map_err(|e| Error::Usage(format!("--rule: {e}")));
    }
    let Some(path) = &source.ast else { return Ok(None) };
    let (name, reader): (String, Box<dyn Read>) = if path.as_os_str() == "-" {
        ("stdin".to_string(), Box::new(std::io::stdin()))
    } else {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| Error::Input { path: name.clone(), source: e })?;
        (name, Box::new(file))
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_RULE_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Input { path: name.clone(), source: e })?;
    if bytes.len() > MAX_RULE_FILE_BYTES {
        return Err(Error::Usage(format!("--ast {name}: the file is over {MAX_RULE_FILE_BYTES} bytes, the limit")));
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::Usage(format!("--ast {name}: the file is not UTF-8")))?;
    Rule::from_json(&text).map(Some).map_err(|e| Error::Usage(format!("--ast {name}: {e}")))
}

async fn create(ctx: &Context, app: &App, args: CreateArgs, rule: Option<Rule>, out: &mut Out) -> anyhow::Result<()> {
    let rule = rule.ok_or_else(|| Error::Usage("give the rule with --rule or --ast".into()))?;
    let segment = app.create_segment(&args.name, rule, args.owner).await?;
    if ctx.global.json {
        out.json(&segment)?;
    } else {
        let count = app.count_matching(&segment.rule_ast).await?;
        out.line(format!("Created segment {} ({}): {} now.", segment.id, segment.name, leads_count(count)))?;
    }
    Ok(())
}

async fn update(ctx: &Context, app: &App, args: UpdateArgs, rule: Option<Rule>, out: &mut Out) -> anyhow::Result<()> {
    let change = SegmentChange { rule, name: args.name, owner: args.owner };
    let (segment, changed) = app.update_segment(&args.segment, change).await?;
    if ctx.global.json {
        out.json(&segment)?;
    } else if !changed {
        out.line(format!("Segment {} already had those values; nothing changed.", segment.id))?;
    } else {
        out.line(format!("Updated segment {} ({}).", segment.id, segment.name))?;
    }
    Ok(())
}

async fn run_preview(
    ctx: &Context,
    app: &App,
    args: PreviewArgs,
    rule: Option<Rule>,
    out: &mut Out,
) -> anyhow::Result<()> {
    let rule = match rule {
        Some(rule) => rule,
        None => app.find_segment(args.segment.as_deref().unwrap_or_default()).await?.rule_ast,
    };
    let found = app.preview_rule(&rule, args.sample as usize, args.explain).await?;
    if ctx.global.json {
        let mut value = serde_json::to_value(&found.preview)?;
        if args.explain {
            value["explain"] = serde_json::to_value(&found.plans)?;
        }
        out.json(&value)?;
        return Ok(());
    }
    print_preview(out, &found.preview)?;
    for plan in &found.plans {
        print_plan(out, plan)?;
    }
    Ok(())
}

fn leads_count(n: u64) -> String {
    if n == 1 { "1 lead matches".into() } else { format!("{n} leads match") }
}

fn print_preview(out: &mut Out, found: &Preview) -> std::io::Result<()> {
    out.line(format!("{}.", leads_count(found.count)))?;
    if found.sample.is_empty() {
        return Ok(());
    }
    out.line("")?;
    out.table(&leads_table(&found.sample))?;
    if (found.sample.len() as u64) < found.count {
        let shown = found.sample.len();
        out.line(format!("\nThe first {shown} by id; --sample N shows more, `crm segments export` writes them all."))?;
    }
    Ok(())
}

fn print_plan(out: &mut Out, plan: &QueryPlan) -> std::io::Result<()> {
    out.line(format!("\n{} query:\n  {}", plan.purpose, plan.query.replace('\n', "\n  ")))?;
    for (i, param) in plan.params.iter().enumerate() {
        out.line(format!("  ?{} = {param}", i + 1))?;
    }
    out.line("plan:")?;
    for step in &plan.plan {
        out.line(format!("  {step}"))?;
    }
    Ok(())
}

async fn list(ctx: &Context, app: &App, out: &mut Out) -> anyhow::Result<()> {
    let segments = app.list_segments().await?;
    if ctx.global.json {
        out.json(&segments)?;
        return Ok(());
    }
    let mut table = Table::new(vec![
        Column { header: "ID", flexible: false, right: true },
        Column { header: "NAME", flexible: true, right: false },
        Column { header: "LEADS", flexible: false, right: true },
        Column { header: "OWNER", flexible: true, right: false },
        Column { header: "UPDATED", flexible: false, right: false },
        Column { header: "RULE", flexible: true, right: false },
    ]);
    for counted in &segments {
        let segment = &counted.segment;
        table.push(vec![
            segment.id.to_string(),
            segment.name.clone(),
            counted.count.to_string(),
            segment.owner_user_id.clone().unwrap_or_default(),
            segment.updated_at.format("%Y-%m-%d").to_string(),
            segment.rule_ast.to_text(),
        ]);
    }
    out.table(&table)?;
    if segments.is_empty() && !ctx.global.quiet {
        say!("No segments yet; create one with `crm segments create NAME --rule '…'`.");
    }
    Ok(())
}

fn print_segment(out: &mut Out, segment: &Segment) -> std::io::Result<()> {
    let esc = super::output::escape_controls;
    out.line(format!("id             {}", segment.id))?;
    out.line(format!("name           {}", esc(&segment.name)))?;
    out.line(format!("owner_user_id  {}", esc(segment.owner_user_id.as_deref().unwrap_or(""))))?;
    out.line(format!("created_at     {}", format_time(&segment.created_at)))?;
    out.line(format!("updated_at     {}", format_time(&segment.updated_at)))?;
    out.line(format!("rule           {}", esc(&segment.rule_ast.to_text())))?;
    let ast = serde_json::to_string_pretty(&segment.rule_ast).unwrap_or_default();
    out.line("rule_ast")?;
    for line in ast.lines() {
        out.line(format!("  {line}"))?;
    }
    Ok(())
}

async fn export(app: &App, reference: &str, file: Option<PathBuf>, out: &mut Out) -> anyhow::Result<()> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let (segment, n) = app.export_segment(reference, ExportTarget::File(&path)).await?;
            say!("Exported {n} leads of segment {} ({}) to {}.", segment.id, segment.name, path.display());
        }
        None => {
            app.export_segment(reference, ExportTarget::Stream(out.writer(), "stdout")).await?;
        }
    }
    Ok(())
}
