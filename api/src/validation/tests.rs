//! Validation table tests.
