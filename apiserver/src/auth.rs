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

/// The group that every authorizer lets do anything (as in Kubernetes).
pub const MASTERS_GROUP: &str = "system:masters";

/// Who a request comes from, as Kubernetes' `user.Info`: authorizers decide on these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`admin`, `system:node:NAME`, `system:serviceaccount:NS:NAME`).
    pub name: String,
    /// A stable id; the name when the token file gives none.
    pub uid: String,
    /// Groups, plus `system:authenticated` for every authenticated user.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with these groups; `system:authenticated` is added as kube-apiserver does.
    pub fn new(name: &str, uid: &str, groups: impl IntoIterator<Item = String>) -> Self {
        let mut groups: Vec<String> = groups.into_iter().collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".to_owned());
        }
        UserInfo {
            name: name.to_owned(),
            uid: if uid.is_empty() { name } else { uid }.to_owned(),
            groups,
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The user of a verified client certificate, put on each request of its connection.
#[derive(Debug, Clone)]
pub struct CertificateUser(pub UserInfo);

/// Known tokens and whom they stand for.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    users: HashMap<String, UserInfo>,
}

impl Tokens {
    /// Load `tokens.csv` from `dir`, adding an admin token when the file has none.
    ///
    /// Lines are kube-apiserver's static token file: `token,user[,uid[,"group1,group2"]]`.
    /// The admin user is always in `system:masters` (files from before groups lack it).
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        let path = dir.join("tokens.csv");
        let mut tokens = Tokens::default();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some((token, user)) = parse_token_line(line) {
                        tokens.users.insert(token, user);
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TlsError::Io { path, source }),
        }
        if tokens.admin_token().is_none() {
            tokens.users.insert(new_token(), admin_user());
            tokens.save(&path)?;
        }
        Ok(tokens)
    }

    /// Tokens from `(token, user name)` pairs, the admin in `system:masters` (tests).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Tokens {
            users: pairs
                .into_iter()
                .map(|(token, name)| {
                    let user = if name == ADMIN_USER {
                        admin_user()
                    } else {
                        UserInfo::new(&name, "", [])
                    };
                    (token, user)
                })
                .collect(),
        }
    }

    fn save(&self, path: &Path) -> Result<(), TlsError> {
        let mut lines: Vec<String> = self
            .users
            .iter()
            .map(|(token, user)| {
                let groups: Vec<&str> = user
                    .groups
                    .iter()
                    .map(String::as_str)
                    .filter(|g| *g != "system:authenticated")
                    .collect();
                format!(
                    "{token},{},{},\"{}\"",
                    user.name,
                    user.uid,
                    groups.join(",")
                )
            })
            .collect();
        lines.sort();
        write_private(path, (lines.join("\n") + "\n").as_bytes())
    }

    /// The admin's token.
    pub fn admin_token(&self) -> Option<&str> {
        self.users
            .iter()
            .find(|(_, user)| user.name == ADMIN_USER)
            .map(|(token, _)| token.as_str())
    }

    /// The user a `Authorization` header value authenticates, if any.
    pub fn authenticate(&self, authorization: &str) -> Option<&UserInfo> {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))?
            .trim();
        self.user(token)
    }

    /// The user a bare token (no `Bearer `) stands for, if any.
    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(token)
    }
}

fn admin_user() -> UserInfo {
    UserInfo::new(ADMIN_USER, ADMIN_USER, [MASTERS_GROUP.to_owned()])
}

/// One line of a static token file: `token,user[,uid[,"group1,group2"]]`.
fn parse_token_line(line: &str) -> Option<(String, UserInfo)> {
    let mut parts = line.splitn(4, ',');
    let token = parts.next()?.trim();
    let name = parts.next()?.trim();
    if token.is_empty() || name.is_empty() {
        return None;
    }
    let uid = parts.next().unwrap_or("").trim();
    let mut groups: Vec<String> = parts
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    if name == ADMIN_USER && !groups.iter().any(|g| g == MASTERS_GROUP) {
        groups.push(MASTERS_GROUP.to_owned());
    }
    Some((token.to_owned(), UserInfo::new(name, uid, groups)))
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
        let admin = again.authenticate(&format!("Bearer {token}")).unwrap();
        assert_eq!(admin.name, ADMIN_USER);
        assert!(admin.in_group(MASTERS_GROUP) && admin.in_group("system:authenticated"));
        assert_eq!(again.authenticate("Bearer nope"), None);
        assert_eq!(again.authenticate(&token), None);
    }

    #[test]
    fn token_file_lines_carry_uid_and_quoted_groups() {
        let (token, user) =
            parse_token_line(r#"t1,system:node:n1,n1-uid,"system:nodes,extra""#).unwrap();
        assert_eq!(token, "t1");
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.uid, "n1-uid");
        assert_eq!(
            user.groups,
            ["system:nodes", "extra", "system:authenticated"]
        );
        // The old two-column form: the admin still gets system:masters.
        let (_, admin) = parse_token_line("t2,admin").unwrap();
        assert!(admin.in_group(MASTERS_GROUP));
        let (_, viewer) = parse_token_line("t3,viewer").unwrap();
        assert_eq!(viewer.uid, "viewer");
        assert!(!viewer.in_group(MASTERS_GROUP));
        assert_eq!(parse_token_line(",nobody"), None);
        assert_eq!(parse_token_line("lonely"), None);
    }

    #[test]
    fn saved_files_read_back_the_same_users() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path()).unwrap();
        let again = Tokens::load_or_create(dir.path()).unwrap();
        let token = tokens.admin_token().unwrap();
        assert_eq!(
            tokens.authenticate(&format!("Bearer {token}")),
            again.authenticate(&format!("Bearer {token}"))
        );
    }
}
