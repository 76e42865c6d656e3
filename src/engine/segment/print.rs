//! Rules back to text, for `segments show` and for editing: the inverse of `parse.rs`.
//!
//! Keywords come out lower case, metadata fields always as `metadata.KEY` (never bare, so a key
//! named like a keyword still reads back), and a group inside a group or under `not` always in
//! parentheses. For every valid rule, `parse(print(rule)) == rule`, with one exception the
//! text form cannot express: an AND or OR with a single child prints as that child, and so
//! reads back without the wrapper.

use super::ast::{Condition, Rule, Value};

pub(crate) fn rule_to_text(rule: &Rule) -> String {
    let mut out = String::new();
    write_rule(rule, &mut out);
    out
}

/// `rule` with one-child groups peeled off.
fn unwrapped(rule: &Rule) -> &Rule {
    match rule {
        Rule::And(children) | Rule::Or(children) if children.len() == 1 => unwrapped(&children[0]),
        other => other,
    }
}

fn write_rule(rule: &Rule, out: &mut String) {
    match unwrapped(rule) {
        Rule::And(children) => write_group(children, " and ", out),
        Rule::Or(children) => write_group(children, " or ", out),
        Rule::Not(child) => {
            out.push_str("not ");
            write_operand(child, out);
        }
        Rule::Condition(c) => write_condition(c, out),
    }
}

fn write_group(children: &[Rule], joiner: &str, out: &mut String) {
    if children.is_empty() {
        // Invalid (validation refuses it); printed so that it is visible rather than lost.
        out.push_str("()");
    }
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            out.push_str(joiner);
        }
        write_operand(child, out);
    }
}

/// A child of a group or of `not`: parenthesized when it is itself a group.
fn write_operand(rule: &Rule, out: &mut String) {
    let rule = unwrapped(rule);
    if matches!(rule, Rule::And(_) | Rule::Or(_)) {
        out.push('(');
        write_rule(rule, out);
        out.push(')');
    } else {
        write_rule(rule, out);
    }
}

fn write_condition(c: &Condition, out: &mut String) {
    out.push_str(&c.field.name());
    out.push(' ');
    out.push_str(c.operator.text_name());
    out.push(' ');
    write_value(&c.value, out);
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Text(text) => write_string(text, out),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(item, out);
            }
            out.push(']');
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
    out.push('"');
}
