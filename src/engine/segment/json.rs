//! The stored JSON form of a rule, byte-compatible with what the old Node system wrote:
//! `{"op":"AND"|"OR","children":[…]}`, `{"op":"NOT","children":[one]}` and
//! `{"type":"condition","field":F,"operator":O,"value":V}`.
//!
//! Loading goes through `serde_json::Value` and a hand-written walk rather than derived serde,
//! so every mistake is reported with its JSON path (`children[1].children[0].value`) and
//! checked by the same rules as text input. Unknown extra keys in a node are ignored (old data
//! may carry ids or UI state); `op` and `operator` are accepted in any letter case and written
//! back upper case.

use super::ast::{Condition, Field, MAX_DEPTH, Operator, Rule, Value};
use super::error::RuleError;
use super::suggest::built_in_like;
use super::validate::{check_condition, child_path, empty_group, fields_expected, join, too_deep, too_many_conditions};
use crate::engine::limits::MAX_RULE_CONDITIONS;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;

const NODE_EXPECTED: &str = "{\"op\": \"AND\"|\"OR\"|\"NOT\", \"children\": [...]} or {\"type\": \"condition\", \"field\", \"operator\", \"value\"}";

/// Parses and validates a JSON rule.
pub(crate) fn rule_from_json(text: &str) -> Result<Rule, RuleError> {
    let json: Json = serde_json::from_str(text).map_err(|e| RuleError::Json(e.to_string()))?;
    rule_from_value(&json)
}

/// Converts and validates an already parsed JSON rule.
pub(crate) fn rule_from_value(json: &Json) -> Result<Rule, RuleError> {
    node(json, "", 1, &mut 0)
}

/// The rule at `path`; `seen` counts the conditions converted so far, so an oversized tree is
/// refused at the first condition past the limit.
fn node(json: &Json, path: &str, depth: usize, seen: &mut usize) -> Result<Rule, RuleError> {
    if depth > MAX_DEPTH {
        return Err(too_deep(path));
    }
    let Some(object) = json.as_object() else {
        return Err(RuleError::invalid(path, format!("found {}", kind_of(json)), NODE_EXPECTED));
    };
    if let Some(op) = object.get("op") {
        let op_path = join(path, "op");
        let op = op.as_str().ok_or_else(|| RuleError::invalid(&op_path, "op is not a string", "AND, OR or NOT"))?;
        let children = match object.get("children") {
            Some(Json::Array(items)) => items,
            Some(other) => {
                return Err(RuleError::invalid(
                    &join(path, "children"),
                    format!("found {}", kind_of(other)),
                    "a list of rules",
                ));
            }
            None => return Err(RuleError::invalid(&join(path, "children"), "children is missing", "a list of rules")),
        };
        let mut convert = |items: &[Json]| -> Result<Vec<Rule>, RuleError> {
            items.iter().enumerate().map(|(i, child)| node(child, &child_path(path, i), depth + 1, seen)).collect()
        };
        return match op.to_ascii_uppercase().as_str() {
            "AND" | "OR" if children.is_empty() => Err(empty_group(path, &op.to_ascii_uppercase())),
            "AND" => Ok(Rule::And(convert(children)?)),
            "OR" => Ok(Rule::Or(convert(children)?)),
            "NOT" if children.len() == 1 => Ok(Rule::Not(Box::new(convert(children)?.remove(0)))),
            "NOT" => Err(RuleError::invalid(
                &join(path, "children"),
                format!("NOT has {} children", children.len()),
                "exactly one child",
            )),
            _ => Err(RuleError::invalid(&op_path, format!("unknown op {op:?}"), "AND, OR or NOT")),
        };
    }
    match object.get("type").map(|t| t.as_str()) {
        Some(Some("condition")) => {
            *seen += 1;
            if *seen > MAX_RULE_CONDITIONS {
                return Err(too_many_conditions(path));
            }
            condition(object, path).map(Rule::Condition)
        }
        Some(_) => Err(RuleError::invalid(&join(path, "type"), "unknown node type", "\"condition\"")),
        None => Err(RuleError::invalid(path, "the object has neither \"op\" nor \"type\"", NODE_EXPECTED)),
    }
}

fn condition(object: &serde_json::Map<String, Json>, path: &str) -> Result<Condition, RuleError> {
    let text_of = |key: &str, expected: &str| -> Result<&str, RuleError> {
        match object.get(key) {
            Some(Json::String(s)) => Ok(s),
            Some(other) => Err(RuleError::invalid(&join(path, key), format!("found {}", kind_of(other)), expected)),
            None => Err(RuleError::invalid(&join(path, key), format!("{key} is missing"), expected)),
        }
    };
    let name = text_of("field", &fields_expected())?;
    let field = Field::from_name(name).ok_or_else(|| {
        let hint = built_in_like(name).map(|f| format!(" (did you mean {f}?)")).unwrap_or_default();
        RuleError::invalid(&join(path, "field"), format!("unknown field {name:?}{hint}"), fields_expected())
    })?;
    let operators = Operator::ALL.map(Operator::json_name).join(", ");
    let op_name = text_of("operator", &operators)?;
    let operator = Operator::from_json_name(op_name).ok_or_else(|| {
        RuleError::invalid(&join(path, "operator"), format!("unknown operator {op_name:?}"), operators.clone())
    })?;
    let value_path = join(path, "value");
    let json = object.get("value").ok_or_else(|| RuleError::invalid(&value_path, "value is missing", "a value"))?;
    let value = value(json, &value_path, true)?;
    let c = Condition { field, operator, value };
    check_condition(&c).map_err(|p| RuleError::invalid(&join(path, &p.spot.json_key()), p.message, p.expected))?;
    Ok(c)
}

fn value(json: &Json, path: &str, list_allowed: bool) -> Result<Value, RuleError> {
    match json {
        Json::String(s) => Ok(Value::Text(s.clone())),
        Json::Number(n) => Ok(Value::Number(n.clone())),
        Json::Array(items) if list_allowed => items
            .iter()
            .enumerate()
            .map(|(i, item)| value(item, &format!("{path}[{i}]"), false))
            .collect::<Result<_, _>>()
            .map(Value::List),
        other => Err(RuleError::invalid(
            path,
            format!("found {}", kind_of(other)),
            if list_allowed { "a string, a number or a list of them" } else { "a string or a number" },
        )),
    }
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let group = |s: S, op: &str, children: &[Rule]| {
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry("op", op)?;
            map.serialize_entry("children", children)?;
            map.end()
        };
        match self {
            Rule::And(children) => group(s, "AND", children),
            Rule::Or(children) => group(s, "OR", children),
            Rule::Not(child) => group(s, "NOT", std::slice::from_ref(child.as_ref())),
            Rule::Condition(c) => {
                let mut map = s.serialize_map(Some(4))?;
                map.serialize_entry("type", "condition")?;
                map.serialize_entry("field", &c.field.name())?;
                map.serialize_entry("operator", c.operator.json_name())?;
                map.serialize_entry("value", &c.value)?;
                map.end()
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Text(t) => s.serialize_str(t),
            Value::Number(n) => n.serialize(s),
            Value::List(items) => items.serialize(s),
        }
    }
}

/// Deserializing validates, like [`Rule::from_json`](super::Rule::from_json); the error text
/// carries the JSON path.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let json = Json::deserialize(d)?;
        rule_from_value(&json).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule as the Node system saved it.
    const NODE_STYLE: &str = r#"{"op":"AND","children":[
        {"type":"condition","field":"total_spend","operator":">","value":500},
        {"op":"OR","children":[
            {"type":"condition","field":"last_order_at","operator":">","value":"30 days ago"},
            {"type":"condition","field":"visits","operator":">=","value":10}]},
        {"op":"NOT","children":[{"type":"condition","field":"tags","operator":"CONTAINS","value":"churn"}]},
        {"type":"condition","field":"metadata.city","operator":"IN","value":["Lagos","Berlin"]}]}"#;

    #[test]
    fn node_style_json_loads_and_saves_unchanged() {
        let rule = rule_from_json(NODE_STYLE).expect("loads");
        let Rule::And(children) = &rule else { panic!("AND expected: {rule:?}") };
        assert_eq!(children.len(), 4);
        assert!(matches!(&children[2], Rule::Not(c) if matches!(c.as_ref(), Rule::Condition(_))));
        let saved = serde_json::to_value(&rule).expect("serializes");
        let original: Json = serde_json::from_str(NODE_STYLE).expect("json");
        assert_eq!(saved, original);
        let compact = serde_json::to_string(&rule).expect("serializes");
        assert!(compact.starts_with(
            r#"{"op":"AND","children":[{"type":"condition","field":"total_spend","operator":">","value":500}"#
        ));
        let again: Rule = serde_json::from_str(&compact).expect("deserializes");
        assert_eq!(again, rule);
    }

    #[test]
    fn numbers_keep_their_spelling() {
        let text = r#"{"type":"condition","field":"total_spend","operator":"=","value":10.0}"#;
        let rule = rule_from_json(text).expect("loads");
        assert_eq!(serde_json::to_string(&rule).expect("json"), text);
    }

    #[test]
    fn lower_case_names_are_accepted_and_written_upper_case() {
        let rule = rule_from_json(
            r#"{"op":"not","children":[{"type":"condition","field":"tags","operator":"not_in","value":[]}]}"#,
        )
        .expect("loads");
        assert_eq!(
            serde_json::to_string(&rule).expect("json"),
            r#"{"op":"NOT","children":[{"type":"condition","field":"tags","operator":"NOT_IN","value":[]}]}"#
        );
    }

    fn path_of(text: &str) -> String {
        match rule_from_json(text) {
            Err(RuleError::Invalid { path, .. }) => path,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn errors_carry_the_json_path() {
        let c =
            |f: &str, o: &str, v: &str| format!(r#"{{"type":"condition","field":"{f}","operator":"{o}","value":{v}}}"#);
        let ok = c("visits", ">", "1");
        let and = |a: &str, b: &str| format!(r#"{{"op":"AND","children":[{a},{b}]}}"#);
        assert_eq!(path_of(&and(&ok, &and(&c("total_spend", ">", "\"x\""), &ok))), "children[1].children[0].value");
        assert_eq!(path_of(&and(&ok, &c("cty", "=", "\"x\""))), "children[1].field");
        assert_eq!(path_of(&and(&ok, &c("tags", ">", "\"x\""))), "children[1].operator");
        assert_eq!(path_of(&and(&ok, &c("tags", "LIKE", "\"x\""))), "children[1].operator");
        assert_eq!(path_of(&c("tags", "IN", "[\"a\", true]")), "value[1]");
        assert_eq!(path_of(&c("tags", "IN", "\"a\"")), "value");
        assert_eq!(path_of(&c("created_at", ">", "\"next week\"")), "value");
        assert_eq!(path_of(&c("name", "=", "null")), "value");
        assert_eq!(path_of(r#"{"op":"AND","children":[]}"#), "children");
        assert_eq!(path_of(&format!(r#"{{"op":"NOT","children":[{ok},{ok}]}}"#)), "children");
        assert_eq!(path_of(r#"{"op":"XOR","children":[]}"#), "op");
        assert_eq!(path_of(&format!(r#"{{"op":"OR","children":[{ok}, 3]}}"#)), "children[1]");
        assert_eq!(path_of(r#"{"type":"condition","field":"name","operator":"="}"#), "value");
        assert_eq!(path_of(r#"{"type":"rule"}"#), "type");
        assert_eq!(path_of("[]"), "");
    }

    #[test]
    fn deep_json_is_refused_not_overflowed() {
        let mut text = r#"{"type":"condition","field":"visits","operator":">","value":1}"#.to_string();
        for _ in 0..40 {
            text = format!(r#"{{"op":"NOT","children":[{text}]}}"#);
        }
        let err = rule_from_json(&text).expect_err("too deep");
        assert!(err.to_string().contains("deeper than 32"), "{err}");
        let garbage = "[".repeat(100_000);
        assert!(matches!(rule_from_json(&garbage), Err(RuleError::Json(_))));
    }

    #[test]
    fn invalid_json_is_a_json_error() {
        assert!(matches!(rule_from_json("{"), Err(RuleError::Json(_))));
        assert!(matches!(rule_from_json(""), Err(RuleError::Json(_))));
    }
}
