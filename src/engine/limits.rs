//! Documented size limits, in one place (README, "Limits"; docs/segments.md, "Limits").
//!
//! Two kinds live here. Field sizes are what a stored lead may hold; imports enforce them, and
//! templates rely on them to bound a rendered message before any lead is read. Rule sizes keep
//! one segment rule from exhausting memory, the stack or SQLite's own limits (expression
//! depth, bound parameters): past them a rule is refused as a usage error that names the limit,
//! never passed on to fail inside the database.
//!
//! Lengths are in characters (Unicode scalar values) unless the name says bytes.

/// A lead's name.
pub const MAX_NAME_CHARS: usize = 200;
/// One email address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// A phone cell as imported, before normalising.
pub const MAX_PHONE_CELL_CHARS: usize = 64;
/// A stored phone: E.164, `+` and at most 15 digits.
pub const MAX_PHONE_CHARS: usize = 16;
/// One tag.
pub const MAX_TAG_CHARS: usize = 64;
/// A metadata key (an imported column's header, normalised).
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// A metadata value (an imported cell).
pub const MAX_METADATA_VALUE_CHARS: usize = 1_000;
/// `visits` as text: an `i64` with its sign.
pub const MAX_WHOLE_NUMBER_CHARS: usize = 20;
/// `total_spend` with two decimals: amounts are not bounded, and `f64::MAX` prints with 309
/// digits, so the honest bound is that plus a sign and `.00`.
pub const MAX_AMOUNT_CHARS: usize = 313;
/// A date or time as text (`2024-05-31`, or RFC 3339 with milliseconds and an offset).
pub const MAX_DATE_CHARS: usize = 25;

/// Conditions in one segment rule. Each costs the SQL translation at most
/// [`MAX_PARAMS_PER_CONDITION`] bound parameters, and SQLite allows 32,766 per statement.
pub const MAX_RULE_CONDITIONS: usize = 10_000;
/// Values in one `in` / `not in` list.
pub const MAX_LIST_VALUES: usize = 100_000;
/// A rule given as text (`--rule`), in bytes; checked before parsing.
pub const MAX_RULE_TEXT_BYTES: usize = 1 << 20;
/// A rule given as a JSON file (`--ast`), in bytes; the file is never read past it.
pub const MAX_RULE_FILE_BYTES: usize = 16 << 20;
/// The most parameters one condition's SQL binds (a metadata test binds the key and the test;
/// a short number list binds each value, longer ones bind one blob).
pub const MAX_PARAMS_PER_CONDITION: usize = 3;
/// Bound parameters SQLite accepts in one statement (`SQLITE_MAX_VARIABLE_NUMBER`).
pub const SQLITE_MAX_PARAMS: usize = 32_766;

// A rule at the limit must still fit one statement, with room for the query's own parameters.
const _: () = assert!(MAX_RULE_CONDITIONS * MAX_PARAMS_PER_CONDITION + 16 <= SQLITE_MAX_PARAMS);

/// The greatest number of leads `leads list` may skip (`(--page - 1) × --limit`).
pub const MAX_LIST_OFFSET: u64 = 1_000_000_000;
