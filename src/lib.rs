//! `crm`: a terminal-first CRM. The engine holds the business rules and backends; the CLI
//! parses commands and presents results. See docs/ARCHITECTURE.md for the module map.

#[cfg(feature = "api")]
pub mod api;
pub mod cli;
pub mod engine;
#[cfg(feature = "tui")]
pub mod tui;
