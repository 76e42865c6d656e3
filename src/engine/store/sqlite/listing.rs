//! Listings as ordered id lists, kept per leads version: paging through a million leads (the
//! HTTP API, the dashboard) costs a slice and twenty primary-key reads per page, whatever the
//! page number, sort or search.
//!
//! `LIMIT 20 OFFSET N` makes SQLite step over N rows on every page (~0.1 µs each through an
//! index, far more through a sort), and a search or a count repeats its whole scan per call.
//! Instead, the first page of a listing (filter + sort + direction) computes the ordered ids
//! of every lead it covers once, in one read transaction, and keeps them with the
//! `meta.leads_version` they were computed at. Every write to leads, from any process, bumps
//! that version (see `rows::bump_leads_version`), so a listing is reused exactly while it is
//! still right: each call reads the version (one primary-key read) and recomputes on a change.
//! Counts come from the same list.
//!
//! A listing is built only when it pays: a first page sorted along an index (`id`,
//! `created_at`) with no filter is read straight from the index; so is the count of all leads
//! when nothing is cached. At most [`MAX_LISTINGS`] listings of at most [`MAX_IDS`] ids are
//! kept (8 bytes an id: 8 MB per million leads), least recently used first out.

use super::rows::leads_version;
use crate::engine::lead::LeadId;
use crate::engine::store::{LeadFilter, LeadQuery, SortKey};
use rusqlite::Connection;
use std::sync::{Arc, Mutex};

/// How many listings are kept.
pub const MAX_LISTINGS: usize = 8;
/// Listings longer than this are not kept (their pages are read with OFFSET).
pub const MAX_IDS: usize = 4_000_000;
/// A first page up to this offset is read straight from an index when the sort follows one.
const DIRECT_OFFSET: usize = 1_000;

/// One listing: the ids a query covers, in its order, at one leads version.
struct Listing {
    filter: String,
    order: String,
    version: i64,
    ids: Arc<Vec<LeadId>>,
    used: u64,
}

#[derive(Default)]
struct Cached {
    listings: Vec<Listing>,
    /// Counts asked for without a listing: (filter, version, count).
    counts: Vec<(String, i64, u64)>,
    clock: u64,
}

#[derive(Default)]
pub struct Listings {
    inner: Mutex<Cached>,
}

/// What a listing is keyed by: the filter, and the sort with its direction (not the page).
fn filter_key(filter: &LeadFilter) -> String {
    format!("{filter:?}")
}

fn order_key(query: &LeadQuery) -> String {
    format!("{:?}|{}", query.sort, query.desc)
}

/// Whether a page can be read straight from an index without building a listing.
pub fn direct(query: &LeadQuery) -> bool {
    let unfiltered = query.filter.search.as_deref().is_none_or(|s| s.trim().is_empty())
        && query.filter.min_spend.is_none()
        && query.filter.max_spend.is_none()
        && query.filter.tags.is_empty();
    unfiltered && matches!(query.sort, SortKey::Id | SortKey::CreatedAt) && query.offset <= DIRECT_OFFSET
}

impl Listings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached ids for `filter` in `order` at `version`, if any.
    fn get(&self, filter: &str, order: &str, version: i64) -> Option<Arc<Vec<LeadId>>> {
        let mut guard = self.lock();
        let cached = &mut *guard;
        cached.clock += 1;
        let entry =
            cached.listings.iter_mut().find(|e| e.filter == filter && e.order == order && e.version == version)?;
        entry.used = cached.clock;
        Some(entry.ids.clone())
    }

    /// Keeps `ids` for `filter` in `order` at `version`: listings of older versions go (they
    /// can never be right again), and the least recently used one when full.
    fn put(&self, filter: String, order: String, version: i64, ids: Arc<Vec<LeadId>>) {
        if ids.len() > MAX_IDS {
            return;
        }
        let mut guard = self.lock();
        let cached = &mut *guard;
        cached.clock += 1;
        cached.listings.retain(|e| e.version == version && !(e.filter == filter && e.order == order));
        if cached.listings.len() >= MAX_LISTINGS
            && let Some(oldest) = cached.listings.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i)
        {
            cached.listings.swap_remove(oldest);
        }
        cached.listings.push(Listing { filter, order, version, ids, used: cached.clock });
    }

    /// How many leads `filter` covers, at the current version: from any listing of it, a
    /// count kept earlier, or `count` (kept for next time).
    pub fn count(
        &self,
        conn: &Connection,
        filter: &LeadFilter,
        count: impl FnOnce(&Connection) -> rusqlite::Result<u64>,
    ) -> rusqlite::Result<u64> {
        let key = filter_key(filter);
        let version = leads_version(conn)?;
        {
            let cached = self.lock();
            let listed = cached.listings.iter().find(|e| e.filter == key && e.version == version);
            if let Some(listing) = listed {
                return Ok(listing.ids.len() as u64);
            }
            if let Some((_, _, n)) = cached.counts.iter().find(|(f, v, _)| *f == key && *v == version) {
                return Ok(*n);
            }
        }
        let n = count(conn)?;
        let mut cached = self.lock();
        cached.counts.retain(|(f, v, _)| *v == version && *f != key);
        if cached.counts.len() >= MAX_LISTINGS {
            cached.counts.remove(0);
        }
        cached.counts.push((key, version, n));
        Ok(n)
    }

    /// The ids of `query`'s listing at the current leads version, from the cache or computed
    /// by `compute` (inside one read transaction with the version it belongs to).
    pub fn ids(
        &self,
        conn: &mut Connection,
        query: &LeadQuery,
        compute: impl FnOnce(&Connection) -> rusqlite::Result<Vec<LeadId>>,
    ) -> rusqlite::Result<Arc<Vec<LeadId>>> {
        let (filter, order) = (filter_key(&query.filter), order_key(query));
        let tx = conn.transaction()?;
        let version = leads_version(&tx)?;
        if let Some(ids) = self.get(&filter, &order, version) {
            return Ok(ids);
        }
        let ids = Arc::new(compute(&tx)?);
        tx.commit()?;
        self.put(filter, order, version, ids.clone());
        Ok(ids)
    }

    /// Whether `query`'s listing is cached at the current version.
    pub fn has(&self, conn: &Connection, query: &LeadQuery) -> rusqlite::Result<bool> {
        let version = leads_version(conn)?;
        Ok(self.get(&filter_key(&query.filter), &order_key(query), version).is_some())
    }
}

/// The page `[offset, offset + limit)` of `ids`.
pub fn page(ids: &[LeadId], offset: usize, limit: Option<usize>) -> &[LeadId] {
    let start = offset.min(ids.len());
    let end = limit.map_or(ids.len(), |l| start.saturating_add(l).min(ids.len()));
    &ids[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_kept_per_version_and_the_least_recently_used_goes_first() {
        let cache = Listings::default();
        let ids = |n: i64| Arc::new((0..n).collect::<Vec<_>>());
        let put = |k: &str, v: i64, n: i64| cache.put(k.into(), "id".into(), v, ids(n));
        let get = |k: &str, v: i64| cache.get(k, "id", v).map(|ids| ids.len());
        put("a", 1, 3);
        assert_eq!(get("a", 1), Some(3));
        assert_eq!(get("a", 2), None, "another version is not this listing");
        assert_eq!(cache.get("a", "name", 1), None, "another order is not this listing");
        put("a", 2, 4);
        assert_eq!(get("a", 1), None, "the old version is dropped");
        for k in 0..MAX_LISTINGS {
            put(&format!("k{k}"), 2, 1);
            // Keep "a" recently used.
            assert!(get("a", 2).is_some());
        }
        assert_eq!(get("a", 2), Some(4), "recently used stays");
        assert_eq!(get("k0", 2), None, "the least recently used went");
        assert_eq!(page(&[1, 2, 3, 4, 5], 3, Some(20)), &[4, 5]);
        assert_eq!(page(&[1, 2, 3], 7, Some(2)), &[] as &[i64]);
        assert_eq!(page(&[1, 2, 3], 1, None), &[2, 3]);
    }

    /// Pages cut from a listing equal the same rows read with OFFSET, in every indexed order;
    /// a listing follows writes made through another handle (another process) at once.
    #[tokio::test]
    async fn pages_match_offset_reads_and_follow_other_handles_writes() {
        use crate::engine::lead::LeadDraft;
        use crate::engine::store::{LeadFilter, Store};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crm.db");
        let a = super::super::SqliteStore::open(&path).await.expect("open");
        let b = super::super::SqliteStore::open(&path).await.expect("open");
        let draft = |i: usize| LeadDraft {
            name: Some(format!("Lead {:04}", (i * 7919) % 1100)),
            emails: vec![format!("l{i}@example.com")],
            ..LeadDraft::default()
        };
        for i in 0..1100 {
            a.add_lead(draft(i)).await.expect("add");
        }
        for sort in [SortKey::Id, SortKey::CreatedAt, SortKey::Name] {
            for desc in [false, true] {
                let all = LeadQuery { sort, desc, ..LeadQuery::default() };
                let every: Vec<LeadId> = a.list_leads(&all).await.expect("all").iter().map(|l| l.id).collect();
                assert_eq!(every.len(), 1100);
                let page = LeadQuery { offset: 1050, limit: Some(20), ..all.clone() };
                let got: Vec<LeadId> = a.list_leads(&page).await.expect("page").iter().map(|l| l.id).collect();
                assert_eq!(got, every[1050..1070], "{sort:?} desc={desc}");
            }
        }
        let by_name = LeadQuery { sort: SortKey::Name, limit: Some(5), ..LeadQuery::default() };
        let names = |leads: Vec<crate::engine::lead::Lead>| leads.into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(a.list_leads(&by_name).await.expect("list"))[0], "Lead 0000");
        let search = LeadFilter { search: Some("lead 00".into()), ..LeadFilter::default() };
        assert_eq!(a.count_leads(&search).await.expect("count"), 100);
        assert_eq!(a.count_leads(&LeadFilter::default()).await.expect("count"), 1100);
        // Another handle writes: the cached listing and counts are not served any more.
        let newcomer = b
            .add_lead(LeadDraft {
                name: Some("Lead 0000a".into()),
                emails: vec!["n@example.com".into()],
                ..LeadDraft::default()
            })
            .await
            .expect("add");
        assert_eq!(names(a.list_leads(&by_name).await.expect("list"))[..2], ["Lead 0000", "Lead 0000a"]);
        assert_eq!(a.count_leads(&search).await.expect("count"), 101);
        assert_eq!(a.count_leads(&LeadFilter::default()).await.expect("count"), 1101);
        b.delete_lead(newcomer.id).await.expect("delete");
        assert_eq!(a.count_leads(&search).await.expect("count"), 100);
        assert!(!names(a.list_leads(&by_name).await.expect("list")).contains(&"Lead 0000a".to_string()));
    }
}
