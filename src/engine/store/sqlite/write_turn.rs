//! Write transactions that take turns inside one process instead of through SQLite's busy
//! handler.
//!
//! A SQLite file has one writer at a time. A `crm worker all` opens one connection per role
//! (expander, sender, status worker, receipts webhook, and the embedded bus), and their write
//! transactions meet all the time. A connection that finds the write lock taken is told
//! `SQLITE_BUSY`, and the busy timeout then sleeps 1, 2, 5, 10, 15, 20 … ms before it tries
//! again, however soon the lock was released: ~600 such sleeps in a 100,000-lead campaign, with
//! the role stalled for each (benches/kafka.sh, `perf stat -e syscalls:sys_enter_clock_nanosleep`).
//!
//! So connections of one process to one file first take a turn here: [`begin_write`] waits on a
//! condition variable, woken as soon as the writer before it commits or rolls back, and then
//! begins the transaction, which then finds the lock free (unless another process holds it; the
//! busy timeout still handles that). A turn that cannot be had within the busy timeout is not
//! waited for any longer: the transaction begins anyway, and SQLite decides as before (so a
//! writer behind a transaction that never ends gives up after twice the busy timeout, not once).
//! Transactions that write to one file from one thread must not overlap, as before: the second
//! would wait out the first's turn (the busy timeout did the same).

use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Whether some connection of this process is writing to one file.
#[derive(Default)]
struct Turns {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// A write transaction holding its process's turn for the file until it ends.
pub(crate) struct WriteTx<'c> {
    // Declared first, so dropped first: a rollback happens before the turn passes on.
    tx: Transaction<'c>,
    _turn: Option<Turn>,
}

impl<'c> Deref for WriteTx<'c> {
    type Target = Transaction<'c>;
    fn deref(&self) -> &Transaction<'c> {
        &self.tx
    }
}

impl WriteTx<'_> {
    pub(crate) fn commit(self) -> rusqlite::Result<()> {
        self.tx.commit()
    }
}

struct Turn(Arc<Turns>);

impl Drop for Turn {
    fn drop(&mut self) {
        *lock(&self.0.taken) = false;
        self.0.freed.notify_one();
    }
}

fn lock(m: &Mutex<bool>) -> MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The turns of every file this process writes to, by the path SQLite reports.
static FILES: LazyLock<Mutex<HashMap<String, Arc<Turns>>>> = LazyLock::new(Mutex::default);

fn turns_for(path: &str) -> Arc<Turns> {
    let mut files = FILES.lock().unwrap_or_else(PoisonError::into_inner);
    match files.get(path) {
        Some(turns) => turns.clone(),
        None => files.entry(path.to_owned()).or_default().clone(),
    }
}

/// Waits up to `patience` for the turn; None when it is not had by then.
fn take(turns: Arc<Turns>, patience: Duration) -> Option<Turn> {
    let deadline = Instant::now() + patience;
    let mut taken = lock(&turns.taken);
    while *taken {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        taken = turns.freed.wait_timeout(taken, left).unwrap_or_else(PoisonError::into_inner).0;
    }
    *taken = true;
    drop(taken);
    Some(Turn(turns))
}

/// `BEGIN IMMEDIATE` on `conn` once this process's other connections to the same file have
/// finished writing (see the module's notes). In-memory and temporary databases, which no other
/// connection shares, begin at once.
pub(crate) fn begin_write(conn: &mut Connection) -> rusqlite::Result<WriteTx<'_>> {
    let turn = match conn.path().filter(|p| !p.is_empty()) {
        Some(path) => take(turns_for(path), super::BUSY_TIMEOUT),
        None => None,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    Ok(WriteTx { tx, _turn: turn })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn open(path: &std::path::Path) -> Connection {
        super::super::connect(path).expect("connect")
    }

    /// A file with an empty table `t`, and a connection to it.
    fn file_with_table() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db");
        let conn = open(&path);
        conn.execute_batch("CREATE TABLE t (x INTEGER)").expect("table");
        (dir, path, conn)
    }

    #[test]
    fn a_second_writer_waits_for_the_first_to_commit_and_is_not_refused() {
        let (_dir, path, mut first) = file_with_table();
        let tx = begin_write(&mut first).expect("first begins");
        tx.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        let (began, began_rx) = mpsc::channel();
        let second = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut conn = open(&path);
                // Without the turn this would get SQLITE_BUSY at once and sleep in the handler.
                conn.busy_timeout(Duration::ZERO).expect("no busy wait");
                let tx = begin_write(&mut conn).expect("second begins once the first committed");
                began.send(()).expect("send");
                let seen: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
                tx.execute("INSERT INTO t VALUES (2)", []).expect("insert");
                tx.commit().expect("commit");
                seen
            })
        };
        assert!(began_rx.recv_timeout(Duration::from_millis(200)).is_err(), "the second began while the first wrote");
        tx.commit().expect("first commits");
        began_rx.recv_timeout(Duration::from_secs(5)).expect("the second began after the commit");
        assert_eq!(second.join().expect("thread"), 1, "the second saw the first's row");
    }

    #[test]
    fn a_rolled_back_writer_passes_the_turn_on_too() {
        let (_dir, path, mut first) = file_with_table();
        {
            let tx = begin_write(&mut first).expect("begins");
            tx.execute("INSERT INTO t VALUES (1)", []).expect("insert");
            // Dropped without a commit: rolled back.
        }
        let mut second = open(&path);
        let tx = begin_write(&mut second).expect("the turn is free again");
        let n: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 0);
    }

    #[test]
    fn a_turn_not_had_in_time_leaves_the_decision_to_sqlite() {
        let turns = Arc::new(Turns::default());
        let held = take(turns.clone(), Duration::ZERO).expect("free");
        assert!(take(turns.clone(), Duration::from_millis(20)).is_none(), "taken twice");
        drop(held);
        assert!(take(turns, Duration::ZERO).is_some(), "not passed on");
    }
}
