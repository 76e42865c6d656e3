//! Thin entry point: parse, run, map the outcome to a documented exit code.

use std::process::ExitCode;

/// Imports allocate and free millions of small strings across threads; glibc's allocator
/// spent a fifth of all instructions there (callgrind, 50k-row import), mimalloc far less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(crm::cli::main())
}
