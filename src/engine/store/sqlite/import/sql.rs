//! The import's multi-row statements, in a few sizes so they stay cached.

/// Rows per multi-row INSERT: fewer statement executions, far less per-row overhead.
pub(super) const ROWS_PER_INSERT: usize = 64;

/// Splits `items` into chunks of `max`, then of falling powers of two, so a flush of any size
/// uses a handful of distinct (cached) statements rather than one per size.
pub(super) fn power_of_two_chunks<T>(mut items: &[T], max: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut size = max;
    while !items.is_empty() {
        while size > items.len() {
            size /= 2;
        }
        let (head, rest) = items.split_at(size);
        chunks.push(head);
        items = rest;
    }
    chunks
}

pub(super) fn insert_leads_sql(rows: usize) -> String {
    let one = "(?,?,?,?,?,?,?,?,?,?,?)";
    format!(
        "INSERT OR FAIL INTO leads (id, name, emails, phones, total_spend, visits, last_order_at, tags, metadata, created_at, updated_at) VALUES {}",
        vec![one; rows].join(",")
    )
}

pub(super) fn insert_keys_sql(rows: usize) -> String {
    format!("INSERT OR FAIL INTO lead_keys (h, lead_id) VALUES {}", vec!["(?,?)"; rows].join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fall_by_powers_of_two() {
        let items: Vec<u32> = (0..75).collect();
        let sizes: Vec<usize> = power_of_two_chunks(&items, 64).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [64, 8, 2, 1]);
        assert!(power_of_two_chunks::<u32>(&[], 64).is_empty());
    }
}
