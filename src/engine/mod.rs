//! The engine: every business rule of `crm` lives here, behind backend traits, so the CLI and
//! the dashboard are thin presenters over the same operations.

pub mod app;
pub mod audience;
pub mod bus;
pub mod campaign;
pub mod channel;
pub mod config;
pub mod error;
pub mod export;
pub mod field_rules;
pub mod files;
pub mod import;
pub mod lead;
pub mod limits;
pub mod normalize;
pub mod phone;
pub mod pipeline;
pub mod segment;
pub mod sim;
pub mod store;
pub mod template;
/// Test servers (Kafka broker, MongoDB-wire server) as processes, for the backends' tests.
#[cfg(all(test, any(feature = "kafka", feature = "mongodb")))]
pub(crate) mod test_process;

pub use error::{Error, Result};
