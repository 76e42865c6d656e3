//! The text form of rules, as typed at the terminal:
//! `total_spend > 500 and (last_order_at > "30 days ago" or visits >= 10) and not tags contains "churn"`.
//!
//! Grammar, keywords in any letter case:
//!
//! ```text
//! rule      = and_expr { "or" and_expr }
//! and_expr  = unary { "and" unary }
//! unary     = "not" unary | "(" rule ")" | condition
//! condition = field operator value
//! operator  = "=" | "!=" | ">" | "<" | ">=" | "<=" | "in" | "not in" | "not_in"
//!           | "contains" | "not contains" | "not_contains"
//! value     = string | number | "[" [ scalar { "," scalar } ] "]"
//! ```
//!
//! Strings are double-quoted with `\"`, `\\`, `\n`, `\t` and `\r` escapes; numbers are JSON
//! numbers. A field is a built-in name (any case) or `metadata.KEY`; any *other* bare word is
//! read as a metadata key, so `city in ["Lagos"]` means `metadata.city in ["Lagos"]`.
//! A chain of one operator (`a and b and c`) is one group; parentheses always start a new node,
//! so the printer's output parses back to the same tree.
//!
//! Written as a hand-rolled recursive descent over characters so that every error knows its
//! column, and so that context decides what a word is (a field, a keyword or an operator).
//! Only parentheses and `not` recurse (at most [`MAX_NESTING`] deep); a chain of `and` or
//! `or` is a loop, so a rule of any length cannot exhaust the stack, and parsing stops at the
//! condition past [`MAX_RULE_CONDITIONS`].

use super::ast::{Condition, Field, MAX_DEPTH, METADATA_PREFIX, Operator, Rule, Value};
use super::error::RuleError;
use super::suggest::built_in_like;
use super::validate::{Spot, TOO_MANY_EXPECTED, check_condition, fields_expected, too_many_message};
use crate::engine::limits::MAX_RULE_CONDITIONS;

/// How deep parentheses and `not`s may nest while parsing. Redundant parentheses add no depth
/// to the tree, so this separate bound keeps input like `((((…` from exhausting the stack.
const MAX_NESTING: usize = 100;

const VALUE_EXPECTED: &str = "a value: a \"quoted string\", a number or a [list]";
const JOINER_EXPECTED: &str = "and, or, or the end of the rule";

/// Parses and validates a text rule.
pub(crate) fn parse_rule(text: &str) -> Result<Rule, RuleError> {
    let mut parser = Parser { source: text, chars: text.chars().collect(), pos: 0, nesting: 0, conditions: 0 };
    parser.skip_ws();
    if parser.at_end() {
        return Err(parser.error(0, "the rule is empty", "a condition such as total_spend > 500"));
    }
    let node = parser.or_expr()?;
    parser.skip_ws();
    match parser.peek() {
        None => Ok(node.rule),
        Some(')') => Err(parser.error(parser.pos, "this ) closes nothing", JOINER_EXPECTED)),
        Some(_) => Err(parser.error(parser.pos, "unexpected text after a condition", JOINER_EXPECTED)),
    }
}

/// A parsed subtree and its depth, so depth errors can point at where the subtree starts.
struct Node {
    rule: Rule,
    depth: usize,
}

struct Parser<'a> {
    source: &'a str,
    chars: Vec<char>,
    pos: usize,
    nesting: usize,
    /// Conditions parsed so far.
    conditions: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Parser<'_> {
    fn error(&self, at: usize, message: impl Into<String>, expected: impl Into<String>) -> RuleError {
        RuleError::text(self.source, at, message, expected)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// Consumes `word` (any letter case) if it stands alone at the cursor.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let end = self.pos + word.len();
        let Some(candidate) = self.chars.get(self.pos..end) else { return false };
        let same = candidate.iter().zip(word.chars()).all(|(a, b)| a.eq_ignore_ascii_case(&b));
        if !same || self.chars.get(end).is_some_and(|c| is_word_char(*c)) {
            return false;
        }
        self.pos = end;
        true
    }

    fn enter(&mut self, at: usize) -> Result<(), RuleError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(
                at,
                format!("more than {MAX_NESTING} nested parentheses and nots"),
                "a flatter rule",
            ));
        }
        Ok(())
    }

    /// The column (from 1) of character index `at` within its line.
    fn column_of(&self, at: usize) -> usize {
        at - self.chars[..at].iter().rposition(|c| *c == '\n').map_or(0, |i| i + 1) + 1
    }

    fn too_deep(&self, at: usize) -> RuleError {
        self.error(at, format!("the rule nests deeper than {MAX_DEPTH} levels"), "a flatter rule")
    }

    fn or_expr(&mut self) -> Result<Node, RuleError> {
        self.skip_ws();
        let start = self.pos;
        let mut items = vec![self.and_expr()?];
        while self.keyword("or") {
            items.push(self.and_expr()?);
        }
        self.group(items, start, Rule::Or)
    }

    fn and_expr(&mut self) -> Result<Node, RuleError> {
        self.skip_ws();
        let start = self.pos;
        let mut items = vec![self.unary()?];
        while self.keyword("and") {
            items.push(self.unary()?);
        }
        self.group(items, start, Rule::And)
    }

    fn group(&self, mut items: Vec<Node>, start: usize, make: fn(Vec<Rule>) -> Rule) -> Result<Node, RuleError> {
        if items.len() == 1 {
            if let Some(only) = items.pop() {
                return Ok(only);
            }
        }
        let depth = 1 + items.iter().map(|n| n.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.too_deep(start));
        }
        Ok(Node { rule: make(items.into_iter().map(|n| n.rule).collect()), depth })
    }

    fn unary(&mut self) -> Result<Node, RuleError> {
        self.skip_ws();
        let start = self.pos;
        if self.keyword("not") {
            self.enter(start)?;
            let inner = self.unary()?;
            self.nesting -= 1;
            if inner.depth + 1 > MAX_DEPTH {
                return Err(self.too_deep(start));
            }
            return Ok(Node { rule: Rule::Not(Box::new(inner.rule)), depth: inner.depth + 1 });
        }
        if self.peek() == Some('(') {
            self.pos += 1;
            self.enter(start)?;
            let inner = self.or_expr()?;
            self.skip_ws();
            if self.peek() != Some(')') {
                let message = format!("the ( at column {} is not closed", self.column_of(start));
                return Err(self.error(self.pos, message, "and, or, or )"));
            }
            self.pos += 1;
            self.nesting -= 1;
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Node, RuleError> {
        let field_at = self.pos;
        self.conditions += 1;
        if self.conditions > MAX_RULE_CONDITIONS {
            return Err(self.error(field_at, too_many_message(), TOO_MANY_EXPECTED));
        }
        let (field, bare_key) = self.field()?;
        self.skip_ws();
        let op_at = self.pos;
        let operator = self.operator()?;
        self.skip_ws();
        let value_at = self.pos;
        let (value, item_at) = self.value()?;
        let c = Condition { field, operator, value };
        check_condition(&c).map_err(|p| {
            let at = match p.spot {
                Spot::Field => field_at,
                Spot::Operator => op_at,
                Spot::Value => value_at,
                Spot::Item(i) => item_at.get(i).copied().unwrap_or(value_at),
            };
            let mut message = p.message;
            if let (true, Field::Metadata(key)) = (bare_key && p.spot != Spot::Field, &c.field) {
                let hint = built_in_like(key).map(|f| format!("; did you mean {f}?")).unwrap_or_default();
                message.push_str(&format!(" ({key} is not a built-in field, so it is read as metadata.{key}{hint})"));
            }
            self.error(at, message, p.expected)
        })?;
        Ok(Node { rule: Rule::Condition(c), depth: 1 })
    }

    /// A field, and whether it was a bare word read as a metadata key.
    fn field(&mut self) -> Result<(Field, bool), RuleError> {
        let at = self.pos;
        let word = self.take_while(|c| is_word_char(c) || c == '.');
        if word.is_empty() {
            let message = match self.peek() {
                None => "the rule ends where a condition should start".to_string(),
                Some(c) => format!("unexpected {c:?} where a condition should start"),
            };
            return Err(self.error(at, message, format!("a field: {}", fields_expected())));
        }
        if let Some(field) = Field::built_in(&word.to_lowercase()) {
            return Ok((field, false));
        }
        if word.get(..METADATA_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(METADATA_PREFIX)) {
            return Ok((Field::Metadata(word[METADATA_PREFIX.len()..].to_string()), false));
        }
        if word.contains('.') || word.eq_ignore_ascii_case("metadata") {
            return Err(self.error(at, format!("unknown field {word:?}"), fields_expected()));
        }
        Ok((Field::Metadata(word), true))
    }

    fn operator(&mut self) -> Result<Operator, RuleError> {
        let at = self.pos;
        for (symbol, op) in [
            (">=", Operator::Ge),
            ("<=", Operator::Le),
            ("!=", Operator::Ne),
            ("=", Operator::Eq),
            (">", Operator::Gt),
            ("<", Operator::Lt),
        ] {
            if self.chars.get(self.pos..self.pos + symbol.len()).is_some_and(|s| s.iter().copied().eq(symbol.chars())) {
                self.pos += symbol.len();
                return Ok(op);
            }
        }
        let word = self.take_while(is_word_char).to_lowercase();
        let op = match word.as_str() {
            "in" => Some(Operator::In),
            "contains" => Some(Operator::Contains),
            "not_in" => Some(Operator::NotIn),
            "not_contains" => Some(Operator::NotContains),
            "not" if self.keyword("in") => Some(Operator::NotIn),
            "not" if self.keyword("contains") => Some(Operator::NotContains),
            _ => None,
        };
        op.ok_or_else(|| {
            let shown = if word.is_empty() { self.peek().map(String::from) } else { Some(word) };
            let message = match shown {
                Some(text) => format!("unknown operator {text:?}"),
                None => "the condition has no operator".to_string(),
            };
            self.error(at, message, format!("one of {}", Operator::list_text(&Operator::ALL)))
        })
    }

    /// A value, and the position of each list item.
    fn value(&mut self) -> Result<(Value, Vec<usize>), RuleError> {
        if self.peek() != Some('[') {
            return Ok((self.scalar()?, Vec::new()));
        }
        let open = self.pos;
        self.pos += 1;
        let (mut items, mut positions) = (Vec::new(), Vec::new());
        self.skip_ws();
        if self.peek() == Some(']') {
            self.pos += 1;
            return Ok((Value::List(items), positions));
        }
        loop {
            self.skip_ws();
            positions.push(self.pos);
            items.push(self.scalar()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    return Ok((Value::List(items), positions));
                }
                None => return Err(self.error(open, "this [ is not closed", "a ] after the last item")),
                Some(_) => return Err(self.error(self.pos, "unexpected text in a list", ", or ]")),
            }
        }
    }

    fn scalar(&mut self) -> Result<Value, RuleError> {
        let at = self.pos;
        match self.peek() {
            Some('"') => self.string().map(Value::Text),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                // The whole run, so `10abc` is one bad number rather than `10` then stray text.
                let text = self.take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
                let parsed = serde_json::from_str::<serde_json::Number>(&text).map_err(|_| {
                    self.error(
                        at,
                        format!("{text:?} is not a number"),
                        "a number such as 500 or 19.99 (dates go in quotes)",
                    )
                })?;
                // serde_json (without `float_roundtrip`) can misround long decimals by one unit
                // in the last place; Rust's parser is exact, so printed rules read back equal.
                let exact = parsed.is_f64().then(|| text.parse::<f64>().ok().and_then(serde_json::Number::from_f64));
                Ok(Value::Number(exact.flatten().unwrap_or(parsed)))
            }
            Some('[') => Err(self.error(at, "lists cannot be nested", "a quoted string or a number")),
            Some(c) if is_word_char(c) => {
                let word = self.take_while(is_word_char);
                Err(self.error(at, format!("{word} is not quoted"), format!("\"{word}\"")))
            }
            Some(c) => Err(self.error(at, format!("unexpected {c:?}"), VALUE_EXPECTED)),
            None => Err(self.error(at, "the condition has no value", VALUE_EXPECTED)),
        }
    }

    fn string(&mut self) -> Result<String, RuleError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error(open, "this string is not closed", "a closing \"")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    let unescaped = match self.chars.get(self.pos + 1) {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        _ => return Err(self.error(self.pos, "unknown escape", "\\\" \\\\ \\n \\t or \\r")),
                    };
                    out.push(unescaped);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}
