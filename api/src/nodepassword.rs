//! The names of node password Secrets (k3s's `<node>.node-password.k3s`), shared by the API
//! server, which stores a joining node's password hash in one, and the controllers, which tie
//! each one to its Node so that it goes with the Node.

/// The type of node password Secrets (k3s: `k3s.cattle.io/node-password`).
pub const SECRET_TYPE: &str = "tugboat.dev/node-password";
/// Where node password Secrets live.
pub const SECRET_NAMESPACE: &str = "kube-system";
/// What follows the node name in the Secret's name.
pub const SECRET_SUFFIX: &str = ".node-password.tugboat";
/// The longest node name whose password Secret's name is still a valid object name.
pub const MAX_NODE_NAME_LEN: usize = 253 - SECRET_SUFFIX.len();

/// The name of `node_name`'s password Secret.
pub fn secret_name(node_name: &str) -> String {
    format!("{node_name}{SECRET_SUFFIX}")
}

/// The node a password Secret's name is for, if it is one.
pub fn node_of_secret(secret_name: &str) -> Option<&str> {
    secret_name
        .strip_suffix(SECRET_SUFFIX)
        .filter(|node| !node.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_k3s() {
        assert_eq!(secret_name("worker-1"), "worker-1.node-password.tugboat");
        assert_eq!(
            node_of_secret("worker-1.node-password.tugboat"),
            Some("worker-1")
        );
        assert_eq!(node_of_secret(".node-password.tugboat"), None);
        assert_eq!(node_of_secret("tugboat-join-token"), None);
        assert_eq!(secret_name(&"a".repeat(MAX_NODE_NAME_LEN)).len(), 253);
    }
}
