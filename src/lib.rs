//! gangway: one stdio MCP server that fronts many stdio MCP servers.
//!
//! The crate is split so that everything but `runtime` is pure: `wire` turns bytes into
//! messages and back, `gateway` decides what MCP means, `timer` keeps deadlines, and
//! `runtime` is the only code that touches the OS.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod docker;
pub mod gateway;
pub mod hash;
pub mod http;
pub mod logfmt;
pub mod ratelimit;
pub mod runtime;
pub mod setup;
pub mod timer;
pub mod wire;
