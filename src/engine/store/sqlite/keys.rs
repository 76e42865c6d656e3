//! The identity index: which lead owns each normalized email and phone.
//!
//! Keys are stored by a stable 64-bit hash (xxh3 of `e:ada@example.com` / `p:+44…`) as the
//! rowid of `lead_keys(h, lead_id)`: integer cells are a quarter the size of text ones, so the
//! index is small and a million-row import writes it quickly, in hash order. A hash is never
//! trusted on its own: every hit is confirmed against the owning lead's emails and phones. The
//! rare key whose hash is already taken by a different key lives, by its full text, in
//! `lead_key_overflow`, which is consulted whenever the hash alone does not settle it.

use super::rows::load_lead;
use crate::engine::lead::LeadId;
use rusqlite::{Connection, OptionalExtension, params};

/// The stored hash of an identity key.
pub fn key_hash(key: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as i64
}

/// The lead the index records under this key's hash, unconfirmed.
pub fn hashed_owner(conn: &Connection, hash: i64) -> rusqlite::Result<Option<LeadId>> {
    conn.prepare_cached("SELECT lead_id FROM lead_keys WHERE h = ?1")?.query_row([hash], |r| r.get(0)).optional()
}

/// Whether `id` really has `key` among its emails and phones.
pub fn lead_has_key(conn: &Connection, id: LeadId, key: &str) -> rusqlite::Result<bool> {
    Ok(load_lead(conn, id)?.is_some_and(|lead| lead.has_identity_key(key)))
}

pub fn overflow_owner(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeadId>> {
    conn.prepare_cached("SELECT lead_id FROM lead_key_overflow WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// The lead owning `key`, confirmed.
pub fn owner(conn: &Connection, key: &str) -> rusqlite::Result<Option<LeadId>> {
    if let Some(id) = hashed_owner(conn, key_hash(key))? {
        if lead_has_key(conn, id, key)? {
            return Ok(Some(id));
        }
    }
    overflow_owner(conn, key)
}

/// Records `key` → `id` (the caller has checked no lead owns it).
pub fn insert(conn: &Connection, key: &str, id: LeadId) -> rusqlite::Result<()> {
    let taken = conn
        .prepare_cached("INSERT OR IGNORE INTO lead_keys (h, lead_id) VALUES (?1, ?2)")?
        .execute(params![key_hash(key), id])?
        == 0;
    if taken {
        insert_overflow(conn, key, id)?;
    }
    Ok(())
}

pub fn insert_overflow(conn: &Connection, key: &str, id: LeadId) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO lead_key_overflow (key, lead_id) VALUES (?1, ?2)")?.execute(params![key, id])?;
    Ok(())
}

/// Forgets `key` for lead `id` (wherever it is recorded).
pub fn remove(conn: &Connection, key: &str, id: LeadId) -> rusqlite::Result<()> {
    let in_overflow = conn
        .prepare_cached("DELETE FROM lead_key_overflow WHERE key = ?1 AND lead_id = ?2")?
        .execute(params![key, id])?
        > 0;
    if !in_overflow {
        conn.prepare_cached("DELETE FROM lead_keys WHERE h = ?1 AND lead_id = ?2")?
            .execute(params![key_hash(key), id])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_runs_and_builds() {
        // Stored on disk: this value must never change.
        assert_eq!(key_hash("e:ada@example.com"), xxhash_rust::xxh3::xxh3_64(b"e:ada@example.com") as i64);
        assert_ne!(key_hash("e:ada@example.com"), key_hash("p:ada@example.com"));
    }
}
