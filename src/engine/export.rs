//! Leads to CSV, in the shape `crm leads import` reads back to the same leads: list fields
//! joined with `;`, times in RFC 3339, metadata as `metadata.KEY` columns.

use crate::engine::error::{Error, Result};
use crate::engine::lead::{Lead, LeadId, format_time};
use crate::engine::store::Store;
use std::io::Write;

const FIXED: [&str; 10] =
    ["id", "name", "emails", "phones", "total_spend", "visits", "last_order_at", "tags", "created_at", "updated_at"];

/// The CSV header for leads with these metadata keys.
pub fn header(metadata_keys: &[String]) -> Vec<String> {
    FIXED.iter().map(|s| s.to_string()).chain(metadata_keys.iter().map(|k| format!("metadata.{k}"))).collect()
}

/// One lead as a CSV record under [`header`].
pub fn record(lead: &Lead, metadata_keys: &[String]) -> Vec<String> {
    let mut row = vec![
        lead.id.to_string(),
        lead.name.clone(),
        lead.emails.join(";"),
        lead.phones.join(";"),
        lead.total_spend.to_string(),
        lead.visits.to_string(),
        lead.last_order_at.as_ref().map(format_time).unwrap_or_default(),
        lead.tags.join(";"),
        format_time(&lead.created_at),
        format_time(&lead.updated_at),
    ];
    row.extend(metadata_keys.iter().map(|k| lead.metadata.get(k).cloned().unwrap_or_default()));
    row
}

/// A CSV writer's error as an I/O error of the same kind. csv's own conversion makes every
/// kind `Other`, which would turn a closed pipe (`crm leads export | head`) into a failure.
pub fn csv_io_error(e: csv::Error) -> std::io::Error {
    let kind = match e.kind() {
        csv::ErrorKind::Io(io) => io.kind(),
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

/// Streams every lead to `out` as CSV, a page at a time. Returns how many were written.
pub async fn export_csv(store: &dyn Store, out: &mut dyn Write, target: &str) -> Result<u64> {
    write_pages(store, out, target, async |after| store.scan_leads(after, 2000).await).await
}

/// Writes the header, then every page `next_page(after_id)` returns until an empty one.
pub async fn write_pages(
    store: &dyn Store,
    out: &mut dyn Write,
    target: &str,
    mut next_page: impl AsyncFnMut(LeadId) -> Result<Vec<Lead>>,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::Output { path: target.to_string(), source: e };
    let keys = store.metadata_keys().await?;
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(header(&keys)).map_err(|e| io(csv_io_error(e)))?;
    let (mut after, mut written) = (0, 0u64);
    loop {
        let page = next_page(after).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for lead in &page {
            writer.write_record(record(lead, &keys)).map_err(|e| io(csv_io_error(e)))?;
            written += 1;
        }
    }
    writer.flush().map_err(io)?;
    Ok(written)
}
