//! Service-account tokens: JWTs signed by the cluster's service-account key, as
//! kube-apiserver's bound tokens.
//!
//! - The key (ECDSA P-256, `ES256`) lives in `<data-dir>/pki/sa.key`, made on first start;
//!   API servers of one etcd cluster share it the way they share the CA (a copy of `pki/`).
//! - `POST .../serviceaccounts/NAME/token` (TokenRequest) issues one, optionally bound to a
//!   pod; `POST /apis/authentication.k8s.io/v1/tokenreviews` (TokenReview) checks one.
//! - A token authenticates as `system:serviceaccount:NS:NAME` while it has not expired, its
//!   ServiceAccount still exists with the same uid and, when bound, so does its pod.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tugboat_api::status::{self, FieldError, Target};

use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::path::ResourcePath;
use crate::server::ApiState;
use crate::tls::{TlsError, write_private};

/// The issuer and default audience of every token, as kube-apiserver's default
/// (`--service-account-issuer`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The prefix of service-account user names.
pub const USER_PREFIX: &str = "system:serviceaccount:";

/// The group of every service account.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// A TokenRequest's lifetime when it asks for none (as upstream).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// The shortest lifetime a TokenRequest may ask for (as upstream: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// The longest lifetime a TokenRequest may ask for (as upstream's validation: 2^32 s).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The file holding the signing key in the PKI directory.
const KEY_FILE: &str = "sa.key";

/// The user name of service account `name` in `namespace`.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("{USER_PREFIX}{namespace}:{name}")
}

/// The user a service account authenticates as: its name, uid and groups as upstream.
pub fn user_info(namespace: &str, name: &str, uid: &str) -> UserInfo {
    UserInfo::new(
        &user_name(namespace, name),
        uid,
        [
            ALL_SERVICE_ACCOUNTS_GROUP.to_owned(),
            format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
        ],
    )
}

/// An object a token names: its name and uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
}

/// A token's claims, as upstream's bound service-account tokens carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who may accept the token.
    pub aud: Vec<String>,
    /// When it expires (Unix seconds).
    pub exp: i64,
    /// When it was issued.
    pub iat: i64,
    /// Who issued it.
    pub iss: String,
    /// A unique id.
    #[serde(default)]
    pub jti: String,
    /// Good from.
    pub nbf: i64,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// The service account and the bound pod.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// What a token is to say.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: ObjectRef,
    /// The pod it is bound to.
    pub pod: Option<ObjectRef>,
    /// Who may accept it; empty means the API server ([`ISSUER`]).
    pub audiences: Vec<String>,
    /// How long it lives.
    pub lifetime: Duration,
}

/// Why a token was refused (TokenReview's `status.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not one of ours, tampered with, expired or for another audience.
    #[error("invalid bearer token, {0}")]
    Invalid(String),
    /// Its service account or pod is gone, or has another uid now.
    #[error("invalid bearer token, {0}")]
    Revoked(String),
}

/// Signs and checks service-account tokens with the cluster's key.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The key in `<pki_dir>/sa.key`, made (0600) when absent.
    pub fn load_or_create(pki_dir: &Path) -> Result<Self, TlsError> {
        let path = pki_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                let key = KeyPair::from_pem(&pem).map_err(|_| TlsError::BadPem { path })?;
                Self::from_key(&key)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(pki_dir).map_err(|source| TlsError::Io {
                    path: pki_dir.to_path_buf(),
                    source,
                })?;
                let key = KeyPair::generate()?;
                write_private(&path, key.serialize_pem().as_bytes())?;
                Self::from_key(&key)
            }
            Err(source) => Err(TlsError::Io { path, source }),
        }
    }

    /// A signer with a fresh key kept nowhere (in-process tests).
    pub fn ephemeral() -> Result<Self, TlsError> {
        Self::from_key(&KeyPair::generate()?)
    }

    fn from_key(key: &KeyPair) -> Result<Self, TlsError> {
        use base64::Engine as _;
        use rcgen::PublicKeyData as _;
        use sha2::Digest as _;
        // rcgen's default key is ECDSA P-256: PKCS#8 to sign, the raw point to verify.
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(TlsError::Generate(
                rcgen::Error::UnsupportedSignatureAlgorithm,
            ));
        }
        // The key id as upstream: the SHA-256 of the public key's DER, URL-safe base64.
        let key_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(key.subject_public_key_info()));
        Ok(TokenSigner {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
            key_id,
        })
    }

    /// A signed token for `spec`, issued now; also returns its claims.
    pub fn issue(&self, spec: &TokenSpec) -> Result<(String, Claims), TokenError> {
        let now = unix_now();
        let lifetime = i64::try_from(spec.lifetime.as_secs()).unwrap_or(MAX_EXPIRATION_SECONDS);
        let claims = Claims {
            aud: if spec.audiences.is_empty() {
                vec![ISSUER.to_owned()]
            } else {
                spec.audiences.clone()
            },
            exp: now + lifetime,
            iat: now,
            iss: ISSUER.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            sub: user_name(&spec.namespace, &spec.service_account.name),
            kubernetes: KubernetesClaims {
                namespace: spec.namespace.clone(),
                serviceaccount: spec.service_account.clone(),
                pod: spec.pod.clone(),
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|err| TokenError::Invalid(err.to_string()))?;
        Ok((token, claims))
    }

    /// The claims of `token` if this key signed it, it is current (a minute's leeway, as
    /// upstream) and meant for one of `audiences` (none: the API server's own).
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        if audiences.is_empty() {
            validation.set_audience(&[ISSUER]);
        } else {
            validation.set_audience(audiences);
        }
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|err| TokenError::Invalid(describe(&err)))?
            .claims;
        let k8s = &claims.kubernetes;
        if claims.sub != user_name(&k8s.namespace, &k8s.serviceaccount.name) {
            return Err(TokenError::Invalid(
                "the subject does not name its service account".into(),
            ));
        }
        Ok(claims)
    }
}

fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "Token has expired.".into(),
        ErrorKind::ImmatureSignature => "Token is not valid yet.".into(),
        ErrorKind::InvalidAudience => "Token audience is invalid.".into(),
        ErrorKind::InvalidIssuer => "Token issuer is invalid.".into(),
        ErrorKind::InvalidSignature => "Token signature is invalid.".into(),
        _ => "Token could not be validated.".into(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether `token` looks like a JWT (three dot-separated parts), so that other bearer tokens
/// do not pay for a signature check.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// The current object of `kind` (core group) `namespace/name`: from the watch cache, or the
/// store when the cache has not seen it yet.
pub(crate) async fn current(
    state: &ApiState,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<Value> {
    let resource = state.registry.by_kind("", kind)?;
    let key = resource.storage_key(Some(namespace), name);
    if let Some(obj) = state.caches.get(resource).and_then(|cache| cache.get(&key)) {
        return Some(std::sync::Arc::unwrap_or_clone(obj.value()));
    }
    let kv = state.store.get(&key).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The user `token` authenticates, checked against the objects it names (a deleted and
/// recreated service account or pod has another uid: its old tokens stop working).
pub async fn authenticate(
    state: &ApiState,
    token: &str,
    audiences: &[String],
) -> Result<(UserInfo, Claims), TokenError> {
    let claims = state.sa_tokens.verify(token, audiences)?;
    let k8s = &claims.kubernetes;
    let account = &k8s.serviceaccount;
    match current(state, "ServiceAccount", &k8s.namespace, &account.name).await {
        Some(obj) if uid_of(&obj) == account.uid => {}
        Some(obj) => {
            return Err(TokenError::Revoked(format!(
                "ServiceAccount UID ({}) does not match claim ({})",
                uid_of(&obj),
                account.uid
            )));
        }
        None => {
            return Err(TokenError::Revoked(format!(
                "service account {}/{} has been deleted",
                k8s.namespace, account.name
            )));
        }
    }
    if let Some(pod) = &k8s.pod {
        match current(state, "Pod", &k8s.namespace, &pod.name).await {
            Some(obj) if uid_of(&obj) == pod.uid => {}
            Some(obj) => {
                return Err(TokenError::Revoked(format!(
                    "Pod UID ({}) does not match claim ({})",
                    uid_of(&obj),
                    pod.uid
                )));
            }
            None => {
                return Err(TokenError::Revoked(format!(
                    "pod {}/{} has been deleted",
                    k8s.namespace, pod.name
                )));
            }
        }
    }
    let user = user_info(&k8s.namespace, &account.name, &account.uid);
    Ok((user, claims))
}

/// `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: a TokenRequest, answered with a
/// token in `status` (as `kubectl create token` reads it).
pub async fn token_request(
    state: &ApiState,
    user: &UserInfo,
    path: &ResourcePath,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let namespace = path.namespace.as_deref().unwrap_or_default();
    let name = path
        .name
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("a name is required"))?;
    let mut request = crate::request::decode_object(headers, body)?;
    let spec = request.get("spec").cloned().unwrap_or(Value::Null);
    let invalid = |errors: &[FieldError]| -> ApiError {
        status::invalid("authentication.k8s.io", "TokenRequest", name, errors).into()
    };

    let seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(value) => value.as_i64().ok_or_else(|| {
            invalid(&[FieldError::invalid(
                "spec.expirationSeconds",
                value.clone(),
                "must be an integer",
            )])
        })?,
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(&[FieldError::invalid(
            "spec.expirationSeconds",
            json!(seconds),
            "may not specify a duration less than 10 minutes",
        )]));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(&[FieldError::invalid(
            "spec.expirationSeconds",
            json!(seconds),
            "may not specify a duration larger than 2^32 seconds",
        )]));
    }
    let audiences: Vec<String> = match spec.get("audiences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(other) => {
            return Err(invalid(&[FieldError::invalid(
                "spec.audiences",
                other.clone(),
                "must be a list of strings",
            )]));
        }
    };

    let target = Target::new("", "serviceaccounts", name);
    let account = current(state, "ServiceAccount", namespace, name)
        .await
        .ok_or_else(|| ApiError::from(status::not_found(&target)))?;
    let bound = match spec.get("boundObjectRef") {
        None | Some(Value::Null) => None,
        Some(bound) => Some(bound_pod(state, namespace, name, bound, &invalid).await?),
    };
    // A node mints tokens only for its own pods (upstream's NodeRestriction).
    if let Some(node) = crate::authz::node::node_name(user) {
        let why = match &bound {
            None => Some("node requested token not bound to a pod"),
            Some((_, on)) if on != node => {
                Some("node requested token bound to a pod scheduled on a different node")
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            return Err(status::forbidden(&target, why).into());
        }
    }
    let pod = bound.map(|(pod, _)| pod);

    let (token, claims) = state
        .sa_tokens
        .issue(&TokenSpec {
            namespace: namespace.to_owned(),
            service_account: ObjectRef {
                name: name.to_owned(),
                uid: uid_of(&account).to_owned(),
            },
            pod,
            audiences,
            lifetime: Duration::from_secs(u64::try_from(seconds).unwrap_or(0)),
        })
        .map_err(|err| ApiError::internal("cannot sign the token", &err))?;

    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    if !request.get("metadata").is_some_and(Value::is_object) {
        request["metadata"] = json!({});
    }
    request["metadata"]["name"] = json!(name);
    request["metadata"]["namespace"] = json!(namespace);
    request["metadata"]["creationTimestamp"] = Value::Null;
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["spec"]["audiences"] = json!(claims.aud);
    request["status"] = json!({
        "token": token,
        "expirationTimestamp": rfc3339(claims.exp),
    });
    Ok(json_response(StatusCode::CREATED, &request))
}

/// The pod a TokenRequest binds its token to, checked as upstream: a Pod of the same
/// namespace, of the same uid when one is given, that runs as this service account. Also
/// the node it is bound to.
async fn bound_pod(
    state: &ApiState,
    namespace: &str,
    account: &str,
    bound: &Value,
    invalid: &(dyn Fn(&[FieldError]) -> ApiError + Sync),
) -> ApiResult<(ObjectRef, String)> {
    let text = |key: &str| bound.get(key).and_then(Value::as_str).unwrap_or("");
    let kind = text("kind");
    if kind != "Pod" {
        return Err(invalid(&[FieldError::not_supported(
            "spec.boundObjectRef.kind",
            json!(kind),
            &["Pod"],
        )]));
    }
    if !matches!(text("apiVersion"), "" | "v1") {
        return Err(invalid(&[FieldError::not_supported(
            "spec.boundObjectRef.apiVersion",
            json!(text("apiVersion")),
            &["v1"],
        )]));
    }
    let pod_name = text("name");
    if pod_name.is_empty() {
        return Err(invalid(&[FieldError::required(
            "spec.boundObjectRef.name",
            "",
        )]));
    }
    let pod = current(state, "Pod", namespace, pod_name)
        .await
        .ok_or_else(|| ApiError::from(status::not_found(&Target::new("", "pods", pod_name))))?;
    let uid = uid_of(&pod);
    let wanted_uid = text("uid");
    if !wanted_uid.is_empty() && wanted_uid != uid {
        return Err(status::conflict(
            &Target::new("", "pods", pod_name),
            &format!(
                "the UID in the bound object reference ({wanted_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        )
        .into());
    }
    let runs_as = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if runs_as != account {
        return Err(ApiError::bad_request(format!(
            "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
        )));
    }
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok((
        ObjectRef {
            name: pod_name.to_owned(),
            uid: uid.to_owned(),
        },
        node.to_owned(),
    ))
}

/// Unix seconds as Kubernetes writes timestamps.
fn rfc3339(seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    tugboat_api::table::timestamp_of(time)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Whether `path` is a service account's `token` subresource.
pub fn is_token_request(path: &ResourcePath) -> bool {
    path.resource.group.is_empty()
        && path.resource.kind == "ServiceAccount"
        && path.subresource.as_deref() == Some("token")
        && path.name.is_some()
}

/// Whether `path` is `authentication.k8s.io/v1` TokenReview.
pub fn is_token_review(path: &ResourcePath) -> bool {
    path.resource.group == "authentication.k8s.io" && path.resource.kind == "TokenReview"
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: whom a bearer token authenticates,
/// by every authenticator of this server (static, node and service-account tokens).
pub async fn token_review(
    state: &ApiState,
    method: &Method,
    path: &ResourcePath,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    if method != Method::POST || path.name.is_some() {
        return Err(status::method_not_allowed(
            &Target::of(path.resource, ""),
            &method.as_str().to_ascii_lowercase(),
        )
        .into());
    }
    let mut review = crate::request::decode_object(headers, body)?;
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() {
        return Err(status::invalid(
            "authentication.k8s.io",
            "TokenReview",
            "",
            &[FieldError::required("spec.token", "")],
        )
        .into());
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let answer = match crate::server::authenticate_bearer(state, token, &audiences).await {
        Ok(authenticated) => json!({
            "authenticated": true,
            "user": {
                "username": authenticated.user.name,
                "uid": authenticated.user.uid,
                "groups": authenticated.user.groups,
            },
            // The asked-for audiences the token is good for; none asked: the API server's.
            "audiences": if audiences.is_empty() {
                vec![ISSUER.to_owned()]
            } else {
                let good = authenticated.audiences.unwrap_or_else(|| vec![ISSUER.to_owned()]);
                audiences.iter().filter(|a| good.contains(a)).cloned().collect()
            },
        }),
        Err(error) => json!({
            "authenticated": false,
            "user": {},
            "error": error,
        }),
    };
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    review["kind"] = json!("TokenReview");
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = answer;
    Ok(json_response(StatusCode::CREATED, &review))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(lifetime: Duration) -> TokenSpec {
        TokenSpec {
            namespace: "dev".into(),
            service_account: ObjectRef {
                name: "robot".into(),
                uid: "sa-uid".into(),
            },
            pod: Some(ObjectRef {
                name: "web".into(),
                uid: "pod-uid".into(),
            }),
            audiences: Vec::new(),
            lifetime,
        }
    }

    #[test]
    fn issued_tokens_carry_upstream_claims_and_verify() {
        let signer = TokenSigner::ephemeral().unwrap();
        let (token, issued) = signer.issue(&spec(Duration::from_secs(3600))).unwrap();
        assert!(looks_like_jwt(&token), "{token}");
        let claims = signer.verify(&token, &[]).unwrap();
        assert_eq!(claims, issued);
        assert_eq!(claims.sub, "system:serviceaccount:dev:robot");
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.aud, [ISSUER]);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.kubernetes.pod.as_ref().unwrap().uid, "pod-uid");

        // The payload is upstream's JSON, readable by any JWT library.
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["kubernetes.io"]["namespace"], "dev");
        assert_eq!(payload["kubernetes.io"]["serviceaccount"]["name"], "robot");
        assert_eq!(payload["kubernetes.io"]["pod"]["name"], "web");
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert!(header.kid.is_some());
    }

    #[test]
    fn other_keys_tampering_expiry_and_audiences_are_refused() {
        let signer = TokenSigner::ephemeral().unwrap();
        let other = TokenSigner::ephemeral().unwrap();
        let (token, _) = signer.issue(&spec(Duration::from_secs(3600))).unwrap();
        assert!(other.verify(&token, &[]).is_err(), "another key's token");

        // A payload changed to another account keeps the old signature: refused.
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = json!("system:serviceaccount:kube-system:admin");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            engine.encode(serde_json::to_vec(&payload).unwrap()),
            parts[2]
        );
        assert_eq!(
            signer.verify(&forged, &[]).unwrap_err(),
            TokenError::Invalid("Token signature is invalid.".into())
        );

        // Expired more than the minute of leeway ago, signed by the right key.
        let (_, mut claims) = signer.issue(&spec(Duration::from_secs(600))).unwrap();
        claims.exp = unix_now() - 120;
        claims.iat = claims.exp - 600;
        claims.nbf = claims.iat;
        let header = Header {
            kid: Some(signer.key_id.clone()),
            ..Header::new(Algorithm::ES256)
        };
        let expired = jsonwebtoken::encode(&header, &claims, &signer.encoding).unwrap();
        assert_eq!(
            signer.verify(&expired, &[]).unwrap_err(),
            TokenError::Invalid("Token has expired.".into())
        );

        // A token for another audience is not good for the API server, and vice versa.
        let mut vault = spec(Duration::from_secs(3600));
        vault.audiences = vec!["vault".into()];
        let (for_vault, _) = signer.issue(&vault).unwrap();
        assert!(signer.verify(&for_vault, &[]).is_err());
        assert!(signer.verify(&for_vault, &["vault".into()]).is_ok());
        assert!(signer.verify(&token, &["vault".into()]).is_err());
    }

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let first = TokenSigner::load_or_create(&pki).unwrap();
        let mode = std::fs::metadata(pki.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (token, _) = first.issue(&spec(Duration::from_secs(3600))).unwrap();
        // Another API server with a copy of pki/ (or this one restarted) accepts it.
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(pki.join(KEY_FILE), copy.join(KEY_FILE)).unwrap();
        let second = TokenSigner::load_or_create(&copy).unwrap();
        assert_eq!(second.key_id, first.key_id);
        assert!(second.verify(&token, &[]).is_ok());

        std::fs::write(copy.join(KEY_FILE), "not a key").unwrap();
        assert!(matches!(
            TokenSigner::load_or_create(&copy),
            Err(TlsError::BadPem { .. })
        ));
    }
}
