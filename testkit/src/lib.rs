//! Test fixtures shared by Tugboat's crates. Dev-only: nothing here ships in a binary.
//!
//! - [`etcd`]: a private, throw-away etcd server on free loopback ports.
//! - [`net`]: loopback port helpers.
//!
//! This crate must not depend on any Tugboat crate that uses it in its own tests
//! (`tugboat-store` dev-depends on it), so it only speaks plain processes and sockets.

pub mod etcd;
pub mod net;
