//! How leads look on a terminal: the listing table and one lead's details.

use super::super::output::{Column, Out, Table, escape_controls};
use crate::engine::lead::{Lead, format_time};
use crate::engine::store::campaigns::Reply;

/// How many of a lead's latest replies `leads show` prints.
pub const REPLIES_SHOWN: usize = 5;

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

pub(super) fn display_name(lead: &Lead) -> String {
    if lead.name.is_empty() {
        lead.emails.first().or(lead.phones.first()).cloned().unwrap_or_default()
    } else {
        lead.name.clone()
    }
}

pub(super) fn print_lead(out: &mut Out, lead: &Lead) -> std::io::Result<()> {
    let esc = escape_controls;
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

/// The lead's latest replies, newest first (nothing when it has none).
pub(super) fn print_replies(out: &mut Out, replies: &[Reply]) -> std::io::Result<()> {
    if replies.is_empty() {
        return Ok(());
    }
    out.line(format!("replies        (latest {}, newest first)", replies.len()))?;
    for r in replies {
        out.line(format!("  {}  {}  {}", format_time(&r.received_at), r.channel, escape_controls(&r.body)))?;
    }
    Ok(())
}
