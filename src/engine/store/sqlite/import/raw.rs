//! The import's multi-row lead INSERT, bound without copying its text.
//!
//! rusqlite binds every string with `SQLITE_TRANSIENT`: SQLite allocates and copies each
//! value, and frees it when the statement is reset. For a million leads that is five
//! allocations, copies and frees per row on the writer thread — the import's longest chain —
//! for strings that stay alive until the statement has run anyway. Here the values are bound
//! with `SQLITE_STATIC` and cleared before the rows they point into can be dropped.
//!
//! Safety rests on three rules kept in this file: a statement is prepared on, and finalized
//! before, its connection (see [`Inserts`]' owner, which drops it first); values are bound only
//! by [`Inserts::insert`], from rows (and the buffer of their JSON columns) borrowed for the
//! whole bind → step → reset → clear sequence; and that sequence always ends with the bindings
//! cleared, also on errors.

#![allow(unsafe_code)]

use super::NewRow;
use super::sql::insert_leads_sql;
use rusqlite::{Connection, ffi};
use std::os::raw::c_int;
use std::ptr;

/// Prepared `INSERT`s for chunks of 1, 2, 4 … `ROWS_PER_INSERT` rows.
pub(super) struct Inserts {
    db: *mut ffi::sqlite3,
    by_size: Vec<(usize, *mut ffi::sqlite3_stmt)>,
}

// The handles are used only on the thread that owns the import state, one call at a time
// (the state moves between blocking-pool threads between calls, never during one).
unsafe impl Send for Inserts {}

impl Inserts {
    /// Statements for `conn`; the owner must drop this before `conn` (declare it first).
    pub(super) fn new(conn: &Connection) -> Inserts {
        // SAFETY: the handle is only used while `conn` is alive (see the module's rules).
        Inserts { db: unsafe { conn.handle() }, by_size: Vec::new() }
    }

    fn statement(&mut self, rows: usize) -> rusqlite::Result<*mut ffi::sqlite3_stmt> {
        if let Some((_, stmt)) = self.by_size.iter().find(|(n, _)| *n == rows) {
            return Ok(*stmt);
        }
        let sql = insert_leads_sql(rows);
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is a live connection; `sql` outlives the call; SQLite copies what it keeps.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return Err(self.error(rc));
        }
        self.by_size.push((rows, stmt));
        Ok(stmt)
    }

    fn error(&self, rc: c_int) -> rusqlite::Error {
        // SAFETY: `db` is live; the message is copied before any other call on it.
        let message = unsafe {
            let m = ffi::sqlite3_errmsg(self.db);
            (!m.is_null()).then(|| std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned())
        };
        rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message)
    }

    /// Inserts `rows` as new leads in one statement; their JSON columns are spans of `json`.
    pub(super) fn insert(&mut self, rows: &[NewRow], json: &str) -> rusqlite::Result<()> {
        let stmt = self.statement(rows.len())?;
        let mut rc = ffi::SQLITE_OK;
        let mut i: c_int = 0;
        // SAFETY: `stmt` belongs to this live connection; every text bound points into `rows` or
        // `json`, borrowed until this function returns, and the bindings are cleared before it does.
        unsafe {
            let text = |i: c_int, s: &str| {
                ffi::sqlite3_bind_text64(
                    stmt,
                    i,
                    s.as_ptr().cast(),
                    s.len() as u64,
                    ffi::SQLITE_STATIC(),
                    ffi::SQLITE_UTF8 as u8,
                )
            };
            let span = |s: super::Span| s.of(json);
            for r in rows {
                for step in 0..11 {
                    i += 1;
                    rc = match step {
                        0 => ffi::sqlite3_bind_int64(stmt, i, r.id),
                        1 => text(i, &r.name),
                        2 => text(i, span(r.json[0])),
                        3 => text(i, span(r.json[1])),
                        4 => ffi::sqlite3_bind_double(stmt, i, r.total_spend),
                        5 => ffi::sqlite3_bind_int64(stmt, i, r.visits),
                        6 => match r.last_order_at {
                            Some(t) => ffi::sqlite3_bind_int64(stmt, i, t),
                            None => ffi::sqlite3_bind_null(stmt, i),
                        },
                        7 => text(i, span(r.json[2])),
                        8 => text(i, span(r.json[3])),
                        9 => ffi::sqlite3_bind_int64(stmt, i, r.created_at),
                        _ => ffi::sqlite3_bind_int64(stmt, i, r.updated_at),
                    };
                    if rc != ffi::SQLITE_OK {
                        break;
                    }
                }
                if rc != ffi::SQLITE_OK {
                    break;
                }
            }
            if rc == ffi::SQLITE_OK {
                rc = match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_DONE => ffi::SQLITE_OK,
                    other => other,
                };
            }
            // After a failed step, reset returns the same error; the step's code is kept.
            let reset = ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            if rc == ffi::SQLITE_OK {
                rc = reset;
            }
        }
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(self.error(rc)) }
    }
}

impl Drop for Inserts {
    fn drop(&mut self) {
        for (_, stmt) in self.by_size.drain(..) {
            // SAFETY: prepared on `db`, which is still open (the owner drops us first).
            unsafe { ffi::sqlite3_finalize(stmt) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::sqlite::{connect, migrations};

    /// id, name, emails, total_spend, visits, last_order_at, tags as stored.
    type Stored = (i64, String, String, f64, i64, Option<i64>, String);

    /// Rows named `names` from id `first` on, and the buffer their JSON columns are in.
    fn rows(first: i64, names: &[&str]) -> (Vec<NewRow>, String) {
        let mut json = String::new();
        let rows = names.iter().zip(first..).map(|(name, id)| row(id, name, &mut json)).collect();
        (rows, json)
    }

    fn row(id: i64, name: &str, buf: &mut String) -> NewRow {
        let mut json = [super::super::Span::default(); 4];
        for (value, span) in
            [format!("[\"{name}@example.com\"]"), "[]".into(), "[\"vip\"]".into(), "{}".into()].iter().zip(&mut json)
        {
            *span = super::super::Span::written(buf, |b| b.push_str(value));
        }
        NewRow {
            id,
            name: name.to_string(),
            json,
            total_spend: 12.5,
            visits: 3,
            last_order_at: (id % 2 == 0).then_some(1_700_000_000_000),
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn rows_are_written_as_bound_and_a_failed_insert_leaves_the_statement_usable() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir.path().join("raw.db")).unwrap();
        assert!(migrations::migrate(&mut conn).is_ok());
        let mut inserts = Inserts::new(&conn);
        let (first, json) = rows(1, &["lead1", "lead2", "lead3", "lead4"]);
        inserts.insert(&first, &json).unwrap();
        drop((first, json)); // the bound text is not read after insert returns
        // Id 4 is taken: the statement fails as a whole and names the constraint.
        let mut json = String::new();
        let clash = vec![row(5, "five", &mut json), row(4, "again", &mut json)];
        let err = inserts.insert(&clash, &json).unwrap_err().to_string();
        assert!(err.contains("UNIQUE") || err.contains("PRIMARY KEY"), "{err}");
        // The same statement (two rows) works again with new values.
        let (again, json) = rows(6, &["six", "seven"]);
        inserts.insert(&again, &json).unwrap();
        let names: Vec<Stored> = conn
            .prepare("SELECT id, name, emails, total_spend, visits, last_order_at, tags FROM leads ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ids: Vec<i64> = names.iter().map(|n| n.0).collect();
        // OR FAIL keeps the rows before the failing one (5); the import rolls its segment back.
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(names[6], (7, "seven".into(), "[\"seven@example.com\"]".into(), 12.5, 3, None, "[\"vip\"]".into()));
        assert_eq!(names[1].5, Some(1_700_000_000_000));
        drop(inserts);
        drop(conn);
    }
}
