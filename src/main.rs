//! Thin entry point: parse, run, map the outcome to a documented exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(crm::cli::main())
}
