//! WAL checkpoints beside the import's writer.

use super::super::connect;

/// Copies committed WAL pages into the database on its own thread and connection, so the
/// writer thread never stalls on a checkpoint (a passive checkpoint runs beside a writer).
pub(super) struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn start(path: &std::path::Path) -> Option<Checkpointer> {
        let conn = connect(path).ok()?;
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        });
        Some(Checkpointer { wake, thread })
    }

    pub(super) fn nudge(&self) {
        let _ = self.wake.try_send(());
    }

    pub(super) fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}
