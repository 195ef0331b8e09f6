//! Test fixtures shared by Tugboat's crates. Dev-only: nothing here ships in a binary.
//!
//! - [`etcd`]: a private, throw-away etcd server on free loopback ports.
//! - [`net`]: loopback port helpers.
//! - `objects` (feature `k8s`): Node and Pod builders.
//! - `fake_api` (feature `kube`): an in-memory API server behind a `kube::Client`.
//!
//! This crate must not depend on any Tugboat crate that uses it in its own tests
//! (`tugboat-store` dev-depends on it), so it only speaks plain processes and sockets.

pub mod etcd;
#[cfg(feature = "kube")]
pub mod fake_api;
pub mod net;
#[cfg(feature = "k8s")]
pub mod objects;
