//! The documented process exit codes (README, "Exit codes"), and which engine errors end in
//! which.

use crate::engine::Error;

pub const OK: u8 = 0;
/// The command finished but rejected some input, or what it names does not exist.
pub const REJECTED: u8 = 1;
/// Usage or configuration error; input that cannot be used as a whole.
pub const USAGE: u8 = 2;
/// A backend is unreachable or failing, or output cannot be written.
pub const BACKEND: u8 = 3;
/// `crm campaigns wait --timeout` ran out before the campaign finished.
pub const TIMED_OUT: u8 = 4;

/// The exit code an engine error ends the process with.
pub fn code_of(err: &Error) -> u8 {
    match err {
        Error::NotFound(_) | Error::Conflict(_) => REJECTED,
        Error::Usage(_) | Error::Invalid { .. } | Error::Input { .. } => USAGE,
        Error::Output { .. } | Error::Store { .. } | Error::Bus { .. } => BACKEND,
    }
}
