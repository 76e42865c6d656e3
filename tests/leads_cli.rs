//! End-to-end tests of `crm leads …` and `crm config show`: each test runs the real binary
//! against its own temporary store and checks the exit code, stdout and stderr.

mod common;

#[path = "leads_cli/browse.rs"]
mod browse;
#[path = "leads_cli/config_show.rs"]
mod config_show;
#[path = "leads_cli/data_safety.rs"]
mod data_safety;
#[path = "leads_cli/edit.rs"]
mod edit;
#[path = "leads_cli/exit_codes.rs"]
mod exit_codes;
#[path = "leads_cli/export.rs"]
mod export;
#[path = "leads_cli/import_files.rs"]
mod import_files;
#[path = "leads_cli/import_options.rs"]
mod import_options;
#[path = "leads_cli/import_rows.rs"]
mod import_rows;
#[path = "leads_cli/import_values.rs"]
mod import_values;
#[path = "leads_cli/limits.rs"]
mod limits;
#[path = "leads_cli/rough_edges.rs"]
mod rough_edges;
