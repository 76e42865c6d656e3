//! Who owned each indexed key when the filter was last filled, in memory, as hints.
//!
//! A re-import asks, for nearly every row, which lead owns the row's first key; through
//! `lead_keys` that is a B-tree descent to a random page — a dozen cache misses, 38% of a
//! 1,000,000-row re-import's writer (2026-12-06 profile). The keys are read in full anyway to
//! fill the filter ([`State::rebuild_filter`](super::State)); kept with their leads, in hash
//! order under a bucket directory, a lookup is two or three cache misses.
//!
//! A hint is only used where being stale is harmless: [`State::unchanged_owner`](super::State)
//! reads the hinted lead and skips the row only when that lead holds exactly the row's emails
//! and phones, which makes it the owner of the row's keys (a key has one owner). Everything
//! else asks the index.

use crate::engine::lead::LeadId;

/// (hash, lead) pairs in hash order, with `starts[b]` the first pair of bucket `b` (the
/// hash's top bits; hashes are uniform, so buckets hold a handful each).
#[derive(Default)]
pub(super) struct KeyHints {
    pairs: Vec<(i64, LeadId)>,
    starts: Vec<u32>,
    shift: u32,
}

/// Orders hashes as unsigned numbers do, so the top bits name the bucket; the same order as
/// the signed hashes themselves (`lead_keys`' rowid order).
fn unsigned(hash: i64) -> u64 {
    (hash as u64) ^ (1 << 63)
}

/// The bucket of `hash`: its top `64 - shift` bits (none: bucket 0).
fn bucket(hash: i64, shift: u32) -> u64 {
    unsigned(hash).checked_shr(shift).unwrap_or(0)
}

impl KeyHints {
    /// From pairs in ascending hash order (as `lead_keys` is scanned); `None` past 2^32 pairs.
    pub(super) fn new(pairs: Vec<(i64, LeadId)>) -> Option<KeyHints> {
        let n = u32::try_from(pairs.len()).ok()?;
        // About eight pairs a bucket: the directory is half the size of the pairs' hashes.
        let bits = (n / 8).max(1).ilog2().min(24);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for b in 0..buckets as u64 {
            while at < pairs.len() && bucket(pairs[at].0, shift) < b {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(n);
        Some(KeyHints { pairs, starts, shift })
    }

    /// The lead that owned `hash`'s key when the hints were made, if any did.
    pub(super) fn owner(&self, hash: i64) -> Option<LeadId> {
        let b = bucket(hash, self.shift) as usize;
        let (from, to) = (*self.starts.get(b)? as usize, *self.starts.get(b + 1)? as usize);
        let bucket = self.pairs.get(from..to)?;
        bucket.binary_search_by_key(&hash, |p| p.0).ok().map(|i| bucket[i].1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_found_and_nothing_else() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as i64
        };
        for n in [0usize, 1, 2, 7, 8, 9, 100, 5000] {
            let mut pairs: Vec<(i64, LeadId)> = (0..n).map(|i| (next(), i as LeadId + 1)).collect();
            pairs
                .extend([(i64::MIN, 90_001), (i64::MAX, 90_002), (0, 90_003), (-1, 90_004)].into_iter().take(n.min(4)));
            pairs.sort_unstable();
            pairs.dedup_by_key(|p| p.0);
            let hints = KeyHints::new(pairs.clone()).unwrap();
            assert_eq!(hints.len(), pairs.len());
            for &(h, id) in &pairs {
                assert_eq!(hints.owner(h), Some(id), "n = {n}, hash {h}");
            }
            for _ in 0..1000 {
                let h = next();
                assert_eq!(hints.owner(h), pairs.binary_search_by_key(&h, |p| p.0).ok().map(|i| pairs[i].1));
            }
        }
        assert_eq!(KeyHints::default().owner(42), None, "no hints, no owner");
    }
}
