//! Engine errors, grouped by what the operator should do about them: fix their input
//! (`Usage`, `Invalid`, `Input`), look again (`NotFound`, `Conflict`), or see to a backend
//! (`Output`, `Store`). Each front end maps the kinds onto its own signals (the CLI's exit codes
//! in `cli::exit`, HTTP statuses for the API).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A value given on the command line or in a config file is not valid.
    #[error("{0}")]
    Usage(String),
    /// A value for a named field is not valid (`total_spend`, `metadata.city`; empty when the
    /// whole input is at fault). A front end names the field in its own syntax.
    #[error("{}", if field.is_empty() { reason.clone() } else { format!("{field}: {reason}") })]
    Invalid { field: String, reason: String },
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The input clashes with stored data (an email that belongs to another lead).
    #[error("{0}")]
    Conflict(String),
    /// An input file could not be read. (The reason is the error's `source`, which
    /// `{:#}` prints after the message; repeating it here would print it twice.)
    #[error("cannot read {path}")]
    Input { path: String, source: std::io::Error },
    /// An output could not be written (a closed pipe ends quietly).
    #[error("cannot write {path}")]
    Output { path: String, source: std::io::Error },
    /// The backend failed or could not be reached.
    #[error("store {store}: {message}")]
    Store { store: String, message: String },
    /// The message bus failed or could not be reached.
    #[error("bus {bus}: {message}")]
    Bus { bus: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { field: field.into(), reason: reason.into() }
    }

    /// A backend failure described by `err`'s text, cut to [`MAX_STORE_MESSAGE`] characters.
    /// For SQLite errors use [`Error::sqlite`], which never shows query text.
    pub fn store(store: impl Into<String>, err: impl std::fmt::Display) -> Error {
        let mut message = err.to_string();
        if let Some((cut, _)) = message.char_indices().nth(MAX_STORE_MESSAGE) {
            message.truncate(cut);
            message.push('…');
        }
        Error::Store { store: store.into(), message }
    }

    /// A SQLite failure, described in a few words. rusqlite's own text for a statement that
    /// fails to prepare includes the whole SQL (hundreds of KB of `?` for a big rule); an
    /// operator needs what went wrong, never the query.
    pub fn sqlite(store: impl Into<String>, err: &rusqlite::Error) -> Error {
        Error::store(store, describe_sqlite(err))
    }
}

/// The longest backend message kept in an [`Error::Store`].
pub const MAX_STORE_MESSAGE: usize = 300;

fn describe_sqlite(err: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode as Code;
    let (code, detail) = match err {
        rusqlite::Error::SqliteFailure(e, detail) => (e.code, detail.as_deref().unwrap_or_default()),
        rusqlite::Error::SqlInputError { error, msg, .. } => (error.code, msg.as_str()),
        // rusqlite's API errors and our own conversions (a stored rule that no longer loads)
        // carry no SQL text.
        other => return other.to_string(),
    };
    let lower = detail.to_ascii_lowercase();
    let too_complex = ["too large", "too many", "too big", "too deep", "too complex", "stack overflow"];
    match code {
        Code::DatabaseBusy | Code::DatabaseLocked => {
            "the database is busy (another crm process holds a lock); try again".into()
        }
        Code::DiskFull => "the disk is full".into(),
        Code::ReadOnly => "the database is read-only".into(),
        Code::CannotOpen => "cannot open the database file".into(),
        Code::PermissionDenied => "permission denied".into(),
        Code::DatabaseCorrupt | Code::NotADatabase => "the file is damaged or is not a crm database".into(),
        Code::SystemIoFailure => "a disk I/O error".into(),
        Code::OutOfMemory => "out of memory".into(),
        Code::OperationInterrupted => "the query was interrupted".into(),
        Code::TooBig => "the query failed: too big".into(),
        _ if too_complex.iter().any(|w| lower.contains(w)) => "the query failed: too complex".into(),
        // A syntax error quotes the SQL near it; it would be a bug in crm, not in the input.
        _ if lower.contains("syntax error") => "the query failed: invalid SQL (a bug in crm)".into(),
        _ if detail.is_empty() => format!("the query failed ({code:?})"),
        // SQLite's other messages name a problem, not the statement ("no such table: leads").
        _ => format!("the query failed: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_errors_never_show_the_query() {
        let conn = rusqlite::Connection::open_in_memory().expect("opens");
        let placeholders = vec!["?"; 40_000].join(", ");
        let sql = format!("SELECT 1 WHERE 1 IN ({placeholders})");
        let err = conn.prepare(&sql).map(|_| ()).expect_err("too many variables");
        assert!(err.to_string().contains("?, ?, ?"), "rusqlite's text quotes the SQL: {err}");
        let shown = Error::sqlite("sqlite:crm.db", &err).to_string();
        assert_eq!(shown, "store sqlite:crm.db: the query failed: too complex");

        let deep = format!("SELECT {}", vec!["1"; 2_000].join(" + "));
        let err = conn.prepare(&deep).map(|_| ()).expect_err("too deep");
        assert_eq!(Error::sqlite("s", &err).to_string(), "store s: the query failed: too complex");

        let err = conn.prepare("SELEC 1").map(|_| ()).expect_err("syntax");
        assert!(!Error::sqlite("s", &err).to_string().contains("SELEC"));
        let err = conn.prepare("SELECT * FROM nowhere").map(|_| ()).expect_err("no table");
        assert_eq!(Error::sqlite("s", &err).to_string(), "store s: the query failed: no such table: nowhere");
    }

    #[test]
    fn store_messages_are_bounded() {
        let long = "x".repeat(10_000);
        let Error::Store { message, .. } = Error::store("s", &long) else { panic!("a store error") };
        assert_eq!(message.chars().count(), MAX_STORE_MESSAGE + 1);
        assert!(message.ends_with('…'));
    }
}
