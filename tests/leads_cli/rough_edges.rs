//! Small things a user meets early: `optout list` as a table and JSON, opt-outs by id, email
//! or phone, log output (colour only on a terminal, something useful at `-v`), shell
//! completions and the man page, and a closed stderr.

use crate::common::{Crm, describe, stderr, stdout};
use serde_json::Value;
use std::process::Stdio;

const LEADS: &str = "Name,Email,Phone\n\
    Ada Lovelace,ada@example.com,+447911123456\n\
    Grace Hopper,grace@example.com,+447911123457\n\
    Alan Turing,alan@example.com,+447911123458\n\
    Edsger Dijkstra,edsger@example.com,+447911123459\n";

fn with_leads() -> Crm {
    let crm = Crm::new();
    crm.import(&crm.write("in.csv", LEADS), &[], 0);
    crm
}

#[test]
fn optout_list_is_a_table_with_a_header_and_json_objects() {
    let crm = with_leads();
    let empty = crm.run(&["optout", "list"]);
    assert_eq!(empty.status.code(), Some(0), "{}", describe(&empty));
    let header: Vec<String> =
        stdout(&empty).lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(header, ["LEAD NAME PHONE OPTED OUT AT SOURCE"], "{}", describe(&empty));
    assert_eq!(crm.json(&["optout", "list"], 0), serde_json::json!([]));

    // By id, by email, by phone (as stored and written nationally is not assumed here).
    for (reference, id) in [("1", 1), ("grace@example.com", 2), ("+447911123458", 3)] {
        let done = crm.json(&["optout", "add", reference], 0);
        assert_eq!(done, serde_json::json!({ "lead_id": id, "opted_out": true, "changed": true }), "{reference}");
    }
    let again = crm.json(&["optout", "add", "GRACE@example.com"], 0);
    assert_eq!(again["changed"], false, "{again}");
    let missing = crm.run(&["optout", "add", "nobody@example.com"]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));

    let table = crm.run(&["optout", "list"]);
    assert_eq!(table.status.code(), Some(0), "{}", describe(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let words: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(words, ["LEAD", "NAME", "PHONE", "OPTED", "OUT", "AT", "SOURCE"], "{text}");
    assert!(lines[1].trim_start().starts_with("1  Ada Lovelace") && lines[1].contains("+447911123456"), "{text}");
    assert!(lines[2].contains("Grace Hopper") && lines[3].contains("Alan Turing"), "{text}");

    let json = crm.json(&["optout", "list"], 0);
    let all = json.as_array().unwrap_or_else(|| panic!("optout list --json is an array: {json}"));
    assert_eq!(all.len(), 3);
    for (entry, (id, name)) in all.iter().zip([(1, "Ada Lovelace"), (2, "Grace Hopper"), (3, "Alan Turing")]) {
        let mut keys: Vec<&str> = entry.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(keys, ["lead_id", "name", "opted_out_at", "phone", "source"], "{entry}");
        assert_eq!(entry["source"], "manual", "{entry}");
        assert_eq!((entry["lead_id"].as_i64(), entry["name"].as_str()), (Some(id), Some(name)), "{entry}");
        crate::common::time(&entry["opted_out_at"]);
    }
    // Removing works by the same references.
    crm.json(&["optout", "remove", "ada@example.com"], 0);
    assert_eq!(crm.json(&["optout", "list"], 0).as_array().map(Vec::len), Some(2));
}

/// `crm -v ARGS` with stderr a pipe and colour not disabled by the environment.
fn verbose(crm: &Crm, args: &[&str]) -> std::process::Output {
    crm.cmd().env_remove("NO_COLOR").env("TERM", "xterm-256color").arg("-v").args(args).output().expect("run crm")
}

#[test]
fn verbose_logs_say_something_on_every_command_and_have_no_colour_off_a_terminal() {
    let crm = Crm::new();
    crm.write("in.csv", LEADS);
    let commands: [&[&str]; 14] = [
        &["leads", "import", "in.csv"],
        &["leads", "count"],
        &["leads", "list"],
        &["leads", "show", "1"],
        &["leads", "add", "--email", "new@example.com"],
        &["leads", "update", "1", "--set", "visits=3"],
        &["leads", "export", "out.csv"],
        &["segments", "create", "all", "--rule", "visits >= 0"],
        &["segments", "list"],
        &["segments", "preview", "--rule", "visits >= 1"],
        &["campaigns", "create", "promo", "--segment", "all", "--template", "Hi"],
        &["campaigns", "list"],
        &["optout", "add", "2"],
        &["dlq", "list"],
    ];
    for args in commands {
        let out = verbose(&crm, args);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{args:?}\n{}", describe(&out));
        let err = stderr(&out);
        assert!(!err.contains("\x1b["), "{args:?}: ANSI escapes on a pipe\n{err:?}");
        assert!(err.lines().any(|l| l.contains(" INFO ")), "{args:?}: -v printed no INFO line\n{err}");
    }
    // The opening line says which store, and an import says what it did.
    let err = stderr(&verbose(&crm, &["leads", "import", "in.csv"]));
    assert!(err.contains(&crm.store().display().to_string()), "{err}");
    assert!(err.contains("inserted=0") && err.contains("updated=0"), "{err}");
    // Without -v, nothing but what the command says.
    let quiet = crm.cmd().env_remove("NO_COLOR").args(["leads", "count"]).output().expect("run crm");
    assert_eq!((stdout(&quiet), stderr(&quiet)), ("5\n".to_string(), String::new()));
    // An error at -v is still plain text.
    let failed = verbose(&crm, &["leads", "show", "999"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(!stderr(&failed).contains("\x1b["), "{}", describe(&failed));
}

#[test]
fn completions_and_the_man_page_are_printed() {
    let crm = Crm::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = crm.bare().args(["completions", shell]).output().expect("run crm");
        assert_eq!(out.status.code(), Some(0), "{shell}\n{}", describe(&out));
        let script = stdout(&out);
        assert!(script.len() > 500 && script.contains("crm"), "{shell}: {script}");
        assert!(script.contains("leads") && script.contains("segments"), "{shell} completes the subcommands");
        assert_eq!(stderr(&out), "", "{shell}");
    }
    let out = crm.bare().arg("man").output().expect("run crm");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let page = stdout(&out);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "not roff: {}", &page[..page.len().min(200)]);
    assert!(page.contains(".TH crm") && page.contains("leads"), "{page}");

    let bad = crm.bare().args(["completions", "tcsh"]).output().expect("run crm");
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(stderr(&bad).contains("invalid value 'tcsh'"), "{}", describe(&bad));
    assert_eq!(stdout(&bad), "");
    // Neither needs (or creates) a store.
    assert!(!crm.store().exists());
}

/// The write end of a pipe nobody reads any more: the stdin of a process that has exited.
fn closed_pipe() -> Stdio {
    let mut reader = std::process::Command::new("true").stdin(Stdio::piped()).spawn().expect("run true");
    let writer = reader.stdin.take().expect("piped stdin");
    reader.wait().expect("wait for true");
    Stdio::from(writer)
}

/// Runs `crm ARGS` (no `--store` added) with stderr a pipe whose read end is already closed.
fn with_closed_stderr(crm: &Crm, args: &[&str]) -> std::process::Output {
    let child = crm.std_bare().args(args).stdout(Stdio::piped()).stderr(closed_pipe()).spawn().expect("spawn crm");
    child.wait_with_output().expect("wait for crm")
}

#[test]
fn a_closed_stderr_is_harmless() {
    let crm = Crm::new();
    crm.write("in.csv", format!("{LEADS}No Contact,,\n"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let busy = listener.local_addr().expect("local address").to_string();
    // The sandbox is the working directory: `crm.db` is its store.
    let cases: [(&[&str], i32); 11] = [
        // Creates the store (a notice on stderr) and rejects a row (listed on stderr).
        (&["--store", "crm.db", "leads", "import", "in.csv"], 1),
        (&["--store", "crm.db", "-v", "leads", "import", "in.csv"], 1),
        (&["--store", "crm.db", "leads", "show", "999"], 1),
        (&["--store", "crm.db", "-v", "leads", "show", "999"], 1),
        (&["--store", "crm.db", "-vv", "leads", "count"], 0),
        (&["--store", "crm.db", "leads", "list", "--bogus"], 2),
        (&["--store", "crm.db", "leads", "export", "out.csv"], 0),
        (&["--store", "crm.db", "segments", "show", "nothing"], 1),
        (&["--store", "crm.db", "leads", "list", "--search", "nobody"], 0),
        (&["--store", "no/such/x.db", "leads", "count"], 3),
        (&["sim", "--listen", &busy], 2),
    ];
    for (args, code) in cases {
        let out = with_closed_stderr(&crm, args);
        assert_eq!(out.status.code(), Some(code), "{args:?} (101 is a panic)\nstdout: {}", stdout(&out));
    }
    assert_eq!(crm.count(), 4, "the import with a closed stderr still imported");

    // A simulator that talks on stderr when it starts and when it stops.
    let mut sim = crm
        .std_bare()
        .args(["-v", "sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(closed_pipe())
        .spawn()
        .expect("spawn crm sim");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sim.stdout.take().expect("stdout")), &mut first)
        .expect("read the sim's first line");
    assert!(first.starts_with("crm sim listening on http://"), "{first:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let term = std::process::Command::new("kill").arg("-TERM").arg(sim.id().to_string()).status();
    assert!(term.is_ok_and(|s| s.success()), "kill -TERM");
    let code = sim.wait().expect("wait for the simulator").code();
    assert_eq!(code, Some(0), "the simulator with a closed stderr (101 is a panic)");
    let exported = std::fs::read_to_string(crm.path("out.csv")).expect("the export was written");
    assert!(exported.starts_with("id,name,emails,"), "{exported}");
    let show: Value = crm.json(&["leads", "show", "1"], 0);
    assert_eq!(show["name"], "Ada Lovelace");
}
