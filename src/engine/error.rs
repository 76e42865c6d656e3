//! Engine errors, grouped by what the operator should do about them, which is also what decides
//! the process exit code (see README, "Exit codes").

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A value given on the command line or in a config file is not valid. Exit 2.
    #[error("{0}")]
    Usage(String),
    /// A value for a named field is not valid (`total_spend`, `metadata.city`; empty when the
    /// whole input is at fault). A front end names the field in its own syntax. Exit 2.
    #[error("{}", if field.is_empty() { reason.clone() } else { format!("{field}: {reason}") })]
    Invalid { field: String, reason: String },
    /// The thing named does not exist. Exit 1.
    #[error("{0}")]
    NotFound(String),
    /// The input clashes with stored data (an email that belongs to another lead). Exit 1.
    #[error("{0}")]
    Conflict(String),
    /// An input file could not be read. Exit 2. (The reason is the error's `source`, which
    /// `{:#}` prints after the message; repeating it here would print it twice.)
    #[error("cannot read {path}")]
    Input { path: String, source: std::io::Error },
    /// An output could not be written (a closed pipe ends quietly). Exit 3.
    #[error("cannot write {path}")]
    Output { path: String, source: std::io::Error },
    /// The backend failed or could not be reached. Exit 3.
    #[error("store {store}: {message}")]
    Store { store: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The documented process exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const REJECTED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BACKEND: u8 = 3;
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotFound(_) | Error::Conflict(_) => exit::REJECTED,
            Error::Usage(_) | Error::Invalid { .. } | Error::Input { .. } => exit::USAGE,
            Error::Output { .. } | Error::Store { .. } => exit::BACKEND,
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { field: field.into(), reason: reason.into() }
    }

    pub fn store(store: impl Into<String>, err: impl std::fmt::Display) -> Error {
        Error::Store { store: store.into(), message: err.to_string() }
    }
}
