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
//! by [`Inserts::insert`], from rows borrowed for the whole bind → step → reset → clear
//! sequence; and that sequence always ends with the bindings cleared, also on errors.

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

    /// Inserts `rows` as new leads in one statement.
    pub(super) fn insert(&mut self, rows: &[NewRow]) -> rusqlite::Result<()> {
        let stmt = self.statement(rows.len())?;
        let mut rc = ffi::SQLITE_OK;
        let mut i: c_int = 0;
        // SAFETY: `stmt` belongs to this live connection; every text bound points into `rows`,
        // borrowed until this function returns, and the bindings are cleared before it does.
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
            for r in rows {
                for step in 0..11 {
                    i += 1;
                    rc = match step {
                        0 => ffi::sqlite3_bind_int64(stmt, i, r.id),
                        1 => text(i, &r.name),
                        2 => text(i, &r.json[0]),
                        3 => text(i, &r.json[1]),
                        4 => ffi::sqlite3_bind_double(stmt, i, r.total_spend),
                        5 => ffi::sqlite3_bind_int64(stmt, i, r.visits),
                        6 => match r.last_order_at {
                            Some(t) => ffi::sqlite3_bind_int64(stmt, i, t),
                            None => ffi::sqlite3_bind_null(stmt, i),
                        },
                        7 => text(i, &r.json[2]),
                        8 => text(i, &r.json[3]),
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
