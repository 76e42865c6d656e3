//! A Bloom filter over identity-key hashes, and a hasher for maps keyed by hashes already.

use std::hash::Hasher;

/// A Bloom filter over key hashes (k = 6, ~12 bits a key, capped at 32 MiB; past the cap it
/// answers "maybe" more often, which costs lookups, never correctness). Blocked: a key's six
/// bits sit in one 64-byte block, so a lookup touches one cache line instead of six — the
/// writer asks it twice per row, and on a million rows the misses were ~3% of the writer's
/// time. The price is a slightly higher false-positive rate at the same size (see the test).
pub(super) struct KeyFilter {
    blocks: Vec<Block>,
    mask: u64,
}

#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

impl KeyFilter {
    pub(super) fn with_capacity(keys: u64) -> KeyFilter {
        let bits = keys.saturating_mul(12).clamp(1 << 16, 1 << 28).next_power_of_two();
        let blocks = bits / 512;
        KeyFilter { blocks: vec![Block::default(); blocks as usize], mask: blocks - 1 }
    }

    /// The key's block, and its six bits there (0..512).
    fn positions(&self, hash: i64) -> (usize, [u16; 6]) {
        let h1 = hash as u64;
        let h2 = h1.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h1 & self.mask) as usize, std::array::from_fn(|i| ((h2 >> (9 * i)) & 511) as u16))
    }

    pub(super) fn insert(&mut self, hash: i64) {
        let (block, bits) = self.positions(hash);
        let block = &mut self.blocks[block].0;
        for p in bits {
            block[usize::from(p / 64)] |= 1 << (p % 64);
        }
    }

    pub(super) fn may_contain(&self, hash: i64) -> bool {
        let (block, bits) = self.positions(hash);
        let block = &self.blocks[block].0;
        bits.iter().all(|p| block[usize::from(p / 64)] & (1 << (p % 64)) != 0)
    }
}

/// A `Hasher` for map keys that are already hashes.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::sqlite::keys::key_hash;

    #[test]
    fn filter_has_no_false_negatives() {
        let mut f = KeyFilter::with_capacity(10_000);
        for i in 0..10_000 {
            f.insert(key_hash(&format!("e:user{i}@example.com")));
        }
        assert!((0..10_000).all(|i| f.may_contain(key_hash(&format!("e:user{i}@example.com")))));
        let false_hits = (0..10_000).filter(|i| f.may_contain(key_hash(&format!("p:+44{i}")))).count();
        assert!(false_hits < 100, "{false_hits} false positives in 10000");
    }
}
