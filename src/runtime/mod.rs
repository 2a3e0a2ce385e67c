//! The only code that touches the OS: the mio event loop, gangway's own stdio, and backend
//! processes. It never interprets MCP; that is the gateway's job.

pub mod event_loop;
pub mod guard;
pub mod http;
pub mod notify;
pub mod process;
pub mod remote;
pub mod stdio;
pub mod tls;

pub use event_loop::{run, run_local, run_serve, LocalClient, LocalEnd, LocalRun, RunError};
