//! What a request asks to do, as kube-apiserver's `RequestInfo` derives it from the method,
//! path and query: authorizers decide on these attributes alone.

use std::fmt;

use crate::request::Query;

/// The attributes of one request (`authorizer.Attributes` without the user).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`...; for non-resource requests the lower-case method.
    pub verb: String,
    /// Whether the request addresses a resource (`/api/v1/...` past the version).
    pub resource_request: bool,
    /// The request path (non-resource requests are authorized on it).
    pub path: String,
    /// API group, empty for core.
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// Resource plural (`pods`).
    pub resource: String,
    /// Subresource (`status`), empty if none.
    pub subresource: String,
    /// Object name, empty for collections.
    pub name: String,
}

/// Subresources of a namespace that `/api/v1/namespaces/NAME/SUB` addresses (rather than a
/// resource called SUB inside the namespace).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl Attributes {
    /// A resource request (reviews and impersonation checks build these).
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attributes {
            verb: verb.to_owned(),
            resource_request: true,
            api_group: api_group.to_owned(),
            namespace: namespace.to_owned(),
            resource: resource.to_owned(),
            name: name.to_owned(),
            ..Attributes::default()
        }
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Attributes::default()
        }
    }

    /// The attributes of an HTTP request: `method`, `path` and its query.
    pub fn from_request(method: &str, path: &str, query: &Query) -> Self {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let non_resource = || Attributes::non_resource(&method.to_ascii_lowercase(), path);
        let (api_group, api_version, mut rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return non_resource(),
        };
        let mut verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        };
        // The deprecated `/watch/` prefix.
        if rest.first() == Some(&"watch") {
            verb = "watch";
            rest = &rest[1..];
        }
        if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
            return non_resource();
        }
        let mut namespace = "";
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = rest[1];
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        let mut attributes = Attributes {
            verb: String::new(),
            resource_request: true,
            path: path.to_owned(),
            api_group: api_group.to_owned(),
            api_version: api_version.to_owned(),
            namespace: namespace.to_owned(),
            resource: rest[0].to_owned(),
            name: rest.get(1).copied().unwrap_or_default().to_owned(),
            subresource: rest.get(2).copied().unwrap_or_default().to_owned(),
        };
        if attributes.name.is_empty() && verb == "get" {
            verb = if query.flag("watch") { "watch" } else { "list" };
            if let Some(selector) = query.get("fieldSelector")
                && let Some(name) = exact_name(selector)
            {
                attributes.name = name.to_owned();
            }
        }
        if attributes.name.is_empty() && verb == "delete" {
            verb = "deletecollection";
        }
        attributes.verb = verb.to_owned();
        attributes
    }

    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

impl fmt::Display for Attributes {
    /// The middle of kube-apiserver's forbidden message: `delete resource "pods" in API
    /// group "" in the namespace "default"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.resource_request {
            return write!(f, "{} path {:?}", self.verb, self.path);
        }
        write!(
            f,
            "{} resource {:?} in API group {:?}",
            self.verb,
            self.combined_resource(),
            self.api_group
        )?;
        if self.namespace.is_empty() {
            f.write_str(" at the cluster scope")
        } else {
            write!(f, " in the namespace {:?}", self.namespace)
        }
    }
}

/// The name a field selector requires exactly (`metadata.name=web`), if any.
fn exact_name(selector: &str) -> Option<&str> {
    let mut found = None;
    for term in selector.split(',') {
        let term = term.trim();
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="));
        if let Some(value) = value {
            if found.is_some() || value.is_empty() || value.contains('/') {
                return None;
            }
            found = Some(value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, uri: &str) -> Attributes {
        let uri: axum::http::Uri = uri.parse().unwrap();
        let query = Query::from_uri(&uri).unwrap();
        Attributes::from_request(method, uri.path(), &query)
    }

    fn short(a: &Attributes) -> (&str, &str, &str, &str, &str, &str) {
        (
            a.verb.as_str(),
            a.api_group.as_str(),
            a.namespace.as_str(),
            a.resource.as_str(),
            a.subresource.as_str(),
            a.name.as_str(),
        )
    }

    #[test]
    fn verbs_follow_request_info() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/default/pods/web",
                ("get", "", "default", "pods", "", "web"),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/default/pods/web",
                ("get", "", "default", "pods", "", "web"),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                ("list", "", "default", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=true",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=1&fieldSelector=metadata.name%3Dweb",
                ("watch", "", "", "pods", "", "web"),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/secrets?fieldSelector=metadata.name=s1",
                ("list", "", "a", "secrets", "", "s1"),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/a/deployments",
                ("create", "apps", "a", "deployments", "", ""),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                ("update", "apps", "a", "deployments", "scale", "d"),
            ),
            (
                "PATCH",
                "/api/v1/nodes/n1/status",
                ("patch", "", "", "nodes", "status", "n1"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/pods/p",
                ("delete", "", "a", "pods", "", "p"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/pods",
                ("deletecollection", "", "a", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                ("get", "", "kube-system", "namespaces", "", "kube-system"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/x/finalize",
                ("update", "", "x", "namespaces", "finalize", "x"),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                ("list", "", "", "namespaces", "", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/p/exec",
                ("create", "", "a", "pods", "exec", "p"),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/a/pods",
                ("watch", "", "a", "pods", "", ""),
            ),
        ];
        for (method, uri, want) in cases {
            let a = attrs(method, uri);
            assert!(a.resource_request, "{uri}");
            assert_eq!(short(&a), want, "{method} {uri}");
        }
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource() {
        for (method, uri, verb) in [
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/openapi/v3/apis/apps/v1", "get"),
            ("HEAD", "/metrics", "head"),
            ("POST", "/version", "post"),
        ] {
            let a = attrs(method, uri);
            assert!(!a.resource_request, "{uri}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), (verb, uri));
        }
    }

    #[test]
    fn messages_read_like_kube_apiserver() {
        let a = attrs("DELETE", "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            a.to_string(),
            r#"delete resource "pods" in API group "" in the namespace "default""#
        );
        let a = attrs("PATCH", "/api/v1/nodes/n1/status");
        assert_eq!(
            a.to_string(),
            r#"patch resource "nodes/status" in API group "" at the cluster scope"#
        );
        assert_eq!(
            attrs("GET", "/metrics").to_string(),
            r#"get path "/metrics""#
        );
    }
}
