//! Tests of the patch module: upstream-style table tests, kubectl's real payloads, JSON patch and
//! merge patch, and the built-in metadata.

mod diff;
mod json;
mod kubectl;
mod robustness;
mod schema;
mod strategic;
