//! Kubernetes API types and the pure API logic Tugboat's components share.
//!
//! No I/O and no async here: everything in this crate is a function of its inputs, so it is
//! tested with plain unit tests.

pub mod defaults;
pub mod discovery;
pub mod fields;
pub mod managed;
pub mod nodepassword;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod scheduling;
pub mod selector;
pub mod status;
pub mod strict;
pub mod table;
pub mod validation;
