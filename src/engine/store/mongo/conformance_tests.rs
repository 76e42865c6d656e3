//! The stores' conformance story (`store/conformance`) against the MongoDB store, on the
//! shared test server (`test_server.rs`): every fixture is a fresh database of its own, dropped
//! when the chapter ends.

use super::MongoStore;
use super::test_server;
use crate::engine::store::Access;
use crate::engine::store::Store;
use crate::engine::store::campaigns::CampaignStore;
use crate::engine::store::conformance::{StoreFixture, store_conformance_tests};
use async_trait::async_trait;
use std::sync::Arc;

/// A database of its own on the shared server; every `open` is a new client ("process").
struct MongoFixture {
    base: String,
    database: String,
}

impl MongoFixture {
    /// None (the chapter is skipped) when there is no server and `CI` is not set.
    fn new() -> Option<MongoFixture> {
        let base = test_server::base_uri()?;
        Some(MongoFixture { base, database: test_server::fresh_database("crm_conformance") })
    }
}

impl Drop for MongoFixture {
    fn drop(&mut self) {
        test_server::drop_database(&self.base, &self.database);
    }
}

#[async_trait]
impl StoreFixture for MongoFixture {
    async fn open(&self) -> (Arc<dyn Store>, Arc<dyn CampaignStore>) {
        let uri = test_server::with_database(&self.base, &self.database);
        let opened = MongoStore::open(&uri, Access::CreateIfMissing).await.expect("open the store");
        let store = Arc::new(opened.store);
        (store.clone(), store)
    }
}

store_conformance_tests!(match MongoFixture::new() {
    Some(fixture) => fixture,
    None => return,
});
