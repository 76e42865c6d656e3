//! The engine: every business rule of `crm` lives here, behind backend traits, so the CLI and
//! the dashboard are thin presenters over the same operations.

pub mod config;
pub mod error;
pub mod export;
pub mod import;
pub mod lead;
pub mod normalize;
pub mod phone;
pub mod segment;
pub mod store;

pub use error::{Error, Result};
