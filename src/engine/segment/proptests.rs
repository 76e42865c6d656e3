//! The property that lets the store trust the SQL: for random valid rules over random leads in
//! a real SQLite store (the real schema, written by the real `Store`), the `WHERE` fragment
//! selects exactly the leads [`Rule::matches`] accepts. The same random rules also go through
//! the text and JSON round trips.
//!
//! Values are drawn from small pools full of traps (case and Unicode folding, `%` and `_`,
//! quotes, empty strings, midnights and the millisecond before them) so that equal, contained
//! and boundary cases actually occur.

use super::{Field, Operator, Rule, Value, sql};
use crate::engine::lead::{Lead, LeadDraft, format_time};
use crate::engine::store::Store;
use crate::engine::store::sqlite::SqliteStore;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::path::Path;

const WORDS: &[&str] = &[
    "Ada",
    "ada",
    "ÉCOLE",
    "école",
    "Straße",
    "STRASSE",
    "İstanbul",
    "istanbul",
    "ΟΔΟΣ",
    "οδός",
    "vip",
    "VIP",
    "churn",
    "a%b_c",
    "x\"y\\z",
    "",
    "Lagos",
    "LAGOS",
    " ",
];
const NEEDLES: &[&str] = &["é", "ss", "ß", "%", "_", "a", "A", "@example", "+44", "ς", "σ", "i̇", "\"", "\\"];
const SPENDS: &[f64] = &[0.0, 500.0, 19.99, -1.0, 1e-9];

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-31T15:20:00.250Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

fn today() -> DateTime<Utc> {
    now().date_naive().and_time(NaiveTime::MIN).and_utc()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![select(WORDS).prop_map(String::from), vec(select(WORDS), 2..4).prop_map(|words| words.join(" ")),]
}

/// Times within about a year of now, mostly in the last few weeks (so that leads and rules
/// land on the same days), often exactly at or just before a midnight.
fn time() -> impl Strategy<Value = DateTime<Utc>> {
    let day = prop_oneof![4 => -20_i64..3, 1 => -400_i64..3];
    let within_day = prop_oneof![Just(0_i64), Just(1), Just(86_399_999), 0_i64..86_400_000];
    (day, within_day).prop_map(|(day, ms)| today() + Duration::days(day) + Duration::milliseconds(ms))
}

/// Amounts in cents, as money is: serde_json without its `float_roundtrip` feature reads
/// numbers of 16 or more significant digits back off by one unit in the last place, which
/// would break the JSON round trip (not the SQL agreement).
fn spend() -> impl Strategy<Value = f64> {
    prop_oneof![select(SPENDS), (-100_000_i64..100_000).prop_map(|cents| cents as f64 / 100.0)]
}

/// What a random lead is made of; [`LeadParts::draft`] adds a unique email (its identity).
#[derive(Debug, Clone)]
struct LeadParts {
    name: String,
    email_word: &'static str,
    phones: usize,
    spend: f64,
    visits: i64,
    last_order_at: Option<DateTime<Utc>>,
    tags: Vec<String>,
    metadata: BTreeMap<String, String>,
    created_at: DateTime<Utc>,
}

impl LeadParts {
    fn draft(&self, i: usize) -> LeadDraft {
        LeadDraft {
            name: Some(self.name.clone()),
            emails: vec![format!("{}{i}@example.com", self.email_word)],
            phones: (0..self.phones).map(|k| format!("+4477009{i:04}{k}")).collect(),
            total_spend: Some(self.spend),
            visits: Some(self.visits),
            last_order_at: self.last_order_at,
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            created_at: Some(self.created_at),
        }
    }
}

fn lead_parts() -> impl Strategy<Value = LeadParts> {
    let metadata = (proptest::option::of(text()), proptest::option::of(text())).prop_map(|(city, tier)| {
        let pairs = [("city", city), ("tier", tier)];
        pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect::<BTreeMap<_, _>>()
    });
    let numbers = (0_usize..3, spend(), 0_i64..20);
    let times = (proptest::option::of(time()), time());
    (text(), select(WORDS), numbers, times, vec(text(), 0..4), metadata).prop_map(
        |(name, email_word, (phones, spend, visits), (last_order_at, created_at), tags, metadata)| LeadParts {
            name,
            email_word,
            phones,
            spend,
            visits,
            last_order_at,
            tags,
            metadata,
            created_at,
        },
    )
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Number(0.into()))
}

/// Values taken from the generated leads, so that rules hit them exactly: equal instants,
/// equal amounts, equal names. Never empty (a default of each kind is always there).
#[derive(Debug, Clone)]
struct Pool {
    times: Vec<DateTime<Utc>>,
    texts: Vec<String>,
    spends: Vec<f64>,
    visits: Vec<i64>,
}

impl Pool {
    fn of(parts: &[LeadParts]) -> Pool {
        let mut pool = Pool { times: vec![today()], texts: vec!["vip".into()], spends: vec![500.0], visits: vec![3] };
        for p in parts {
            pool.times.extend(p.last_order_at.iter().chain([&p.created_at]));
            pool.texts.extend(p.tags.iter().chain(p.metadata.values()).chain([&p.name]).cloned());
            pool.spends.push(p.spend);
            pool.visits.push(p.visits);
        }
        pool
    }
}

fn text_condition(pool: &Pool) -> impl Strategy<Value = Rule> + use<> {
    let fields = [
        Field::Name,
        Field::Emails,
        Field::Phones,
        Field::Tags,
        Field::Metadata("city".into()),
        Field::Metadata("tier".into()),
        Field::Metadata("absent".into()),
    ];
    let ops = [Operator::Eq, Operator::Ne, Operator::In, Operator::NotIn, Operator::Contains, Operator::NotContains];
    let known = select(pool.texts.clone());
    let needle = prop_oneof![text(), select(NEEDLES).prop_map(String::from), known.clone()];
    let items = vec(prop_oneof![text(), known], 0..3);
    (select(fields.to_vec()), select(ops.to_vec()), needle, items).prop_map(|(field, op, one, many)| {
        let value = match op {
            Operator::In | Operator::NotIn => Value::List(many.into_iter().map(Value::Text).collect()),
            _ => Value::Text(one),
        };
        Rule::condition(field, op, value)
    })
}

fn number_condition(pool: &Pool) -> impl Strategy<Value = Rule> + use<> {
    let ops = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Lt,
        Operator::Ge,
        Operator::Le,
        Operator::In,
        Operator::NotIn,
    ];
    let spends = prop_oneof![
        spend().prop_map(number),
        select(pool.spends.clone()).prop_map(number),
        Just(Value::Number(500.into())),
    ];
    let visits = prop_oneof![-1_i64..21, select(pool.visits.clone())].prop_map(|v| Value::Number(v.into()));
    let visits = prop_oneof![3 => visits, 1 => Just(number(3.0))];
    let field = prop_oneof![
        (Just(Field::TotalSpend), spends.clone(), vec(spends, 0..3)),
        (Just(Field::Visits), visits.clone(), vec(visits, 0..3)),
    ];
    (field, select(ops.to_vec())).prop_map(|((field, one, many), op)| {
        let value = if matches!(op, Operator::In | Operator::NotIn) { Value::List(many) } else { one };
        Rule::condition(field, op, value)
    })
}

fn date_condition(pool: &Pool) -> impl Strategy<Value = Rule> + use<> {
    let ops = [Operator::Eq, Operator::Ne, Operator::Gt, Operator::Lt, Operator::Ge, Operator::Le];
    let fields = [Field::LastOrderAt, Field::CreatedAt, Field::UpdatedAt];
    let time = prop_oneof![time(), select(pool.times.clone())];
    let value = prop_oneof![
        time.clone().prop_map(|t| t.date_naive().format("%Y-%m-%d").to_string()),
        time.prop_map(|t| format_time(&t)),
        select(&["today", "Yesterday", "1 year ago", "3 months ago", "2 weeks ago"][..]).prop_map(String::from),
        prop_oneof![0_u32..22, 0_u32..400].prop_map(|n| format!("{n} days ago")),
    ];
    (select(fields.to_vec()), select(ops.to_vec()), value).prop_map(|(f, op, v)| Rule::condition(f, op, Value::Text(v)))
}

/// Valid rules, groups of two or more (a one-child group does not survive the text form).
fn rule(pool: &Pool) -> impl Strategy<Value = Rule> + use<> {
    let leaf = prop_oneof![text_condition(pool), number_condition(pool), date_condition(pool)];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 2..4).prop_map(Rule::And),
            vec(inner.clone(), 2..4).prop_map(Rule::Or),
            inner.prop_map(|r| Rule::Not(Box::new(r))),
        ]
    })
}

/// Leads, and rules aimed at their values.
fn leads_and_rules() -> impl Strategy<Value = (Vec<LeadParts>, Vec<Rule>)> {
    vec(lead_parts(), 0..40).prop_flat_map(|parts| {
        let rules = vec(rule(&Pool::of(&parts)), 1..16);
        (Just(parts), rules)
    })
}

/// Writes the drafts through the real store and reads them back as stored (millisecond times).
async fn store_leads(path: &Path, drafts: Vec<LeadDraft>) -> crate::engine::Result<Vec<Lead>> {
    let store = SqliteStore::open(path).await?;
    for draft in drafts {
        store.add_lead(draft).await?;
    }
    store.scan_leads(0, usize::MAX >> 1).await
}

fn sql_ids(conn: &rusqlite::Connection, rule: &Rule) -> rusqlite::Result<(Vec<i64>, String)> {
    let fragment = sql::to_sql(rule, now());
    let query = format!("SELECT l.id FROM leads l WHERE {} ORDER BY l.id", fragment.sql);
    let mut stmt = conn.prepare(&query)?;
    let ids = stmt.query_map(rusqlite::params_from_iter(fragment.params.iter()), |r| r.get(0))?;
    Ok((ids.collect::<rusqlite::Result<Vec<i64>>>()?, fragment.sql))
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

#[test]
fn sql_selects_exactly_the_leads_the_evaluator_matches() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let strategy = leads_and_rules();
    let outcome = runner.run(&strategy, |(parts, rules)| {
        let dir = tempfile::tempdir().map_err(fail)?;
        let path = dir.path().join("crm.db");
        let drafts = parts.iter().enumerate().map(|(i, p)| p.draft(i)).collect();
        let leads = runtime.block_on(store_leads(&path, drafts)).map_err(fail)?;
        let conn = rusqlite::Connection::open(&path).map_err(fail)?;
        sql::register_functions(&conn).map_err(fail)?;
        for rule in &rules {
            prop_assert!(rule.validate().is_ok(), "generated an invalid rule: {rule}");
            let expected: Vec<i64> = leads.iter().filter(|l| rule.matches(l, now())).map(|l| l.id).collect();
            let (got, fragment) = sql_ids(&conn, rule).map_err(fail)?;
            prop_assert_eq!(got, expected, "rule: {}\nsql: {}", rule, fragment);
            let (text, json) = (rule.to_text(), rule.to_json());
            prop_assert_eq!(Rule::parse_text(&text), Ok(rule.clone()), "text: {}", text);
            prop_assert_eq!(Rule::from_json(&json), Ok(rule.clone()), "json: {}", json);
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// Leads on and next to midnights, with and without optional values.
fn boundary_leads() -> (Vec<LeadParts>, [DateTime<Utc>; 5]) {
    let midnight = today() - Duration::days(2);
    let ms = Duration::milliseconds;
    let times = [midnight, midnight - ms(1), midnight + ms(1), midnight + Duration::hours(12), today()];
    let parts = (0..10)
        .map(|i| LeadParts {
            name: WORDS[i % WORDS.len()].into(),
            email_word: "lead",
            phones: i % 3,
            spend: SPENDS[i % SPENDS.len()],
            visits: (i % 4) as i64 * 3,
            last_order_at: (i % 3 != 0).then(|| times[i % times.len()]),
            tags: WORDS.iter().skip(i).take(i % 3).map(|w| w.to_string()).collect(),
            metadata: BTreeMap::from_iter(
                (i % 2 == 0).then(|| ("city".to_string(), WORDS[(i * 7) % WORDS.len()].to_string())),
            ),
            created_at: times[(i + 1) % times.len()],
        })
        .collect();
    (parts, times)
}

/// Every operator each field takes, with each value (wrapped in a list for `IN`/`NOT_IN`).
fn every_condition(fields: &[Field], values: &[Value]) -> Vec<Rule> {
    let mut all = Vec::new();
    for field in fields {
        for op in field.kind().operators() {
            for value in values {
                let list = matches!(op, Operator::In | Operator::NotIn);
                let value = if list { Value::List(vec![value.clone()]) } else { value.clone() };
                all.push(Rule::condition(field.clone(), *op, value));
            }
        }
    }
    all
}

/// Every operator on every kind of field, against values taken from leads that sit on and
/// next to midnights: the exhaustive complement to the random test, for off-by-one mistakes
/// (`<` for `<=`, a day's end included) that random values rarely hit.
#[test]
fn every_condition_on_boundary_leads_agrees_with_sql() {
    let (parts, times) = boundary_leads();
    let relative = ["today", "yesterday", "2 days ago", "3 days ago"].map(String::from);
    let days = times.iter().map(|t| t.date_naive().format("%Y-%m-%d").to_string());
    let dates: Vec<Value> = times.iter().map(format_time).chain(days).chain(relative).map(Value::Text).collect();
    let texts: Vec<Value> = WORDS.iter().chain(NEEDLES).map(|w| Value::Text(w.to_string())).collect();
    let spends: Vec<Value> = SPENDS.iter().copied().map(number).collect();
    let visits: Vec<Value> = (-1..11).map(|v: i64| Value::Number(v.into())).collect();
    let text_fields = [Field::Name, Field::Tags, Field::Emails, Field::Metadata("city".into())];
    let conditions = [
        every_condition(&[Field::LastOrderAt, Field::CreatedAt], &dates),
        every_condition(&text_fields, &texts),
        every_condition(&[Field::TotalSpend], &spends),
        every_condition(&[Field::Visits], &visits),
    ];

    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("crm.db");
    let drafts = parts.iter().enumerate().map(|(i, p)| p.draft(i)).collect();
    let leads = runtime.block_on(store_leads(&path, drafts)).expect("stored");
    let conn = rusqlite::Connection::open(&path).expect("opens");
    sql::register_functions(&conn).expect("registers");
    let mut partial = 0;
    for condition in conditions.into_iter().flatten() {
        for rule in [condition.clone(), Rule::Not(Box::new(condition))] {
            assert!(rule.validate().is_ok(), "{rule}");
            let expected: Vec<i64> = leads.iter().filter(|l| rule.matches(l, now())).map(|l| l.id).collect();
            let (got, fragment) = sql_ids(&conn, &rule).expect("runs");
            assert_eq!(got, expected, "rule: {rule}\nsql: {fragment}");
            partial += usize::from(!got.is_empty() && got.len() < leads.len());
        }
    }
    assert!(partial > 500, "only {partial} rules split the leads: the test lost its teeth");
}
