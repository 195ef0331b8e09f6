//! Node passwords, as k3s keeps them: holding the join token is not enough to join under the
//! name of a node that already joined, and so to take over its pods and their secrets.
//!
//! An agent makes a random password on its first join and keeps it in
//! `<data-dir>/node-password` (k3s: `/etc/rancher/node/password`). The first join under a node
//! name stores the password's hash in the Secret `kube-system/<node>.node-password.tugboat` of
//! type `tugboat.dev/node-password` (k3s: `<node>.node-password.k3s`, `k3s.cattle.io/node-password`,
//! immutable, the hash under `hash`); a later join under that name must bring the same password,
//! else it is refused with 403. The hash is a PHC string, `$pbkdf2-sha256$i=N,l=32$<salt>$<hash>`
//! (k3s keeps scrypt in a format of its own; PBKDF2 comes with the `ring` rustls already uses).
//!
//! The Secret goes with its Node: once the Node exists, the controllers give the Secret an
//! ownerReference to it, so the garbage collector removes it when the node is deleted and the
//! name may join again (k3s's node-password controller does the same).

use std::num::NonZeroU32;

use base64::Engine as _;
use serde_json::{Value, json};
use tugboat_store::{Store, StoreError};

pub use tugboat_api::nodepassword::{
    MAX_NODE_NAME_LEN, SECRET_NAMESPACE, SECRET_SUFFIX, SECRET_TYPE, node_of_secret, secret_name,
};

const ALGORITHM: &str = "pbkdf2-sha256";
/// The agents' passwords are 256 random bits, so the iterations are not what keeps them safe;
/// they are there for a password a user writes into the file by hand.
const ITERATIONS: u32 = 100_000;
/// A tampered Secret must not make a join spin for minutes.
const MAX_ITERATIONS: u32 = 10_000_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD_NO_PAD
}

fn algorithm() -> ring::pbkdf2::Algorithm {
    ring::pbkdf2::PBKDF2_HMAC_SHA256
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    hash_with(
        password,
        NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN),
    )
}

fn hash_with(password: &str, iterations: NonZeroU32) -> String {
    use rand::RngCore as _;
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut derived = [0u8; HASH_LEN];
    ring::pbkdf2::derive(
        algorithm(),
        iterations,
        &salt,
        password.as_bytes(),
        &mut derived,
    );
    format!(
        "${ALGORITHM}$i={iterations},l={HASH_LEN}${}${}",
        b64().encode(salt),
        b64().encode(derived)
    )
}

/// A stored hash that is not one [`hash`] makes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the stored node password hash is not a {ALGORITHM} PHC string: {0}")]
pub struct BadHash(&'static str);

/// Whether `password` is the one `phc` (from [`hash`]) was made of, compared in constant time.
pub fn verify(phc: &str, password: &str) -> Result<bool, BadHash> {
    let mut fields = phc.split('$');
    if fields.next() != Some("") || fields.next() != Some(ALGORITHM) {
        return Err(BadHash("not $pbkdf2-sha256$"));
    }
    let params = fields.next().ok_or(BadHash("no parameters"))?;
    let salt = fields.next().ok_or(BadHash("no salt"))?;
    let expected = fields.next().ok_or(BadHash("no hash"))?;
    if fields.next().is_some() {
        return Err(BadHash("too many fields"));
    }
    let mut iterations = None;
    let mut length = None;
    for param in params.split(',') {
        match param.split_once('=') {
            Some(("i", value)) => iterations = value.parse::<u32>().ok(),
            Some(("l", value)) => length = value.parse::<usize>().ok(),
            _ => return Err(BadHash("unknown parameter")),
        }
    }
    let iterations = iterations
        .filter(|i| *i <= MAX_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or(BadHash("no or bad iteration count"))?;
    let salt = b64().decode(salt).map_err(|_| BadHash("salt not base64"))?;
    let expected = b64()
        .decode(expected)
        .map_err(|_| BadHash("hash not base64"))?;
    if expected.is_empty() || length.is_some_and(|l| l != expected.len()) {
        return Err(BadHash("hash length"));
    }
    Ok(ring::pbkdf2::verify(
        algorithm(),
        iterations,
        &salt,
        password.as_bytes(),
        &expected,
    )
    .is_ok())
}

/// What a join under a node name with a password comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The name's first join: the password's hash is stored now.
    Stored,
    /// The password is the one stored for the name.
    Matched,
    /// Another password is stored for the name.
    Rejected,
    /// A Node of that name exists without a password (it did not join with a token, e.g. the
    /// `tug up` machine's own node): nobody may join under its name until it is deleted.
    NodeWithoutPassword,
}

fn secret_key(node_name: &str) -> String {
    format!(
        "/registry/secrets/{SECRET_NAMESPACE}/{}",
        secret_name(node_name)
    )
}

async fn verify_stored(
    store: &dyn Store,
    node_name: &str,
    password: &str,
) -> Result<Option<bool>, StoreError> {
    let Some(kv) = store.get(&secret_key(node_name)).await? else {
        return Ok(None);
    };
    let stored = serde_json::from_slice::<Value>(&kv.value)
        .ok()
        .and_then(|obj| {
            let encoded = obj.get("data")?.get("hash")?.as_str()?.to_owned();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok()
        });
    let matched = match stored.as_deref().map(|phc| verify(phc, password)) {
        Some(Ok(matched)) => matched,
        Some(Err(error)) => {
            tracing::warn!(node = %node_name, %error, "refusing a join: its node password Secret is damaged");
            false
        }
        None => {
            tracing::warn!(node = %node_name, "refusing a join: its node password Secret holds no hash");
            false
        }
    };
    Ok(Some(matched))
}

/// Check `password` for a join under `node_name`: against the stored hash, or, on the name's
/// first join, store its hash (k3s's `nodepassword.Ensure`). Two first joins at once: one
/// stores, the other is checked against it.
pub async fn ensure(
    store: &dyn Store,
    node_name: &str,
    password: &str,
) -> Result<Verdict, StoreError> {
    let verdict = |matched: bool| {
        if matched {
            Verdict::Matched
        } else {
            Verdict::Rejected
        }
    };
    if let Some(matched) = verify_stored(store, node_name, password).await? {
        return Ok(verdict(matched));
    }
    if store
        .get(&format!("/registry/nodes/{node_name}"))
        .await?
        .is_some()
    {
        return Ok(Verdict::NodeWithoutPassword);
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": secret_name(node_name), "namespace": SECRET_NAMESPACE },
        "type": SECRET_TYPE,
        "immutable": true,
        "data": {
            "hash": base64::engine::general_purpose::STANDARD.encode(hash(password)),
        },
    });
    let stamped = crate::bootstrap::stamp(secret);
    let value = serde_json::to_vec(&stamped).unwrap_or_default();
    match store.create(&secret_key(node_name), value.into()).await {
        Ok(_) => Ok(Verdict::Stored),
        Err(StoreError::AlreadyExists { .. }) => {
            let matched = verify_stored(store, node_name, password).await?;
            Ok(verdict(matched.unwrap_or(false)))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap hashes for the tests of the format (a debug build takes about a second for
    /// the real count).
    fn cheap(password: &str) -> String {
        hash_with(password, NonZeroU32::new(1000).unwrap())
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("s3cret");
        assert!(phc.starts_with("$pbkdf2-sha256$i=100000,l=32$"), "{phc}");
        assert_eq!(verify(&phc, "s3cret"), Ok(true));
        let phc = cheap("s3cret");
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000,l=32$"), "{phc}");
        assert_eq!(verify(&phc, "s3cret"), Ok(true));
        assert_eq!(verify(&phc, "s3cret "), Ok(false));
        assert_eq!(verify(&phc, ""), Ok(false));
        // Salted: the same password never hashes the same twice.
        let again = cheap("s3cret");
        assert_ne!(phc, again);
        assert_eq!(verify(&again, "s3cret"), Ok(true));
    }

    #[test]
    fn a_hash_in_another_form_is_refused_not_matched() {
        let phc = cheap("p");
        let salt_and_hash = phc.splitn(4, '$').nth(3).unwrap();
        let cases = [
            String::new(),
            "p".to_owned(),
            phc.replace("pbkdf2-sha256", "scrypt"),
            format!("$pbkdf2-sha256$i=0,l=32${salt_and_hash}"),
            format!("$pbkdf2-sha256$i=999999999,l=32${salt_and_hash}"),
            format!("$pbkdf2-sha256$i=1000,l=31${salt_and_hash}"),
            format!("$pbkdf2-sha256$i=1000,x=1${salt_and_hash}"),
            format!("{phc}$more"),
            phc.replace("$i=", "$"),
        ];
        for case in cases {
            assert!(verify(&case, "p").is_err(), "{case:?} was taken");
        }
        // A hash of fewer iterations still verifies: the parameters come from the string.
        let salt = [7u8; SALT_LEN];
        let mut derived = [0u8; HASH_LEN];
        let one = NonZeroU32::MIN;
        ring::pbkdf2::derive(algorithm(), one, &salt, b"p", &mut derived);
        let one_round = format!(
            "$pbkdf2-sha256$i=1,l=32${}${}",
            b64().encode(salt),
            b64().encode(derived)
        );
        assert_eq!(verify(&one_round, "p"), Ok(true));
        assert_eq!(verify(&one_round, "q"), Ok(false));
    }

    #[tokio::test]
    async fn the_first_join_stores_the_password_and_later_ones_must_bring_it() {
        let store = tugboat_store::memory::memory_store().unwrap();
        assert_eq!(ensure(&store, "w1", "mine").await.unwrap(), Verdict::Stored);
        assert_eq!(
            ensure(&store, "w1", "mine").await.unwrap(),
            Verdict::Matched
        );
        assert_eq!(
            ensure(&store, "w1", "theirs").await.unwrap(),
            Verdict::Rejected
        );
        // Another name is another node.
        assert_eq!(
            ensure(&store, "w2", "theirs").await.unwrap(),
            Verdict::Stored
        );
        let kv = store
            .get("/registry/secrets/kube-system/w1.node-password.tugboat")
            .await
            .unwrap()
            .unwrap();
        let secret: Value = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(secret["type"], SECRET_TYPE);
        assert_eq!(secret["immutable"], true);
        assert!(secret["metadata"]["uid"].is_string());
        let stored = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["hash"].as_str().unwrap())
            .unwrap();
        let stored = String::from_utf8(stored).unwrap();
        assert!(!stored.contains("mine"), "{stored}");
        assert_eq!(verify(&stored, "mine"), Ok(true));

        // A node registered without joining (the `tug up` machine's own) keeps its name.
        store
            .create(
                "/registry/nodes/local",
                br#"{"kind":"Node","metadata":{"name":"local"}}"#.to_vec().into(),
            )
            .await
            .unwrap();
        assert_eq!(
            ensure(&store, "local", "any").await.unwrap(),
            Verdict::NodeWithoutPassword
        );
    }
}
