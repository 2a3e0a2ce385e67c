//! The invariants, as plain functions that panic when one breaks. Shared by the property
//! tests (`tests/props/*.rs`, driven by proptest) and the cargo-fuzz targets (`fuzz/`, which
//! include this directory by path), so a fuzz crash and a failing property are the same
//! assertion. Only `gangway`, `serde_json` and std are used here, because the fuzz crate
//! has no proptest.

pub mod config;
pub mod framing;
pub mod gateway;
pub mod http;
pub mod http_client;
pub mod message;
