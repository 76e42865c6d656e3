//! "Did you mean": a metadata field that no lead has is usually a typo, and a typo silently
//! selects nobody (`City = "Lagos"` when the leads have `city`; `tag = "vip"`, which reads as
//! `metadata.tag`, when `tags` was meant). Given the metadata keys the leads actually have,
//! [`suggest`] turns each unknown key into advice:
//!
//! - a *close match* exists (the same key in another letter case, or within a small edit
//!   distance of a stored key or a built-in field name): the rule is refused, with the match;
//! - no close match: a warning only, since a key may simply not be imported yet.
//!
//! Pure: the caller (`audience::check_fields`) asks the store which keys exist.

use super::ast::{Field, Rule};

/// What to tell the operator about one field of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub message: String,
    /// True when the rule should be refused (a close match exists), false for a warning.
    pub refuse: bool,
}

/// The metadata keys `rule` tests, each once, in order of first appearance.
pub fn metadata_fields(rule: &Rule) -> Vec<String> {
    let mut keys = Vec::new();
    collect(rule, &mut keys);
    keys
}

fn collect(rule: &Rule, keys: &mut Vec<String>) {
    match rule {
        Rule::And(children) | Rule::Or(children) => children.iter().for_each(|c| collect(c, keys)),
        Rule::Not(child) => collect(child, keys),
        Rule::Condition(c) => {
            if let Field::Metadata(key) = &c.field {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }
}

/// Advice for every metadata key of `rule` that is not in `known` (the keys stored leads have).
pub fn suggest(rule: &Rule, known: &[String]) -> Vec<Advice> {
    metadata_fields(rule)
        .into_iter()
        .filter(|key| !known.contains(key))
        .map(|key| match closest(&key, known) {
            Some(better) => Advice {
                message: format!("no lead has the metadata key {key:?}; did you mean {better}?"),
                refuse: true,
            },
            None => Advice { message: unknown_key_message(&key, known), refuse: false },
        })
        .collect()
}

fn unknown_key_message(key: &str, known: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut message = format!("no lead has the metadata key {key:?} yet, so conditions on it match no lead");
    if !known.is_empty() {
        let listed: Vec<&str> = known.iter().take(SHOWN).map(String::as_str).collect();
        let more = if known.len() > SHOWN { ", …" } else { "" };
        message.push_str(&format!(" (keys in use: {}{more})", listed.join(", ")));
    }
    message
}

/// The closest stored key (written `metadata.KEY`) or built-in field to `key`, if one is close
/// enough to be a likely mistake; ties go to stored keys, then to the first in order.
fn closest(key: &str, known: &[String]) -> Option<String> {
    let lower = key.to_lowercase();
    let stored = known.iter().map(|k| (k.as_str(), Field::Metadata(k.clone()).name().into_owned()));
    let built_in = Field::built_in_names().map(|n| (n, n.to_string()));
    stored
        .chain(built_in)
        .filter_map(|(candidate, shown)| {
            let distance = edit_distance(&lower, &candidate.to_lowercase());
            is_close(&lower, candidate, distance).then_some((distance, shown))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, shown)| shown)
}

/// The built-in field `name` is probably a slip for (`Visits`, `vists`), for parse errors.
pub(crate) fn built_in_like(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    Field::built_in_names()
        .map(|n| (edit_distance(&lower, n), n))
        .filter(|(distance, n)| is_close(&lower, n, *distance))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, n)| n)
}

/// Close enough to be a slip: the same letters in another case, or an edit distance of 1 for
/// short words (up to 4 characters) and 2 for longer ones, never a whole short word replaced.
fn is_close(lower: &str, candidate: &str, distance: usize) -> bool {
    let shorter = lower.chars().count().min(candidate.chars().count());
    let allowed = if shorter <= 4 { 1 } else { 2 };
    distance <= allowed && distance < shorter
}

/// Levenshtein distance over characters (keys are at most 64 characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    fn advice(rule: &str, known: &[&str]) -> Vec<Advice> {
        suggest(&Rule::parse_text(rule).expect("parses"), &keys(known))
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("city", "city"), 0);
        assert_eq!(edit_distance("tag", "tags"), 1);
        assert_eq!(edit_distance("ctiy", "city"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ville", "villé"), 1);
    }

    #[test]
    fn case_and_near_misses_are_refused_with_the_match() {
        let found = advice(r#"City = "Lagos""#, &["city", "country"]);
        assert_eq!(found.len(), 1);
        assert!(found[0].refuse);
        assert_eq!(found[0].message, r#"no lead has the metadata key "City"; did you mean metadata.city?"#);
        let found = advice(r#"tag = "vip""#, &["city"]);
        assert_eq!(found[0].message, r#"no lead has the metadata key "tag"; did you mean tags?"#);
        assert!(advice(r#"contry = "NG""#, &["city", "country"])[0].message.ends_with("metadata.country?"));
        assert!(advice(r#"phone contains "+44""#, &[])[0].refuse, "built-in fields count with no metadata at all");
    }

    #[test]
    fn built_in_slips() {
        assert_eq!(built_in_like("Visits"), Some("visits"));
        assert_eq!(built_in_like("vists"), Some("visits"));
        assert_eq!(built_in_like("total_spent"), Some("total_spend"));
        assert_eq!(built_in_like("city"), None);
    }

    #[test]
    fn known_keys_and_far_keys_are_not_refused() {
        assert!(advice(r#"city = "Lagos" and tag = "x""#, &["city", "tag"]).is_empty());
        let found = advice(r#"not loyalty_tier = "gold""#, &["city", "country"]);
        assert_eq!(found.len(), 1);
        assert!(!found[0].refuse);
        assert!(found[0].message.contains("(keys in use: city, country)"), "{}", found[0].message);
        assert!(!advice(r#"ab = "x""#, &["cd"])[0].refuse, "short keys need a near match");
        assert_eq!(advice(r#"zz = "1" or zz = "2""#, &[]).len(), 1, "each key once");
    }
}
