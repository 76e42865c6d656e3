//! Commands that must never destroy data: an output path that is the input or a file of the
//! store is refused before anything is written, outputs are replaced whole (written beside
//! the target and renamed), and a mistyped store path on a command that only reads creates
//! nothing. An import killed while it loads a new store (with a rollback journal) leaves it
//! whole.

use crate::common::{Crm, counts, describe, stderr, stdout};
use std::path::Path;

/// Two good rows and one bad one, so an import with `--errors` has something to write there.
const BIG: &str = "Name,Email,Phone\nAda,ada@example.com,+447911123456\nNo Contact,,\nBob,bob@example.com,\n";

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The names in the sandbox directory, sorted.
fn listing(crm: &Crm) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(crm.dir())
        .expect("read the sandbox")
        .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// No temporary output file (`.NAME.crm-PID-RAND.tmp`) was left in the sandbox.
fn assert_no_temp_files(crm: &Crm) {
    let stray: Vec<String> = listing(crm).into_iter().filter(|n| n.ends_with(".tmp")).collect();
    assert!(stray.is_empty(), "temporary files left behind: {stray:?}");
}

fn refused(crm: &Crm, args: &[&str], what: &str) -> String {
    let out = crm.run(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", describe(&out));
    assert_eq!(stdout(&out), "", "{args:?}");
    let err = stderr(&out);
    assert!(err.contains(what), "{args:?} should say '{what}'\n{err}");
    err
}

#[test]
fn errors_file_that_is_the_input_is_refused_before_anything_is_written() {
    let crm = Crm::new();
    crm.import(&crm.write("first.csv", "Email\nzed@example.com\n"), &[], 0);
    let big = crm.write("big.csv", BIG);
    std::os::unix::fs::symlink(&big, crm.path("link.csv")).expect("symlink");
    std::fs::hard_link(&big, crm.path("hard.csv")).expect("hard link");
    let absolute = s(&big).to_string();
    // The sandbox is the working directory, so the relative spellings name the same file.
    for errors in ["big.csv", "./big.csv", absolute.as_str(), "link.csv", "hard.csv"] {
        let err = refused(&crm, &["leads", "import", "big.csv", "--errors", errors], "is the file being read");
        assert!(err.contains(errors), "the message names the path given: {err}");
        assert_eq!(std::fs::read_to_string(&big).expect("read input"), BIG, "--errors {errors} changed the input");
        assert_eq!(crm.count(), 1, "--errors {errors}: nothing may be imported");
    }
    // The input read through a link, the errors file named directly.
    refused(&crm, &["leads", "import", "link.csv", "--errors", "big.csv"], "is the file being read");
    refused(&crm, &["leads", "import", "hard.csv", "--errors", "./big.csv"], "is the file being read");
    assert_eq!(std::fs::read_to_string(&big).expect("read input"), BIG);
    assert_eq!(crm.count(), 1);
    assert_no_temp_files(&crm);
}

#[test]
fn a_refused_errors_file_creates_no_store() {
    let crm = Crm::new();
    crm.write("big.csv", BIG);
    let err = refused(&crm, &["leads", "import", "big.csv", "--errors", "big.csv"], "is the file being read");
    assert!(!err.contains("Created a new store"), "{err}");
    assert!(!crm.store().exists(), "a refused import must not create the store");
    assert_eq!(std::fs::read_to_string(crm.path("big.csv")).expect("read input"), BIG);
}

#[test]
fn outputs_that_are_store_files_are_refused_and_the_store_still_works() {
    let crm = Crm::new();
    crm.import(&crm.write("in.csv", BIG), &[], 1);
    crm.json(&["segments", "create", "everyone", "--rule", "visits >= 0"], 0);
    assert_eq!(crm.count(), 2);
    let db = s(&crm.store()).to_string();
    std::os::unix::fs::symlink(crm.store(), crm.path("store-link.db")).expect("symlink");
    std::fs::hard_link(crm.store(), crm.path("store-hard.db")).expect("hard link");
    let store_files = [
        db.clone(),
        format!("{db}-wal"),
        format!("{db}-shm"),
        "crm.db".into(),
        "./crm.db-wal".into(),
        "store-link.db".into(),
        "store-hard.db".into(),
    ];
    let before = std::fs::read(crm.store()).expect("read the store");
    for target in &store_files {
        let t = target.as_str();
        refused(&crm, &["leads", "export", t], "is a file of the store");
        refused(&crm, &["segments", "export", "everyone", t], "is a file of the store");
        refused(&crm, &["leads", "import", "in.csv", "--errors", t], "is a file of the store");
        assert_eq!(crm.count(), 2, "after refusing {t}");
    }
    assert_eq!(std::fs::read(crm.store()).expect("read the store"), before, "the store file was written");
    assert_eq!(crm.json(&["segments", "list"], 0).as_array().map(Vec::len), Some(1));
    assert_eq!(crm.list(&[]).len(), 2);
    for name in ["crm.db-wal", "crm.db-shm"] {
        if let Ok(meta) = std::fs::symlink_metadata(crm.path(name)) {
            assert!(meta.file_type().is_file(), "{name} was replaced by something else");
        }
    }
    assert_no_temp_files(&crm);
}

#[test]
fn exports_replace_the_whole_file_and_leave_no_temporary_files() {
    let crm = Crm::new();
    crm.import(&crm.write("in.csv", BIG), &[], 1);
    crm.json(&["segments", "create", "everyone", "--rule", "visits >= 0"], 0);
    let full = crm.run(&["leads", "export"]).stdout;
    assert!(full.starts_with(b"id,name,emails,"), "{}", String::from_utf8_lossy(&full));

    // The export is written beside the target and renamed over it: a hard link to the old
    // file keeps the old content (writing in place would change both).
    let old = "an older file, longer than the export that replaces it ".repeat(40);
    for (args, file) in [
        (vec!["leads", "export", "out.csv"], "out.csv"),
        (vec!["segments", "export", "everyone", "seg.csv"], "seg.csv"),
        (vec!["leads", "import", "in.csv", "--errors", "bad.csv"], "bad.csv"),
    ] {
        crm.write(file, &old);
        let keep = format!("{file}.keep");
        std::fs::hard_link(crm.path(file), crm.path(&keep)).expect("hard link");
        let out = crm.run(&args);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{args:?}\n{}", describe(&out));
        let new = std::fs::read_to_string(crm.path(file)).expect("read the output");
        assert!(new.starts_with("id,name,emails,") || new.starts_with("Name,Email,Phone,error"), "{new}");
        assert!(!new.contains("an older file"), "{file} still has old content: {new}");
        assert_eq!(std::fs::read_to_string(crm.path(&keep)).expect("read the link"), old, "{file} written in place");
        assert_no_temp_files(&crm);
    }
    assert_eq!(std::fs::read(crm.path("out.csv")).expect("read"), full);

    // A refused or failing export leaves an existing file as it was.
    crm.write("out.csv", &old);
    let out = crm.run(&["segments", "export", "nobody", "out.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let out = crm.run(&["leads", "export", "crm.db"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(std::fs::read_to_string(crm.path("out.csv")).expect("read"), old);
    // A directory is not a file to export to.
    std::fs::create_dir(crm.path("adir")).expect("mkdir");
    let out = crm.run(&["leads", "export", "adir"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(crm.path("adir").is_dir());
    assert_no_temp_files(&crm);
}

#[test]
fn a_mistyped_store_on_a_read_only_command_creates_nothing() {
    let crm = Crm::new();
    let missing_dir = crm.path("no/such/dir/x.db");
    let in_sandbox = crm.path("typo.db");
    let commands: [&[&str]; 8] = [
        &["leads", "count"],
        &["leads", "list"],
        &["leads", "show", "1"],
        &["segments", "list"],
        &["campaigns", "list"],
        &["worker", "list"],
        &["dlq", "list"],
        &["optout", "list"],
    ];
    for path in [&missing_dir, &in_sandbox] {
        for url in [format!("sqlite:{}", path.display()), path.display().to_string()] {
            for args in commands {
                let out = crm.bare().arg("--store").arg(&url).args(args).output().expect("run crm");
                assert_eq!(out.status.code(), Some(3), "{url} {args:?}\n{}", describe(&out));
                let err = stderr(&out);
                assert!(err.contains(&path.display().to_string()), "the error names the path: {err}");
                assert!(err.contains("no store exists there"), "{err}");
                assert_eq!(stdout(&out), "", "{args:?}");
            }
        }
    }
    assert!(!crm.path("no").exists(), "directories were created for a mistyped store");
    assert!(!in_sandbox.exists(), "a store was created by a read-only command");
    assert_eq!(listing(&crm), Vec::<String>::new(), "nothing at all appears in the sandbox");
}

#[test]
fn commands_that_create_a_store_say_so_unless_quiet_or_json() {
    let input = "Email\nada@example.com\n";
    let cases: [&[&str]; 3] = [
        &["leads", "import", "in.csv"],
        &["leads", "add", "--email", "bob@example.com"],
        &["segments", "create", "all", "--rule", "visits >= 0"],
    ];
    for args in cases {
        let crm = Crm::new();
        crm.write("in.csv", input);
        let out = crm.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", describe(&out));
        let notice = format!("Created a new store at sqlite:{}.\n", crm.store().display());
        assert!(stderr(&out).starts_with(&notice), "{args:?}\n{}", describe(&out));
        assert!(!stdout(&out).contains("Created a new store"), "the notice belongs on stderr");
        // Once it exists, no notice.
        let again = crm.run(&["leads", "add", "--email", "carol@example.com"]);
        assert!(!stderr(&again).contains("Created a new store"), "{}", describe(&again));

        for quiet in ["--json", "-q"] {
            let crm = Crm::new();
            crm.write("in.csv", input);
            let out = crm.cmd().arg(quiet).args(args).output().expect("run crm");
            assert_eq!(out.status.code(), Some(0), "{quiet} {args:?}\n{}", describe(&out));
            assert_eq!(stderr(&out), "", "{quiet} {args:?}");
            assert!(crm.store().exists(), "{quiet} {args:?} created the store");
        }
    }
}

/// The first import into a new store runs with a rollback journal (see
/// `store/sqlite/import/bulk.rs`). Killed in its second segment, it leaves a hot journal: the
/// next command rolls it back to the first segment's commit and puts the file back in WAL
/// mode, and importing the file again completes the store.
#[test]
fn an_import_killed_while_loading_a_new_store_leaves_it_whole() {
    use std::fmt::Write as _;
    // Two segments at least, however fast the machine: one ends after 900,000 new keys (two
    // per row) or 3 s.
    const ROWS: u64 = 500_000;
    let crm = Crm::new();
    let mut csv = String::from("Name,Email,Phone\n");
    for i in 0..ROWS {
        let _ = writeln!(csv, "Lead {i},lead{i}@example.com,+4479{i:08}");
    }
    let file = crm.write("big.csv", csv);
    // `-vv` logs each segment's commit: once one is seen, any hot journal is a later
    // segment's. (Not found by reading the store: a reader is locked out while a segment whose
    // pages spilled holds the file, most of the segment, and could miss the gap between two.)
    let mut import = crm
        .std_bare()
        .arg("--store")
        .arg(crm.store())
        .args(["leads", "import", s(&file), "-vv"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the import");
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = import.stderr.take().expect("the import's stderr");
    let seen = committed.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            if line.contains("Import segment committed") {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let journal = crm.path("crm.db-journal");
    let hot = || std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0);
    while !(committed.load(std::sync::atomic::Ordering::SeqCst) && hot()) {
        assert!(import.try_wait().expect("poll the import").is_none(), "the import ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    import.kill().expect("SIGKILL the import");
    import.wait().expect("reap the import");
    let _ = reader.join();
    assert!(hot(), "the kill left a hot journal");

    let kept = crm.count();
    assert!(kept > 0 && kept < ROWS, "the first segment stays, the second is rolled back: {kept}");
    assert!(!journal.exists(), "the journal was rolled back and removed");
    let conn = rusqlite::Connection::open(crm.store()).expect("open the store");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("journal mode");
    assert_eq!(mode, "wal");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity check");
    assert_eq!(check, "ok");
    drop(conn);

    // Every kept lead has its keys: importing the file again matches them all.
    let report = crm.import(&file, &[], 0);
    assert_eq!(counts(&report), [ROWS, ROWS - kept, 0, kept, 0], "{report}");
    assert_eq!(crm.count(), ROWS);
}
