//! Field selectors (`fieldSelector=spec.nodeName=n1,status.phase!=Failed`).
//!
//! Parsing follows apimachinery `pkg/fields/selector.go`: terms are separated by unescaped
//! commas, the first `!=`, `==` or `=` splits a term, and values may escape `\`, `,` and
//! `=` with a backslash. Which fields a resource supports follows the per-resource
//! `*ToSelectableFields` functions of kube-apiserver; anything else is rejected with
//! `field label not supported: <field>`, which the API server returns as a 400.

#![warn(missing_docs)]

use std::fmt;

use serde_json::Value;

/// Why a field selector was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax {
        /// The whole selector.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash escapes something other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A `,` or `=` in a value is not escaped.
    #[error("invalid field selector: unescaped character {0}")]
    Unescaped(char),
    /// The resource cannot be filtered by this field.
    #[error("field label not supported: {0}")]
    Unsupported(String),
}

/// How a term compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path (`spec.nodeName`).
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

/// A parsed field selector: all terms must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the query-string form. Terms are sorted as upstream does; empty terms are
    /// skipped.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_owned(),
                    term: term.to_owned(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value: unescape_value(raw_value)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, sorted.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` must equal, if a term requires one (`metadata.name=web` lets the
    /// server read one key instead of listing).
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Checks every field is selectable on `group`/`resource` (plural).
    pub fn validate_for(&self, group: &str, resource: &str) -> Result<(), FieldSelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| field_spec(group, resource, &r.field).is_none())
        {
            Some(unsupported) => Err(FieldSelectorError::Unsupported(unsupported.field.clone())),
            None => Ok(()),
        }
    }

    /// Whether `object` (JSON of a `group`/`resource` object) satisfies every term.
    /// Unsupported fields never match; call [`FieldSelector::validate_for`] first to
    /// report them.
    pub fn matches(&self, group: &str, resource: &str, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let Some(actual) = field_value(group, resource, &r.field, object) else {
                return false;
            };
            match r.operator {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{}{}", r.field, op, escape_value(&r.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` so a value survives [`FieldSelector::parse`].
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas that are not escaped by a backslash.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits at the first operator; the left side cannot contain escapes.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (token, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(token) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape_value(raw: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(FieldSelectorError::InvalidEscape(format!("\\{other}"))),
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(FieldSelectorError::Unescaped(c)),
            other => out.push(other),
        }
    }
    if escaped {
        return Err(FieldSelectorError::InvalidEscape("\\".to_owned()));
    }
    Ok(out)
}

/// How a selectable field is rendered when absent: Go prints the zero value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Text,
    Bool,
    Integer,
}

/// A selectable field: its selector name, JSON pointer and type.
#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    pointer: &'static str,
    field_type: FieldType,
}

const fn text(name: &'static str, pointer: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        pointer,
        field_type: FieldType::Text,
    }
}

const METADATA_FIELDS: &[FieldSpec] = &[
    text("metadata.name", "/metadata/name"),
    text("metadata.namespace", "/metadata/namespace"),
];

const POD_FIELDS: &[FieldSpec] = &[
    text("spec.nodeName", "/spec/nodeName"),
    text("spec.restartPolicy", "/spec/restartPolicy"),
    text("spec.schedulerName", "/spec/schedulerName"),
    text("spec.serviceAccountName", "/spec/serviceAccountName"),
    FieldSpec {
        name: "spec.hostNetwork",
        pointer: "/spec/hostNetwork",
        field_type: FieldType::Bool,
    },
    text("status.phase", "/status/phase"),
    text("status.podIP", "/status/podIP"),
    text("status.nominatedNodeName", "/status/nominatedNodeName"),
];

const EVENT_FIELDS: &[FieldSpec] = &[
    text("involvedObject.kind", "/involvedObject/kind"),
    text("involvedObject.namespace", "/involvedObject/namespace"),
    text("involvedObject.name", "/involvedObject/name"),
    text("involvedObject.uid", "/involvedObject/uid"),
    text("involvedObject.apiVersion", "/involvedObject/apiVersion"),
    text(
        "involvedObject.resourceVersion",
        "/involvedObject/resourceVersion",
    ),
    text("involvedObject.fieldPath", "/involvedObject/fieldPath"),
    text("reason", "/reason"),
    text("reportingComponent", "/reportingComponent"),
    text("source", "/source/component"),
    text("type", "/type"),
];

const NODE_FIELDS: &[FieldSpec] = &[FieldSpec {
    name: "spec.unschedulable",
    pointer: "/spec/unschedulable",
    field_type: FieldType::Bool,
}];

const NAMESPACE_FIELDS: &[FieldSpec] = &[text("status.phase", "/status/phase")];

const SECRET_FIELDS: &[FieldSpec] = &[text("type", "/type")];

const SERVICE_FIELDS: &[FieldSpec] = &[
    text("spec.clusterIP", "/spec/clusterIP"),
    text("spec.type", "/spec/type"),
];

const REPLICAS_FIELDS: &[FieldSpec] = &[FieldSpec {
    name: "status.replicas",
    pointer: "/status/replicas",
    field_type: FieldType::Integer,
}];

const JOB_FIELDS: &[FieldSpec] = &[FieldSpec {
    name: "status.successful",
    pointer: "/status/succeeded",
    field_type: FieldType::Integer,
}];

/// Fields beyond `metadata.name`/`metadata.namespace` that `group`/`resource` supports.
fn extra_fields(group: &str, resource: &str) -> &'static [FieldSpec] {
    match (group, resource) {
        ("", "pods") => POD_FIELDS,
        // events.k8s.io events are stored as core events, so they filter the same way.
        ("", "events") | ("events.k8s.io", "events") => EVENT_FIELDS,
        ("", "nodes") => NODE_FIELDS,
        ("", "namespaces") => NAMESPACE_FIELDS,
        ("", "secrets") => SECRET_FIELDS,
        ("", "services") => SERVICE_FIELDS,
        ("", "replicationcontrollers") | ("apps", "replicasets") => REPLICAS_FIELDS,
        ("batch", "jobs") => JOB_FIELDS,
        _ => &[],
    }
}

fn field_spec(group: &str, resource: &str, field: &str) -> Option<FieldSpec> {
    METADATA_FIELDS
        .iter()
        .chain(extra_fields(group, resource))
        .find(|spec| spec.name == field)
        .copied()
}

/// The field names `group`/`resource` can be selected by.
pub fn supported_fields(group: &str, resource: &str) -> Vec<&'static str> {
    METADATA_FIELDS
        .iter()
        .chain(extra_fields(group, resource))
        .map(|spec| spec.name)
        .collect()
}

/// The value of a selectable field of `object`, rendered as upstream compares it (zero
/// values for absent fields: `""`, `false`, `0`); `None` if the field is not selectable.
pub fn field_value(group: &str, resource: &str, field: &str, object: &Value) -> Option<String> {
    let spec = field_spec(group, resource, field)?;
    let value = object.pointer(spec.pointer);
    Some(match (spec.field_type, value) {
        (_, Some(Value::String(s))) => s.clone(),
        (_, Some(Value::Bool(b))) => b.to_string(),
        (_, Some(Value::Number(n))) => n.to_string(),
        (FieldType::Bool, _) => "false".to_owned(),
        (FieldType::Integer, _) => "0".to_owned(),
        (FieldType::Text, _) => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        })
    }

    #[test]
    fn parses_operators_and_sorts_terms() {
        let selector = FieldSelector::parse("status.phase!=Failed,spec.nodeName==n1").unwrap();
        assert_eq!(
            selector.requirements(),
            &[
                FieldRequirement {
                    field: "spec.nodeName".to_owned(),
                    operator: FieldOperator::Equals,
                    value: "n1".to_owned(),
                },
                FieldRequirement {
                    field: "status.phase".to_owned(),
                    operator: FieldOperator::NotEquals,
                    value: "Failed".to_owned(),
                },
            ]
        );
        assert_eq!(
            selector.to_string(),
            "spec.nodeName=n1,status.phase!=Failed"
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(",,").unwrap().is_empty());
    }

    #[test]
    fn pod_matches_table() {
        let pod = pod();
        for (selector, want) in [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.namespace=default,spec.nodeName=n1", true),
            ("spec.nodeName!=n1", false),
            ("spec.nodeName=", false),
            ("status.phase=Running", true),
            ("status.podIP=10.0.0.5", true),
            ("status.nominatedNodeName=", true),
            ("spec.serviceAccountName=", true),
            ("spec.hostNetwork=false", true),
        ] {
            let parsed = FieldSelector::parse(selector).unwrap();
            parsed.validate_for("", "pods").unwrap();
            assert_eq!(parsed.matches("", "pods", &pod), want, "{selector}");
        }
    }

    #[test]
    fn unscheduled_pods_match_empty_node_name() {
        let pending =
            json!({"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}});
        let selector = FieldSelector::parse("spec.nodeName=,status.phase!=Succeeded").unwrap();
        assert!(selector.matches("", "pods", &pending));
        assert!(!selector.matches("", "pods", &pod()));
    }

    #[test]
    fn event_fields_used_by_kubectl_describe() {
        let event = json!({
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled",
            "source": {"component": "default-scheduler"},
            "type": "Normal"
        });
        let selector = FieldSelector::parse(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u1,involvedObject.kind=Pod",
        )
        .unwrap();
        selector.validate_for("", "events").unwrap();
        assert!(selector.matches("", "events", &event));
        let by_source = FieldSelector::parse("source=default-scheduler,type=Normal").unwrap();
        assert!(by_source.matches("", "events", &event));
        assert!(
            !FieldSelector::parse("reason=Killing")
                .unwrap()
                .matches("", "events", &event)
        );
    }

    #[test]
    fn typed_fields_render_as_go_does() {
        let cordoned = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let plain = json!({"metadata": {"name": "n2"}, "spec": {}});
        let selector = FieldSelector::parse("spec.unschedulable=true").unwrap();
        assert!(selector.matches("", "nodes", &cordoned));
        assert!(!selector.matches("", "nodes", &plain));
        assert!(
            FieldSelector::parse("spec.unschedulable=false")
                .unwrap()
                .matches("", "nodes", &plain)
        );
        let rs = json!({"metadata": {"name": "rs"}, "status": {"replicas": 3}});
        assert!(FieldSelector::parse("status.replicas=3").unwrap().matches(
            "apps",
            "replicasets",
            &rs
        ));
        let job = json!({"metadata": {"name": "j"}, "status": {}});
        assert!(
            FieldSelector::parse("status.successful=0")
                .unwrap()
                .matches("batch", "jobs", &job)
        );
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        assert!(
            !FieldSelector::parse("spec.clusterIP!=None")
                .unwrap()
                .matches("", "services", &headless)
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque"});
        assert!(
            FieldSelector::parse("type=Opaque")
                .unwrap()
                .matches("", "secrets", &secret)
        );
    }

    #[test]
    fn unsupported_fields_are_rejected() {
        let selector = FieldSelector::parse("spec.nodeName=n1").unwrap();
        let err = selector.validate_for("", "configmaps").unwrap_err();
        assert_eq!(
            err,
            FieldSelectorError::Unsupported("spec.nodeName".to_owned())
        );
        assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
        assert!(!selector.matches("", "configmaps", &json!({})));
        FieldSelector::parse("metadata.name=x")
            .unwrap()
            .validate_for("apps", "deployments")
            .unwrap();
        assert_eq!(
            supported_fields("", "namespaces"),
            ["metadata.name", "metadata.namespace", "status.phase"]
        );
    }

    #[test]
    fn escaping_round_trips() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(selector.exact_match("metadata.name"), Some(r"a,b=c\d"));
        assert_eq!(selector.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(escape_value("x,y"), r"x\,y");
    }

    #[test]
    fn malformed_selectors_are_errors() {
        assert_eq!(
            FieldSelector::parse("metadata.name")
                .unwrap_err()
                .to_string(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse(r"metadata.name=a\b").unwrap_err(),
            FieldSelectorError::InvalidEscape(r"\b".to_owned())
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a=b").unwrap_err(),
            FieldSelectorError::Unescaped('=')
        );
        assert_eq!(
            FieldSelector::parse(r"metadata.name=a\").unwrap_err(),
            FieldSelectorError::InvalidEscape(r"\".to_owned())
        );
    }

    #[test]
    fn exact_match_ignores_negations() {
        let selector = FieldSelector::parse("metadata.name!=web").unwrap();
        assert_eq!(selector.exact_match("metadata.name"), None);
        let selector = FieldSelector::parse("metadata.name==web").unwrap();
        assert_eq!(selector.exact_match("metadata.name"), Some("web"));
    }
}
