//! The stores' conformance story (`store/conformance`) against the SQLite store.

use crate::engine::store::Store;
use crate::engine::store::campaigns::CampaignStore;
use crate::engine::store::conformance::{StoreFixture, store_conformance_tests};
use crate::engine::store::sqlite::SqliteStore;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;

/// A temp SQLite file; every `open` is a new `SqliteStore` ("process") on it, which serves
/// both traits.
struct SqliteFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteFixture {
    fn new() -> SqliteFixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("crm.db");
        SqliteFixture { _dir: dir, path }
    }
}

#[async_trait]
impl StoreFixture for SqliteFixture {
    async fn open(&self) -> (Arc<dyn Store>, Arc<dyn CampaignStore>) {
        let store = Arc::new(SqliteStore::open(&self.path).await.expect("open the store"));
        (store.clone(), store)
    }
}

store_conformance_tests!(SqliteFixture::new());
