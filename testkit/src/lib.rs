//! Test fixtures shared by Tugboat's crates. Dev-only: nothing here ships in a binary.
//!
//! - [`etcd`]: a private, throw-away etcd server (or a cluster of them) on free loopback ports.
//! - [`net`]: loopback port helpers.
//! - [`kube`]: a kube-rs client for a running API server (start one with
//!   `tugboat_apiserver::start` on `StoreConfig::Memory` and port 0).
//! - [`fake_api`]: an in-memory API server behind a `kube::Client`, for component tests.
//! - [`objects`]: Node and Pod builders.
//! - `runtime` (feature `runtime`): a recording runtime for the node agent's component tests.
//! - [`wait`]: bounded waits.
//!
//! This crate must not depend on any Tugboat crate that uses it in its own tests
//! (`tugboat-store` dev-depends on it), so it only speaks plain processes, sockets and HTTP;
//! `tugboat-runtime` (which uses nothing of it) is the one exception, behind a feature.

pub mod etcd;
pub mod fake_api;
pub mod kube;
pub mod net;
pub mod objects;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod wait;
