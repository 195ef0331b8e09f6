//! Parse a request path into what it addresses, as kube-apiserver's installer lays paths out:
//!
//! ```text
//! /api/v1/<resource>[/<name>[/<subresource>]]                         cluster-scoped or all namespaces
//! /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]]         namespaced
//! /apis/<group>/<version>/...                                         the same, for named groups
//! ```

use tugboat_api::resources::{Registry, ResourceInfo};

/// A path that addresses resources (as opposed to discovery or health endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// The resource.
    pub resource: &'static ResourceInfo,
    /// The version in the URL.
    pub version: String,
    /// The namespace segment, if the path has one.
    pub namespace: Option<String>,
    /// The object name, if the path names one.
    pub name: Option<String>,
    /// The subresource (`status`, `scale`, `binding`...), if any.
    pub subresource: Option<String>,
}

/// What a path under `/api` or `/apis` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every named group.
    Groups,
    /// `/apis/<group>`: one group.
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`: the resources of one group-version.
    GroupVersion {
        /// Group, empty for core.
        group: String,
        /// Version.
        version: String,
    },
    /// A resource collection or object.
    Resource(ResourcePath),
}

/// Why a path addresses nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not under `/api` or `/apis`, or an unknown group, version or resource.
    #[error("the server could not find the requested resource")]
    NotFound,
}

/// Parse `path` (without the query) against the registry.
pub fn parse(registry: &Registry, path: &str) -> Result<ApiPath, PathError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["api"] => Ok(ApiPath::CoreVersions),
        ["apis"] => Ok(ApiPath::Groups),
        ["apis", group] => {
            if registry.groups().iter().any(|g| g.group == *group) {
                Ok(ApiPath::Group((*group).to_owned()))
            } else {
                Err(PathError::NotFound)
            }
        }
        ["api", version, rest @ ..] => parse_group_version(registry, "", version, rest),
        ["apis", group, version, rest @ ..] => parse_group_version(registry, group, version, rest),
        _ => Err(PathError::NotFound),
    }
}

fn parse_group_version(
    registry: &Registry,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<ApiPath, PathError> {
    if registry.in_group_version(group, version).next().is_none() {
        return Err(PathError::NotFound);
    }
    let (namespace, rest) = match rest {
        // `namespaces/<name>/status` and `/finalize` address the namespace itself.
        ["namespaces", _, sub] if group.is_empty() && matches!(*sub, "status" | "finalize") => {
            (None, rest)
        }
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [] => {
            return Ok(ApiPath::GroupVersion {
                group: group.to_owned(),
                version: version.to_owned(),
            });
        }
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(PathError::NotFound),
    };
    let resource = registry
        .lookup(group, version, plural)
        .ok_or(PathError::NotFound)?;
    // A namespaced object is addressed only inside its namespace; a cluster-scoped one never is.
    if namespace.is_some() && !resource.namespaced {
        return Err(PathError::NotFound);
    }
    if namespace.is_none() && resource.namespaced && name.is_some() {
        return Err(PathError::NotFound);
    }
    if let Some(sub) = subresource
        && resource.subresource(sub).is_none()
    {
        return Err(PathError::NotFound);
    }
    if name.is_some_and(str::is_empty) || namespace.is_some_and(str::is_empty) {
        return Err(PathError::NotFound);
    }
    Ok(ApiPath::Resource(ResourcePath {
        resource,
        version: version.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse(&Registry::builtin(), path) {
            Ok(ApiPath::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths() {
        let r = resource("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(r.resource.plural, "pods");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));

        let r = resource("/apis/apps/v1/namespaces/prod/deployments");
        assert_eq!(
            (r.resource.kind, r.namespace.as_deref(), r.name),
            ("Deployment", Some("prod"), None)
        );
    }

    #[test]
    fn all_namespaces_and_cluster_scoped() {
        let r = resource("/api/v1/pods");
        assert_eq!(
            (r.resource.plural, r.namespace, r.name),
            ("pods", None, None)
        );
        let r = resource("/api/v1/nodes/n1");
        assert_eq!(r.name.as_deref(), Some("n1"));
        let r = resource("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.plural, r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let r = resource("/api/v1/namespaces/kube-system/finalize");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
    }

    #[test]
    fn discovery_paths() {
        let registry = Registry::builtin();
        assert_eq!(parse(&registry, "/api").unwrap(), ApiPath::CoreVersions);
        assert_eq!(parse(&registry, "/apis/").unwrap(), ApiPath::Groups);
        assert_eq!(
            parse(&registry, "/apis/apps").unwrap(),
            ApiPath::Group("apps".into())
        );
        assert_eq!(
            parse(&registry, "/apis/apps/v1").unwrap(),
            ApiPath::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
    }

    #[test]
    fn nonsense_is_not_found() {
        let registry = Registry::builtin();
        for path in [
            "/",
            "/apis/nope",
            "/apis/apps/v9",
            "/api/v1/widgets",
            "/api/v1/pods/web",
            "/api/v1/namespaces/default/nodes/n1",
            "/api/v1/namespaces/default/pods/web/nonsense",
            "/api/v1/namespaces/default/pods/web/status/extra",
        ] {
            assert_eq!(parse(&registry, path), Err(PathError::NotFound), "{path}");
        }
    }
}
