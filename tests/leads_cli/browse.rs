//! `leads list` and `leads count`: search, filters, sorting, paging and the three output shapes.

use crate::common::{Crm, describe, stderr, stdout};
use serde_json::{Value, json};

/// Four leads with distinct names, spend, tags and dates (ids 1–4 in this order).
fn four_leads() -> Crm {
    let crm = Crm::new();
    let text = "Name,Email,Phone,Total Spent,Visits,Last Order,Tags,City\n\
                Ada Lovelace,ada@example.com,+447911123456,500,3,2024-01-31,vip;newsletter,London\n\
                Grace Hopper,grace@navy.example,+12125551234,1500.25,9,2023-06-01,VIP,Arlington\n\
                Alan Turing,alan@example.com,+447472178805,50,1,,newsletter,Manchester\n\
                Zoe Brown,zoe@other.example,+4915123456789,0,0,2024-05-05,,\n";
    let report = crm.import(&crm.write("four.csv", text), &[], 0);
    assert_eq!(report["inserted"], 4, "{report}");
    crm
}

#[test]
fn search_matches_name_email_and_phone_digits() {
    let crm = four_leads();
    let cases: [(&str, &[i64]); 8] = [
        ("lovelace", &[1]),
        ("NAVY", &[2]),
        ("example.com", &[1, 3]),
        ("7911 123", &[1]),
        ("+44 7472", &[3]),
        ("(212) 555-12", &[2]),
        ("ada lovelace", &[1]),
        ("nobody", &[]),
    ];
    for (term, ids) in cases {
        assert_eq!(crm.ids(&["--search", term]), ids, "--search {term:?}");
    }
    assert_eq!(crm.ids(&["-s", "turing"]), [3]);
}

#[test]
fn spend_and_tag_filters_combine() {
    let crm = four_leads();
    let cases: [(&[&str], &[i64]); 8] = [
        (&["--min-spend", "50", "--max-spend", "500"], &[1, 3]),
        (&["--min-spend", "500"], &[1, 2]),
        (&["--max-spend", "0"], &[4]),
        (&["--tag", "vip"], &[1, 2]),
        (&["--tag", "vip", "--tag", "newsletter"], &[1]),
        (&["--tag", "Newsletter"], &[1, 3]),
        (&["--tag", "newsletter", "--tag", "wholesale"], &[]),
        (&["--search", "example.com", "--tag", "newsletter", "--min-spend", "100"], &[1]),
    ];
    for (args, ids) in cases {
        assert_eq!(crm.ids(args), ids, "{args:?}");
    }
}

#[test]
fn sort_and_pages() {
    let crm = four_leads();
    let cases: [(&[&str], &[i64]); 8] = [
        (&[], &[1, 2, 3, 4]),
        (&["--desc"], &[4, 3, 2, 1]),
        (&["--sort", "total_spend", "--desc"], &[2, 1, 3, 4]),
        (&["--sort", "total-spend"], &[4, 3, 1, 2]),
        (&["--sort", "name"], &[1, 3, 2, 4]),
        (&["--sort", "last_order_at"], &[2, 1, 4, 3]),
        (&["--sort", "total_spend", "--desc", "--limit", "2", "--page", "2"], &[3, 4]),
        (&["--limit", "2", "--page", "3"], &[]),
    ];
    for (args, ids) in cases {
        assert_eq!(crm.ids(args), ids, "{args:?}");
    }
    for bad in [["--limit", "0"], ["--page", "0"], ["--sort", "spend"]] {
        let out = crm.run(&["leads", "list", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}\n{}", describe(&out));
        assert!(stderr(&out).contains(&format!("invalid value '{}' for '{}", bad[1], bad[0])), "{}", describe(&out));
    }
}

#[test]
fn json_is_an_array_of_leads_with_the_documented_keys() {
    let crm = four_leads();
    let leads = crm.list(&["--search", "ada"]);
    assert_eq!(leads.len(), 1);
    let ada = &leads[0];
    let mut keys: Vec<&str> = ada.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = [
        "id",
        "name",
        "emails",
        "phones",
        "total_spend",
        "visits",
        "last_order_at",
        "tags",
        "metadata",
        "created_at",
        "updated_at",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let fixed = json!({
        "id": 1, "name": "Ada Lovelace", "emails": ["ada@example.com"], "phones": ["+447911123456"],
        "total_spend": 500.0, "visits": 3, "last_order_at": "2024-01-31T00:00:00Z",
        "tags": ["vip", "newsletter"], "metadata": { "city": "London" },
        "created_at": ada["created_at"], "updated_at": ada["updated_at"],
    });
    assert_eq!(ada, &fixed);
    assert_eq!(crm.list(&["--search", "nobody"]), Vec::<serde_json::Value>::new());
}

#[test]
fn csv_is_the_export_format() {
    let crm = four_leads();
    let out = crm.run(&["leads", "list", "--csv", "--tag", "newsletter"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0],
        "id,name,emails,phones,total_spend,visits,last_order_at,tags,created_at,updated_at,metadata.city"
    );
    assert!(
        lines[1].starts_with("1,Ada Lovelace,ada@example.com,+447911123456,500,3,2024-01-31T00:00:00Z,vip;newsletter,")
    );
    assert!(lines[1].ends_with(",London"), "{}", lines[1]);
    assert!(lines[2].starts_with("3,Alan Turing,alan@example.com,+447472178805,50,1,,newsletter,"), "{}", lines[2]);
    for args in [["--json", "leads", "list", "--csv"], ["leads", "list", "--csv", "--json"]] {
        let out = crm.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: --csv and --json conflict\n{}", describe(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn table_shows_one_line_per_lead() {
    let crm = four_leads();
    let out = crm.run(&["leads", "list", "--sort", "total_spend", "--desc", "--limit", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        stdout(&out),
        "ID  NAME          EMAIL               PHONE            SPEND  VISITS  LAST ORDER  TAGS\n \
         2  Grace Hopper  grace@navy.example  +12125551234   1500.25       9  2023-06-01  VIP\n \
         1  Ada Lovelace  ada@example.com     +447911123456   500.00       3  2024-01-31  vip, newsletter\n \
         3  Alan Turing   alan@example.com    +447472178805    50.00       1              newsletter\n"
    );
    // A fourth lead matches: the page says so (on stderr, so stdout stays the table).
    assert!(stderr(&out).starts_with("note: 3 leads shown (page 1); more match: --page 2"), "{}", describe(&out));
    let out = crm.run(&["leads", "list", "--search", "nobody"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "ID  NAME  EMAIL  PHONE  SPEND  VISITS  LAST ORDER  TAGS\n");
    assert_eq!(stderr(&out), "No leads match.\n");
}

#[test]
fn count_takes_the_list_filters() {
    let crm = four_leads();
    assert_eq!(crm.json(&["leads", "count"], 0), json!({ "count": 4 }));
    assert_eq!(crm.json(&["leads", "count", "--tag", "vip", "--max-spend", "1000"], 0), json!({ "count": 1 }));
    assert_eq!(crm.json(&["leads", "count", "--search", "example.com"], 0), json!({ "count": 2 }));
    let out = crm.run(&["leads", "count", "--min-spend", "50"]);
    assert_eq!((out.status.code(), stdout(&out), stderr(&out)), (Some(0), "3\n".into(), String::new()));
}

#[test]
fn a_full_page_says_when_more_leads_match() {
    let crm = Crm::new();
    let input = crm.write("in.csv", "Email\na@example.com\nb@example.com\nc@example.com\n");
    crm.import(&input, &[], 0);
    let out = crm.run(&["--json", "leads", "list", "--limit", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let shown: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown.len(), 2);
    assert_eq!(
        stderr(&out),
        "note: 2 leads shown (page 1); more match: --page 2 or a larger --limit (up to 1000000) shows them\n"
    );
    let last = crm.run(&["--json", "leads", "list", "--limit", "2", "--page", "2"]);
    assert_eq!(stderr(&last), "", "the last page says nothing");
    let exact = crm.run(&["leads", "list", "--limit", "3"]);
    assert_eq!(stderr(&exact), "", "a page that holds every match says nothing");
    assert_eq!(stderr(&crm.run(&["-q", "leads", "list", "--limit", "1"])), "", "-q keeps it quiet");
}
