//! The gateway's behaviour as a client sees it, one module per area.

mod backend_io;
mod bad_input;
mod bounds;
mod catalog;
mod config_isolation;
mod crashes;
mod isolation;
mod lifecycle;
mod meta;
mod names;
mod reload;
mod remote;
mod remote_session;
mod routing;
mod serve;
mod service;
mod sessions;
mod timeouts;
mod tools_mode;
