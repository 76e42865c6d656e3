//! The documented exit codes: 2 for usage and input errors, 3 for a store that cannot be
//! opened, and 0 — silently — when the reader of stdout goes away (`crm leads list | head -1`).

use crate::common::{Crm, describe, stderr, stdout};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn exits(crm: &Crm, args: &[&str], code: i32) -> String {
    let out = crm.run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}\n{}", describe(&out));
    assert_eq!(stdout(&out), "", "{args:?}");
    stderr(&out)
}

#[test]
fn usage_errors_exit_2() {
    let crm = Crm::new();
    let err = exits(&crm, &["leads", "list", "--bogus"], 2);
    assert!(err.starts_with("error: unexpected argument '--bogus' found\n"), "{err}");
    let err = exits(&crm, &["leads"], 2);
    assert!(err.contains("Usage: crm leads"), "{err}");
    let err = exits(&crm, &["leads", "import", "in.csv", "--default-region", "XX"], 2);
    assert!(err.starts_with("error: invalid value 'XX' for '--default-region <CC>': unknown region 'XX'"), "{err}");
    let err = exits(&crm, &["leads", "import", "in.csv", "--on-conflict", "replace"], 2);
    assert!(err.contains("invalid value 'replace' for '--on-conflict <ON_CONFLICT>'"), "{err}");

    let out = crm.bare().args(["--store", "postgres://db/crm", "leads", "count"]).output().expect("run crm");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).starts_with("error: unknown store scheme 'postgres://'"), "{}", describe(&out));

    let out = crm.bare().arg("--version").output().expect("run crm");
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), format!("crm {}\n", env!("CARGO_PKG_VERSION"))));
    assert!(!crm.store().exists(), "usage errors must not create the store");
}

#[test]
fn unreadable_input_exits_2() {
    let crm = Crm::new();
    let missing = crm.path("missing.csv");
    let err = exits(&crm, &["leads", "import", missing.to_str().expect("utf-8")], 2);
    assert_eq!(err, format!("error: cannot read {}: No such file or directory (os error 2)\n", missing.display()));
    assert!(!crm.store().exists(), "a mistyped input file creates no store");

    let empty = crm.write("empty.csv", "");
    let err = exits(&crm, &["leads", "import", empty.to_str().expect("utf-8")], 2);
    assert!(err.ends_with(&format!("{}: the file is empty or has no header row\n", empty.display())), "{err}");
    assert!(!crm.store().exists(), "a file that is not a leads CSV creates no store");
}

#[test]
fn store_that_cannot_be_opened_exits_3() {
    let crm = Crm::new();
    let dir = crm.dir().to_str().expect("utf-8");
    for args in [["leads", "list"], ["leads", "count"]] {
        let out = crm.bare().arg("--store").arg(dir).args(args).output().expect("run crm");
        assert_eq!(out.status.code(), Some(3), "a directory as the store\n{}", describe(&out));
        assert!(stderr(&out).starts_with(&format!("error: store sqlite:{dir}: ")), "{}", describe(&out));
    }
    let out = crm.bare().args(["--store", "/proc/x/crm.db", "leads", "list"]).output().expect("run crm");
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        stderr(&out).starts_with("error: store sqlite:/proc/x/crm.db: no store exists there (nothing was created)"),
        "{}",
        describe(&out)
    );
    let input = crm.write("in.csv", "Email\nada@example.com\n");
    let out = crm.bare().args(["--store", "sqlite:/proc/x/crm.db", "leads", "import"]).arg(&input).output();
    assert_eq!(out.expect("run crm").status.code(), Some(3));
}

#[test]
fn missing_lead_exits_1() {
    let crm = Crm::new();
    crm.import(&crm.write("in.csv", "Email\nada@example.com\n"), &[], 0);
    assert_eq!(exits(&crm, &["leads", "show", "42"], 1), "error: no lead matches '42'\n");
}

/// Output far larger than a pipe buffer (64 KiB on Linux), so the writer is sure to find the
/// pipe closed rather than finish into the buffer.
const BIG: usize = 256 * 1024;

#[test]
fn closed_stdout_ends_quietly_with_0() {
    let crm = Crm::new();
    let mut text = String::from("Name,Email,Total Spent,Tags,City\n");
    for i in 0..3000 {
        writeln!(text, "Person Number {i},person{i}@example.com,{i}.25,vip;newsletter,Somewhere Far Away")
            .expect("write to string");
    }
    assert_eq!(crm.import(&crm.write("big.csv", text), &[], 0)["inserted"], 3000);

    let cases: [(&[&str], &str); 5] = [
        (&["leads", "list", "--limit", "5000"], "  ID  NAME"),
        (&["--json", "leads", "list", "--limit", "5000"], "["),
        (&["leads", "list", "--csv", "--limit", "5000"], "id,name,emails,"),
        (&["leads", "export"], "id,name,emails,"),
        (&["leads", "export", "-"], "id,name,emails,"),
    ];
    for (args, first_line) in cases {
        let full = crm.run(args);
        assert!(full.status.success() && full.stdout.len() > BIG, "{args:?} must print over {BIG} bytes");

        let mut child = crm
            .std_bare()
            .arg("--store")
            .arg(crm.store())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crm");
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the first line");
        assert!(line.starts_with(first_line), "{args:?}: {line:?}");
        drop(reader);
        let out = child.wait_with_output().expect("wait for crm");
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", describe(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}
