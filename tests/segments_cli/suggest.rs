//! "Did you mean": a metadata field no lead has, when it is a near miss of a stored key or a
//! built-in field, is refused with the match (exit 2) instead of silently matching nobody; a
//! key with no near match is allowed, with a warning.

use crate::common::{describe, stderr, stdout};
use crate::sample_store;

#[test]
fn a_key_in_the_wrong_case_is_refused_with_the_stored_key() {
    let crm = sample_store();
    let out = crm.run(&["segments", "preview", "--rule", r#"City = "Lagos""#]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains(r#"no lead has the metadata key "City"; did you mean metadata.city?"#),
        "{}",
        describe(&out)
    );
    assert_eq!(stdout(&out), "");
    // The same in a JSON rule, and on create: nothing is saved.
    let ast = crm.write("rule.json", r#"{"type":"condition","field":"metadata.Country","operator":"=","value":"NG"}"#);
    let out = crm.cmd().args(["segments", "create", "ng", "--ast"]).arg(ast).output().expect("run crm");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("did you mean metadata.country?"), "{}", describe(&out));
    assert_eq!(crm.json(&["segments", "list"], 0), serde_json::json!([]));
    // Spelled right, it works.
    let found = crm.json(&["segments", "preview", "--sample", "0", "--rule", r#"city = "Lagos""#], 0);
    assert!(found["count"].as_u64().is_some_and(|n| n > 0), "{found}");
}

#[test]
fn a_metadata_key_that_is_a_built_in_field_misspelt_is_refused() {
    let crm = sample_store();
    for (rule, meant) in [(r#"tag = "vip""#, "tags"), (r#"phone contains "+44""#, "phones"), (r#"vists > 3"#, "visits")]
    {
        let out = crm.run(&["segments", "create", "x", "--rule", rule]);
        assert_eq!(out.status.code(), Some(2), "{rule}: {}", describe(&out));
        assert!(stderr(&out).contains(&format!("did you mean {meant}?")), "{rule}: {}", describe(&out));
    }
    let ast = crm.write("rule.json", r#"{"type":"condition","field":"Visits","operator":">","value":3}"#);
    let out = crm.cmd().args(["segments", "preview", "--ast"]).arg(ast).output().expect("run crm");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains(r#"field: unknown field "Visits" (did you mean visits?)"#), "{}", describe(&out));
    let segment = crate::create(&crm, "x", r#"tags = "vip""#);
    let out = crm.run(&["segments", "update", "x", "--rule", r#"tag = "vip""#]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(crm.json(&["segments", "show", "x"], 0)["rule_ast"], segment["rule_ast"], "unchanged");
}

#[test]
fn a_key_with_no_near_match_is_allowed_with_a_warning() {
    let crm = sample_store();
    let out = crm.run(&["segments", "preview", "--rule", r#"loyalty_tier = "gold""#]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).starts_with("0 leads match."), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with(r#"warning: no lead has the metadata key "loyalty_tier" yet"#), "{err}");
    assert!(err.contains("(keys in use: city, country)"), "{err}");
    let quiet = crm.run(&["--quiet", "segments", "preview", "--rule", r#"loyalty_tier = "gold""#]);
    assert_eq!((quiet.status.code(), stderr(&quiet)), (Some(0), String::new()), "{}", describe(&quiet));
}
