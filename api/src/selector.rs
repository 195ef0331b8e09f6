//! Label selectors: the string grammar kubectl sends in `labelSelector`, matching against
//! label maps, and conversion from `metav1.LabelSelector` (Deployment, ReplicaSet, Job...).
//!
//! Semantics follow apimachinery `pkg/labels/selector.go`: requirements are ANDed and kept
//! sorted by key, `!=` and `notin` match objects without the label, the empty selector
//! matches everything and a missing (`None`) `LabelSelector` matches nothing.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Why a label selector was rejected. The message is what the API server returns in its
/// 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A requirement in the string form is malformed or invalid.
    #[error("unable to parse requirement: {0}")]
    InRequirement(Box<SelectorError>),
    /// The string does not follow the grammar.
    #[error("{0}")]
    Syntax(String),
    /// The selector is well-formed but a token is out of place.
    #[error("{0}")]
    Unexpected(String),
    /// A key is not a valid qualified name.
    #[error("key: Invalid value: {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value is not a valid label value.
    #[error("values[{index}][{key}]: Invalid value: {value:?}: {reason}")]
    InvalidValue {
        /// The requirement's key.
        key: String,
        /// Position of the value in the requirement.
        index: usize,
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operator does not take this many values (or these values).
    #[error("{0}")]
    InvalidValues(String),
    /// A `matchExpressions` operator is not In, NotIn, Exists or DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
}

/// A selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key!=value`.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>5` (integers).
    GreaterThan,
    /// `key<5` (integers).
    LessThan,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, validating the key, the values and their number as
    /// `labels.NewRequirement` does.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        if let Err(reason) = validate_qualified_name(&key) {
            return Err(SelectorError::InvalidKey { key, reason });
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(SelectorError::InvalidValues(
                    "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
                        .to_owned(),
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(SelectorError::InvalidValues(
                    "values: Invalid value: exact-match compatibility requires one single value"
                        .to_owned(),
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(SelectorError::InvalidValues(
                    "values: Invalid value: values set must be empty for exists and does not exist"
                        .to_owned(),
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(SelectorError::InvalidValues(
                        "values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required"
                            .to_owned(),
                    ));
                }
                if values.iter().any(|v| v.parse::<i64>().is_err()) {
                    return Err(SelectorError::InvalidValues(
                        "values[0]: Invalid value: for 'Gt', 'Lt' operators, the value must be an integer"
                            .to_owned(),
                    ));
                }
            }
            _ => {}
        }
        for (index, value) in values.iter().enumerate() {
            if let Err(reason) = validate_label_value(value) {
                return Err(SelectorError::InvalidValue {
                    key,
                    index,
                    value: value.clone(),
                    reason,
                });
            }
        }
        Ok(Self {
            key,
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, in the order given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let actual = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                actual.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => {
                actual.is_none_or(|v| !self.values.contains(v))
            }
            Operator::Exists => actual.is_some(),
            Operator::DoesNotExist => actual.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = actual.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                self.values
                    .iter()
                    .filter_map(|v| v.parse::<i64>().ok())
                    .any(|wanted| {
                        if self.operator == Operator::GreaterThan {
                            actual > wanted
                        } else {
                            actual < wanted
                        }
                    })
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    /// Set for the selector of a missing `LabelSelector`, which selects nothing.
    nothing: bool,
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Builds a selector from requirements, sorted by key as upstream does.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// Parses the string form (`app=web,tier in (a,b),!canary`).
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let tokens = lex(input);
        Parser { tokens, pos: 0 }.parse()
    }

    /// The selector `metav1.LabelSelectorAsSelector` builds: `None` selects nothing, an empty
    /// selector everything.
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(selector) = selector else {
            return Ok(Self::nothing());
        };
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key.clone(),
                Operator::Equals,
                vec![value.clone()],
            )?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::InvalidOperator(other.to_owned())),
            };
            requirements.push(Requirement::new(
                expression.key.clone(),
                operator,
                expression.values.clone().unwrap_or_default(),
            )?);
        }
        Ok(Self::from_requirements(requirements))
    }

    /// `labels.SelectorFromValidatedSet` made safe: `k=v` for every pair (a Service's or
    /// ReplicationController's selector); an empty set matches everything.
    pub fn from_set(set: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_requirements(requirements))
    }

    /// Whether the selector matches everything.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches the `metadata.labels` of an object given as JSON (absent labels are empty).
    pub fn matches_object(&self, object: &serde_json::Value) -> bool {
        let labels: BTreeMap<String, String> = object
            .pointer("/metadata/labels")
            .and_then(serde_json::Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// `metav1.FormatLabelSelector`: the string form of a `LabelSelector`, `<none>` when it
/// selects nothing or everything, `<error>` when it is invalid.
pub fn format_label_selector(selector: Option<&LabelSelector>) -> String {
    match Selector::from_label_selector(selector) {
        Err(_) => "<error>".to_owned(),
        Ok(s) => {
            let text = s.to_string();
            if text.is_empty() {
                "<none>".to_owned()
            } else {
                text
            }
        }
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_owned();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// === lexer ===

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    In,
    NotIn,
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    OpenParen,
    CloseParen,
    Comma,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
            Token::OpenParen => "(",
            Token::CloseParen => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let next = chars.peek().map(|&(_, n)| n);
            let token = match (c, next) {
                ('=', Some('=')) => {
                    chars.next();
                    Token::DoubleEquals
                }
                ('!', Some('=')) => {
                    chars.next();
                    Token::NotEquals
                }
                ('=', _) => Token::Equals,
                ('!', _) => Token::Bang,
                ('(', _) => Token::OpenParen,
                (')', _) => Token::CloseParen,
                (',', _) => Token::Comma,
                ('>', _) => Token::GreaterThan,
                _ => Token::LessThan,
            };
            tokens.push(token);
            continue;
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if is_special(c) || matches!(c, ' ' | '\t' | '\r' | '\n') {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let word = &input[start..end];
        tokens.push(match word {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word.to_owned()),
        });
    }
    tokens.push(Token::End);
    tokens
}

// === parser ===

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::End => break,
                Token::Identifier(_) | Token::Bang => {
                    let requirement = self
                        .requirement()
                        .map_err(|e| SelectorError::InRequirement(Box::new(e)))?;
                    requirements.push(requirement);
                    match self.next() {
                        Token::End => break,
                        Token::Comma => {
                            if !matches!(self.peek(), Token::Identifier(_) | Token::Bang) {
                                return Err(SelectorError::Unexpected(format!(
                                    "found '{}', expected: identifier after ','",
                                    self.peek().literal()
                                )));
                            }
                        }
                        other => {
                            return Err(SelectorError::Unexpected(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            )));
                        }
                    }
                }
                other => {
                    return Err(SelectorError::Unexpected(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    )));
                }
            }
        }
        Ok(Selector::from_requirements(requirements))
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = *self.peek() == Token::Bang;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Identifier(key) => key,
            other => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: identifier",
                    other.literal()
                )));
            }
        };
        if matches!(self.peek(), Token::End | Token::Comma) {
            let operator = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(key, operator, Vec::new());
        }
        if negated {
            return Err(SelectorError::Syntax(format!(
                "found '{}', expected: ',' or 'end of string' after '!{key}'",
                self.peek().literal()
            )));
        }
        let operator = match self.next() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            other => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.literal()
                )));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(key, operator, values)
    }

    /// `(a,b)`; `()` is the set holding the empty string, and `(a,)` adds it too.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Token::OpenParen => {}
            other => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: '('",
                    other.literal()
                )));
            }
        }
        let mut values = Vec::new();
        if *self.peek() == Token::CloseParen {
            self.next();
            return Ok(vec![String::new()]);
        }
        loop {
            match self.next() {
                Token::Identifier(value) => values.push(value),
                // A keyword in value position is an ordinary value (`env in (in)`).
                Token::In => values.push("in".to_owned()),
                Token::NotIn => values.push("notin".to_owned()),
                Token::Comma => {
                    values.push(String::new());
                    continue;
                }
                Token::CloseParen => {
                    values.push(String::new());
                    return Ok(values);
                }
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        other.literal()
                    )));
                }
            }
            match self.next() {
                Token::Comma => {
                    if *self.peek() == Token::CloseParen {
                        self.next();
                        values.push(String::new());
                        return Ok(values);
                    }
                }
                Token::CloseParen => return Ok(values),
                other => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: ',' or ')'",
                        other.literal()
                    )));
                }
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; nothing before `,` or the end is "".
    fn exact_value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            Token::End | Token::Comma => Ok(String::new()),
            Token::Identifier(_) | Token::In | Token::NotIn => Ok(self.next().literal().to_owned()),
            other => Err(SelectorError::Syntax(format!(
                "found '{}', expected: identifier",
                other.literal()
            ))),
        }
    }
}

// === validation ===

const NAME_FORMAT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_FORMAT: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_FORMAT: &str = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A lower-case RFC 1123 subdomain of at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            match (b.first(), b.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                }
                _ => false,
            }
        })
}

/// Label keys are qualified names: `[prefix/]name`.
fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return Err("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_owned());
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".to_owned());
        }
        if !is_dns_subdomain(prefix) {
            return Err(PREFIX_FORMAT.to_owned());
        }
    }
    if name.is_empty() {
        return Err("name part must be non-empty".to_owned());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".to_owned());
    }
    if !is_label_name(name) {
        return Err(NAME_FORMAT.to_owned());
    }
    Ok(())
}

fn validate_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(VALUE_FORMAT.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parse_and_match_table() {
        let web = labels(&[("app", "web"), ("tier", "frontend"), ("version", "3")]);
        let db = labels(&[("app", "db"), ("canary", "true")]);
        let none = labels(&[]);
        // (selector, matches web, matches db, matches no labels)
        let cases = [
            ("", true, true, true),
            ("app=web", true, false, false),
            ("app==web", true, false, false),
            ("app = web", true, false, false),
            ("app!=web", false, true, true),
            ("app in (web,db)", true, true, false),
            ("app in ( web , db )", true, true, false),
            ("app notin (web)", false, true, true),
            ("app", true, true, false),
            ("!canary", true, false, true),
            ("app,!canary", true, false, false),
            ("app=web,tier=frontend", true, false, false),
            ("app in (web),!foo", true, false, false),
            ("version>2", true, false, false),
            ("version<2", false, false, false),
            ("tier=", false, false, false),
            ("tier in ()", false, false, false),
            ("app in (in)", false, false, false),
        ];
        for (text, want_web, want_db, want_none) in cases {
            let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(selector.matches(&web), want_web, "{text} vs web");
            assert_eq!(selector.matches(&db), want_db, "{text} vs db");
            assert_eq!(selector.matches(&none), want_none, "{text} vs none");
        }
    }

    #[test]
    fn empty_value_matches_empty_label() {
        let empty_tier = labels(&[("tier", "")]);
        assert!(Selector::parse("tier=").unwrap().matches(&empty_tier));
        assert!(Selector::parse("tier in ()").unwrap().matches(&empty_tier));
        assert!(
            Selector::parse("tier in (a,)")
                .unwrap()
                .matches(&empty_tier)
        );
    }

    #[test]
    fn string_form_is_normalized_like_upstream() {
        for (input, canonical) in [
            ("tier in (b,a),app=web", "app=web,tier in (a,b)"),
            ("!canary, app", "app,!canary"),
            ("env notin (prod)", "env notin (prod)"),
            ("a==b", "a==b"),
            ("a != b", "a!=b"),
            ("n>5", "n>5"),
        ] {
            assert_eq!(Selector::parse(input).unwrap().to_string(), canonical);
        }
    }

    #[test]
    fn syntax_errors_are_reported() {
        for (input, fragment) in [
            ("app in", "expected: '('"),
            ("app in (a", "expected: ',' or ')'"),
            ("app=web,", "expected: identifier after ','"),
            ("app=web,=x", "found '=', expected: identifier after ','"),
            (
                "app in",
                "unable to parse requirement: found '', expected: '('",
            ),
            ("=web", "expected: !, identifier, or 'end of string'"),
            ("app web", "expected: in, notin, =, ==, !=, gt, lt"),
            ("!app=web", "after '!app'"),
            ("app=web x", "expected: ',' or 'end of string'"),
            ("app=(", "expected: identifier"),
            ("n>x", "must be an integer"),
        ] {
            let err = Selector::parse(input).expect_err(input).to_string();
            assert!(err.contains(fragment), "{input}: {err}");
        }
    }

    #[test]
    fn keys_and_values_are_validated() {
        let err = Selector::parse("-app=web").unwrap_err();
        let SelectorError::InRequirement(inner) = &err else {
            panic!("{err:?}");
        };
        assert!(matches!(**inner, SelectorError::InvalidKey { ref key, .. } if key == "-app"));
        assert!(err.to_string().starts_with(
            "unable to parse requirement: key: Invalid value: \"-app\": name part must"
        ));
        assert!(Selector::parse("Example.com/app=web").is_err());
        assert!(Selector::parse("example.com/app=web").is_ok());
        assert!(Selector::parse("a/b/c=web").is_err());
        let long_key = "k".repeat(64);
        assert!(Selector::parse(&format!("{long_key}=x")).is_err());
        let err = Selector::parse("app=-web").unwrap_err();
        assert_eq!(
            err,
            SelectorError::InRequirement(Box::new(SelectorError::InvalidValue {
                key: "app".to_owned(),
                index: 0,
                value: "-web".to_owned(),
                reason: VALUE_FORMAT.to_owned(),
            }))
        );
        assert!(Selector::parse(&format!("app={}", "v".repeat(64))).is_err());
    }

    #[test]
    fn label_selector_conversion() {
        assert!(
            !Selector::from_label_selector(None)
                .unwrap()
                .matches(&labels(&[]))
        );
        let empty = LabelSelector::default();
        let everything = Selector::from_label_selector(Some(&empty)).unwrap();
        assert!(everything.is_everything());
        assert!(everything.matches(&labels(&[("x", "y")])));

        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".to_owned(),
                    operator: "In".to_owned(),
                    values: Some(vec!["frontend".to_owned(), "edge".to_owned()]),
                },
                LabelSelectorRequirement {
                    key: "canary".to_owned(),
                    operator: "DoesNotExist".to_owned(),
                    values: None,
                },
            ]),
        };
        let parsed = Selector::from_label_selector(Some(&selector)).unwrap();
        assert!(parsed.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!parsed.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("canary", "1")
        ])));
        assert_eq!(
            format_label_selector(Some(&selector)),
            "app=web,!canary,tier in (edge,frontend)"
        );
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&empty)), "<none>");

        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".to_owned(),
                operator: "Near".to_owned(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert_eq!(
            Selector::from_label_selector(Some(&bad))
                .unwrap_err()
                .to_string(),
            "\"Near\" is not a valid label selector operator"
        );
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
    }

    #[test]
    fn matches_objects_given_as_json() {
        let selector = Selector::parse("app=web").unwrap();
        let pod = serde_json::json!({"metadata": {"labels": {"app": "web"}}});
        let bare = serde_json::json!({"metadata": {}});
        assert!(selector.matches_object(&pod));
        assert!(!selector.matches_object(&bare));
        assert!(Selector::parse("app!=web").unwrap().matches_object(&bare));
    }

    #[test]
    fn selectors_from_label_sets() {
        let selector = Selector::from_set(&labels(&[("app", "web"), ("tier", "fe")])).unwrap();
        assert_eq!(selector.to_string(), "app=web,tier=fe");
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(Selector::from_set(&labels(&[])).unwrap().is_everything());
        assert!(Selector::from_set(&labels(&[("bad key", "v")])).is_err());
    }

    #[test]
    fn format_labels_sorts_and_defaults() {
        assert_eq!(format_labels(&labels(&[("b", "2"), ("a", "1")])), "a=1,b=2");
        assert_eq!(format_labels(&labels(&[])), "<none>");
    }
}
