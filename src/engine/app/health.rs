//! Health: does each backend answer right now? For `GET /health` and monitors; it writes
//! nothing.

use super::App;
use crate::engine::store::StoreLocation;

/// Which backends answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendHealth {
    pub database: bool,
    pub bus: bool,
}

impl App {
    /// Asks the store and the bus a real question each. A SQLite store whose file is no longer
    /// at its path (deleted or moved under a running process) counts as down even though the
    /// open connection still answers: what it writes would be lost with the unlinked file.
    pub async fn check_backends(&self) -> BackendHealth {
        let file_present = match self.store_location() {
            StoreLocation::Sqlite(path) => path.is_file(),
            StoreLocation::MongoDb(_) => true,
        };
        let database = file_present && self.count_leads(&Default::default()).await.is_ok();
        let bus = match self.bus().await {
            Ok(bus) => bus.depth(crate::engine::bus::topic::JOBS).await.is_ok(),
            Err(_) => false,
        };
        if !database || !bus {
            tracing::warn!(database, bus, store = %self.describe_store(), "A health check found a backend down.");
        }
        BackendHealth { database, bus }
    }
}
