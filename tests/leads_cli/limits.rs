//! Limits of `leads list`: a page past any store is a usage error (exit 2), search stays linear
//! in the size of the text, and a huge cell is cut in the table but kept whole in JSON and CSV.

use crate::common::{Crm, describe, stderr, stdout};
use std::time::{Duration, Instant};
use unicode_width::UnicodeWidthStr;

#[test]
fn a_page_past_any_store_is_a_usage_error() {
    let crm = Crm::new();
    crm.import(&crm.write("one.csv", "name,email\nAda,ada@example.com\n"), &[], 0);
    let out = crm.run(&["leads", "list", "--page", "9223372036854775807"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("--page 9223372036854775807 is past the last page"), "{err}");
    assert!(err.contains("the highest page is 20000001"), "{err}");
    let out = crm.run(&["leads", "list", "--page", "1000000000", "--limit", "1000000"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    // A page past the end of this store, but within the limit, is simply empty.
    assert_eq!(crm.list(&["--page", "20000001"]), Vec::<serde_json::Value>::new());
}

/// A store with one lead whose name is `name`, written to the store directly: imports bound a
/// name's length, but a store written by an older crm (or by hand) may hold anything.
fn store_with_name(name: &str) -> Crm {
    let crm = Crm::new();
    crm.import(&crm.write("one.csv", "name,email\nAda,ada@example.com\n"), &[], 0);
    let conn = rusqlite::Connection::open(crm.store()).expect("open the store");
    conn.execute("UPDATE leads SET name = ?1", [name]).expect("rename");
    // The search line of lead 1: `id \x1f name \x1f email \x1e`, lower case (search.rs).
    let body = format!("1\x1f{}\x1fada@example.com\x1e", name.to_lowercase());
    conn.execute("UPDATE lead_search SET body = ?1", [body.as_bytes()]).expect("search line");
    crm
}

#[test]
fn search_is_linear_in_the_text_size() {
    // 4 MiB of a single letter: each position is a match. Looking back for the start of the
    // lead from every match took over a minute for this (it grew with the square of the size).
    let crm = store_with_name(&"a".repeat(4 << 20));
    let started = Instant::now();
    assert_eq!(crm.ids(&["--search", "A"]), [1]);
    assert_eq!(crm.ids(&["--search", "aaab"]), Vec::<i64>::new());
    assert_eq!(crm.json(&["leads", "count", "--search", "aa"], 0)["count"], 1);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn a_huge_cell_is_cut_in_the_table_and_whole_in_json_and_csv() {
    let name = "Ñ".repeat(2_000_000);
    let crm = store_with_name(&name);
    let out = crm.run(&["leads", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let table = stdout(&out);
    assert!(table.lines().all(|l| l.width() < 200), "{}", &table[..table.len().min(300)]);
    assert!(table.contains("ÑÑÑ…"), "{}", &table[..table.len().min(300)]);

    let leads = crm.list(&[]);
    assert_eq!(leads[0]["name"].as_str().map(str::len), Some(name.len()));
    let out = crm.run(&["leads", "list", "--csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains(&name));
}
