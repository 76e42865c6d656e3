//! One way to open the store: the URL is parsed once, and the one backend it names serves both
//! store traits ([`Store`] for leads and segments, [`CampaignStore`] for the pipeline). The bus
//! opener then takes the [`OpenedStore`] rather than a second URL (the embedded bus lives in
//! the store's own file).
//!
//! Commands that only read open with [`Access::Existing`]: a mistyped path is an error naming
//! it, never a new empty store that looks like lost data.

use super::campaigns::CampaignStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreLocation, parse_store_url};
use crate::engine::error::{Error, Result};
use std::sync::Arc;

/// Whether opening may create the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The store must exist already (commands that only read).
    Existing,
    /// Create (and migrate) the store when it is missing (commands that write).
    CreateIfMissing,
}

/// An open store: both traits over one backend, and where it lives.
#[derive(Clone)]
pub struct OpenedStore {
    pub location: StoreLocation,
    pub leads: Arc<dyn Store>,
    pub campaigns: Arc<dyn CampaignStore>,
    /// True when this open created the store.
    pub created: bool,
    /// Something a front end should tell the user about the store it opened (a MongoDB
    /// database without crm data, opened by a command that only reads).
    pub notice: Option<String>,
}

impl OpenedStore {
    /// Opens the store `url` names.
    pub async fn open(url: &str, access: Access) -> Result<OpenedStore> {
        let location = parse_store_url(url)?;
        OpenedStore::open_location(location, access).await
    }

    async fn open_location(location: StoreLocation, access: Access) -> Result<OpenedStore> {
        match &location {
            StoreLocation::Sqlite(path) => {
                let exists = path.exists();
                if !exists && access == Access::Existing {
                    return Err(Error::Store {
                        store: format!("sqlite:{}", path.display()),
                        message: "no store exists there (nothing was created); check the path, or import or \
                                  add leads to create one"
                            .into(),
                    });
                }
                let store = Arc::new(SqliteStore::open(path).await?);
                Ok(OpenedStore { leads: store.clone(), campaigns: store, created: !exists, notice: None, location })
            }
            #[cfg(feature = "mongodb")]
            StoreLocation::MongoDb(url) => {
                let opened = super::mongo::MongoStore::open(url, access).await?;
                let store = Arc::new(opened.store);
                Ok(OpenedStore {
                    leads: store.clone(),
                    campaigns: store,
                    created: opened.created,
                    notice: opened.notice,
                    location,
                })
            }
            #[cfg(not(feature = "mongodb"))]
            StoreLocation::MongoDb(_) => Err(Error::Usage(
                "this crm was built without MongoDB support (the `mongodb` feature); use a SQLite path".into(),
            )),
        }
    }

    /// A second handle on the same store with its own connections: a SQLite connection
    /// serializes its calls, so each worker role gets one of its own.
    pub async fn reopen(&self) -> Result<OpenedStore> {
        let mut again = OpenedStore::open_location(self.location.clone(), Access::Existing).await?;
        again.created = false;
        again.notice = None;
        Ok(again)
    }

    /// Where the store lives, for messages.
    pub fn describe(&self) -> String {
        self.leads.describe()
    }
}
