//! Bearer-token authentication.
//!
//! Tokens live in `<data-dir>/tokens.csv` (`token,user` per line, as kube-apiserver's static
//! token file); the admin token is made on first start. Requests without a known token get
//! 401, except the unauthenticated health and version endpoints.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;

use crate::tls::{TlsError, write_private};

/// The admin user's name.
pub const ADMIN_USER: &str = "admin";

/// Known tokens and whom they stand for.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    users: HashMap<String, String>,
}

impl Tokens {
    /// Load `tokens.csv` from `dir`, adding an admin token when the file has none.
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        let path = dir.join("tokens.csv");
        let mut tokens = Tokens::default();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let mut parts = line.splitn(2, ',');
                    if let (Some(token), Some(user)) = (parts.next(), parts.next())
                        && !token.trim().is_empty()
                    {
                        tokens
                            .users
                            .insert(token.trim().to_owned(), user.trim().to_owned());
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TlsError::Io { path, source }),
        }
        if tokens.admin_token().is_none() {
            tokens.users.insert(new_token(), ADMIN_USER.to_owned());
            tokens.save(&path)?;
        }
        Ok(tokens)
    }

    /// Tokens from a map (tests).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Tokens {
            users: pairs.into_iter().collect(),
        }
    }

    fn save(&self, path: &Path) -> Result<(), TlsError> {
        let mut lines: Vec<String> = self
            .users
            .iter()
            .map(|(token, user)| format!("{token},{user}"))
            .collect();
        lines.sort();
        write_private(path, (lines.join("\n") + "\n").as_bytes())
    }

    /// The admin's token.
    pub fn admin_token(&self) -> Option<&str> {
        self.users
            .iter()
            .find(|(_, user)| user.as_str() == ADMIN_USER)
            .map(|(token, _)| token.as_str())
    }

    /// The user a `Authorization` header value authenticates, if any.
    pub fn authenticate(&self, authorization: &str) -> Option<&str> {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))?
            .trim();
        self.users.get(token).map(String::as_str)
    }
}

/// 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Paths anyone may read.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_is_made_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path()).unwrap();
        let token = tokens.admin_token().unwrap().to_owned();
        let again = Tokens::load_or_create(dir.path()).unwrap();
        assert_eq!(again.admin_token(), Some(token.as_str()));
        assert_eq!(
            again.authenticate(&format!("Bearer {token}")),
            Some(ADMIN_USER)
        );
        assert_eq!(again.authenticate("Bearer nope"), None);
        assert_eq!(again.authenticate(&token), None);
    }
}
